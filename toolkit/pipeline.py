"""Stage orchestration: preprocess -> pretrain -> embed -> pseudo-labels -> SVDD -> detector -> results."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import config as C
from .clustering import agreement, check_clusterer, contingency_markdown, pseudo_labels
from .data import Preprocessor, Split, TensorBatches, as_tensor, load_split
from .detector import MultiRadiusDeepSVDD
from .engines import create_evaluator, create_pretrainer, create_svdd_trainer, reconstruction_error
from .handlers import (
    History,
    RadiusUpdate,
    attach_checkpoint,
    attach_evaluation,
    attach_lr_schedule,
    attach_progress,
    attach_tensorboard,
)
from .monitor import scalar_layout, write_story
from .nets import build_autoencoder, resolve_arch
from .svdd import SphereHead, init_centres

EVAL_BATCH = 4096


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
    tb: Any = None  # an ignite TensorboardLogger
    run_dir: Path | None = None
    progress: bool = True
    eval_data: TensorBatches | None = None  # (index, x, is_anomaly) batches of preprocessed test data
    eval_every: int = 1


def _optimizer(params: Any, opt: C.OptimConfig) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(opt.milestones), gamma=opt.gamma)
    return optimizer, scheduler


def _attach_common(
    engine, ctx: Context, tag: str, optimizer, scheduler, to_save, score_fn, head=None, labels=None
) -> History:
    """History, scheduler, evaluation, TensorBoard, progress and checkpoints, shared by both stages."""
    history = History(optimizer, head, labels).attach(engine)  # before the scheduler steps: this epoch's lr
    attach_lr_schedule(engine, scheduler)
    if ctx.eval_data is not None:
        attach_evaluation(engine, create_evaluator(score_fn), ctx.eval_data, ctx.eval_every, history)
    if ctx.tb is not None:
        attach_tensorboard(ctx.tb.writer, engine, tag, history)
    if ctx.progress:
        attach_progress(engine, tag)
    if ctx.run_dir is not None:
        attach_checkpoint(
            engine,
            {**to_save, "optimizer": optimizer, "scheduler": scheduler, "trainer": engine},
            ctx.run_dir / "checkpoints",
            tag.replace("/", "_"),
        )
    return history


def pretrain(ae: nn.Module, x: Tensor, opt: C.OptimConfig, *, seed: int, ctx: Context) -> History:
    """Train the autoencoder on preprocessed normal data ``x``; the history's test metrics (with
    ``ctx.eval_data``) score by reconstruction error."""
    optimizer, scheduler = _optimizer(ae.parameters(), opt)
    engine = create_pretrainer(ae, optimizer)

    def score(xb: Tensor) -> Tensor:
        ae.eval()
        return reconstruction_error(ae, xb)

    history = _attach_common(engine, ctx, "pretrain", optimizer, scheduler, {"autoencoder": ae}, score)
    engine.run(TensorBatches(x, batch_size=opt.batch_size, shuffle=True, seed=seed), max_epochs=opt.epochs)
    return history


@torch.inference_mode()
def embed(encoder: nn.Module, x: Tensor, batch_size: int = EVAL_BATCH) -> Tensor:
    encoder.eval()
    return torch.cat([encoder(x[s : s + batch_size]) for s in range(0, x.shape[0], batch_size)])


def train_svdd(
    encoder: nn.Module, x: Tensor, labels: Tensor, svdd: C.SVDDConfig, *, seed: int, ctx: Context, tag: str
) -> tuple[SphereHead, History]:
    """Deep SVDD on ``encoder`` with one sphere per label; returns the fitted head and the history."""
    k = int(labels.max()) + 1
    head = SphereHead(init_centres(embed(encoder, x), labels, k, svdd.eps)).to(x.device)
    optimizer, scheduler = _optimizer(encoder.parameters(), svdd)
    engine = create_svdd_trainer(encoder, head, optimizer, svdd.objective, svdd.nu, x.shape[0])
    RadiusUpdate(head, labels, svdd.nu, svdd.warmup_epochs).attach(engine)

    def score(xb: Tensor) -> Tensor:
        encoder.eval()
        return head(encoder(xb))

    to_save = {"encoder": encoder, "head": head}
    history = _attach_common(engine, ctx, tag, optimizer, scheduler, to_save, score, head, labels)
    engine.run(TensorBatches(x, labels, batch_size=svdd.batch_size, shuffle=True, seed=seed), max_epochs=svdd.epochs)
    return head, history


def fit(
    cfg: C.Config, x_train: np.ndarray | Tensor, *, ctx: Context | None = None
) -> tuple[MultiRadiusDeepSVDD, dict[str, Any]]:
    """Fit a detector on raw normal data: the library entry point behind ``MultiRadiusDeepSVDD.fit``."""
    detectors, info = _fit_all(cfg, as_tensor(x_train), ctx or Context(), baseline=False)
    info.pop("_pretrained_encoder")
    return detectors["multi"], info


def _fit_all(
    cfg: C.Config,
    x_raw: Tensor,
    ctx: Context,
    *,
    baseline: bool,
    eval_raw: tuple[Tensor, Tensor] | None = None,
    true_classes: np.ndarray | None = None,
) -> tuple[dict[str, MultiRadiusDeepSVDD], dict[str, Any]]:
    """Pretrain once; train the multi-radius model and, with ``baseline``, one sphere from the same AE."""
    in_shape = tuple(x_raw.shape[1:])
    arch = resolve_arch(cfg.net.arch, in_shape)
    check_clusterer(cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes))
    torch.manual_seed(cfg.seed)
    prep = Preprocessor().fit(x_raw).to(ctx.device)
    x = prep(x_raw.to(ctx.device))
    if eval_raw is not None:
        ctx.eval_data = TensorBatches(
            prep(eval_raw[0].to(ctx.device)), eval_raw[1].to(ctx.device), batch_size=EVAL_BATCH
        )
    info: dict[str, Any] = {"n_train": int(x.shape[0]), "input_shape": list(in_shape), "arch": arch}

    t0 = time.perf_counter()
    ae = build_autoencoder(arch, in_shape, cfg.net.rep_dim, cfg.net.hidden, cfg.net.leak).to(ctx.device)
    history = pretrain(ae, x, cfg.pretrain, seed=cfg.seed, ctx=ctx)
    info["pretrain"] = {"seconds": time.perf_counter() - t0, "history": history.as_dict()}

    t0 = time.perf_counter()
    labels, cinfo = pseudo_labels(
        embed(ae.encoder, x), cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes)
    )
    labels = labels.to(ctx.device)
    cinfo["seconds"] = time.perf_counter() - t0
    if true_classes is not None:  # diagnostics only: the true classes never reach training
        cinfo["agreement"] = agreement(true_classes, labels.cpu().numpy())
    info["clustering"] = cinfo
    if ctx.tb is not None:
        _log_clustering(ctx.tb.writer, cinfo)

    variants = {"multi": labels}
    if baseline:
        variants["single"] = torch.zeros_like(labels)
    detectors = {}
    for name, lab in variants.items():
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        encoder = copy.deepcopy(ae.encoder)
        head, history = train_svdd(encoder, x, lab, cfg.svdd, seed=cfg.seed, ctx=ctx, tag=f"svdd_{name}")
        detectors[name] = MultiRadiusDeepSVDD._from_parts(cfg, arch, in_shape, prep, encoder, head, lab, threshold=0.0)
        last = history.tests[-1] if history.tests else {}
        info[name] = {
            "seconds": time.perf_counter() - t0,
            "radii": head.radii.tolist(),
            "test_auroc": last.get("auroc"),
            "test_aupr": last.get("aupr"),
            "history": history.as_dict(),
        }
    info["_pretrained_encoder"] = ae.encoder  # for the run's story (projector); not serialised
    return detectors, info


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


def default_run_dir(cfg: C.Config) -> Path:
    return Path(cfg.run_dir) if cfg.run_dir else Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(cfg: C.Config, *, progress: bool = True) -> dict[str, Any]:
    """The whole job behind ``python -m toolkit RECIPE``; writes everything into the run folder."""
    from ignite.handlers import TensorboardLogger

    device = resolve_device(cfg.device)
    check_clusterer(cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes))
    split: Split = load_split(cfg.data, cfg.seed)
    run_dir = default_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(C.dumps(cfg))
    tb = TensorboardLogger(log_dir=str(run_dir))
    tb.writer.add_custom_scalars(scalar_layout(["multi", "single"] if cfg.baseline else ["multi"]))
    ctx = Context(device=device, tb=tb, run_dir=run_dir, progress=progress, eval_every=cfg.eval_every)
    t0 = time.perf_counter()
    try:
        detectors, info = _fit_all(
            cfg,
            as_tensor(split.x_train),
            ctx,
            baseline=cfg.baseline,
            eval_raw=(as_tensor(split.x_test), torch.from_numpy(split.is_anomaly_test)),
            true_classes=split.y_train,
        )
        write_story(tb.writer, run_dir, cfg, split, detectors, info.pop("_pretrained_encoder"))
    finally:
        tb.close()
    for name, det in detectors.items():
        det.save(run_dir / f"detector_{name}.pt")
    results = {
        "name": cfg.name,
        "dataset": cfg.data.dataset,
        "normal_classes": list(cfg.data.normal_classes),
        "device": str(device),
        "n_test": int(split.x_test.shape[0]),
        "n_test_anomalies": int(split.is_anomaly_test.sum()),
        "seconds": time.perf_counter() - t0,
        **info,
    }
    _write_json_atomic(run_dir / "results.json", results)
    results["run_dir"] = str(run_dir)
    return results


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


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
    lines += [
        "",
        "| model | spheres | radii | test AUROC | test AUPR |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("multi", "Multi-Radius Deep SVDD"), ("single", "Deep SVDD (one sphere)")):
        if name in results:
            r = results[name]
            radii = ", ".join(f"{v:.3f}" for v in r["radii"][:8]) + (" ..." if len(r["radii"]) > 8 else "")
            auroc, aupr = ("n/a" if r[k] is None else f"{r[k]:.4f}" for k in ("test_auroc", "test_aupr"))
            lines.append(f"| {label} | {len(r['radii'])} | {radii} | {auroc} | {aupr} |")
    return "\n".join(lines)
