"""The method's handlers on the SVDD engine: what happens to the spheres at each epoch end, the
collapse check, and the held-out loss that early stopping watches. Infrastructure (logging,
checkpoints, progress) lives in ``handlers.py``."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from .engines import SVDDEvents
from .nets import embed
from .svdd import SphereHead, follow_centres, nearest_sphere, own_sq_distances, update_radii


class SphereUpdate:
    """On EPOCH_COMPLETED, in this order: (1) with several processes, one all-reduce gives every rank
    all of the epoch's distances (each rank filled those of the points it saw); (2) with ``reassign``,
    every training point moves to its nearest sphere by the scoring rule (the ``labels`` tensor changes
    in place, so batches, radii and history follow); (3) from the end of warm-up on, R_k <- the
    (1 - nu) quantile of sqrt(d_i) over cluster k's distances of the whole epoch (one quantile over all
    points with ``shared``), then ``SVDDEvents.RADII_UPDATED`` fires.

    ``per_batch``: after warm-up the radii also follow every batch (Ruff et al.'s reference
    implementation); the epoch-end update still sets the radii kept for scoring. A run shorter than the
    warm-up gets its radii once from its last epoch, at COMPLETED."""

    def __init__(
        self,
        head: SphereHead,
        labels: torch.Tensor,
        nu: float,
        warmup_epochs: int,
        *,
        shared: bool = False,
        per_batch: bool = False,
        reassign: bool = False,
    ) -> None:
        self.head, self.labels, self.nu, self.warmup_epochs = head, labels, nu, warmup_epochs
        self.shared, self.per_batch, self.reassign = shared, per_batch, reassign
        self.moved: list[int] = []  # points re-assigned at each epoch end

    def _radii(self, engine: Engine) -> None:
        new = update_radii(engine.state.epoch_dist, self.labels, self.head.radii, self.nu, self.shared)
        self.head.radii.copy_(new)
        engine.fire_event(SVDDEvents.RADII_UPDATED)

    def _clear(self, engine: Engine) -> None:
        engine.state.epoch_dist.zero_()
        if self.reassign:
            engine.state.epoch_z.zero_()

    def __call__(self, engine: Engine) -> None:
        if idist.get_world_size() > 1:
            engine.state.epoch_dist = idist.all_reduce(engine.state.epoch_dist)
            if self.reassign:
                engine.state.epoch_z = idist.all_reduce(engine.state.epoch_z)
        if self.reassign:
            z = engine.state.epoch_z
            new = nearest_sphere(z, self.head.centres, self.head.radii, self.head.rule)
            self.moved.append(int((new != self.labels).sum()))
            self.labels.copy_(new)
            engine.state.epoch_dist = own_sq_distances(z, self.head.centres, self.labels)
        if engine.state.epoch >= self.warmup_epochs:
            self._radii(engine)

    def batch_update(self, engine: Engine) -> None:
        if engine.state.epoch > self.warmup_epochs:  # the epochs after warm-up (Ignite counts from 1)
            dist, labels = engine.state.output["dist"], engine.state.batch[2]
            self.head.radii.copy_(update_radii(dist, labels, self.head.radii, self.nu, self.shared))

    def finalize(self, engine: Engine) -> None:
        if 0 < engine.state.epoch < self.warmup_epochs:
            warnings.warn(
                f"training ended ({engine.state.epoch} epochs) before the warm-up ({self.warmup_epochs}) did; "
                "radii were set once from the last epoch's distances",
                stacklevel=1,
            )
            self._radii(engine)

    def attach(self, engine: Engine) -> SphereUpdate:
        if idist.get_world_size() > 1:
            engine.add_event_handler(Events.EPOCH_STARTED, self._clear)
        if self.per_batch:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.batch_update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.finalize)
        return self


@torch.no_grad()
def recentre(
    encoder: torch.nn.Module,
    head: SphereHead,
    x: torch.Tensor,
    labels: torch.Tensor,
    nu: float,
    radii: bool,
    shared: bool,
) -> torch.Tensor:
    """The spheres of the net as it scores (evaluation mode): each centre the mean of its cluster's
    embeddings of ``x`` and, with ``radii``, each radius their (1 - nu) quantile. Returns each point's
    squared distance to its new centre."""
    # in float64: the sums behind the means then round to the same float32 whatever the number of threads
    # (a float32 forward pass over the whole data is split across threads, and its last bits follow the split)
    z = embed(copy.deepcopy(encoder).double(), x.double())
    centres = follow_centres(z, labels, head.centres.double())
    dist = own_sq_distances(z, centres, labels)
    head.centres.copy_(centres.to(head.centres.dtype))
    if radii:
        head.radii.copy_(update_radii(dist, labels, head.radii.double(), nu, shared).to(head.radii.dtype))
    return dist.float()


class FinalSpheres:
    """``svdd.recentre``: when the last epoch completes (before the epoch is logged and evaluated), or when
    training stops early, the centres move to their clusters' means in the trained embedding, in
    evaluation mode, and the radii (once warm-up is over) are measured around them: the spheres the
    detector scores with are those of the final net, not of the net training started from. The epoch's
    distances become those to the new centres, so its record (radii, share outside, histograms) is
    of the final spheres."""

    def __init__(self, encoder, head: SphereHead, x, labels, nu: float, warmup_epochs: int, shared: bool) -> None:
        self.encoder, self.head, self.x, self.labels = encoder, head, x, labels
        self.nu, self.warmup_epochs, self.shared = nu, warmup_epochs, shared
        self.done = False

    def __call__(self, engine: Engine) -> None:
        if not self.done and engine.state.epoch > 0:
            warm = engine.state.epoch >= self.warmup_epochs
            dist = recentre(self.encoder, self.head, self.x, self.labels, self.nu, warm, self.shared)
            engine.state.epoch_dist = dist.to(engine.state.epoch_dist)  # what the epoch's record describes
            self.done = True

    def attach(self, engine: Engine) -> FinalSpheres:
        last = Events.EPOCH_COMPLETED(event_filter=lambda e, epoch: epoch == e.state.max_epochs)
        engine.add_event_handler(last, self)
        engine.add_event_handler(Events.COMPLETED, self)  # stopped early: the net it stopped with
        return self


class HeldOutLoss:
    """After warm-up, at each epoch end (after the sphere update): the training objective on held-out
    *normal* points with the current centres and radii, in evaluation mode, as
    ``engine.state.metrics['holdout_loss']``, the score that early stopping watches (no anomaly is ever
    seen)."""

    def __init__(self, encoder: torch.nn.Module, head: SphereHead, x: torch.Tensor, labels: torch.Tensor, loss_fn: Any):
        self.encoder, self.head, self.x, self.labels, self.loss_fn = encoder, head, x, labels, loss_fn

    def __call__(self, engine: Engine) -> None:
        z = embed(self.encoder, self.x)
        dist = own_sq_distances(z, self.head.centres, self.labels)
        engine.state.metrics["holdout_loss"] = float(self.loss_fn(dist, self.labels, self.head.radii))


def attach_collapse_check(engine: Engine, head: SphereHead, stage: str) -> None:
    """At the end, warn when the solution collapsed: every radius ~0 or every distance ~0. A stage that
    trained no epoch (``svdd.epochs=0``: the spheres as the pretrained net places them) has nothing to check."""
    first: dict[str, float] = {}

    @engine.on(Events.EPOCH_COMPLETED(once=1))
    def _first(engine: Engine) -> None:
        first["mean"] = float(engine.state.epoch_dist.mean())

    @engine.on(Events.COMPLETED)
    def _check(engine: Engine) -> None:
        if engine.state.epoch == 0:
            return
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
