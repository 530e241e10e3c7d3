"""Pseudo-labels from a registered clusterer, tidied so each cluster can carry its own sphere."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import ClusteringConfig, ConfigError
from .registry import RegistryError, build_clusterer, clusterer_options


def cluster_means(z: Tensor, labels: Tensor, k: int) -> Tensor:
    counts = torch.bincount(labels, minlength=k).clamp(min=1).to(z.dtype)
    return torch.zeros(k, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, labels, z) / counts[:, None]


def tidy_labels(z: Tensor, labels: Tensor, min_size: int) -> Tensor:
    """Noise (-1) goes to the nearest cluster centre; clusters under ``min_size`` points merge into the
    nearest cluster that reaches it (all into one if none does); labels are renumbered 0..K-1."""
    labels = labels.to(z.device).long()
    kept = labels >= 0
    if not bool(kept.any()):
        return torch.zeros_like(labels)
    _, lab = torch.unique(labels[kept], return_inverse=True)
    k = int(lab.max()) + 1
    sizes = torch.bincount(lab, minlength=k)
    means = cluster_means(z[kept], lab, k)
    big = sizes >= min_size
    if not bool(big.any()):
        return torch.zeros_like(labels)
    big_idx = torch.nonzero(big).flatten()
    # each cluster -> itself if big, else the nearest big cluster (by centre distance)
    target = big_idx[torch.cdist(means, means[big_idx]).argmin(1)]
    target = torch.where(big, torch.arange(k, device=z.device), target)
    out = torch.empty_like(labels)
    out[kept] = target[lab]
    if not bool(kept.all()):  # noise points -> nearest big cluster centre
        out[~kept] = big_idx[torch.cdist(z[~kept], means[big_idx]).argmin(1)]
    return torch.unique(out, return_inverse=True)[1]


def _options(cfg: ClusteringConfig, seed: int, n_normal_classes: int) -> dict[str, Any]:
    opts = {k: (n_normal_classes if v == "n_normal_classes" else v) for k, v in cfg.options.items()}
    if "random_state" in clusterer_options(cfg.name) and "random_state" not in opts:
        opts["random_state"] = seed
    return opts


def check_clusterer(cfg: ClusteringConfig, *, seed: int = 0, n_normal_classes: int = 1) -> None:
    """Build the clusterer once, before any long work, so a bad name or option fails at once."""
    try:
        build_clusterer(cfg.name, **_options(cfg, seed, n_normal_classes))
    except (ValueError, TypeError, RegistryError) as e:
        raise ConfigError(f"clustering: {e}") from None


def pseudo_labels(
    z: Tensor, cfg: ClusteringConfig, *, seed: int = 0, n_normal_classes: int = 1
) -> tuple[Tensor, dict[str, Any]]:
    """Cluster embeddings ``z`` with ``cfg.name``; return tidied labels and what happened, for the log."""
    clusterer = build_clusterer(cfg.name, **_options(cfg, seed, n_normal_classes))
    raw = np.asarray(clusterer.fit_predict(z.detach().cpu().numpy()))
    if raw.shape != (z.shape[0],):
        raise ValueError(
            f"clusterer {cfg.name!r} returned labels of shape {raw.shape}; expected ({z.shape[0]},), one per point"
        )
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"clusterer {cfg.name!r} returned {raw.dtype} labels; expected integers (-1 = noise)")
    raw_t = torch.from_numpy(raw.astype(np.int64))
    labels = tidy_labels(z, raw_t, cfg.min_cluster_size)
    before = np.bincount(raw[raw >= 0]) if (raw >= 0).any() else np.zeros(0, dtype=np.int64)
    info = {
        "clusterer": cfg.name,
        "n_noise": int((raw < 0).sum()),
        "sizes_before": sorted((int(s) for s in before[before > 0]), reverse=True),
        "sizes": torch.bincount(labels).tolist(),
    }
    if len(info["sizes"]) == 1 and len(info["sizes_before"]) > 1:
        warnings.warn(
            f"every cluster was smaller than clustering.min_cluster_size={cfg.min_cluster_size}: "
            "falling back to one sphere (plain Deep SVDD)",
            stacklevel=1,
        )
    return labels, info
