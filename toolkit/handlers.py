"""The run's infrastructure as small handlers on engine events: history, evaluation, TensorBoard, progress,
checkpoints, the NaN stop, early stopping, Ctrl-C. The method's own handlers are in ``spheres.py``.

Side effects (TensorBoard, files) happen on rank 0 only.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver, EarlyStopping, ProgressBar, TerminateOnNan
from ignite.handlers.checkpoint import BaseSaveHandler

from .files import save_checked
from .svdd import SphereHead, outside_fraction

log = logging.getLogger("toolkit")

SPHERES_ONE_BY_ONE = 100  # up to this many spheres, each has its own record and curves; beyond, their spread
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def sphere_spread(radii: torch.Tensor, outside: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """The spheres of one epoch in a few numbers, for more spheres than can be followed one by one: the
    radii's quantiles (``QUANTILES``: min, quartiles, max) and the share of all training points outside
    their sphere."""
    sizes = torch.bincount(labels, minlength=radii.shape[0]).to(outside.dtype)
    q = torch.quantile(radii.float(), torch.tensor(QUANTILES, device=radii.device))
    return {"radius_quantiles": q.tolist(), "outside_all": float((outside * sizes).sum() / sizes.sum())}


class History:
    """Per-epoch record of a stage (loss, learning rate; the spheres: each radius and the share of each
    cluster's training points outside its sphere, or for more than ``SPHERES_ONE_BY_ONE`` spheres their
    :func:`sphere_spread`; test AUROC/AUPR when evaluated). It feeds TensorBoard, results.json and the
    report, so all three show the same numbers. (Thousands of spheres recorded one by one every epoch
    would make each checkpoint and results.json tens of megabytes.)"""

    def __init__(self, optimizer: torch.optim.Optimizer, head: SphereHead | None = None, labels: Any = None) -> None:
        self.optimizer, self.head, self.labels = optimizer, head, labels
        self.epochs: list[dict[str, Any]] = []
        self.tests: list[dict[str, float]] = []

        self.refreshed = False  # the last row's radii were replaced at COMPLETED

    def _spheres(self, engine: Engine) -> dict[str, Any]:
        if self.head is None:
            return {}
        out = outside_fraction(engine.state.epoch_dist, self.labels, self.head.radii)
        if self.head.radii.shape[0] > SPHERES_ONE_BY_ONE:
            return sphere_spread(self.head.radii, out, self.labels)
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
        if self.epochs and spheres and any(v != self.epochs[-1].get(k) for k, v in spheres.items()):
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


def attach_nan_stop(engine: Engine, stage: str, where: str) -> None:
    """Ignite's TerminateOnNan after every step; when it fires, stop with a message naming the stage,
    the epoch and the last good checkpoint. The epoch never completes, so no checkpoint of it is written
    and the previous epoch's stays the last (good) one."""
    engine.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(output_transform=lambda out: out["loss"]))

    @engine.on(Events.TERMINATE)
    def _diverged(engine: Engine) -> None:
        loss = engine.state.output["loss"] if isinstance(engine.state.output, dict) else None
        if loss is not None and not bool(torch.isfinite(loss).all()):
            raise TrainingDiverged(
                f"{stage}: the loss of epoch {engine.state.epoch} is {float(loss)} (iteration "
                f"{engine.state.iteration}); training stopped. The last good checkpoint is that of epoch "
                f"{engine.state.epoch - 1} ({where}). Likely causes: a learning rate too high for this data, or "
                "input values that are NaN/inf."
            )


class MemorySaver(BaseSaveHandler):
    """Keeps Ignite's Checkpoint output in memory (copied, so later training does not change it), for a
    best-so-far model that needs no file; checkpointed itself, so a resumed run keeps its best."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        # {name: state_dict} for several objects; one object's state_dict alone when there is one (Ignite's form)
        self.data = _copied(checkpoint)

    def remove(self, filename: str) -> None:  # n_saved=1: the newer best replaces it in __call__
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data = state["data"]


def _copied(state: Any) -> Any:
    """A deep copy of a (nested) state dict, tensors detached and cloned."""
    if isinstance(state, Mapping):
        return {k: _copied(v) for k, v in state.items()}
    return state.detach().clone() if isinstance(state, torch.Tensor) else state


def attach_early_stopping(
    engine: Engine, models: dict[str, Any], metric: str, patience: int, after: int
) -> dict[str, Any]:
    """Ignite's EarlyStopping on ``engine.state.metrics[metric]`` (lower is better), from epoch ``after``
    on, and a Checkpoint with the same score that keeps the best epoch's ``models`` in memory; at
    COMPLETED the best are put back. Returns what a run checkpoint must save to resume it."""

    def score(e: Engine) -> float:
        return -e.state.metrics[metric]

    watched = Events.EPOCH_COMPLETED(event_filter=lambda e, epoch: epoch >= after)
    saver = MemorySaver()
    best = Checkpoint(models, saver, n_saved=1, score_function=score, score_name=metric)
    stopper = EarlyStopping(patience, score, engine)
    engine.add_event_handler(watched, best)
    engine.add_event_handler(watched, stopper)

    @engine.on(Events.COMPLETED)
    def _restore(engine: Engine) -> None:
        if saver.data:
            Checkpoint.load_objects(models, saver.data)

    return {"early_stopping": stopper, "best_checkpoint": best, "best_state": saver}


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
        print(
            "\nstopping after this epoch's checkpoint (Ctrl-C again to stop at once); past the last epoch, the run "
            "finishes writing its files",
            file=sys.stderr,
        )

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


def attach_sphere_logs(writer: Any, trainer: Engine, tag: str, history: History) -> None:
    """The spheres' own TensorBoard curves, per epoch from ``history``: one per cluster radius, the share
    of each cluster outside its sphere, a histogram of each cluster's distances; for more than
    ``SPHERES_ONE_BY_ONE`` spheres, their spread instead: the radii's min, quartiles and max, the share of
    all points outside, one histogram of the radii and one of every point's distance to its centre.
    (Loss, learning rate and test metrics go through Ignite's TensorboardLogger handlers.) Flushed at
    every epoch end, so a crash loses nothing that was logged."""
    if idist.get_rank() != 0:
        return

    def log_spread(engine: Engine, row: dict[str, Any]) -> None:
        e = row["epoch"]
        for name, q in zip(("min", "q25", "median", "q75", "max"), row["radius_quantiles"], strict=True):
            writer.add_scalar(f"{tag}/radius/{name}", q, e)
        writer.add_scalar(f"{tag}/outside/all", row["outside_all"], e)
        writer.add_histogram(f"{tag}/radii", history.head.radii.cpu(), e)
        writer.add_histogram(f"{tag}/distance", engine.state.epoch_dist.sqrt().cpu(), e)

    def log_spheres(engine: Engine, row: dict[str, Any]) -> None:
        if "radius_quantiles" in row:
            return log_spread(engine, row)
        e, labels = row["epoch"], history.labels
        # every cluster's distances at once: one sort by cluster, split by the cluster sizes
        sizes = torch.bincount(labels, minlength=len(row["radii"])).tolist()
        per_cluster = torch.split(engine.state.epoch_dist[torch.argsort(labels)].sqrt().cpu(), sizes)
        for k, (r, out, d) in enumerate(zip(row["radii"], row["outside"], per_cluster, strict=True)):
            writer.add_scalar(f"{tag}/radius/{k}", r, e)
            writer.add_scalar(f"{tag}/outside/{k}", out, e)
            writer.add_histogram(f"{tag}/distance/{k}", d, e)

    def log_epoch(engine: Engine) -> None:
        if "radii" in history.epochs[-1] or "radius_quantiles" in history.epochs[-1]:
            log_spheres(engine, history.epochs[-1])
        writer.flush()

    def log_completed(engine: Engine) -> None:
        if history.refreshed:
            log_spheres(engine, history.epochs[-1])
        writer.flush()

    trainer.add_event_handler(Events.EPOCH_COMPLETED, log_epoch)
    trainer.add_event_handler(Events.COMPLETED, log_completed)


def attach_progress(engine: Engine, desc: str, mode: str = "auto") -> None:
    """Progress of a stage: ``bar`` (one bar advancing by epoch, with the epoch's mean loss), ``lines``
    (one log line per epoch, for logs that are files), ``none``; ``auto`` picks the bar on a terminal and
    lines otherwise, so a redirected log holds no carriage returns."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    if mode == "bar":
        ProgressBar(persist=True, desc=desc).attach(
            engine, metric_names=["loss"], event_name=Events.EPOCH_COMPLETED, closing_event_name=Events.COMPLETED
        )
    elif mode == "lines":

        @engine.on(Events.EPOCH_COMPLETED)
        def _line(engine: Engine) -> None:
            e, n = engine.state.epoch, engine.state.max_epochs
            log.info("%s: epoch %d/%d, loss %.4g", desc, e, n, float(engine.state.metrics["loss"]))


class CheckedDiskSaver(DiskSaver):
    """Ignite's atomic DiskSaver, writing self-verifying checkpoints (``toolkit.files.save_checked``: the
    checkpoint wrapped with its SHA-256 digest, which resuming checks). The checkpoint is serialised in memory
    first, so that a full disk raises ``OSError`` (ENOSPC) and leaves the previous checkpoints as they were."""

    def _save_func(self, checkpoint: Mapping, path: Path, func: Any) -> None:
        if func is not torch.save:
            return super()._save_func(checkpoint, path, func)
        save_checked(path, checkpoint, **self.kwargs)


def attach_checkpoint(engine: Engine, to_save: dict[str, Any], dirname: Path, prefix: str) -> Checkpoint:
    """Save ``to_save`` (models, head buffers, optimiser, scheduler, engine, history, batch generator) at
    every epoch end but the last, atomically and with its digest inside, keeping the last two."""
    ckpt = Checkpoint(
        to_save, CheckedDiskSaver(str(dirname), require_empty=False, atomic=True), filename_prefix=prefix, n_saved=2
    )
    # not after the last epoch: the finished stage is recorded by the fit instead, and a checkpoint of
    # a finished Ignite run cannot be resumed (run() would start it over)
    engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=lambda e, epoch: epoch < e.state.max_epochs), ckpt)
    return ckpt
