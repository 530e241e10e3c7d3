"""The method's math as pure tensor functions, vectorised over clusters (no Python loop over k).

Notation: ``z`` (N, D) embeddings, ``labels`` (N,) cluster indices in 0..K-1, ``centres`` (K, D),
``radii`` (K,) hypersphere radii R_k, ``dist`` (N,) squared distance of each point to its own centre.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import SCORE_RULES
from .knn import sq_distances


def own_sq_distances(z: Tensor, centres: Tensor, labels: Tensor) -> Tensor:
    """d_i = ||z_i - c_{labels_i}||^2."""
    return (z - centres[labels]).pow(2).sum(dim=1)


def all_sq_distances(z: Tensor, centres: Tensor) -> Tensor:
    """(N, K) squared distances of every point to every centre, by one matrix product
    (:func:`toolkit.knn.sq_distances`, which rounds): with thousands of centres, the exact (N, K, D)
    broadcast made the score bound by its distances rather than by the encoder. :func:`scores` uses it
    only to find the nearest sphere, and measures the distance to that sphere exactly."""
    return sq_distances(z, centres)


def cluster_means(z: Tensor, labels: Tensor, num_clusters: int) -> Tensor:
    """Mean of each cluster's rows (zeros for an empty cluster), by one index_add."""
    counts = torch.bincount(labels, minlength=num_clusters).clamp(min=1).to(z.dtype)
    sums = torch.zeros(num_clusters, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, labels, z)
    return sums / counts[:, None]


def init_centres(z: Tensor, labels: Tensor, num_clusters: int, eps: float = 0.1) -> Tensor:
    """Mean embedding of each cluster; coordinates with |c| < eps are pushed to +-eps.

    A coordinate at (near) zero would let a bias-free net reach the centre trivially by zeroing weights.
    Rows of unit length (a normalised embedding, e.g. rotation's) keep their means as they are: no weights
    make such an embedding zero, and there a coordinate is typically about 1/sqrt(D), under eps at
    D = 128 (0.09), so the push would move every centre off its cluster.
    """
    empty = torch.bincount(labels, minlength=num_clusters) == 0
    if bool(empty.any()):
        raise ValueError(f"cluster(s) {torch.nonzero(empty).flatten().tolist()} have no points")
    c = cluster_means(z, labels, num_clusters)
    if eps == 0 or unit_rows(z):
        return c
    small = c.abs() < eps
    return torch.where(small & (c < 0), torch.full_like(c, -eps), torch.where(small, torch.full_like(c, eps), c))


def unit_rows(z: Tensor, tol: float = 1e-3) -> bool:
    """Whether every row of ``z`` has unit length (to ``tol``): a normalised embedding."""
    return bool(((z.norm(dim=1) - 1).abs() <= tol).all())


def follow_centres(z: Tensor, labels: Tensor, centres: Tensor) -> Tensor:
    """New centres: the mean of each cluster's rows of ``z``; a cluster with no row keeps its centre."""
    counts = torch.bincount(labels, minlength=centres.shape[0])
    means = cluster_means(z, labels, centres.shape[0]).to(centres.dtype)
    return torch.where((counts > 0)[:, None], means, centres)


def soft_boundary_loss(dist: Tensor, labels: Tensor, radii: Tensor, nu: float) -> Tensor:
    """(1/K) * sum over clusters present in the batch of R_k^2 + 1/nu * mean_{i in k} max(0, d_i - R_k^2).

    A cluster with no point in the batch adds nothing (the report's pseudocode added NaN there).
    """
    k = radii.shape[0]
    r2 = radii.pow(2)
    counts = torch.bincount(labels, minlength=k).to(dist.dtype)
    hinge = torch.relu(dist - r2[labels])
    hinge_sum = torch.zeros(k, dtype=dist.dtype, device=dist.device).index_add_(0, labels, hinge)
    present = counts > 0
    per_cluster = r2 + hinge_sum / counts.clamp(min=1) / nu
    return torch.where(present, per_cluster, torch.zeros_like(per_cluster)).sum() / k


def one_class_loss(dist: Tensor) -> Tensor:
    """Mean squared distance to the own centre (One-Class Deep SVDD)."""
    return dist.mean()


def svdd_loss(dist: Tensor, labels: Tensor, radii: Tensor, nu: float, objective: str) -> Tensor:
    """The training objective by name: ``soft-boundary`` or ``one-class``."""
    return soft_boundary_loss(dist, labels, radii, nu) if objective == "soft-boundary" else one_class_loss(dist)


def cluster_quantiles(values: Tensor, labels: Tensor, num_clusters: int, q: float) -> Tensor:
    """Per-cluster q-quantile with linear interpolation (as ``torch.quantile``); NaN for empty clusters."""
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(labels[order], stable=True)]  # grouped by cluster, sorted within
    sorted_vals = values[order]
    counts = torch.bincount(labels, minlength=num_clusters)
    starts = torch.cumsum(counts, 0) - counts
    pos = q * (counts - 1).clamp(min=0).to(values.dtype)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = pos - lo.to(values.dtype)
    n = max(values.shape[0] - 1, 0)
    v_lo = sorted_vals[(starts + lo).clamp(max=n)] if values.numel() else torch.zeros_like(pos)
    v_hi = sorted_vals[(starts + hi).clamp(max=n)] if values.numel() else torch.zeros_like(pos)
    out = v_lo + (v_hi - v_lo) * frac
    return torch.where(counts > 0, out, torch.full_like(out, float("nan")))


def update_radii(dist: Tensor, labels: Tensor, radii: Tensor, nu: float, shared: bool = False) -> Tensor:
    """New R_k = (1 - nu) quantile of sqrt(d_i) over cluster k's points; an empty cluster keeps its radius.

    ``shared``: one radius for every sphere, the quantile over all points (each to its own centre)."""
    if shared:
        one = cluster_quantiles(dist.clamp(min=0).sqrt(), torch.zeros_like(labels), 1, 1.0 - nu)
        return torch.where(torch.isnan(one), radii, one.to(radii.dtype).expand_as(radii))
    new = cluster_quantiles(dist.clamp(min=0).sqrt(), labels, radii.shape[0], 1.0 - nu)
    return torch.where(torch.isnan(new), radii, new.to(radii.dtype))


def outside_fraction(dist: Tensor, labels: Tensor, radii: Tensor) -> Tensor:
    """Share of each cluster's points outside its sphere (d_i > R_k^2); 0 for empty clusters."""
    k = radii.shape[0]
    outside = (dist > radii.pow(2)[labels]).to(dist.dtype)
    counts = torch.bincount(labels, minlength=k).clamp(min=1).to(dist.dtype)
    return torch.zeros(k, dtype=dist.dtype, device=dist.device).index_add_(0, labels, outside) / counts


OUTSIDE = {"margin": 0.0, "ratio": 1.0}  # the score above which a point is outside every sphere


def sphere_terms(radii: Tensor, rule: str = "margin") -> tuple[Tensor, Tensor]:
    """Per sphere (K,), ``offset`` and ``unit``: a point at squared distance d_k from centre k scores
    (d_k - offset_k) / unit_k under ``rule`` (see :func:`sphere_scores`)."""
    r2 = radii.pow(2)
    zero, one = torch.zeros_like(r2), torch.ones_like(r2)
    if rule == "margin":
        return r2, one
    if rule == "ratio":
        smallest = r2.masked_fill(r2 <= 0, float("inf")).amin()
        return zero, r2.clamp(min=torch.where(torch.isinf(smallest), torch.ones_like(smallest), smallest))
    if rule == "distance":
        return zero, one
    raise ValueError(f"unknown score rule {rule!r}; accepted: {SCORE_RULES}")


def sphere_scores(d: Tensor, radii: Tensor, rule: str = "margin") -> Tensor:
    """(N, K) per-sphere scores from squared distances ``d`` (N, K):

    - ``margin``: d_k - R_k^2 (the method's rule; > 0 outside sphere k),
    - ``ratio``: d_k / R_k^2 (distance in units of the sphere's size; > 1 outside). A sphere without a
      size yet (R_k = 0, as before the warm-up ends) is measured in units of the smallest sphere that has
      one, or of 1 when none has (the ratio is then the distance): never a division by zero,
    - ``distance``: d_k (radii ignored).
    """
    offset, unit = sphere_terms(radii, rule)
    return (d - offset) / unit


def scores(z: Tensor, centres: Tensor, radii: Tensor, rule: str = "margin") -> tuple[Tensor, Tensor]:
    """Anomaly score min_k of the per-sphere score (``margin``: ||z - c_k||^2 - R_k^2, > 0 = outside
    every sphere) and the k attaining it.

    The nearest sphere is found from :func:`all_sq_distances` (one matrix product), and its score is then
    computed exactly from that sphere's centre. The product's rounding can only swap spheres whose scores
    tie to within it, so the score is the exact minimum up to that rounding.
    """
    offset, unit = sphere_terms(radii, rule)
    nearest = ((all_sq_distances(z, centres) - offset) / unit).argmin(dim=1)
    return (own_sq_distances(z, centres, nearest) - offset[nearest]) / unit[nearest], nearest


def nearest_sphere(z: Tensor, centres: Tensor, radii: Tensor, rule: str = "margin") -> Tensor:
    """Index of the sphere each point is closest to by ``rule`` (re-assignment of training points)."""
    return scores(z, centres, radii, rule)[1]


def score_stats(parts: Tensor) -> Tensor:
    """(2, C): the mean (row 0) and spread (row 1) over the training data of each score column of
    ``parts`` (N, C), what :func:`combined_scores` standardises by (spreads floored, so a constant column
    cannot divide by 0)."""
    tiny = torch.finfo(parts.dtype).eps
    return torch.stack([parts.mean(dim=0), parts.std(dim=0).clamp(min=tiny)])


def combined_scores(parts: Tensor, stats: Tensor, weights: Tensor) -> Tensor:
    """(N,) sum over columns c of weights[c] * (parts[:, c] - mean_c) / spread_c.

    The columns are scores that see different failures (the multi-sphere score; one sphere's score,
    which cannot be fooled by a digit of another class mapped into some class's sphere; the
    reconstruction error, high for a badly reconstructed digit); standardising puts them on one scale."""
    return ((parts - stats[0]) / stats[1]) @ weights.to(parts)


class SphereHead(nn.Module):
    """Holds the centres and radii as buffers, so checkpoints and saved detectors carry them."""

    centres: Tensor
    radii: Tensor

    def __init__(self, centres: Tensor, radii: Tensor | None = None, rule: str = "margin") -> None:
        super().__init__()
        if rule not in SCORE_RULES:
            raise ValueError(f"unknown score rule {rule!r}; accepted: {SCORE_RULES}")
        self.rule = rule
        self.register_buffer("centres", centres.detach().clone())
        r = torch.zeros(centres.shape[0], dtype=centres.dtype) if radii is None else radii.detach().clone()
        self.register_buffer("radii", r.to(centres.device))

    @property
    def num_clusters(self) -> int:
        return self.centres.shape[0]

    def forward(self, z: Tensor) -> Tensor:
        return scores(z, self.centres, self.radii, self.rule)[0]
