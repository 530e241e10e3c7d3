"""The training stages as functions: pretrain the encoder (by the run's pretraining method, ``pretext.py``),
train Deep SVDD on labelled embeddings. Each builds its Ignite engine (``engines.py``), attaches the
method's own handlers (``spheres.py``) and then whatever the caller's :class:`Hooks` add (the CLI run adds
checkpoints and resume, TensorBoard, evaluation, progress, Ctrl-C: ``toolkit.run.RunHooks``), and runs it.
The detector's ``fit`` calls them; nothing here knows about run folders."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from torch import Tensor, nn

from . import config as C
from .data import TensorBatches
from .engines import create_pretrainer, create_svdd_trainer
from .handlers import History, attach_early_stopping, attach_lr_schedule, attach_nan_stop, attach_progress
from .nets import embed, refresh_batchnorm
from .pretext import method_of
from .spheres import FinalSpheres, HeldOutLoss, SphereUpdate, attach_collapse_check, recentre
from .svdd import SphereHead, init_centres, nearest_sphere, svdd_loss


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise C.ConfigError(f"device={name!r} is not a device; accepted: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise C.ConfigError(f"device={name!r} was asked for but CUDA is not available here; use auto or cpu")
    return dev


@dataclass
class Hooks:
    """What a fit takes from and reports to its caller. These defaults keep nothing and add nothing but
    an optional progress bar (library use); the CLI run's harness overrides them."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool | str = (
        False  # True or "auto", "bar", "lines": show each stage's progress (handlers.attach_progress)
    )
    baseline: bool = False  # also build the one-sphere detector on its own (``det.baseline_``)
    rank: int = 0
    world: int = 1

    def finished(self, stage: str) -> dict[str, Any] | None:
        """A stage's record when it finished earlier (a resumed run); None: train it."""
        return None

    def record(self, stage: str, payload: dict[str, Any]) -> None:
        """A stage just finished: ``payload`` holds tensors and JSON text."""

    def preprocessed(self, prep: nn.Module) -> None:
        """The preprocessor is fitted (the harness preprocesses its evaluation data with it)."""

    def clustered(self, info: dict[str, Any], labels: Tensor) -> None:
        """The pseudo-labels are found."""

    def where(self, stage: str) -> str:
        """Where the stage's checkpoints are, for messages."""
        return "no checkpoints outside a run folder"

    def attach(self, engine: Engine, stage: str, to_save: dict[str, Any], history: History, score_fn: Any) -> None:
        """Attach the caller's handlers to a stage's engine, after the method's own. ``score_fn`` scores a
        batch of preprocessed samples by the stage's model (None: this stage's model gives no score)."""
        if self.progress and self.progress != "none" and self.rank == 0:
            attach_progress(engine, stage, "auto" if self.progress is True else self.progress)

    def ended(self, engine: Engine, stage: str) -> None:
        """The stage's engine returned."""


def _optimizer(params: Any, opt: C.OptimConfig) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(opt.milestones), gamma=opt.gamma)
    return optimizer, scheduler


def _parallel(model: nn.Module, hooks: Hooks) -> nn.Module:
    """DDP around ``model`` with several processes (Ignite's ``auto_model``); the model itself otherwise."""
    return idist.auto_model(model) if hooks.world > 1 else model


def _run(
    engine: Engine,
    data: TensorBatches,
    epochs: int,
    hooks: Hooks,
    stage: str,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    models: dict[str, Any],
    score_fn: Any,
    head: SphereHead | None = None,
    labels: Tensor | None = None,
) -> History:
    """Attach the history and the learning-rate schedule (in that order, after the stage's own handlers),
    then the caller's hooks with everything a checkpoint must hold, and run."""
    history = History(optimizer, head, labels).attach(engine)  # before the scheduler steps: this epoch's lr
    attach_lr_schedule(engine, scheduler)
    to_save = {**models, "optimizer": optimizer, "scheduler": scheduler, "trainer": engine, "history": history}
    hooks.attach(engine, stage, {**to_save, "batches": data}, history, score_fn)
    engine.run(data, max_epochs=epochs)
    hooks.ended(engine, stage)
    return history


def pretrain(
    net: nn.Module,
    x: Tensor,
    opt: C.OptimConfig,
    *,
    seed: int,
    hooks: Hooks | None = None,
    method: Any = None,
) -> History:
    """Pretrain ``net`` (built by ``method``, ``toolkit.pretext``) on preprocessed normal data ``x`` by the
    method's loss; ``method`` defaults to the one ``opt`` names (``pretrain.method``; the autoencoder for a
    plain ``OptimConfig``). Evaluation (when the hooks add it) scores by the method's ``score``, when it has one."""
    hooks = hooks or Hooks()
    method = method if method is not None else method_of(opt)
    optimizer, scheduler = _optimizer(net.parameters(), opt)
    engine = create_pretrainer(_parallel(net, hooks), optimizer, method.loss, seed=seed, rank=hooks.rank)
    attach_nan_stop(engine, "pretrain", hooks.where("pretrain"))
    score = None
    if callable(getattr(method, "score", None)):

        def score(xb: Tensor) -> Tensor:
            net.eval()
            return method.score(net, xb)

    data = TensorBatches(x, batch_size=opt.batch_size, shuffle=True, seed=seed, rank=hooks.rank, world=hooks.world)
    # the checkpoints and the finished stage keep the pretrained net, of any method, as "autoencoder"
    history = _run(engine, data, opt.epochs, hooks, "pretrain", optimizer, scheduler, {"autoencoder": net}, score)
    if opt.refresh_bn:
        refresh_batchnorm(net, x)
    return history


def train_svdd(
    encoder: nn.Module,
    x: Tensor,
    labels: Tensor,
    svdd: C.SVDDConfig,
    *,
    seed: int,
    stage: str,
    hooks: Hooks | None = None,
    decoder: nn.Module | None = None,
) -> tuple[SphereHead, History]:
    """Deep SVDD on ``encoder`` with one sphere per label; returns the fitted head and the history.

    ``decoder`` (trained along) is needed only with ``svdd.recon_weight`` > 0; with ``svdd.reassign``
    the ``labels`` tensor is updated in place."""
    hooks = hooks or Hooks()
    k = int(labels.max()) + 1
    all_labels = labels
    if svdd.holdout_fraction > 0:
        held = holdout_mask(labels, svdd.holdout_fraction, seed)
        x, labels, x_held, labels_held = x[~held], labels[~held].clone(), x[held], labels[held].clone()
    head = SphereHead(init_centres(embed(encoder, x), labels, k, svdd.eps), rule=svdd.score).to(x.device)
    recon = svdd.recon_weight > 0
    if recon and decoder is None:
        raise ValueError("svdd.recon_weight > 0 needs the autoencoder's decoder")
    params = [*encoder.parameters(), *(decoder.parameters() if recon else [])]
    optimizer, scheduler = _optimizer(params, svdd)
    engine = create_svdd_trainer(
        _parallel(encoder, hooks),
        head,
        optimizer,
        svdd.objective,
        svdd.nu,
        x.shape[0],
        decoder=_parallel(decoder, hooks) if recon else None,
        recon_weight=svdd.recon_weight,
        keep_embeddings=svdd.reassign,
    )
    attach_nan_stop(engine, stage, hooks.where(stage))
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
        x, labels, batch_size=svdd.batch_size, shuffle=True, seed=seed, rank=hooks.rank, world=hooks.world
    )
    models = {"encoder": encoder, "head": head, **({"decoder": decoder} if recon else {}), **extra}
    history = _run(engine, data, svdd.epochs, hooks, stage, optimizer, scheduler, models, score, head, labels)
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
