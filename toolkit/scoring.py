"""The detector's whole scoring path as one ``nn.Module``: raw samples -> the preprocessing -> every net
the score needs -> one column per score term -> the standardised, weighted sum.

``decision_function``, the ``score`` verb, ``export`` and the benchmarks all score through a
:class:`Scorer`; a new score term is one more column here and nowhere else.

The columns, in this order (each present only when its weight is above 0, the spheres' always: weighted
0, their column is computed only where the nearest sphere is asked for, and is 0 otherwise):

- ``multi``: the multi-sphere score, min over the spheres by ``score.rule`` (``toolkit.svdd``);
- ``single``: the score of one sphere trained from the same autoencoder;
- ``pretext``: the pretrained network's own score, by its pretraining method's ``score``
  (``toolkit.pretext``: the autoencoder's reconstruction error, rotation's cross-entropy over the four
  rotations);
- ``knn:SPACE``: the mean distance to the ``knn_k`` nearest training points in SPACE ("embedding": the
  multi-sphere encoder's, "autoencoder": the pretrained net's encoder's, whichever ``pretrain.method``
  built it, "input": the preprocessed input, "raw": the data as given, "pooled": images as given, each
  channel averaged over a ``POOLED_GRID`` x ``POOLED_GRID`` grid of patches), one column per space;
- ``centres:SPACE``: the distance to the nearest mean of the clusterer's partition of the training
  points in SPACE (``toolkit.centres``: spheres in that space, not trained), one column per space.

With one column the score is that column; with several, each column is standardised by its mean and
spread over the training data (:meth:`Scorer.calibrate`; a training point's k-NN distance leaves the
point itself out, and so does its own cluster's centre) and the columns are added with their weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .centres import nearest_centre, nearest_centre_loo
from .knn import knn_block, knn_distance
from .nets import fast_layout
from .settings import ConfigError
from .svdd import OUTSIDE, SphereHead, cluster_means, combined_scores, score_stats, scores

log = logging.getLogger("toolkit")


def calibration_rows(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor | None]:
    """The indices of the ``n`` rows to train on and, with ``fraction`` > 0, of a seeded random share of
    them (at least one row) held out to set the threshold on (None without); each in increasing order."""
    if fraction <= 0:
        return torch.arange(n), None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 104729))
    held = max(1, int(round(fraction * n)))
    return order[held:].sort().values, order[:held].sort().values


MIN_TRAINING_ROWS = 3  # FINCH's least; batch normalisation needs two rows of a batch


def training_rows(score: Any, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
    """:func:`calibration_rows` for the settings ``score`` (a ``ScoreConfig``), refused with a
    ``ConfigError`` (before any training) when too few rows are left to train: fewer than
    ``MIN_TRAINING_ROWS``, or than a k-NN term's ``knn_k`` neighbours besides each row itself."""
    rows, held = calibration_rows(n, score.calibration, seed)
    need = max(MIN_TRAINING_ROWS, score.knn_k + 1 if score.knn > 0 else 0)
    if len(rows) >= need:
        return rows, held
    given = (
        "" if held is None else f"{n} rows given, {n - len(rows)} held out by score.calibration={score.calibration:g}, "
    )
    why = (
        f"score.knn_k={score.knn_k} neighbours besides each training row itself: lower score.knn_k"
        if need > MIN_TRAINING_ROWS
        else "the clustering and the nets' batch normalisation need them: give more rows"
    )
    left = f"{len(rows)} row{'' if len(rows) == 1 else 's'} left to train"
    raise ConfigError(f"{given}{left}; these settings need at least {need} ({why})")


def conformal_threshold(scores: Tensor, rate: float) -> float:
    """The score above which a share ``rate`` of new points from the distribution of ``scores`` (held-out
    normal data) lies on average: a new point is equally likely to fall in each of the n + 1 gaps between
    the n sorted scores (split conformal prediction), so the threshold sits at position (n + 1)(1 - rate)
    among them, interpolated between its two neighbours. With too few scores for that rate
    (n < 1/rate - 1), the largest, which flags 1/(n + 1) of them on average: the nearest n points give."""
    n = len(scores)
    position = min(float(n), (n + 1) * (1.0 - rate))  # 1-based, fractional
    ranked = scores.double().sort().values
    lo = max(1, math.floor(position))
    hi = min(n, lo + 1)
    return float(ranked[lo - 1] + (position - lo) * (ranked[hi - 1] - ranked[lo - 1]))


def threshold(
    scorer: Scorer, train_scores: Tensor, held_out: Tensor | None, nu: float, contamination: float | None
) -> float:
    """The score above which a point is anomalous. With held-out normal data (``score.calibration``):
    the conformal (1 - nu) quantile of their scores ``held_out`` (or of ``contamination``), so that about
    that share of new normal data is flagged. Without: PyOD's (1 - contamination) quantile of the training
    scores; else "outside every sphere" for the margin (0) and ratio (1) rules alone; else the (1 - nu)
    quantile of the training scores."""
    if held_out is not None:
        return conformal_threshold(held_out, nu if contamination is None else contamination)
    if contamination is not None:
        return float(np.quantile(train_scores.numpy(), 1.0 - contamination))
    if len(scorer.names) == 1 and scorer.head.rule in OUTSIDE:
        return OUTSIDE[scorer.head.rule]
    return float(torch.quantile(train_scores, 1.0 - nu))


POOLED_GRID = 4  # the "pooled" space: each channel of an image averaged over 4 x 4 patches (48 values for RGB)


def pooled(x: Tensor) -> Tensor:
    """(B, C * POOLED_GRID**2) images ``x`` (B, C, H, W) as given, each channel averaged over a grid of
    ``POOLED_GRID`` x ``POOLED_GRID`` patches: where the colours lie, not the shapes (a thumbnail)."""
    return F.adaptive_avg_pool2d(x.float(), POOLED_GRID).flatten(1)


def check_spaces(score, in_shape: tuple[int, ...]) -> None:
    """Refuse, with a ``ConfigError`` before any training, a k-NN or centres term in the "pooled" space of
    samples that are not images (C, H, W)."""
    pooled_terms = [n.split(":")[0] for n in column_names(score, single=False) if n.endswith(":pooled")]
    if pooled_terms and len(in_shape) != 3:
        raise ConfigError(
            f"score.{pooled_terms[0]}_space=pooled averages images (C, H, W) over a grid of patches; these samples "
            f"have shape {tuple(in_shape)}: use raw or input for rows of features"
        )


def column_names(score, single: bool) -> list[str]:
    """The score's columns for the settings ``score`` (``single``: a one-sphere model is kept)."""
    names = ["multi"] + ["single"] * single + ["pretext"] * (score.pretext > 0)
    names += [f"knn:{s}" for s in score.knn_spaces] if score.knn > 0 else []
    return names + ([f"centres:{s}" for s in score.centres_spaces] if score.centres > 0 else [])


def column_weights(score, names: Iterable[str]) -> Tensor:
    """Each column's weight: ``score.multi``, ``score.single``, ``score.pretext``, ``score.knn``,
    ``score.centres``."""
    by = {"multi": score.multi, "single": score.single, "pretext": score.pretext, "knn": score.knn}
    return torch.tensor([by.get(n, score.centres) for n in (n.split(":")[0] for n in names)], dtype=torch.float32)


class Scorer(nn.Module):
    """Raw samples (B, *input_shape) -> anomaly scores (B,), higher = more anomalous.

    Holds the fitted preprocessor, the multi-sphere encoder and head, and what the other columns need
    (the one-sphere encoder and head, the pretrained net, the k-NN reference rows, the centres), the columns'
    training statistics, weights and the threshold, all as submodules and buffers: ``state_dict`` is the
    whole scoring state, and ``torch.jit.trace`` records the whole path (no loops that depend on the batch).
    The ``autoencoder`` slot holds whichever net the pretraining method built: the "pretext" column scores
    by ``pretext(net, xb)``, the method's ``score`` (a function, not state: rebuilt from the settings with
    the method, ``toolkit.pretext.method_of``), the "knn:autoencoder" column by the net's ``encoder``.
    """

    def __init__(
        self,
        prep: nn.Module,
        encoder: nn.Module,
        head: SphereHead,
        names: list[str],
        weights: Tensor,
        *,
        knn_k: int = 5,
        storage: torch.dtype = torch.float32,
        single: tuple[nn.Module, SphereHead] | None = None,
        autoencoder: nn.Module | None = None,
        pretext: Callable[[nn.Module, Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if ("single" in names) != (single is not None):
            raise ValueError("the one-sphere column needs the one-sphere encoder and head, and only it")
        needs_ae = "pretext" in names or "knn:autoencoder" in names or "centres:autoencoder" in names
        if needs_ae != (autoencoder is not None):
            raise ValueError("the pretext and autoencoder-space columns need the pretrained net, and only they")
        if ("pretext" in names) != (pretext is not None):
            raise ValueError("the pretext column needs the pretraining method's score function, and only it")
        self.prep, self.encoder, self.head = prep, encoder, head
        self.single_encoder, self.single_head = single if single is not None else (None, None)
        self.autoencoder = autoencoder
        self.pretext = pretext
        self.names = list(names)
        self.knn_k = knn_k
        self.storage = storage  # the rows sized by the data are rounded to it when calibrated, saved in it
        self.knn_spaces = [n.split(":", 1)[1] for n in names if n.startswith("knn:")]
        self.centres_spaces = [n.split(":", 1)[1] for n in names if n.startswith("centres:")]
        # whether the score itself needs the multi-sphere encoder: the spheres weighted above 0, or a column
        # measured in its embedding (otherwise only the nearest sphere does)
        self.score_needs_encoder = bool(weights[0] != 0) or "embedding" in (*self.knn_spaces, *self.centres_spaces)
        for name in self.sized_by_data:  # filled by calibrate (or a saved state)
            self.register_buffer(name, torch.zeros(0))
        self.register_buffer("weights", weights.float())
        self.register_buffer("stats", torch.zeros(2, len(names)))  # training mean (row 0), spread (row 1)
        self.register_buffer("threshold", torch.tensor(0.0))

    @property
    def sized_by_data(self) -> list[str]:
        """The buffers whose size the training data sets: each k-NN column's rows, each space's centres."""
        return [f"knn_{s}" for s in self.knn_spaces] + [f"centres_{s}" for s in self.centres_spaces]

    def as_kept(self, rows: Tensor) -> Tensor:
        """``rows`` rounded to the storage precision they are saved in, as float32: what the fitted and
        the loaded scorer both measure against."""
        return rows.to(self.storage).float()

    # ----------------------------------------------------------------------------------- columns
    def reference(self, space: str) -> Tensor:
        """The training rows the k-NN column of ``space`` measures against."""
        return getattr(self, f"knn_{space}")

    def centres(self, space: str) -> Tensor:
        """The centres the nearest-centre column of ``space`` measures against."""
        return getattr(self, f"centres_{space}")

    def rows(self, space: str, x: Tensor, xb: Tensor, z: Tensor) -> Tensor:
        """What the k-NN or nearest-centre column of ``space`` compares, for raw samples ``x``, preprocessed
        ``xb`` and multi-sphere embeddings ``z``."""
        if space == "raw":
            return x.reshape(x.shape[0], -1).float()
        if space == "pooled":
            return pooled(x)
        if space == "input":
            return xb.reshape(xb.shape[0], -1)
        if space == "autoencoder":
            return self.autoencoder.encoder(xb)
        return z

    def columns(self, x: Tensor, references: bool = True, nearest: bool = True) -> tuple[Tensor, Tensor | None]:
        """(B, C) score columns of raw samples ``x`` and the nearest sphere (B,) of the multi-sphere
        score; ``references=False`` leaves the k-NN and nearest-centre columns out (calibration adds
        their leave-one-out form). ``nearest=False``: the nearest sphere is not wanted (None), and a
        score that weights the spheres 0 leaves their column at 0 without running their encoder, as it
        adds nothing to the score."""
        xb = fast_layout(self.prep(x), x.device)
        z = self.encoder(xb) if nearest or self.score_needs_encoder else None
        if z is None:
            s, near = xb.new_zeros(xb.shape[0]), None
        else:
            s, near = scores(z, self.head.centres, self.head.radii, self.head.rule)
        cols = [s]
        if self.single_head is not None:
            cols.append(self.single_head(self.single_encoder(xb)))
        if self.pretext is not None:
            cols.append(self.pretext(self.autoencoder, xb))
        if references:
            for space in self.knn_spaces:
                cols.append(knn_block(self.rows(space, x, xb, z), self.reference(space), self.knn_k))
            for space in self.centres_spaces:
                cols.append(nearest_centre(self.rows(space, x, xb, z), self.centres(space)))
        return torch.stack(cols, dim=1), near if nearest else None

    def combine(self, cols: Tensor) -> Tensor:
        """The score from its columns: the one column itself, or the standardised, weighted sum. A score
        that is not a number (values so large that float32 overflows on the way) is +inf: anomalous,
        never called normal."""
        # the number of columns from the names (a Python list), so that a traced export records no shape test
        s = cols[:, 0] if len(self.names) == 1 else combined_scores(cols, self.stats, self.weights)
        return torch.where(torch.isnan(s), torch.full_like(s, float("inf")), s)

    def forward(self, x: Tensor) -> Tensor:
        return self.combine(self.columns(x, nearest=False)[0])

    # ----------------------------------------------------------------------------------- calibration
    def nets(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.single_encoder, self.autoencoder) if m is not None]

    @torch.inference_mode()
    def calibrate(self, x: Tensor, batch_size: int, partition: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """From the raw training data ``x`` (on any device; moved batch by batch): the k-NN reference
        rows, the centres (the means of ``partition``'s labels of the training rows of each space: the
        detector passes its clusterer), the columns' training statistics; returns the training data's
        scores (N,), each k-NN and nearest-centre column of a training point leaving the point itself out."""
        if self.centres_spaces and partition is None:
            raise ValueError("the nearest-centre columns need a partition of the training rows to take means of")
        self.eval()
        device = self.head.centres.device
        spaces = list(dict.fromkeys([*self.knn_spaces, *self.centres_spaces]))
        cols, rows = [], {s: [] for s in spaces}
        for xr in x.split(batch_size):
            xr = xr.to(device)
            cols.append(self.columns(xr, references=False, nearest=False)[0])
            if spaces:  # the rows each k-NN or centres column measures against (one more pass, only then)
                xb = fast_layout(self.prep(xr), device)
                z = self.encoder(xb) if "embedding" in spaces else None
                for space in spaces:
                    rows[space].append(self.rows(space, xr, xb, z))
        parts = torch.cat(cols)
        rows = {s: self.as_kept(torch.cat(r)) for s, r in rows.items()}
        for space in self.knn_spaces:
            ref = rows[space]
            log.info(
                "score: the %d-NN distance of each of %d training rows to the others (%s)", self.knn_k, len(ref), space
            )
            setattr(self, f"knn_{space}", ref)
            loo = knn_distance(ref, ref, self.knn_k, exclude_self=True)
            parts = torch.cat([parts, loo[:, None].to(parts.dtype)], dim=1)
        for space in self.centres_spaces:
            ref = rows[space]
            log.info(
                "score: the centres of the nearest-centre term, a partition of %d training rows (%s)", len(ref), space
            )
            labels = partition(ref).to(device).long()
            centres = self.as_kept(cluster_means(ref, labels, int(labels.max()) + 1))
            setattr(self, f"centres_{space}", centres)
            loo = nearest_centre_loo(ref, labels, centres)
            parts = torch.cat([parts, loo[:, None].to(parts.dtype)], dim=1)
        self.stats = score_stats(parts) if parts.shape[1] > 1 else torch.zeros(2, 1, device=device)
        return self.combine(parts)

    @torch.inference_mode()
    def score_column(self, name: str, x: Tensor, batch_size: int = 256) -> Tensor:
        """One column of the score for raw samples ``x`` (on the CPU), e.g. ``"multi"``: the spheres'
        score alone, before it is standardised and weighted."""
        if name not in self.names:
            raise ValueError(f"the score has no column {name!r}; its columns: {self.names}")
        self.eval()
        device = self.head.centres.device
        j = self.names.index(name)
        return torch.cat([self.columns(xr.to(device))[0][:, j].cpu() for xr in x.split(batch_size)])

    @torch.inference_mode()
    def score(self, x: Tensor, batch_size: int, clusters: bool = True) -> tuple[Tensor, Tensor | None]:
        """Scores and nearest spheres of raw samples ``x``, ``batch_size`` rows at a time (on the CPU);
        ``clusters=False``: the scores alone (nearest spheres None), which a score that weights the spheres
        0 computes without their encoder."""
        self.eval()
        device = self.head.centres.device
        out_s, out_k = [], []
        for xr in x.split(batch_size):
            cols, nearest = self.columns(xr.to(device), nearest=clusters)
            out_s.append(self.combine(cols).cpu())
            if clusters:
                out_k.append(nearest.cpu())
        if not out_s:
            return torch.zeros(0), torch.zeros(0, dtype=torch.long) if clusters else None
        return torch.cat(out_s), torch.cat(out_k) if clusters else None
