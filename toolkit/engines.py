"""Ignite engines, one per stage, built by small factories. Each step returns a dict of detached
tensors (no host sync per step); logging, radii, progress and checkpoints are handlers (handlers.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from ignite.engine import Engine, EventEnum, Events
from ignite.metrics import Average
from torch import Tensor, nn

from .svdd import SphereHead, own_sq_distances, svdd_loss


class SVDDEvents(EventEnum):
    """Custom events users can hook into without subclassing (Ignite's ``register_events``)."""

    RADII_UPDATED = "radii_updated"


def sq_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """Per-sample sum of squared differences."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)


def reconstruction_error(ae: nn.Module, x: Tensor) -> Tensor:
    """Per-sample sum of squared reconstruction errors."""
    return sq_error(ae(x), x)


def step_seed(seed: int, rank: int, iteration: int) -> int:
    """The seed of a pretraining step's generator: one stream per run seed, process and step."""
    return (seed * 0x9E3779B97F4A7C15 + rank * 0xBF58476D1CE4E5B9 + iteration) % 2**64


def create_pretrainer(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Callable[[nn.Module, Tensor, torch.Generator], Tensor] | None = None,
    *,
    seed: int = 0,
    rank: int = 0,
) -> Engine:
    """Pretraining: minimise ``loss(net, x, generator)`` over the batches; by default the autoencoder's
    mean per-sample squared reconstruction error. ``generator`` is a ``torch.Generator`` on the batch's
    device, seeded at each step from ``seed``, ``rank`` and the iteration (:func:`step_seed`), so a method's
    random draws repeat from run to run and continue unchanged after a resume, with no state to keep."""
    loss_fn = loss or (lambda net, x, generator: reconstruction_error(net, x).mean())
    generators: dict[torch.device, torch.Generator] = {}

    def step(engine: Engine, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        _, x = batch[:2]
        net.train()
        optimizer.zero_grad(set_to_none=True)
        if x.device not in generators:
            generators[x.device] = torch.Generator(device=x.device)
        generator = generators[x.device].manual_seed(step_seed(seed, rank, engine.state.iteration))
        loss = loss_fn(net, x, generator)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    engine = Engine(step)
    Average(output_transform=lambda out: out["loss"]).attach(engine, "loss")
    return engine


def create_svdd_trainer(
    encoder: nn.Module,
    head: SphereHead,
    optimizer: torch.optim.Optimizer,
    objective: str,
    nu: float,
    n_train: int,
    *,
    decoder: nn.Module | None = None,
    recon_weight: float = 0.0,
    keep_embeddings: bool = False,
) -> Engine:
    """Deep SVDD training of ``encoder`` towards the (fixed) centres of ``head``.

    Every point's squared distance is recorded in ``engine.state.epoch_dist`` as the epoch goes, so the
    radius handler takes each cluster's quantile over the whole epoch, not over the last batch; with
    ``keep_embeddings`` the embeddings too (``engine.state.epoch_z``, for re-assignment). With a
    ``decoder`` and ``recon_weight`` > 0 the loss adds ``recon_weight`` times the mean reconstruction error.
    """
    recon = decoder is not None and recon_weight > 0

    def step(engine: Engine, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        idx, x, labels = batch
        encoder.train()
        optimizer.zero_grad(set_to_none=True)
        z = encoder(x)
        dist = own_sq_distances(z, head.centres, labels)
        loss = svdd_loss(dist, labels, head.radii, nu, objective)
        if recon:
            decoder.train()
            loss = loss + recon_weight * sq_error(decoder(z), x).mean()
        loss.backward()
        optimizer.step()
        engine.state.epoch_dist[idx] = dist.detach()
        if keep_embeddings:
            engine.state.epoch_z[idx] = z.detach()
        return {"loss": loss.detach(), "dist": dist.detach()}

    engine = Engine(step)
    engine.register_events(*SVDDEvents)

    @engine.on(Events.STARTED)
    def _alloc(engine: Engine) -> None:
        engine.state.epoch_dist = torch.zeros(n_train, device=head.centres.device)
        if keep_embeddings:
            engine.state.epoch_z = torch.zeros(n_train, head.centres.shape[1], device=head.centres.device)

    Average(output_transform=lambda out: out["loss"]).attach(engine, "loss")
    return engine


def create_evaluator(score_fn: Callable[[Tensor], Tensor]) -> Engine:
    """Scores labelled test batches ``(index, x, is_anomaly)``; ``state.metrics`` gets 'auroc' and 'aupr'
    (average precision, anomalies as the positive class) at the end.

    The metrics are computed in this process only (no collective op): evaluation runs on rank 0 alone,
    while the other ranks go on training."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    def step(engine: Engine, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        _, x, y = batch
        with torch.inference_mode():
            s = score_fn(x)
        engine.state.outputs.append((s.float().cpu(), y.cpu()))
        return s, y

    engine = Engine(step)

    @engine.on(Events.STARTED)
    def _reset(engine: Engine) -> None:
        engine.state.outputs = []

    @engine.on(Events.COMPLETED)
    def _metrics(engine: Engine) -> None:
        s = torch.cat([o[0] for o in engine.state.outputs]).numpy()
        y = torch.cat([o[1] for o in engine.state.outputs]).numpy()
        engine.state.metrics["auroc"] = float(roc_auc_score(y, s))
        engine.state.metrics["aupr"] = float(average_precision_score(y, s))
        engine.state.outputs = []

    return engine
