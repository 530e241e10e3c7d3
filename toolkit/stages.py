"""The training stages as functions: pretrain the encoder (by the run's pretraining method, ``pretext.py``),
train Deep SVDD on labelled embeddings. Each builds its Ignite engine (``engines.py``), attaches the
method's own handlers (``spheres.py``), fires ``FitEvents.STAGE_STARTED`` on the caller's :class:`Harness`
so that the caller attaches its own (the CLI run adds checkpoints and resume, TensorBoard, evaluation,
progress, Ctrl-C: ``toolkit.run.RunHarness``), and runs it. The detector's ``fit`` calls them (through the
stage runner, ``runner.py``); nothing here knows about run folders."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, EventEnum, Events
from torch import Tensor, nn

from . import config as C
from .data import TensorBatches
from .engines import create_pretrainer, create_svdd_trainer
from .handlers import History, attach_early_stopping, attach_lr_schedule, attach_nan_stop, attach_progress
from .nets import embed, refresh_batchnorm
from .pretext import method_of
from .spheres import FinalSpheres, HeldOutLoss, SphereUpdate, attach_collapse_check, recentre
from .svdd import SphereHead, init_centres, nearest_sphere, svdd_loss

log = logging.getLogger("toolkit")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise C.ConfigError(f"device={name!r} is not a device; accepted: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise C.ConfigError(f"device={name!r} was asked for but CUDA is not available here; use auto or cpu")
    try:  # a device this PyTorch has no support for (mps on Linux), or a GPU index beyond those there
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError):
        raise C.ConfigError(
            f"device={name!r} cannot be used here: this PyTorch build or this machine has no such device; use auto "
            "or cpu"
        ) from None
    return dev


class FitEvents(EventEnum):
    """What a fit tells its caller, fired on :attr:`Harness.events` (an Ignite engine that runs nothing;
    its handlers read ``engine.state``):

    - ``PREPROCESSED``: ``state.preprocessor`` is fitted (the harness preprocesses its test data with it);
      ``state.train_rows`` are the indices of the rows of the data that train (the others set the threshold);
    - ``CLUSTERED``: ``state.labels`` are the pseudo-labels, ``state.clustering`` their report (a handler
      may add to it, e.g. the agreement with the true classes);
    - ``STAGE_STARTED``: ``state.trainer`` is the stage ``state.stage``'s engine, with the method's own
      handlers attached, before it runs; ``state.to_save`` holds everything a checkpoint must keep (its
      optimizer under "optimizer"), ``state.history`` the stage's history, ``state.score_fn`` scores a
      batch of preprocessed samples by the stage's model (None: this stage's model gives no score);
    - ``STAGE_COMPLETED``: ``state.trainer`` of ``state.stage`` returned."""

    PREPROCESSED = "preprocessed"
    CLUSTERED = "clustered"
    STAGE_STARTED = "stage_started"
    STAGE_COMPLETED = "stage_completed"


class StageStore:
    """Where a fit keeps its finished stages: nowhere (library use). The CLI run's store is the run folder
    (``toolkit.run.RunStore``), from which ``--resume`` takes them."""

    def finished(self, stage: str) -> dict[str, Any] | None:
        """A stage's record when it finished earlier (a resumed run); None: train it."""
        return None

    def record(self, stage: str, payload: dict[str, Any]) -> None:
        """A stage just finished: ``payload`` holds tensors and JSON text."""

    def where(self, stage: str) -> str:
        """Where the stage's checkpoints are, for messages."""
        return "no checkpoints outside a run folder"


def fit_events() -> Engine:
    """An engine that runs nothing, on which a fit fires :class:`FitEvents`."""
    engine = Engine(lambda engine, batch: None)
    engine.register_events(*FitEvents)
    return engine


@dataclass
class Harness:
    """How a fit runs and whom it tells: the device, the processes, whether to build the one-sphere
    baseline on its own, where finished stages are kept (``store``) and the engine its events fire on
    (``events``: attach handlers with ``harness.events.add_event_handler(FitEvents.X, handler)``).
    ``progress`` (True, "bar" or "lines") shows each stage's progress (``handlers.attach_progress``)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool | str = False
    baseline: bool = False  # also build the one-sphere detector on its own (``det.baseline_``)
    rank: int = 0
    world: int = 1
    store: StageStore = field(default_factory=StageStore)
    events: Engine = field(default_factory=fit_events)

    def __post_init__(self) -> None:
        self.show_progress()

    def show_progress(self) -> None:
        """Attach each stage's progress display (``progress``) when the stage starts, on rank 0."""
        if self.progress and self.progress != "none" and self.rank == 0:
            mode = "auto" if self.progress is True else self.progress
            self.events.add_event_handler(
                FitEvents.STAGE_STARTED, lambda e: attach_progress(e.state.trainer, e.state.stage, mode)
            )

    def fire(self, event: FitEvents, **state: Any) -> None:
        """Fire ``event`` with ``state`` set on the events engine's state."""
        for name, value in state.items():
            setattr(self.events.state, name, value)
        self.events.fire_event(event)


def make_optimizer(params: Any, opt: C.OptimConfig) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer ``opt`` names (Adam, or SGD with Nesterov momentum) over ``params``, and its step
    schedule: the learning rate times ``gamma`` at each milestone epoch."""
    if opt.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.momentum > 0, weight_decay=opt.weight_decay
        )
    else:
        optimizer = torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(opt.milestones), gamma=opt.gamma)
    return optimizer, scheduler


def _parallel(model: nn.Module, harness: Harness) -> nn.Module:
    """DDP around ``model`` with several processes (Ignite's ``auto_model``); the model itself otherwise."""
    return idist.auto_model(model) if harness.world > 1 else model


def _run(
    engine: Engine,
    data: TensorBatches,
    epochs: int,
    harness: Harness,
    stage: str,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    models: dict[str, Any],
    score_fn: Any,
    head: SphereHead | None = None,
    labels: Tensor | None = None,
) -> History:
    """Attach the history and the learning-rate schedule (in that order, after the stage's own handlers),
    then tell the caller (who attaches its handlers, with everything a checkpoint must hold), and run."""
    history = History(optimizer, head, labels).attach(engine)  # before the scheduler steps: this epoch's lr
    attach_lr_schedule(engine, scheduler)
    to_save = {**models, "optimizer": optimizer, "scheduler": scheduler, "trainer": engine, "history": history}
    to_save["batches"] = data
    harness.fire(
        FitEvents.STAGE_STARTED, stage=stage, trainer=engine, to_save=to_save, history=history, score_fn=score_fn
    )
    if harness.rank == 0:  # a first epoch can take minutes (CIFAR-10 on a CPU): say what is running
        rows = len(data.tensors[0])
        log.info("%s: %d epochs of %d batches (%d rows) on %s", stage, epochs, len(data), rows, harness.device)
    engine.run(data, max_epochs=epochs)
    harness.fire(FitEvents.STAGE_COMPLETED, stage=stage, trainer=engine)
    return history


def pretrain(
    net: nn.Module,
    x: Tensor,
    opt: C.OptimConfig,
    *,
    seed: int,
    harness: Harness | None = None,
    method: Any = None,
) -> History:
    """Pretrain ``net`` (built by ``method``, ``toolkit.pretext``) on preprocessed normal data ``x`` by the
    method's loss; ``method`` defaults to the one ``opt`` names (``pretrain.method``; the autoencoder for a
    plain ``OptimConfig``). Evaluation (when the harness adds it) scores by the method's ``score``, when it has one."""
    harness = harness or Harness()
    method = method if method is not None else method_of(opt)
    optimizer, scheduler = make_optimizer(net.parameters(), opt)
    engine = create_pretrainer(_parallel(net, harness), optimizer, method.loss, seed=seed, rank=harness.rank)
    attach_nan_stop(engine, "pretrain", harness.store.where("pretrain"))
    score = None
    if callable(getattr(method, "score", None)):

        def score(xb: Tensor) -> Tensor:
            net.eval()
            return method.score(net, xb)

    data = TensorBatches(x, batch_size=opt.batch_size, shuffle=True, seed=seed, rank=harness.rank, world=harness.world)
    # the checkpoints and the finished stage keep the pretrained net, of any method, as "autoencoder"
    history = _run(engine, data, opt.epochs, harness, "pretrain", optimizer, scheduler, {"autoencoder": net}, score)
    if opt.refresh_bn:  # the statistics of the batches as the method's training fed them (its draws seeded)
        if harness.rank == 0:
            log.info("pretrain: recomputing BatchNorm's statistics over the %d training rows", len(x))
        generator = torch.Generator(device=x.device).manual_seed(seed)
        refresh_batchnorm(net, x, opt.batch_size, lambda xb: method.loss(net, xb, generator))
    return history


@torch.no_grad()
def evaluation_loss(net: nn.Module, x: Tensor, method: Any, batch_size: int, seed: int) -> float:
    """The pretraining method's mean loss over ``x`` with ``net`` in evaluation mode (BatchNorm on its
    running statistics, as clustering, SVDD and the score see it), its random draws seeded. Far above the
    last epoch's training loss, it says the running statistics do not fit the final weights."""
    net.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    batches = x.split(batch_size)
    return sum(float(method.loss(net, b, generator)) * len(b) for b in batches) / x.shape[0]


def train_svdd(
    encoder: nn.Module,
    x: Tensor,
    labels: Tensor,
    svdd: C.SVDDConfig,
    *,
    seed: int,
    stage: str,
    harness: Harness | None = None,
    decoder: nn.Module | None = None,
    rule: str = "ratio",
) -> tuple[SphereHead, History]:
    """Deep SVDD on ``encoder`` with one sphere per label; returns the fitted head (scoring by ``rule``,
    ``score.rule``, which also picks the nearest sphere for ``svdd.reassign``) and the history.

    ``decoder`` (trained along) is needed only with ``svdd.recon_weight`` > 0; with ``svdd.reassign``
    the ``labels`` tensor is updated in place."""
    harness = harness or Harness()
    k = int(labels.max()) + 1
    all_labels = labels
    if svdd.holdout_fraction > 0:
        held = holdout_mask(labels, svdd.holdout_fraction, seed)
        x, labels, x_held, labels_held = x[~held], labels[~held].clone(), x[held], labels[held].clone()
    head = SphereHead(init_centres(embed(encoder, x), labels, k, svdd.eps), rule=rule).to(x.device)
    recon = svdd.recon_weight > 0
    if recon and decoder is None:
        raise ValueError("svdd.recon_weight > 0 needs the autoencoder's decoder")
    params = [*encoder.parameters(), *(decoder.parameters() if recon else [])]
    optimizer, scheduler = make_optimizer(params, svdd)
    engine = create_svdd_trainer(
        _parallel(encoder, harness),
        head,
        optimizer,
        svdd.objective,
        svdd.nu,
        x.shape[0],
        decoder=_parallel(decoder, harness) if recon else None,
        recon_weight=svdd.recon_weight,
        keep_embeddings=svdd.reassign,
    )
    attach_nan_stop(engine, stage, harness.store.where(stage))
    SphereUpdate(
        head,
        labels,
        svdd.nu,
        svdd.warmup_epochs,
        shared=svdd.shared_radius,
        per_batch=svdd.radius_update == "batch",
        reassign=svdd.reassign,
    ).attach(engine)
    if svdd.recentre:
        FinalSpheres(encoder, head, x, labels, svdd.nu, svdd.warmup_epochs, svdd.shared_radius).attach(engine)
    attach_collapse_check(engine, head, stage)
    extra = {}
    if svdd.holdout_fraction > 0:
        loss = functools.partial(svdd_loss, nu=svdd.nu, objective=svdd.objective)
        after = max(svdd.warmup_epochs, 1)
        engine.add_event_handler(
            Events.EPOCH_COMPLETED(event_filter=lambda e, epoch: epoch >= after),
            HeldOutLoss(encoder, head, x_held, labels_held, loss),
        )
        extra = attach_early_stopping(engine, {"encoder": encoder, "head": head}, "holdout_loss", svdd.patience, after)

    def score(xb: Tensor) -> Tensor:
        encoder.eval()
        return head(encoder(xb))

    data = TensorBatches(
        x, labels, batch_size=svdd.batch_size, shuffle=True, seed=seed, rank=harness.rank, world=harness.world
    )
    models = {"encoder": encoder, "head": head, **({"decoder": decoder} if recon else {}), **extra}
    history = _run(engine, data, svdd.epochs, harness, stage, optimizer, scheduler, models, score, head, labels)
    if svdd.refresh_bn:
        refresh_batchnorm(encoder, x)
    if svdd.recentre and svdd.refresh_bn and svdd.epochs > 0:  # new BatchNorm statistics move the embedding
        recentre(encoder, head, x, labels, svdd.nu, svdd.epochs >= svdd.warmup_epochs, svdd.shared_radius)
    if svdd.holdout_fraction > 0 and svdd.reassign:  # the held-out points go to their nearest sphere too
        all_labels[~held] = labels
        all_labels[held] = nearest_sphere(embed(encoder, x_held), head.centres, head.radii, head.rule)
    return head, history


def holdout_mask(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """A seeded random share ``fraction`` of each cluster (rounded down, so every cluster keeps at least
    one training point), by one sort: rank within cluster < fraction * cluster size."""
    g = torch.Generator().manual_seed(seed + 7919)
    key = torch.rand(labels.shape[0], generator=g).to(labels.device)
    order = torch.argsort(key)
    order = order[torch.argsort(labels[order], stable=True)]
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.shape[0], device=labels.device) - starts[labels[order]]
    return rank < torch.floor(fraction * counts[labels].to(torch.float64)).long()
