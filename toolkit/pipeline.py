"""Stage orchestration: preprocess -> pretrain -> embed -> pseudo-labels -> SVDD -> detector -> results.

The same code runs in one process or in several (``idist.Parallel``: spawned with ``--backend=gloo
--nproc_per_node=N``, or under ``torchrun``): every rank holds the preprocessed training data and trains
on its share of each global batch (DDP averages the gradients); rank 0 embeds all training points and
clusters them, and the labels are broadcast; the radius quantiles use every rank's distances (one
all-reduce per epoch); only rank 0 writes logs and artifacts.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.handlers import Checkpoint
from torch import Tensor, nn

from . import config as C
from .clustering import agreement, check_clusterer, contingency_markdown, pseudo_labels
from .data import Preprocessor, Split, TensorBatches, as_tensor, load_split
from .detector import MultiRadiusDeepSVDD
from .engines import create_evaluator, create_pretrainer, create_svdd_trainer, reconstruction_error
from .handlers import (
    History,
    HoldoutStop,
    RadiusUpdate,
    Reassign,
    StopRequest,
    attach_checkpoint,
    attach_collapse_check,
    attach_distance_sync,
    attach_evaluation,
    attach_finite_guard,
    attach_lr_schedule,
    attach_progress,
    attach_tensorboard,
)
from .monitor import scalar_layout, write_story
from .nets import EVAL_BATCH, build_autoencoder, embed, fast_layout, net_options, refresh_batchnorm, resolve_arch
from .runfolder import RunFolder, RunFolderError, write_json
from .svdd import SphereHead, init_centres, nearest_sphere, svdd_loss

log = logging.getLogger("toolkit")


class Interrupted(RuntimeError):
    """The run was stopped (Ctrl-C) after writing a checkpoint; ``--resume=True`` continues it."""


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
class Context:
    """Where a stage runs and what it reports to; every field optional for library use."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    tb: Any = None  # an ignite TensorboardLogger (rank 0 only)
    run: RunFolder | None = None
    resume: bool = False
    progress: bool = True
    eval_data: TensorBatches | None = None  # (index, x, is_anomaly) batches of preprocessed test data
    eval_every: int = 1
    stop: StopRequest | None = None
    rank: int = 0
    world: int = 1

    @property
    def writes(self) -> bool:
        """Whether this process writes artifacts (rank 0 of a run with a folder)."""
        return self.run is not None and self.rank == 0


def _optimizer(params: Any, opt: C.OptimConfig) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(opt.milestones), gamma=opt.gamma)
    return optimizer, scheduler


def _parallel(model: nn.Module, ctx: Context) -> nn.Module:
    """DDP around ``model`` with several processes; the model itself otherwise."""
    if ctx.world == 1:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _where(ctx: Context) -> str:
    return str(ctx.run.checkpoints) if ctx.run is not None else "no checkpoints outside a run folder"


def _train(
    engine,
    data: TensorBatches,
    epochs: int,
    ctx: Context,
    tag: str,
    optimizer,
    scheduler,
    models: dict,
    score_fn,
    head=None,
    labels=None,
) -> History:
    """Attach history, scheduler, evaluation, TensorBoard, progress, checkpoints and the Ctrl-C stop (in that
    order, after the stage's own handlers), resume from the stage's newest checkpoint if asked, and run."""
    history = History(optimizer, head, labels).attach(engine)  # before the scheduler steps: this epoch's lr
    attach_lr_schedule(engine, scheduler)
    if ctx.eval_data is not None:
        attach_evaluation(engine, create_evaluator(score_fn), ctx.eval_data, ctx.eval_every, history)
    if ctx.tb is not None:
        attach_tensorboard(ctx.tb.writer, engine, tag, history)
    if ctx.progress and ctx.rank == 0:
        attach_progress(engine, tag)
    to_save = {
        **models,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "trainer": engine,
        "history": history,
        "batches": data,
    }
    if ctx.run is not None:
        attach_checkpoint(engine, to_save, ctx.run.checkpoints, tag)
        if ctx.resume and (found := ctx.run.load_latest_checkpoint(tag)) is not None:
            Checkpoint.load_objects(to_save, found[1])
            log.info("%s: resuming from %s (epoch %d)", tag, found[0].name, engine.state.epoch)
    if ctx.stop is not None:
        ctx.stop.attach(engine)
    engine.run(data, max_epochs=epochs)
    if ctx.stop is not None and ctx.stop.requested:
        raise Interrupted(
            f"stopped after epoch {engine.state.epoch} of {tag}, its checkpoint written; rerun the same command "
            "with --resume=True to continue"
        )
    return history


def pretrain(ae: nn.Module, x: Tensor, opt: C.OptimConfig, *, seed: int, ctx: Context) -> History:
    """Train the autoencoder on preprocessed normal data ``x``; the history's test metrics (with
    ``ctx.eval_data``) score by reconstruction error."""
    optimizer, scheduler = _optimizer(ae.parameters(), opt)
    engine = create_pretrainer(_parallel(ae, ctx), optimizer)
    attach_finite_guard(engine, "pretrain", _where(ctx))

    def score(xb: Tensor) -> Tensor:
        ae.eval()
        return reconstruction_error(ae, xb)

    data = TensorBatches(x, batch_size=opt.batch_size, shuffle=True, seed=seed, rank=ctx.rank, world=ctx.world)
    history = _train(engine, data, opt.epochs, ctx, "pretrain", optimizer, scheduler, {"autoencoder": ae}, score)
    if opt.refresh_bn:
        refresh_batchnorm(ae, x)
    return history


def train_svdd(
    encoder: nn.Module,
    x: Tensor,
    labels: Tensor,
    svdd: C.SVDDConfig,
    *,
    seed: int,
    ctx: Context,
    tag: str,
    decoder: nn.Module | None = None,
) -> tuple[SphereHead, History]:
    """Deep SVDD on ``encoder`` with one sphere per label; returns the fitted head and the history.

    ``decoder`` (trained along) is needed only with ``svdd.recon_weight`` > 0; with ``svdd.reassign``
    the ``labels`` tensor is updated in place."""
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
        _parallel(encoder, ctx),
        head,
        optimizer,
        svdd.objective,
        svdd.nu,
        x.shape[0],
        decoder=_parallel(decoder, ctx) if recon else None,
        recon_weight=svdd.recon_weight,
        keep_embeddings=svdd.reassign,
    )
    attach_finite_guard(engine, tag, _where(ctx))
    attach_distance_sync(engine)
    if svdd.reassign:
        Reassign(head, labels).attach(engine)
    RadiusUpdate(
        head, labels, svdd.nu, svdd.warmup_epochs, shared=svdd.shared_radius, per_batch=svdd.radius_update == "batch"
    ).attach(engine)
    attach_collapse_check(engine, head, tag)
    extra = {}
    if svdd.holdout_fraction > 0:
        heldout_loss = functools.partial(svdd_loss, nu=svdd.nu, objective=svdd.objective)
        stop = HoldoutStop(encoder, head, x_held, labels_held, heldout_loss, svdd.warmup_epochs, svdd.patience)
        extra["holdout"] = stop.attach(engine)

    def score(xb: Tensor) -> Tensor:
        encoder.eval()
        return head(encoder(xb))

    data = TensorBatches(x, labels, batch_size=svdd.batch_size, shuffle=True, seed=seed, rank=ctx.rank, world=ctx.world)
    history = _train(
        engine,
        data,
        svdd.epochs,
        ctx,
        tag,
        optimizer,
        scheduler,
        {"encoder": encoder, "head": head, **({"decoder": decoder} if recon else {}), **extra},
        score,
        head,
        labels,
    )
    if svdd.refresh_bn:
        refresh_batchnorm(encoder, x)
    if svdd.holdout_fraction > 0:
        if svdd.reassign:  # the held-out points go to their nearest sphere too
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


def fit(
    cfg: C.Config, x_train: np.ndarray | Tensor, *, ctx: Context | None = None
) -> tuple[MultiRadiusDeepSVDD, dict[str, Any]]:
    """Fit a detector on raw normal data: the library entry point behind ``MultiRadiusDeepSVDD.fit``."""
    detectors, info, _ = _fit_stages(cfg, as_tensor(x_train), ctx or Context(), baseline=False)
    return detectors["multi"], info


def _stage(ctx: Context, name: str) -> dict[str, Any] | None:
    """A finished stage's record, when resuming a run that has it."""
    return ctx.run.load_stage(name) if (ctx.run is not None and ctx.resume) else None


def _save_stage(ctx: Context, name: str, payload: dict[str, Any]) -> None:
    if ctx.writes:
        ctx.run.save_stage(name, payload)
    if ctx.world > 1:
        idist.barrier()


def _fit_stages(
    cfg: C.Config,
    x_raw: Tensor,
    ctx: Context,
    *,
    baseline: bool,
    eval_raw: tuple[Tensor, Tensor] | None = None,
    true_classes: np.ndarray | None = None,
) -> tuple[dict[str, MultiRadiusDeepSVDD], dict[str, Any], nn.Module]:
    """Pretrain once; train the multi-radius model and, with ``baseline`` or ``svdd.score_single``, one
    sphere from the same AE (the baseline detector, and the multi-radius score's one-sphere term).
    Finished stages are recorded in the run folder and taken from it on resume. Returns the detectors,
    what happened (for results.json) and the pretrained encoder."""
    in_shape = tuple(x_raw.shape[1:])
    arch = resolve_arch(cfg.net.arch, in_shape)
    if not bool(torch.isfinite(x_raw).all()):
        raise C.ConfigError("the training data hold NaN or infinite values; clean them before training")
    check_clusterer(cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes))
    torch.manual_seed(cfg.seed)
    prep = Preprocessor().fit(x_raw).to(ctx.device)
    x = fast_layout(prep(x_raw.to(ctx.device)), ctx.device)
    if eval_raw is not None and ctx.rank == 0:
        x_eval = fast_layout(prep(eval_raw[0].to(ctx.device)), ctx.device)
        ctx.eval_data = TensorBatches(x_eval, eval_raw[1].to(ctx.device), batch_size=EVAL_BATCH)
    info: dict[str, Any] = {"n_train": int(x.shape[0]), "input_shape": list(in_shape), "arch": arch}

    # ---- pretraining
    t0 = time.perf_counter()
    ae = build_autoencoder(arch, in_shape, *net_options(cfg.net)).to(ctx.device)
    ae = fast_layout(ae, ctx.device)
    if (done := _stage(ctx, "pretrain")) is not None:
        ae.load_state_dict(done["autoencoder"])
        info["pretrain"] = json.loads(done["info"])
        log.info("pretrain: finished earlier, taken from %s", ctx.run.stage_path("pretrain"))
    else:
        history = pretrain(ae, x, cfg.pretrain, seed=cfg.seed, ctx=ctx)
        info["pretrain"] = {"seconds": time.perf_counter() - t0, "history": history.as_dict()}
        _save_stage(ctx, "pretrain", {"autoencoder": ae.state_dict(), "info": json.dumps(info["pretrain"])})

    # ---- pseudo-labels: clustered on rank 0, broadcast to the others
    t0 = time.perf_counter()
    if (done := _stage(ctx, "clustering")) is not None:
        labels, cinfo = done["labels"].to(ctx.device), json.loads(done["info"])
    else:
        labels, cinfo = torch.zeros(x.shape[0], dtype=torch.long, device=ctx.device), {}
        if ctx.rank == 0:
            found, cinfo = pseudo_labels(
                embed(ae.encoder, x), cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes)
            )
            labels = found.to(ctx.device)
            cinfo["seconds"] = time.perf_counter() - t0
            if true_classes is not None:  # diagnostics only: the true classes never reach training
                cinfo["agreement"] = agreement(true_classes, labels.cpu().numpy())
        if ctx.world > 1:
            labels = idist.broadcast(labels, src=0)
        _save_stage(ctx, "clustering", {"labels": labels.cpu(), "info": json.dumps(cinfo)})
    info["clustering"] = cinfo
    if ctx.tb is not None:
        _log_clustering(ctx.tb.writer, cinfo)

    # ---- SVDD: one sphere first when the multi-radius score or the baseline needs it, then multi-radius;
    # each from a copy of the pretrained encoder, with the seed reset (so the order changes nothing)
    variants = {"multi": labels}
    if baseline or cfg.svdd.score_single > 0:
        variants = {"single": torch.zeros_like(labels), **variants}
    trained = {}  # name -> (encoder, head, labels)
    for name, lab in variants.items():
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        encoder = copy.deepcopy(ae.encoder)
        if (done := _stage(ctx, f"svdd_{name}")) is not None:
            encoder.load_state_dict(done["encoder"])
            head = SphereHead(done["centres"], done["radii"], rule=cfg.svdd.score).to(ctx.device)
            lab = done.get("labels", lab.cpu()).to(ctx.device)
            info[name] = json.loads(done["info"])
        else:
            lab = lab.clone()  # re-assignment changes it in place; the clustering's labels stay as found
            decoder = copy.deepcopy(ae.decoder) if cfg.svdd.recon_weight > 0 else None
            head, history = train_svdd(
                encoder, x, lab, cfg.svdd, seed=cfg.seed, ctx=ctx, tag=f"svdd_{name}", decoder=decoder
            )
            last = history.tests[-1] if history.tests else {}
            info[name] = {
                "seconds": time.perf_counter() - t0,
                "radii": head.radii.tolist(),
                "test_auroc": last.get("auroc"),
                "test_aupr": last.get("aupr"),
                "history": history.as_dict(),
            }
            _save_stage(
                ctx,
                f"svdd_{name}",
                {
                    "encoder": encoder.state_dict(),
                    "centres": head.centres.cpu(),
                    "radii": head.radii.cpu(),
                    "labels": lab.cpu(),
                    "info": json.dumps(info[name]),
                },
            )
        trained[name] = (encoder, head, lab)

    recon = copy.deepcopy(ae).eval() if cfg.svdd.score_recon > 0 else None  # frozen, for the score

    def detector(config: C.Config, name: str, single=None) -> MultiRadiusDeepSVDD:
        parts = (config, arch, in_shape, prep, *trained[name])
        return MultiRadiusDeepSVDD._from_parts(*parts, recon=recon, single=single)._calibrate(x)

    detectors = {"multi": detector(cfg, "multi", trained["single"][:2] if cfg.svdd.score_single > 0 else None)}
    if baseline:  # one sphere on its own: never its own one-sphere term
        detectors["single"] = detector(C.apply_overrides(cfg, {"svdd.score_single": 0.0}), "single")
    elif "single" in info:  # no baseline detector: the sphere is the multi-radius score's term
        info["multi"]["one_sphere"] = info.pop("single")
    return detectors, info, ae.encoder


def _log_clustering(writer: Any, cinfo: dict[str, Any]) -> None:
    """Cluster sizes before and after the tidy-up, and the agreement with the true classes if known."""
    for tag in ("sizes_before", "sizes"):
        for k, size in enumerate(cinfo[tag]):
            writer.add_scalar(f"clustering/{tag}", size, k)
    writer.add_scalar("clustering/n_clusters", len(cinfo["sizes"]), 0)
    writer.add_text(
        "clustering/summary",
        f"{len(cinfo['sizes_before'])} clusters ({cinfo['n_noise']} noise points) from `{cinfo['clusterer']}`, "
        f"{len(cinfo['sizes'])} after tidy-up (min size {cinfo['min_size']}): sizes {cinfo['sizes']}",
        0,
    )
    if "agreement" in cinfo:
        a = cinfo["agreement"]
        writer.add_scalar("clustering/ari", a["ari"], 0)
        writer.add_scalar("clustering/nmi", a["nmi"], 0)
        writer.add_text("clustering/contingency", contingency_markdown(a), 0)


# --------------------------------------------------------------------------------------------- CLI run


def resolve_run_dir(cfg: C.Config) -> Path:
    """``run_dir``; or, unset, a new ``runs/<name>-<time>`` (with ``resume``, the newest existing one)."""
    if cfg.run_dir:
        return Path(cfg.run_dir)
    if cfg.resume:
        found = sorted(p for p in Path("runs").glob(f"{cfg.name}-*") if (p / "config.json").is_file())
        if not found:
            raise RunFolderError(f"--resume: no run of {cfg.name!r} under runs/; pass --run_dir=FOLDER")
        return found[-1]
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _free_port() -> int:
    """A free local TCP port for the spawned processes' rendezvous (a fixed one may still be taken)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def run(cfg: C.Config, *, progress: bool = True) -> dict[str, Any]:
    """The whole job behind ``python -m toolkit RECIPE``; writes everything into the run folder.

    Everything that can be checked is checked here, before any process is spawned or any training
    starts: the device, the clusterer and its options, the data, the run folder."""
    if not cfg.dist.backend:
        resolve_device(cfg.device)
    check_clusterer(cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes))
    split = load_split(cfg.data, cfg.seed)
    run_dir = resolve_run_dir(cfg)
    cfg = C.apply_overrides(cfg, {"run_dir": str(run_dir)})
    torchrun = _under_torchrun()  # checked here: idist.Parallel's own children have these variables too
    if not torchrun:
        RunFolder(run_dir).start(cfg, cfg.resume)
    if cfg.dist.backend:
        spawn = {} if torchrun else {"nproc_per_node": cfg.dist.nproc_per_node, "master_port": _free_port()}
        with idist.Parallel(backend=cfg.dist.backend, **spawn) as parallel:
            parallel.run(_process, cfg, progress, None, torchrun)
    else:
        _process(0, cfg, progress, split, False)
    if torchrun and os.environ.get("RANK", "0") != "0":
        return {}  # under torchrun every process runs this function; rank 0 reports
    results = json.loads((run_dir / "results.json").read_text())
    results["run_dir"] = str(run_dir)
    return results


def threads_per_process(threads: int, nproc: int) -> int:
    """Each of ``nproc`` CPU processes on a machine gets its share of the ``threads`` one process would
    use (at least 1): N spawned processes with every core each oversubscribe the cores (measured four
    times slower on 2 cores, docs/distributed.md). torchrun sets OMP_NUM_THREADS itself, and a set
    OMP_NUM_THREADS is left alone."""
    return max(1, threads // max(1, nproc))


def _process(local_rank: int, cfg: C.Config, progress: bool, split: Split | None, torchrun: bool) -> None:
    """One process's share of the run (the only process, or one rank under idist.Parallel)."""
    from ignite.handlers import TensorboardLogger

    rank, world = idist.get_rank(), idist.get_world_size()
    device = idist.device() if cfg.dist.backend else resolve_device(cfg.device)
    if world > 1 and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads_per_process(torch.get_num_threads(), idist.get_nproc_per_node()))
    folder = RunFolder(cfg.run_dir)
    if torchrun:  # every process ran run(): rank 0 alone sets up the folder
        if rank == 0:
            folder.start(cfg, cfg.resume)
        idist.barrier()
    split = split if split is not None else load_split(cfg.data, cfg.seed)
    tb = None
    if rank == 0:
        tb = TensorboardLogger(log_dir=str(folder.path))
        tb.writer.add_custom_scalars(
            scalar_layout(["multi", "single"] if cfg.baseline or cfg.svdd.score_single > 0 else ["multi"])
        )
    t0 = time.perf_counter()
    with StopRequest() as stop:
        ctx = Context(
            device=device,
            tb=tb,
            run=folder,
            resume=cfg.resume,
            progress=progress,
            eval_every=cfg.eval_every,
            stop=stop,
            rank=rank,
            world=world,
        )
        try:
            detectors, info, pretrained = _fit_stages(
                cfg,
                as_tensor(split.x_train),
                ctx,
                baseline=cfg.baseline,
                eval_raw=(as_tensor(split.x_test), torch.from_numpy(split.is_anomaly_test)),
                true_classes=split.y_train,
            )
            if rank == 0:
                final = write_story(tb.writer, folder.path, cfg, split, detectors, pretrained)
        finally:
            if tb is not None:
                tb.close()
    if rank != 0:
        return
    for name, det in detectors.items():
        det.save(folder.path / f"detector_{name}.pt")
        info[name].update(final[name])  # the final detector's own scores (also right after a resume)
    results = {
        "name": cfg.name,
        "dataset": cfg.data.dataset,
        "normal_classes": list(cfg.data.normal_classes),
        "device": str(device),
        "processes": world,
        "threads_per_process": torch.get_num_threads() if device.type == "cpu" else None,
        "n_test": int(split.x_test.shape[0]),
        "n_test_anomalies": int(split.is_anomaly_test.sum()),
        "seconds": time.perf_counter() - t0,
        **info,
    }
    write_json(folder.path / "results.json", results)


def summary(results: dict[str, Any]) -> str:
    """The short table printed at the end of a run."""
    c = results["clustering"]
    lines = [
        f"run folder: {results.get('run_dir', '?')}",
        f"data: {results['dataset']}, normal classes {results['normal_classes']}, {results['n_train']} training "
        f"points, {results['n_test']} test points ({results['n_test_anomalies']} anomalies)",
        f"clusters ({c['clusterer']}): {len(c['sizes'])}, sizes {c['sizes']} (before tidy-up: "
        f"{len(c['sizes_before'])} clusters, {c['n_noise']} noise points; minimum size {c['min_size']})",
    ]
    if "agreement" in c:
        a = c["agreement"]
        lines += [f"agreement with the true normal classes: ARI {a['ari']:.3f}, NMI {a['nmi']:.3f}"]
        lines += [contingency_markdown(a)]
    lines += ["", "| model | spheres | radii | test AUROC | test AUPR |", "|---|---|---|---|---|"]
    for name, label in (("multi", "Multi-Radius Deep SVDD"), ("single", "Deep SVDD (one sphere)")):
        if name in results:
            r = results[name]
            radii = ", ".join(f"{v:.3f}" for v in r["radii"][:8]) + (" ..." if len(r["radii"]) > 8 else "")
            auroc, aupr = ("n/a" if r[k] is None else f"{r[k]:.4f}" for k in ("test_auroc", "test_aupr"))
            lines.append(f"| {label} | {len(r['radii'])} | {radii} | {auroc} | {aupr} |")
    return "\n".join(lines)
