"""Small handlers attached to engine events: radii, history, evaluation, TensorBoard, progress, checkpoints.

Side effects (TensorBoard, files) happen on rank 0 only.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver, ProgressBar

from .engines import SVDDEvents
from .nets import embed
from .svdd import SphereHead, nearest_sphere, outside_fraction, own_sq_distances, update_radii

log = logging.getLogger("toolkit")


class RadiusUpdate:
    """On EPOCH_COMPLETED, from the end of warm-up on: R_k <- (1 - nu) quantile of sqrt(d_i), i in k,
    over the whole epoch's distances (one quantile over all points with ``shared``). Fires
    ``SVDDEvents.RADII_UPDATED`` after each update.

    ``per_batch``: after warm-up, also after every step from that batch's distances (Ruff et al.'s
    reference implementation); the epoch-end update still sets the radii kept for scoring."""

    def __init__(
        self,
        head: SphereHead,
        labels: torch.Tensor,
        nu: float,
        warmup_epochs: int,
        *,
        shared: bool = False,
        per_batch: bool = False,
    ) -> None:
        self.head, self.labels, self.nu, self.warmup_epochs = head, labels, nu, warmup_epochs
        self.shared, self.per_batch = shared, per_batch

    def update(self, engine: Engine) -> None:
        new = update_radii(engine.state.epoch_dist, self.labels, self.head.radii, self.nu, self.shared)
        self.head.radii.copy_(new)
        engine.fire_event(SVDDEvents.RADII_UPDATED)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch >= self.warmup_epochs:
            self.update(engine)

    def batch_update(self, engine: Engine) -> None:
        if engine.state.epoch > self.warmup_epochs:  # the epochs after warm-up (Ignite counts from 1)
            dist, labels = engine.state.output["dist"], engine.state.batch[2]
            self.head.radii.copy_(update_radii(dist, labels, self.head.radii, self.nu, self.shared))

    def finalize(self, engine: Engine) -> None:
        """On COMPLETED: a run shorter than the warm-up still gets radii from its last epoch."""
        if engine.state.epoch < self.warmup_epochs and engine.state.epoch > 0:
            warnings.warn(
                f"training ended ({engine.state.epoch} epochs) before the warm-up ({self.warmup_epochs}) did; "
                "radii were set once from the last epoch's distances",
                stacklevel=1,
            )
            self.update(engine)

    def attach(self, engine: Engine) -> RadiusUpdate:
        if self.per_batch:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.batch_update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.finalize)
        return self


class Reassign:
    """On EPOCH_COMPLETED (before the radius update): every training point moves to its nearest sphere
    by the scoring rule, from the embeddings of the epoch (``engine.state.epoch_z``); the labels tensor
    is changed in place, so the batches, radii and history follow. The epoch's own-centre distances are
    recomputed for the new assignment. Clusters may empty out; their spheres stay as they were."""

    def __init__(self, head: SphereHead, labels: torch.Tensor) -> None:
        self.head, self.labels = head, labels
        self.moved: list[int] = []

    def __call__(self, engine: Engine) -> None:
        z = engine.state.epoch_z
        new = nearest_sphere(z, self.head.centres, self.head.radii, self.head.rule)
        self.moved.append(int((new != self.labels).sum()))
        self.labels.copy_(new)
        engine.state.epoch_dist = own_sq_distances(z, self.head.centres, self.labels)

    def attach(self, engine: Engine) -> Reassign:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        return self


class HoldoutStop:
    """Early stopping on held-out *normal* data (no anomaly is ever seen): after warm-up, at each epoch
    end (after the radius update), the training objective on the held-out points with the current
    centres and radii, in evaluation mode; ``engine.state.metrics['holdout_loss']``. When it has not
    improved for ``patience`` epochs training stops, and at COMPLETED the encoder and radii of the best
    epoch are put back. Checkpointed with the run (``state_dict``), so a resumed run keeps its best."""

    def __init__(
        self,
        encoder: torch.nn.Module,
        head: SphereHead,
        x: torch.Tensor,
        labels: torch.Tensor,
        loss_fn: Any,
        warmup_epochs: int,
        patience: int,
    ) -> None:
        self.encoder, self.head, self.x, self.labels, self.loss_fn = encoder, head, x, labels, loss_fn
        self.warmup_epochs, self.patience = warmup_epochs, patience
        self.best_loss, self.best_epoch, self.best_state = math.inf, 0, None

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch < max(self.warmup_epochs, 1):
            return
        z = embed(self.encoder, self.x)
        loss = float(self.loss_fn(own_sq_distances(z, self.head.centres, self.labels), self.labels, self.head.radii))
        engine.state.metrics["holdout_loss"] = loss
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, engine.state.epoch
            self.best_state = {
                "encoder": {k: v.detach().clone() for k, v in self.encoder.state_dict().items()},
                "radii": self.head.radii.detach().clone(),
            }
        elif engine.state.epoch - self.best_epoch >= self.patience:
            log.info(
                "held-out loss not improved for %d epochs: stopping at epoch %d, keeping epoch %d",
                self.patience,
                engine.state.epoch,
                self.best_epoch,
            )
            engine.terminate()

    def restore(self, engine: Engine) -> None:
        if self.best_state is not None and self.best_epoch != engine.state.epoch:
            self.encoder.load_state_dict(self.best_state["encoder"])
            self.head.radii.copy_(self.best_state["radii"])

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.best_epoch, self.best_state = state["best_loss"], state["best_epoch"], state["best_state"]

    def attach(self, engine: Engine) -> HoldoutStop:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.restore)
        return self


class History:
    """Per-epoch record of a stage (loss, learning rate; radii and the share of each cluster's training
    points outside its sphere; test AUROC/AUPR when evaluated). It feeds TensorBoard, results.json and
    the report, so all three show the same numbers."""

    def __init__(self, optimizer: torch.optim.Optimizer, head: SphereHead | None = None, labels: Any = None) -> None:
        self.optimizer, self.head, self.labels = optimizer, head, labels
        self.epochs: list[dict[str, Any]] = []
        self.tests: list[dict[str, float]] = []

        self.refreshed = False  # the last row's radii were replaced at COMPLETED

    def _spheres(self, engine: Engine) -> dict[str, Any]:
        if self.head is None:
            return {}
        out = outside_fraction(engine.state.epoch_dist, self.labels, self.head.radii)
        return {"radii": self.head.radii.tolist(), "outside": out.tolist()}

    def __call__(self, engine: Engine) -> None:
        row = {
            "epoch": engine.state.epoch,
            "loss": float(engine.state.metrics["loss"]),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
        }
        if "holdout_loss" in engine.state.metrics:
            row["holdout_loss"] = float(engine.state.metrics["holdout_loss"])
        self.epochs.append({**row, **self._spheres(engine)})

    def completed(self, engine: Engine) -> None:
        """A run shorter than the warm-up gets its radii at COMPLETED: record them on the last epoch."""
        spheres = self._spheres(engine)
        if self.epochs and spheres and spheres["radii"] != self.epochs[-1]["radii"]:
            self.epochs[-1].update(spheres)
            self.refreshed = True

    def attach(self, engine: Engine) -> History:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.completed)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "tests": self.tests}

    # checkpointed, so a resumed run's history has every epoch
    def state_dict(self) -> dict[str, Any]:
        return {"history": json.dumps(self.as_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        d = json.loads(state["history"])
        self.epochs, self.tests = d["epochs"], d["tests"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the stage, the epoch and the last good checkpoint."""


def attach_finite_guard(engine: Engine, stage: str, where: str) -> None:
    """Stop at the end of an epoch whose mean loss is not finite, before anything of it is saved.
    Attach it first: the checkpoint of the previous epoch then stays the last (good) one."""

    def check(engine: Engine) -> None:
        loss = float(engine.state.metrics["loss"])
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"{stage}: the mean loss of epoch {engine.state.epoch} is {loss}; training stopped. The last good "
                f"checkpoint is that of epoch {engine.state.epoch - 1} ({where}). Likely causes: a learning rate "
                "too high for this data, or input values that are NaN/inf."
            )

    engine.add_event_handler(Events.EPOCH_COMPLETED, check)


def attach_distance_sync(engine: Engine) -> None:
    """With several processes, each rank fills the distances of the points it saw; at the epoch end one
    all-reduce gives every rank all of them, so every rank takes the same radius quantiles."""
    if idist.get_world_size() == 1:
        return

    def clear(engine: Engine) -> None:
        engine.state.epoch_dist.zero_()
        if hasattr(engine.state, "epoch_z"):
            engine.state.epoch_z.zero_()

    engine.add_event_handler(Events.EPOCH_STARTED, clear)

    def sync(engine: Engine) -> None:
        engine.state.epoch_dist = idist.all_reduce(engine.state.epoch_dist)
        if hasattr(engine.state, "epoch_z"):
            engine.state.epoch_z = idist.all_reduce(engine.state.epoch_z)

    engine.add_event_handler(Events.EPOCH_COMPLETED, sync)


def attach_collapse_check(engine: Engine, head: SphereHead, stage: str) -> None:
    """At the end, warn when the solution collapsed: every radius ~0 or every distance ~0."""
    first: dict[str, float] = {}

    @engine.on(Events.EPOCH_COMPLETED(once=1))
    def _first(engine: Engine) -> None:
        first["mean"] = float(engine.state.epoch_dist.mean())

    @engine.on(Events.COMPLETED)
    def _check(engine: Engine) -> None:
        mean = float(engine.state.epoch_dist.mean())
        scale = max(first.get("mean", mean), 1e-30)
        if float(head.radii.max()) < 1e-6 * math.sqrt(scale) or mean < 1e-9 * scale:
            warnings.warn(
                f"{stage}: the solution looks collapsed (largest radius {float(head.radii.max()):.3g}, mean squared "
                f"distance {mean:.3g}, {scale:.3g} in the first epoch): the network maps everything onto the "
                "centres. Likely causes: bias terms or bounded activations in a custom network, a centre "
                "coordinate at 0 (svdd.eps), constant input data, or training far too long at a high learning rate.",
                stacklevel=1,
            )


class StopRequest:
    """Ctrl-C (SIGINT) asks the running stage to stop at the end of the current epoch, after its checkpoint
    is written; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this epoch's checkpoint (Ctrl-C again to stop at once)", file=sys.stderr)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def attach(self, engine: Engine) -> None:
        """Attach last, after the checkpoint handler."""

        def maybe_stop(engine: Engine) -> None:
            if self.requested and engine.state.epoch < engine.state.max_epochs:  # else: let the stage finish
                engine.terminate(skip_completed=True)

        engine.add_event_handler(Events.EPOCH_COMPLETED, maybe_stop)


def attach_lr_schedule(engine: Engine, scheduler: Any) -> None:
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: scheduler.step())


def attach_evaluation(trainer: Engine, evaluator: Engine, data: Iterable, every: int, history: History) -> None:
    """Run ``evaluator`` every ``every`` epochs (0: only at the end) and once at the end."""

    def run(engine: Engine) -> None:
        epoch = engine.state.epoch
        if history.tests and history.tests[-1]["epoch"] == epoch:
            return
        evaluator.run(data)
        m = evaluator.state.metrics
        history.tests.append({"epoch": epoch, "auroc": float(m["auroc"]), "aupr": float(m["aupr"])})

    if every > 0:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=every), run)
    trainer.add_event_handler(Events.COMPLETED, run)


def attach_tensorboard(writer: Any, trainer: Engine, tag: str, history: History) -> None:
    """Per epoch, from ``history``: loss, learning rate, one curve per cluster radius, the share of each
    cluster outside its sphere, a histogram of each cluster's distances; test AUROC/AUPR when evaluated.
    Flushed at every epoch end so a crash loses nothing that was logged."""
    if idist.get_rank() != 0:
        return

    logged_tests = 0

    def log_tests() -> None:
        nonlocal logged_tests
        for t in history.tests[logged_tests:]:
            writer.add_scalar(f"{tag}/test/auroc", t["auroc"], t["epoch"])
            writer.add_scalar(f"{tag}/test/aupr", t["aupr"], t["epoch"])
        logged_tests = len(history.tests)
        writer.flush()

    def log_spheres(engine: Engine, row: dict[str, Any]) -> None:
        e, labels = row["epoch"], history.labels
        # every cluster's distances at once: one sort by cluster, split by the cluster sizes
        sizes = torch.bincount(labels, minlength=len(row["radii"])).tolist()
        per_cluster = torch.split(engine.state.epoch_dist[torch.argsort(labels)].sqrt().cpu(), sizes)
        for k, (r, out, d) in enumerate(zip(row["radii"], row["outside"], per_cluster, strict=True)):
            writer.add_scalar(f"{tag}/radius/{k}", r, e)
            writer.add_scalar(f"{tag}/outside/{k}", out, e)
            writer.add_histogram(f"{tag}/distance/{k}", d, e)

    def log_epoch(engine: Engine) -> None:
        row = history.epochs[-1]
        writer.add_scalar(f"{tag}/loss", row["loss"], row["epoch"])
        writer.add_scalar(f"{tag}/lr", row["lr"], row["epoch"])
        if "radii" in row:
            log_spheres(engine, row)
        log_tests()

    def log_completed(engine: Engine) -> None:
        if history.refreshed:
            log_spheres(engine, history.epochs[-1])
        log_tests()

    trainer.add_event_handler(Events.EPOCH_COMPLETED, log_epoch)
    trainer.add_event_handler(Events.COMPLETED, log_completed)


def attach_progress(engine: Engine, desc: str) -> None:
    """One bar per stage, advancing by epoch and showing the epoch's mean loss."""
    ProgressBar(persist=True, desc=desc).attach(
        engine, metric_names=["loss"], event_name=Events.EPOCH_COMPLETED, closing_event_name=Events.COMPLETED
    )


def attach_checkpoint(engine: Engine, to_save: dict[str, Any], dirname: Path, prefix: str) -> Checkpoint:
    """Save ``to_save`` (models, head buffers, optimiser, scheduler, engine, history, batch generator) at
    every epoch end but the last, atomically, keeping the last two."""
    ckpt = Checkpoint(
        to_save, DiskSaver(str(dirname), require_empty=False, atomic=True), filename_prefix=prefix, n_saved=2
    )
    # not after the last epoch: the finished stage is recorded by the pipeline instead, and a checkpoint of
    # a finished Ignite run cannot be resumed (run() would start it over)
    engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=lambda e, epoch: epoch < e.state.max_epochs), ckpt)
    return ckpt
