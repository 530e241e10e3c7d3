"""The run's story in TensorBoard's own plugins, written once training has ended (rank 0 only), and the
arrays the report verb draws from, so that ``python -m toolkit report RUN_DIR`` needs the folder alone.

- custom scalars: every cluster's radius in one chart (and the share outside each sphere, test AUROC);
- projector: a test subsample's embeddings after pretraining and at the end, with metadata columns
  pseudo-label (nearest cluster), true class, normal/anomaly, score, and image thumbnails;
- PR curve of the test scores; image grids of the most normal and most anomalous test images;
- hparams: the run's settings with its final test AUROC, so runs compare in the HParams tab.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import config as C
from .data import Split, as_tensor
from .detector import MultiRadiusDeepSVDD
from .files import savez_checked
from .nets import embed, fast_layout
from .overrides import field_table
from .svdd import scores as sphere_scores

log = logging.getLogger("toolkit")

MODELS = {"multi": "Multi-Radius Deep SVDD", "single": "Deep SVDD (one sphere)"}


def scalar_layout(models: list[str]) -> dict[str, Any]:
    """TensorBoard custom-scalars layout: one multi-line chart per quantity and model."""
    layout: dict[str, Any] = {}
    for m in models:
        tag = f"svdd_{m}"
        layout[MODELS[m]] = {
            "radius of every cluster": ["Multiline", [rf"{tag}/radius/.+"]],
            "share of training points outside each sphere": ["Multiline", [rf"{tag}/outside/.+"]],
        }
    layout["test"] = {
        "AUROC": ["Multiline", [r"svdd_\w+/test/auroc", r"pretrain/test/auroc"]],
        "AUPR": ["Multiline", [r"svdd_\w+/test/aupr", r"pretrain/test/aupr"]],
    }
    return layout


def tile(images: np.ndarray, cols: int = 8) -> torch.Tensor:
    """(C, H, W) grid of (N, C, H, W) images in [0, 1], with a white 2-pixel gap between tiles, so that
    neighbouring digits do not run into each other in TensorBoard."""
    from torchvision.utils import make_grid

    return make_grid(torch.from_numpy(np.asarray(images, dtype=np.float32)), nrow=cols, padding=2, pad_value=1.0)


def as_images(x: np.ndarray) -> np.ndarray | None:
    """(N, C, H, W) in [0, 1] for thumbnails: images as they are, flat square vectors as 1-channel
    images (the 8x8 digits); None when the data are not images."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            return None
        x = x.reshape(-1, 1, side, side)
    if x.ndim != 4:
        return None
    if not x.size:  # no images kept (monitor.extremes=0)
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / max(hi - lo, 1e-12)


def _ranks01(s: np.ndarray) -> np.ndarray:
    """Scores mapped to [0, 1] by rank: the PR curve's thresholds then split the data evenly."""
    return np.argsort(np.argsort(s)) / max(len(s) - 1, 1)


# where and how a run happened, not what it trained: left out of the HParams tab, so runs compare by settings
RUN_LOCATION = ("run_dir", "resume", "device", "data.root", "data.download", "dist.")


def _flat_hparams(cfg: C.Config) -> dict[str, Any]:
    out = {}
    for k, (_, v) in field_table(cfg).items():
        if k.startswith(RUN_LOCATION):
            continue
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(list(v) if isinstance(v, tuple) else v)
    return out


def _embed(det: MultiRadiusDeepSVDD, encoder: nn.Module, x: np.ndarray) -> torch.Tensor:
    """Raw samples -> the detector's preprocessing -> ``encoder`` (the pretrained one or the final one)."""
    device = det.head_.centres.device
    with torch.inference_mode():
        return embed(encoder, fast_layout(det.preprocessor_(as_tensor(x).to(device)), device))


def write_story(
    writer: Any,
    run_dir: Path,
    cfg: C.Config,
    split: Split,
    detectors: dict[str, MultiRadiusDeepSVDD],
    pretrained_encoder: nn.Module,
) -> dict[str, Any]:
    """TensorBoard projector, PR curves, image grids and hparams; ``scores.npz``, ``embeddings.npz`` and
    ``extremes.npz`` for the report. Returns the final test metrics per model."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    log.info(
        "scoring the %d test items with each model; writing TensorBoard's projector and figures", len(split.x_test)
    )
    m = cfg.monitor
    rng = np.random.default_rng(cfg.seed)
    step = cfg.svdd.epochs
    images = as_images(split.x_test)
    y, anomalous = split.y_test, split.is_anomaly_test
    arrays: dict[str, np.ndarray] = {"y_test": y, "is_anomaly": anomalous}
    extremes: dict[str, np.ndarray] = {}
    final: dict[str, Any] = {}
    for name, det in detectors.items():
        s, k = det.score_with_clusters(split.x_test)
        arrays[f"{name}_score"], arrays[f"{name}_cluster"] = s, k
        final[name] = {"test_auroc": None, "test_aupr": None}  # unlabelled data: no anomalies to rank
        if split.labelled:
            final[name] = {
                "test_auroc": float(roc_auc_score(anomalous, s)),
                "test_aupr": float(average_precision_score(anomalous, s)),
            }
            writer.add_pr_curve(f"svdd_{name}/test_pr_curve", anomalous.astype(bool), _ranks01(s), step)
        order = np.argsort(s)
        n_ext = min(m.extremes, len(s) // 2)
        extremes[f"{name}_normal_index"], extremes[f"{name}_anomalous_index"] = order[:n_ext], order[::-1][:n_ext]
        if images is not None and n_ext > 0:
            writer.add_image(f"svdd_{name}/most_normal_test_images", tile(images[order[:n_ext]]), step)
            writer.add_image(f"svdd_{name}/most_anomalous_test_images", tile(images[order[::-1][:n_ext]]), step)
    savez_checked(run_dir / "scores.npz", **arrays)
    raw = np.asarray(split.x_test)
    savez_checked(
        run_dir / "extremes.npz",
        **extremes,
        **{f"{key.rsplit('_', 1)[0]}_images": raw[idx] for key, idx in extremes.items()},
    )

    # projector: a test subsample, after pretraining and at the end (the multi-radius model)
    det = detectors["multi"]
    sub = np.sort(rng.choice(len(raw), size=min(m.projector_samples, len(raw)), replace=False))
    z_pre = _embed(det, pretrained_encoder, raw[sub])
    d_pre, k_pre = sphere_scores(z_pre, det.head_.centres, torch.zeros_like(det.head_.radii))
    z_end = _embed(det, det.encoder_, raw[sub])
    s_end, k_end = sphere_scores(z_end, det.head_.centres, det.head_.radii, det.head_.rule)
    header = ["cluster", "true_class", "kind", "score"]
    thumbs = None if images is None else torch.from_numpy(images[sub])
    for tag, z, k, sc in (("after_pretraining", z_pre, k_pre, d_pre), ("end", z_end, k_end, s_end)):
        meta = [
            [str(int(a)), str(int(b)), "anomaly" if c else "normal", f"{float(d):.4g}"]
            for a, b, c, d in zip(k.tolist(), y[sub].tolist(), anomalous[sub].tolist(), sc.tolist(), strict=True)
        ]
        writer.add_embedding(
            z.cpu(),
            metadata=meta,
            label_img=thumbs,
            global_step=0 if tag != "end" else step,
            tag=f"test_embeddings_{tag}",
            metadata_header=header,
        )

    # training embeddings after pretraining, with their pseudo-labels and true classes (report Figure 6)
    x_train = np.asarray(split.x_train)[det.train_rows_]  # the rows that trained (cluster_labels_ are theirs)
    tsub = np.sort(rng.choice(len(x_train), size=min(m.projector_samples, len(x_train)), replace=False))
    savez_checked(
        run_dir / "embeddings.npz",
        train_z=_embed(det, pretrained_encoder, x_train[tsub]).cpu().numpy(),
        train_cluster=np.asarray(det.cluster_labels_)[tsub],
        train_class=np.asarray(split.y_train)[det.train_rows_][tsub],  # the same rows as train_z
        train_classes_known=np.array(split.labelled and split.train_labelled),
        test_z_pretrained=z_pre.cpu().numpy(),
        test_z_end=z_end.cpu().numpy(),
        test_cluster=k_end.cpu().numpy(),
        test_class=y[sub],
        test_is_anomaly=anomalous[sub],
    )

    metrics = {f"hparam/test_auroc_{n}": v["test_auroc"] for n, v in final.items() if v["test_auroc"] is not None}
    metrics["hparam/n_clusters"] = float(det.n_clusters_)
    _add_hparams(writer, _flat_hparams(cfg), metrics)
    writer.flush()
    return final


def _add_hparams(writer: Any, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """TensorBoard's hparams plugin, written into this run's own event file (SummaryWriter.add_hparams
    would open a sub-run)."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    exp, ssi, sei = hparams_summary(hparams, metrics)
    fw = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        fw.add_summary(summary)
    for k, v in metrics.items():
        writer.add_scalar(k, v)
