"""Small handlers attached to engine events: radii, evaluation, TensorBoard, progress, checkpoints."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver, ProgressBar

from .engines import SVDDEvents
from .svdd import SphereHead, update_radii


class RadiusUpdate:
    """On EPOCH_COMPLETED, from the end of warm-up on: R_k <- (1 - nu) quantile of sqrt(d_i), i in k,
    over the whole epoch's distances. Fires ``SVDDEvents.RADII_UPDATED`` after each update."""

    def __init__(self, head: SphereHead, labels: torch.Tensor, nu: float, warmup_epochs: int) -> None:
        self.head, self.labels, self.nu, self.warmup_epochs = head, labels, nu, warmup_epochs
        self.updates = 0

    def update(self, engine: Engine) -> None:
        self.head.radii.copy_(update_radii(engine.state.epoch_dist, self.labels, self.head.radii, self.nu))
        self.updates += 1
        engine.fire_event(SVDDEvents.RADII_UPDATED)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch >= self.warmup_epochs:
            self.update(engine)

    def finalize(self, engine: Engine) -> None:
        """On COMPLETED: a run shorter than the warm-up still gets radii from its last epoch."""
        if self.updates == 0 and engine.state.epoch > 0:
            warnings.warn(
                f"training ended ({engine.state.epoch} epochs) before the warm-up ({self.warmup_epochs}) did; "
                "radii were set once from the last epoch's distances",
                stacklevel=1,
            )
            self.update(engine)

    def attach(self, engine: Engine) -> RadiusUpdate:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.finalize)
        return self


def attach_lr_schedule(engine: Engine, scheduler: Any) -> None:
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: scheduler.step())


def attach_evaluation(
    trainer: Engine, evaluator: Engine, data: Iterable, every: int, history: list[tuple[int, float]]
) -> None:
    """Run ``evaluator`` every ``every`` epochs (0: only at the end) and once at the end."""

    def run(engine: Engine) -> None:
        epoch = engine.state.epoch
        if history and history[-1][0] == epoch:
            return
        evaluator.run(data)
        history.append((epoch, float(evaluator.state.metrics["auroc"])))

    if every > 0:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=every), run)
    trainer.add_event_handler(Events.COMPLETED, run)


def attach_tensorboard(
    tb: Any,
    trainer: Engine,
    tag: str,
    optimizer: torch.optim.Optimizer,
    evaluator: Engine | None = None,
    head: SphereHead | None = None,
) -> None:
    """Loss and learning rate per epoch; AUROC when evaluated; one scalar curve per cluster radius."""
    from ignite.handlers import global_step_from_engine

    tb.attach_output_handler(trainer, Events.EPOCH_COMPLETED, tag=tag, metric_names=["loss"])
    tb.attach_opt_params_handler(trainer, Events.EPOCH_COMPLETED, optimizer=optimizer, tag=tag)
    if evaluator is not None:
        tb.attach_output_handler(
            evaluator,
            Events.COMPLETED,
            tag=f"{tag}/test",
            metric_names=["auroc"],
            global_step_transform=global_step_from_engine(trainer),
        )
    if head is not None:

        @trainer.on(Events.EPOCH_COMPLETED)
        def _radii(engine: Engine) -> None:
            for k, r in enumerate(head.radii.tolist()):
                tb.writer.add_scalar(f"{tag}/radius/{k}", r, engine.state.epoch)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: tb.writer.flush())


def attach_progress(engine: Engine, desc: str) -> None:
    """One bar per stage, advancing by epoch and showing the epoch's mean loss."""
    ProgressBar(persist=True, desc=desc).attach(
        engine, metric_names=["loss"], event_name=Events.EPOCH_COMPLETED, closing_event_name=Events.COMPLETED
    )


def attach_checkpoint(engine: Engine, to_save: dict[str, Any], dirname: Path, prefix: str) -> Checkpoint:
    """Save ``to_save`` (models, head buffers, optimiser, scheduler, engine) at every epoch end."""
    ckpt = Checkpoint(
        to_save, DiskSaver(str(dirname), require_empty=False, atomic=True), filename_prefix=prefix, n_saved=2
    )
    engine.add_event_handler(Events.EPOCH_COMPLETED, ckpt)
    return ckpt
