"""The fitted detector, with scikit-learn's conventions (as PyOD): ``fit`` returns self, learned
attributes end in ``_``, scores are "higher = more anomalous", ``predict`` checks that it is fitted.
Saved files hold tensors and plain values only and load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from torch import Tensor, nn

from . import config as C
from .clustering import check_clusterer
from .data import build_preprocessor, resolve_preprocess
from .inputs import check_columns, validate
from .nets import EVAL_BATCH, fast_layout, resolve_arch
from .persistence import DetectorFileError as DetectorFileError  # raised by load
from .persistence import load_detector, save_detector
from .pretext import check_pretraining
from .runner import run_stages
from .scoring import Scorer, column_names, column_weights
from .stages import FitEvents, Harness, resolve_device
from .svdd import OUTSIDE, SphereHead


class NotFittedError(SklearnNotFittedError):
    """scikit-learn's NotFittedError (a ValueError and an AttributeError), raised by an unfitted detector."""


NON_FINITE = ("raise", "anomaly")  # what scoring does with rows holding NaN or inf


class MultiRadiusDeepSVDD(OutlierMixin, BaseEstimator):
    """Multi-Radius Deep SVDD: one hypersphere per pseudo-label cluster of the normal data.

    A scikit-learn outlier detector with PyOD's conventions: ``fit`` returns self, ``decision_function``
    is "higher = more anomalous", ``predict`` gives 1 for anomalies and 0 for normal points.

    Parameters
    ----------
    config: the full run configuration (:class:`toolkit.config.Config`, e.g. ``load_recipe("mnist")``);
        defaults to ``Config()``.
    device: where to train and score ("auto": CUDA when available).
    contamination: PyOD's setting: the share of the training data to flag; ``threshold_`` is then the
        (1 - contamination) quantile of the training scores. None (the default): the detector's own
        threshold (outside every sphere, or the (1 - svdd.nu) quantile for combined scores).
    non_finite: rows with NaN or inf at scoring time: "raise" (a ValueError naming how many and which),
        or "anomaly" (scored +inf, so predicted anomalous; never called normal).
    **overrides: settings applied on top of ``config``, with the names the command line takes
        (``svdd.epochs=3`` via ``**{"svdd.epochs": 3}``, or unambiguous bare names such as ``nu=0.05``);
        ``clone``, ``get_params``/``set_params`` and GridSearchCV see them as parameters.

    After ``fit``: ``centers_`` (K, D), ``radii_`` (K,), ``threshold_`` (a score above it is anomalous:
    0 for the margin rule, 1 for the ratio rule, outside every sphere; the (1 - nu) quantile of the
    training scores for the distance rule and combined scores; with ``contamination``, its quantile),
    ``decision_scores_`` (the training data's scores), ``labels_`` (PyOD's 0/1 outlier labels of the
    training data), ``cluster_labels_`` (the pseudo-label of each training point), ``n_clusters_``,
    ``n_features_in_``; with ``svdd.score_single`` > 0 also ``single_encoder_`` and ``single_head_`` (a
    one-sphere model trained from the same pretrained encoder), with ``svdd.score_recon`` > 0 or
    ``svdd.knn_space`` naming "autoencoder" ``recon_`` (the pretrained net: the autoencoder, or the net of
    ``pretrain.method``), with ``svdd.score_knn`` > 0 ``knn_reference_`` (space -> the training points that
    the k-NN term measures against, one entry per space of ``svdd.knn_space``: "embedding" their embeddings
    by the multi-sphere encoder, "autoencoder" by the pretrained net's encoder, "input" the preprocessed
    inputs and "raw" the data as given to ``fit``, flattened); with any, ``score_stats_`` (2, C): the
    training mean and spread of each score column (multi-sphere score, then the one-sphere score, the
    reconstruction error, the k-NN distance in each space; the k-NN distance of a training point leaves the
    point itself out), added with the weights ``svdd.score_multi``, ``score_single``, ``score_recon``,
    ``score_knn``. ``autoencoder_`` is the pretrained net in any case.
    """

    def __init__(
        self,
        config: C.Config | None = None,
        *,
        device: str = "auto",
        contamination: float | None = None,
        non_finite: str = "raise",
        **overrides: Any,
    ) -> None:
        self.config = config
        self.device = device
        self.contamination = contamination
        self.non_finite = non_finite
        self._overrides = overrides

    # -------------------------------------------------------------- sklearn plumbing
    _PARAMS = ("config", "device", "contamination", "non_finite")

    @property
    def overrides(self) -> dict[str, Any]:
        return self._overrides

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._PARAMS} | self._overrides

    def set_params(self, **params: Any) -> MultiRadiusDeepSVDD:
        """Set parameters and settings (``**{"svdd.nu": 0.05}``); as scikit-learn does, they are checked by
        ``fit`` (an unknown setting is refused there, with the list of valid ones)."""
        for k, v in params.items():
            if k in self._PARAMS:
                setattr(self, k, v)
            else:
                self._overrides[k] = v
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "scorer_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.non_finite == "anomaly"
        tags.non_deterministic = True  # training on a GPU is not bitwise reproducible
        return tags

    def _check_params(self) -> None:
        if self.contamination is not None and not (
            isinstance(self.contamination, (int, float)) and 0 < self.contamination <= 0.5
        ):
            raise ValueError(f"contamination={self.contamination!r} must be None or a number in (0, 0.5]")
        if self.non_finite not in NON_FINITE:
            raise ValueError(f"non_finite={self.non_finite!r} is unknown; accepted: {NON_FINITE}")

    def _validate(self, X: Any, *, fitting: bool) -> Tensor:
        """``X`` checked and as a float32 tensor (:func:`toolkit.inputs.validate`), its column names checked
        as scikit-learn does (:func:`toolkit.inputs.check_columns`)."""
        if isinstance(X, Tensor):
            X = X.detach().cpu().numpy()
        check_columns(self, X, fitting=fitting)
        return validate(X, fitting=fitting, non_finite=self.non_finite)

    def resolved_config(self) -> C.Config:
        return C.apply_overrides(self.config or C.Config(), self.overrides)

    # -------------------------------------------------------------- fitting
    def fit(self, X: np.ndarray | Tensor, y: Any = None, *, harness: Harness | None = None) -> MultiRadiusDeepSVDD:
        """Fit on raw normal data ``X``: images (N, C, H, W), (N, H, W) or (N, H, W, C), or a table (N, D);
        ``y`` is ignored. The ``preprocess`` setting ("auto": GCN + min-max for images, per-feature
        standardisation for tables) is fitted on ``X`` and saved with the detector.

        Preprocess -> pretrain (the autoencoder, or the net of ``pretrain.method``) -> pseudo-labels from
        its encoder's embeddings -> one sphere (when the score or ``harness.baseline`` needs it) and the
        multi-sphere model, each from a copy of the pretrained encoder with the seed reset (so the order
        changes nothing) -> calibrate the score.
        ``harness`` (:class:`toolkit.stages.Harness`) is how a caller keeps stages and adds handlers (on its
        ``events``, :class:`toolkit.stages.FitEvents`): the CLI run passes its own; the default keeps and adds
        nothing. With several processes, rank 0 clusters and the labels are broadcast."""
        self._check_params()
        cfg = self.resolved_config()
        m = cfg.model  # the model's settings; the run's (data, folder, monitoring) come in through the harness
        m.svdd.check_score()
        method = check_pretraining(m)
        harness = harness or Harness(device=resolve_device(self.device))
        device = harness.device
        x_raw = self._validate(X, fitting=True)
        in_shape = tuple(x_raw.shape[1:])
        arch = resolve_arch(m.net.arch, in_shape)
        n_classes = len(cfg.data.normal_classes)  # what a clusterer option "n_normal_classes" stands for
        check_clusterer(m.clustering, seed=m.seed, n_normal_classes=n_classes)
        torch.manual_seed(m.seed)
        prep = build_preprocessor(resolve_preprocess(m.preprocess, in_shape), in_shape).fit(x_raw).to(device)
        x = fast_layout(prep(x_raw.to(device)), device)
        if not bool(torch.isfinite(x).all()):  # finite values too large for float32 once squared and summed
            flat = x_raw.reshape(len(x_raw), -1)
            culprits = ~torch.isfinite(flat.pow(2).sum(dim=1))
            culprits = culprits if bool(culprits.any()) else ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
            rows = torch.nonzero(culprits).flatten().tolist()
            raise ValueError(
                f"the training data overflow float32 when preprocessed: {len(rows)} of {len(x)} rows hold values "
                f"too large (rows {', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}; largest "
                f"magnitude {float(flat.abs().max()):.3g}); rescale them"
            )
        harness.fire(FitEvents.PREPROCESSED, preprocessor=prep)
        info: dict[str, Any] = {"n_train": int(x.shape[0]), "input_shape": list(in_shape), "arch": arch}

        pretrained, trained = run_stages(m, method, x, arch, in_shape, n_classes, harness, info)

        self.autoencoder_ = pretrained.eval()  # the pretrained net (frozen), for the score and diagnostics
        recon = copy.deepcopy(pretrained) if m.svdd.keeps_autoencoder else None
        single = trained["single"][:2] if m.svdd.score_single > 0 else None
        self._assemble(cfg, arch, in_shape, prep, *trained["multi"], recon=recon, single=single)._calibrate(x_raw)
        self.baseline_ = None
        if harness.baseline:  # one sphere on its own: never its own one-sphere term
            base_cfg = C.apply_overrides(
                cfg, {"svdd.score_multi": 1.0, "svdd.score_single": 0.0, "svdd.score_knn": 0.0}
            )
            base_recon = recon if base_cfg.svdd.keeps_autoencoder else None
            self.baseline_ = type(self)(base_cfg, device=self.device, contamination=self.contamination)
            self.baseline_._assemble(base_cfg, arch, in_shape, prep, *trained["single"], recon=base_recon)
            self.baseline_._calibrate(x_raw)
        if "single" in info and not harness.baseline:  # the sphere is the multi-sphere score's term
            info["multi"]["one_sphere"] = info.pop("single")
        self.fit_info_ = info
        self.n_features_in_ = int(np.prod(in_shape))
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then the training data's 0/1 outlier labels (``labels_``, as PyOD)."""
        return self.fit(X).labels_

    @classmethod
    def _from_parts(cls, cfg: C.Config, *parts: Any, device: str | None = None, **kw: Any) -> MultiRadiusDeepSVDD:
        """A detector from trained parts (see :meth:`_assemble`), e.g. those of a saved file."""
        return cls(cfg, device=device or "cpu")._assemble(cfg, *parts, **kw)

    def _assemble(
        self,
        cfg: C.Config,
        arch: str,
        in_shape: tuple[int, ...],
        prep: nn.Module,
        encoder: nn.Module,
        head: SphereHead,
        labels: Tensor,
        *,
        recon: nn.Module | None = None,
        single: tuple[nn.Module, SphereHead] | None = None,
    ) -> MultiRadiusDeepSVDD:
        """Set the learned attributes from trained parts; the scorer's state (k-NN rows, statistics,
        threshold) is then calibrated on the training data (:meth:`_calibrate`) or loaded."""
        device = head.centres.device
        names = column_names(cfg.svdd, single is not None)
        single = None if single is None else (fast_layout(single[0].eval(), device), single[1].to(device))
        self.scorer_ = Scorer(
            prep,
            fast_layout(encoder.eval(), device),
            head,
            names,
            column_weights(cfg.svdd, names),
            knn_k=cfg.svdd.knn_k,
            single=single,
            autoencoder=None if recon is None else fast_layout(recon.eval(), device),
        ).to(device)
        self.arch_, self.input_shape_ = arch, tuple(in_shape)
        self.cluster_labels_ = labels.detach().cpu().numpy()
        return self

    # the scorer's parts, by the names scikit-learn users and the report know them
    preprocessor_ = property(lambda self: self.scorer_.prep)
    encoder_ = property(lambda self: self.scorer_.encoder)
    head_ = property(lambda self: self.scorer_.head)
    recon_ = property(lambda self: self.scorer_.autoencoder)
    single_encoder_ = property(lambda self: self.scorer_.single_encoder)
    single_head_ = property(lambda self: self.scorer_.single_head)

    @property
    def knn_reference_(self) -> dict[str, Tensor] | None:
        """Space -> the training rows the k-NN column of that space measures against (None: no k-NN term)."""
        spaces = self.scorer_.knn_spaces
        return {s: self.scorer_.reference(s) for s in spaces} if spaces else None

    @property
    def score_stats_(self) -> Tensor | None:
        """(2, C): each score column's training mean and spread (None: the score is one column)."""
        return self.scorer_.stats if len(self.scorer_.names) > 1 else None

    def _calibrate(self, x: Tensor, batch_size: int = EVAL_BATCH) -> MultiRadiusDeepSVDD:
        """From the raw training data ``x``: the scorer's k-NN rows and column statistics, the training
        scores, and the score above which ``predict`` calls a point anomalous: "outside every sphere"
        for the margin (0) and ratio (1) rules alone; for the distance rule, which has no sphere
        boundary, and for combined scores, the (1 - nu) quantile of the training scores (a share nu of
        the normal data flagged, as a contamination rate)."""
        self.decision_scores_ = self.scorer_.calibrate(x, batch_size).float().cpu().numpy()
        if self.contamination is not None:  # PyOD's threshold: this share of the training data flagged
            self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
        elif len(self.scorer_.names) == 1 and self.head_.rule in OUTSIDE:
            self.threshold_ = OUTSIDE[self.head_.rule]
        else:
            nu = self.resolved_config().svdd.nu
            self.threshold_ = float(torch.quantile(torch.from_numpy(self.decision_scores_), 1.0 - nu))
        self.scorer_.threshold.fill_(self.threshold_)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    @property
    def centers_(self) -> np.ndarray:
        self._check_fitted()
        return self.head_.centres.detach().cpu().numpy()

    @property
    def radii_(self) -> np.ndarray:
        self._check_fitted()
        return self.head_.radii.detach().cpu().numpy()

    @property
    def n_clusters_(self) -> int:
        self._check_fitted()
        return self.head_.num_clusters

    def _check_fitted(self) -> None:
        if not hasattr(self, "scorer_"):
            raise NotFittedError("this detector is not fitted yet: call fit(X) or MultiRadiusDeepSVDD.load(path)")

    # -------------------------------------------------------------- scoring
    @torch.inference_mode()
    def score_with_clusters(
        self, X: np.ndarray | Tensor, batch_size: int = EVAL_BATCH
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores min_k(||phi(x) - c_k||^2 - R_k^2) (or the configured ``svdd.score`` rule; with
        ``svdd.score_single`` / ``svdd.score_recon``, plus the weighted, standardised one-sphere score /
        reconstruction error) and the cluster k attaining the minimum."""
        self._check_fitted()
        self._check_params()
        x = self._validate(X, fitting=False)
        if tuple(x.shape[1:]) != self.input_shape_:
            if x.dim() == 2 and len(self.input_shape_) == 1:  # scikit-learn's wording for tables
                raise ValueError(
                    f"X has {x.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.input_shape_[0]} features as input (this detector takes {self.input_shape_})"
                )
            raise ValueError(
                f"X has samples of shape {tuple(x.shape[1:])}; this detector takes {self.input_shape_} "
                f"({int(np.prod(self.input_shape_))} values per sample)"
            )
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)  # only with non_finite="anomaly"
        x = torch.where(bad.view(-1, *[1] * (x.dim() - 1)), torch.zeros_like(x), x)
        scores_, clusters = self.scorer_.score(x, batch_size)
        bad |= torch.isinf(scores_)  # non-finite input, or values whose scoring overflowed
        scores_[bad], clusters[bad] = float("inf"), -1  # could not be scored: anomalous, never normal
        return scores_.numpy(), clusters.numpy()

    def decision_function(self, X: np.ndarray | Tensor) -> np.ndarray:
        """Anomaly scores, higher = more anomalous; > ``threshold_`` means outside every sphere (or, for the
        distance rule and combined scores, beyond the (1 - nu) quantile of the training scores)."""
        return self.score_with_clusters(X)[0]

    def predict(self, X: np.ndarray | Tensor) -> np.ndarray:
        """1 for anomalies (score > ``threshold_``), 0 for normal points (PyOD's convention)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def predict_proba(self, X: np.ndarray | Tensor) -> np.ndarray:
        """(N, 2) probabilities of normal and anomalous, PyOD's "linear" way: the score scaled by the
        training scores' range, clipped to [0, 1]."""
        self._check_fitted()
        lo, hi = float(np.min(self.decision_scores_)), float(np.max(self.decision_scores_))
        p = np.clip((self.decision_function(X) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write tensors and plain values only (readable with ``weights_only=True``), atomically, with the
        file's digest (``toolkit.persistence``)."""
        self._check_fitted()
        return save_detector(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> MultiRadiusDeepSVDD:
        """Load a saved detector; never unpickles arbitrary objects."""
        return load_detector(cls, path, device)
