"""Pseudo-labels from a registered clusterer, tidied so that each cluster can carry its own sphere.

One tidy-up step serves every plugin: noise labels (-1) go to the nearest cluster centre; clusters
smaller than the minimum size merge into the nearest cluster that reaches it (all into one, i.e. plain
Deep SVDD, when none does); labels are renumbered 0..K-1. A result that is nearly all singletons is an
error: no merge rule rescues it, a different setting must.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import ClusteringConfig, ConfigError
from .registry import RegistryError, build_clusterer, clusterer_options
from .svdd import cluster_means

log = logging.getLogger("toolkit")


class ClusteringError(RuntimeError):
    """A clustering result that cannot be used; the message names the setting to change."""


def tidy_labels(z: Tensor, labels: Tensor, min_size: int) -> Tensor:
    """Noise (-1) -> nearest centre of a big-enough cluster; clusters under ``min_size`` -> the nearest
    big-enough cluster (by centre distance), or everything into one if none is; renumber 0..K-1."""
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
    target = torch.where(big, torch.arange(k, device=z.device), big_idx[torch.cdist(means, means[big_idx]).argmin(1)])
    out = torch.empty_like(labels)
    out[kept] = target[lab]
    if not bool(kept.all()):
        out[~kept] = big_idx[torch.cdist(z[~kept], means[big_idx]).argmin(1)]
    return torch.unique(out, return_inverse=True)[1]


def singleton_fraction(labels: np.ndarray) -> float:
    """Share of points that are alone in their cluster (noise points count as alone)."""
    kept = labels[labels >= 0]
    sizes = np.bincount(kept - kept.min()) if kept.size else np.zeros(0, dtype=np.int64)
    alone = int((sizes == 1).sum()) + int((labels < 0).sum())
    return alone / max(len(labels), 1)


def _options(cfg: ClusteringConfig, seed: int, n_normal_classes: int, min_size: int) -> dict[str, Any]:
    """The plugin's options: the recipe's, with ``"n_normal_classes"`` resolved, and the run's seed and
    minimum cluster size passed to plugins that take ``random_state`` / ``min_cluster_size``."""
    opts = {k: (n_normal_classes if v == "n_normal_classes" else v) for k, v in cfg.options.items()}
    accepted = clusterer_options(cfg.name)
    if "random_state" in accepted and "random_state" not in opts:
        opts["random_state"] = seed
    if "min_cluster_size" in accepted and "min_cluster_size" not in opts:
        opts["min_cluster_size"] = min_size
    return opts


def check_clusterer(cfg: ClusteringConfig, *, seed: int = 0, n_normal_classes: int = 1) -> None:
    """Build the clusterer once, before any long work, so a bad name or option fails at once."""
    try:
        build_clusterer(cfg.name, **_options(cfg, seed, n_normal_classes, cfg.min_cluster_size))
    except (ValueError, TypeError, RegistryError) as e:
        raise ConfigError(f"clustering: {e}") from None


def pseudo_labels(
    z: Tensor, cfg: ClusteringConfig, *, seed: int = 0, n_normal_classes: int = 1
) -> tuple[Tensor, dict[str, Any]]:
    """Cluster embeddings ``z`` with ``cfg.name``; return tidied labels and a report of what happened."""
    n = z.shape[0]
    min_size = cfg.min_size(n)
    options = _options(cfg, seed, n_normal_classes, min_size)
    clusterer = build_clusterer(cfg.name, **options)
    try:
        raw = np.asarray(clusterer.fit_predict(z.detach().cpu().numpy()))
    except Exception as e:  # a value these data cannot take (more clusters than points), or a plugin's fault
        given = ", ".join(f"{k}={v!r}" for k, v in cfg.options.items())
        why = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        raise ClusteringError(
            f"clusterer {cfg.name!r} ({given or 'its defaults'}) could not cluster the {n} training embeddings: {why}"
        ) from e
    if raw.shape != (n,):
        raise ClusteringError(
            f"clusterer {cfg.name!r} returned labels of shape {raw.shape}; expected ({n},), one per point"
        )
    if not np.issubdtype(raw.dtype, np.integer):
        raise ClusteringError(f"clusterer {cfg.name!r} returned {raw.dtype} labels; expected integers (-1 = noise)")
    alone = singleton_fraction(raw)
    if alone > cfg.max_singleton_fraction and n > 1:
        raise ClusteringError(
            f"clusterer {cfg.name!r} left {alone:.0%} of the points alone in their cluster or as noise "
            f"(clustering.max_singleton_fraction={cfg.max_singleton_fraction}): the embeddings have no "
            "usable cluster structure at this setting. Ask for coarser clusters (for FINCH "
            "--clustering.options.level=-1 or 'auto'; for HDBSCAN a smaller min_samples), or use "
            "--clustering.name=single for one sphere."
        )
    labels = tidy_labels(z, torch.from_numpy(raw.astype(np.int64)), min_size)
    kept = raw[raw >= 0]
    before = np.unique(kept, return_counts=True)[1] if kept.size else np.zeros(0, dtype=np.int64)
    info: dict[str, Any] = {
        "clusterer": cfg.name,
        "min_size": min_size,
        "n_noise": int((raw < 0).sum()),
        "sizes_before": sorted((int(s) for s in before), reverse=True),
        "sizes": torch.bincount(labels).tolist(),
    }
    for attr in ("level_", "n_clusters_per_level_"):
        if hasattr(clusterer, attr):
            info[attr.rstrip("_")] = getattr(clusterer, attr)
    log.info(
        "clustering %s: %d clusters (%d noise points) -> %d after tidy-up (min size %d), sizes %s",
        cfg.name,
        len(info["sizes_before"]),
        info["n_noise"],
        len(info["sizes"]),
        min_size,
        describe_sizes(info["sizes"]),
    )
    if len(info["sizes"]) == 1 and len(info["sizes_before"]) > 1:
        warnings.warn(
            f"every cluster was smaller than the minimum size {min_size}: falling back to one sphere "
            "(plain Deep SVDD); lower clustering.min_cluster_size to keep several",
            stacklevel=1,
        )
    return labels, info


def describe_sizes(sizes: list[int], shown: int = 12) -> str:
    """Cluster sizes for a log line: all of them when few, else the largest, the median and the smallest
    (a fine partition has thousands)."""
    if len(sizes) <= shown:
        return str(sizes)
    ranked = sorted(sizes, reverse=True)
    return f"largest {ranked[:5]}, median {ranked[len(ranked) // 2]}, smallest {ranked[-1]}"


def agreement(true_classes: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """How pseudo-labels match the true normal classes: ARI, NMI and the contingency table
    (rows: true classes, columns: clusters), to see over- and under-clustering at a glance."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    classes = np.unique(true_classes)
    return {
        "ari": float(adjusted_rand_score(true_classes, labels)),
        "nmi": float(normalized_mutual_info_score(true_classes, labels)),
        "classes": classes.tolist(),
        "contingency": contingency_matrix(true_classes, labels).tolist(),
    }


def contingency_markdown(a: dict[str, Any]) -> str:
    k = len(a["contingency"][0])
    head = "| class | " + " | ".join(f"c{j}" for j in range(k)) + " |"
    rows = [
        f"| {c} | " + " | ".join(str(v) for v in row) + " |"
        for c, row in zip(a["classes"], a["contingency"], strict=True)
    ]
    return "\n".join([head, "|---" * (k + 1) + "|", *rows])
