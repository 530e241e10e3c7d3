"""The fit's stages in order, each done once: pretrain the network of ``pretrain.method``, cluster its
encoder's embeddings into pseudo-labels, train Deep SVDD (one sphere when the score or the baseline
needs it, then the multi-sphere model, each from a copy of the pretrained encoder with the seed reset,
so the order changes nothing). The runner owns what every stage shares: a stage finished earlier is
taken from the harness's store (a resumed run) instead of trained; a finished stage is recorded with its timing;
with several processes rank 0 clusters and the labels are broadcast. The detector's ``fit`` calls it and
assembles the detector from what it returns."""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

import ignite.distributed as idist
import torch
from torch import Tensor, nn

from . import config as C
from .clustering import pseudo_labels
from .nets import embed, fast_layout
from .pretext import pretraining_net
from .stages import FitEvents, Harness, evaluation_loss, pretrain, train_svdd
from .svdd import SphereHead

log = logging.getLogger("toolkit")
STALE_BN = 2.0  # the evaluation-mode loss this many times the training loss: the statistics are off


def run_stages(
    m: C.ModelConfig,
    method: Any,
    x: Tensor,
    arch: str,
    in_shape: tuple[int, ...],
    n_classes: int,
    harness: Harness,
    info: dict[str, Any],
) -> tuple[nn.Module, dict[str, tuple[nn.Module, SphereHead, Tensor]]]:
    """Run (or take up) every stage on the preprocessed training data ``x``; ``info`` gains each stage's
    report. Returns the pretrained net and, by name ("single", "multi"), each SVDD model's encoder, head
    and labels."""
    device, store = harness.device, harness.store
    # ---- pretraining by pretrain.method; its net's encoder is what the rest starts from. The stage keeps
    # the pretrained net, of any method, as "autoencoder"
    t0 = time.perf_counter()
    pretrained = fast_layout(pretraining_net(method, arch, in_shape, m.net).to(device), device)
    if (done := store.finished("pretrain")) is not None:
        pretrained.load_state_dict(done["autoencoder"])
        info["pretrain"] = json.loads(done["info"])
    else:
        history = pretrain(pretrained, x, m.pretrain, seed=m.seed, harness=harness, method=method)
        info["pretrain"] = {"seconds": time.perf_counter() - t0, "history": history.as_dict()}
        if harness.rank == 0:  # the net as the rest of the fit sees it
            log.info("pretrain: the loss in evaluation mode over the %d training rows", len(x))
            info["pretrain"]["eval_loss"] = evaluation_loss(pretrained, x, method, m.pretrain.batch_size, m.seed)
            report_evaluation_loss(info["pretrain"], m.pretrain.refresh_bn)
        record(harness, "pretrain", {"autoencoder": pretrained.state_dict(), "info": json.dumps(info["pretrain"])})

    # ---- pseudo-labels: clustered on rank 0, broadcast to the others
    t0 = time.perf_counter()
    if (done := store.finished("clustering")) is not None:
        labels, cinfo = done["labels"].to(device), json.loads(done["info"])
    else:
        labels, cinfo = torch.zeros(x.shape[0], dtype=torch.long, device=device), {}
        if harness.rank == 0:
            found, cinfo = pseudo_labels(
                embed(pretrained.encoder, x), m.clustering, seed=m.seed, n_normal_classes=n_classes
            )
            labels = found.to(device)
            cinfo["seconds"] = time.perf_counter() - t0
        if harness.world > 1:
            labels = idist.broadcast(labels, src=0)
    harness.fire(FitEvents.CLUSTERED, clustering=cinfo, labels=labels)
    if done is None:
        record(harness, "clustering", {"labels": labels.cpu(), "info": json.dumps(cinfo)})
    info["clustering"] = cinfo

    # ---- SVDD: one sphere first when the score or the baseline needs it, then the multi-sphere model
    variants = {"multi": labels}
    if harness.baseline or m.score.single > 0:
        variants = {"single": torch.zeros_like(labels), **variants}
    trained = {}  # name -> (encoder, head, labels)
    for name, lab in variants.items():
        t0 = time.perf_counter()
        torch.manual_seed(m.seed)
        encoder = copy.deepcopy(pretrained.encoder)
        if (done := store.finished(f"svdd_{name}")) is not None:
            encoder.load_state_dict(done["encoder"])
            head = SphereHead(done["centres"], done["radii"], rule=m.score.rule).to(device)
            lab = done.get("labels", lab.cpu()).to(device)
            info[name] = json.loads(done["info"])
        else:
            lab = lab.clone()  # re-assignment changes it in place; the clustering's labels stay as found
            decoder = copy.deepcopy(pretrained.decoder) if m.svdd.recon_weight > 0 else None
            head, history = train_svdd(
                encoder,
                x,
                lab,
                m.svdd.for_model(name),
                seed=m.seed,
                stage=f"svdd_{name}",
                harness=harness,
                decoder=decoder,
                rule=m.score.rule,
            )
            last = history.tests[-1] if history.tests else {}
            info[name] = {
                "seconds": time.perf_counter() - t0,
                "radii": head.radii.tolist(),
                "test_auroc": last.get("auroc"),
                "test_aupr": last.get("aupr"),
                "history": history.as_dict(),
            }
            payload = {"encoder": encoder.state_dict(), "centres": head.centres.cpu(), "radii": head.radii.cpu()}
            record(harness, f"svdd_{name}", {**payload, "labels": lab.cpu(), "info": json.dumps(info[name])})
        trained[name] = (encoder, head, lab)
    return pretrained, trained


def record(harness: Harness, stage: str, payload: dict[str, Any]) -> None:
    """Keep a finished stage in the harness's store; with several processes, every rank waits until it is
    kept, so that none goes on to a stage whose predecessor a crash could lose."""
    harness.store.record(stage, payload)
    if harness.world > 1:
        idist.barrier()


def report_evaluation_loss(info: dict[str, Any], refreshed: bool) -> None:
    """Log the pretraining loss in evaluation mode beside the last epoch's training loss; when it is far
    above and BatchNorm's statistics were not recomputed, say how to recompute them."""
    epochs = info["history"].get("epochs") or [{}]
    train, held = epochs[-1].get("loss"), info["eval_loss"]
    if train is None:
        return
    hint = ""
    if not refreshed and held > STALE_BN * train:
        hint = (
            "; the net's BatchNorm running statistics do not fit its final weights, and the embedding the "
            "spheres are built in suffers: --pretrain.refresh_bn=True recomputes them"
        )
    log.info("pretrain: loss %.4g in training (last epoch), %.4g in evaluation mode%s", train, held, hint)
