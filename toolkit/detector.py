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
from .clustering import check_clusterer, pseudo_labels
from .inputs import check_columns, check_preprocessed, check_shape, validate
from .nets import EVAL_BATCH, fast_layout, resolve_arch
from .overrides import apply_overrides, as_keywords
from .persistence import DetectorFileError as DetectorFileError  # raised by load
from .persistence import load_detector, save_detector
from .preprocessing import build_preprocessor, resolve_preprocess
from .pretext import check_pretraining, method_of
from .runner import run_stages
from .scoring import Scorer, check_spaces, column_names, column_weights, threshold, training_rows
from .stages import FitEvents, Harness, resolve_device
from .svdd import SphereHead


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
        defaults to ``Config()``. device: where to train and score ("auto": CUDA when available).
    contamination: PyOD's setting: the share of normal data to flag, in place of ``svdd.nu``
        (:func:`toolkit.scoring.threshold`).
    non_finite: rows with NaN or inf at scoring time: "raise" (a ValueError naming how many and which),
        or "anomaly" (scored +inf, so predicted anomalous; never called normal).
    **overrides: settings applied on top of ``config``, with the names the command line takes
        (``svdd.epochs=3`` via ``**{"svdd.epochs": 3}``, or unambiguous bare names such as ``nu=0.05``);
        ``clone``, ``get_params``/``set_params`` and GridSearchCV see them as parameters.

    After ``fit``: ``centers_`` (K, D), ``radii_`` (K,), ``cluster_labels_`` (the pseudo-label of each of
    the rows of ``X`` that trained, ``train_rows_``), ``n_clusters_``, ``n_features_in_``; ``scorer_`` (the
    score as one module, :class:`toolkit.scoring.Scorer`), its parts ``preprocessor_``, ``encoder_``, ``head_``,
    with ``score.single`` > 0 ``single_encoder_`` / ``single_head_`` (one sphere from the same pretrained
    encoder), ``recon_`` (the pretrained net, when the score uses it: its own score ``score.pretext``, or
    its encoder's embedding for the k-NN term), ``knn_reference_`` (space -> the
    training rows each k-NN column measures against), ``score_stats_`` (each column's training mean and
    spread, with several columns; the spheres' column, weighted 0, is not computed: 0 and the least
    spread); ``decision_scores_`` and ``labels_`` (PyOD's scores and 0/1 labels of the training data),
    ``threshold_`` (a score above it is anomalous: :func:`toolkit.scoring.threshold`; with
    ``score.calibration``, set on held-out normal data so that a share nu of new normal data is flagged),
    ``autoencoder_`` (the pretrained net) and ``fit_info_`` (each stage's report).
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
    overrides = property(lambda self: self._overrides)

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
        if self.config is not None and not isinstance(self.config, C.Config):
            given = f"load_recipe({self.config!r})" if isinstance(self.config, (str, Path)) else "load_recipe('digits')"
            raise TypeError(
                f"config must be a Config, such as a recipe's: MultiRadiusDeepSVDD({given}); got "
                f"{type(self.config).__name__} {self.config!r}"
            )
        try:
            return apply_overrides(self.config or C.Config(), self.overrides)
        except C.ConfigError as e:  # the overrides were keywords of this estimator, not command-line options
            raise C.ConfigError(as_keywords(str(e))) from None

    # -------------------------------------------------------------- fitting
    def fit(self, X: np.ndarray | Tensor, y: Any = None, *, harness: Harness | None = None) -> MultiRadiusDeepSVDD:
        """Fit on raw normal data ``X``: images (N, C, H, W), (N, H, W) or (N, H, W, C), or a table (N, D);
        ``y`` is ignored. Preprocess (fitted on ``X``, saved with the detector) -> the stages
        (``toolkit.runner``: pretrain, cluster, train the spheres) -> calibrate the score (on a held-out
        share of ``X`` with ``score.calibration``). ``harness`` (:class:`toolkit.stages.Harness`): how a
        caller keeps stages and adds handlers (on its ``events``); the CLI run passes its own."""
        self._check_params()
        cfg = self.resolved_config()
        m = cfg.model  # the model's settings; the run's (data, folder, monitoring) come in through the harness
        m.score.check()
        method = check_pretraining(m)
        harness = harness or Harness(device=resolve_device(self.device))
        device, x_all = harness.device, self._validate(X, fitting=True)
        rows, held = training_rows(m.score, len(x_all), m.seed)
        x_raw, x_cal, self.train_rows_ = x_all[rows], None if held is None else x_all[held], rows.numpy()
        in_shape = tuple(x_all.shape[1:])
        arch = resolve_arch(m.net.arch, in_shape)
        check_spaces(m.score, in_shape)
        n_classes = len(cfg.data.normal_classes)  # what a clusterer option "n_normal_classes" stands for
        check_clusterer(m.clustering, seed=m.seed, n_normal_classes=n_classes)
        torch.manual_seed(m.seed)
        prep = build_preprocessor(resolve_preprocess(m.preprocess, in_shape), in_shape).fit(x_raw).to(device)
        x = prep(x_all.to(device))  # every row is checked: finite values too large for float32 once squared
        check_preprocessed(x_all, x)
        x = fast_layout(x[rows.to(device)], device)
        harness.fire(FitEvents.PREPROCESSED, preprocessor=prep, train_rows=rows)
        info: dict[str, Any] = {"n_train": int(x.shape[0]), "input_shape": list(in_shape), "arch": arch}
        info |= {"n_calibration": len(x_cal)} if x_cal is not None else {}

        pretrained, trained = run_stages(m, method, x, arch, in_shape, n_classes, harness, info)

        self.autoencoder_ = pretrained.eval()  # the pretrained net (frozen), for the score and diagnostics
        recon = copy.deepcopy(pretrained) if m.score.keeps_autoencoder else None
        single = trained["single"][:2] if m.score.single > 0 else None

        def partition(rows: Tensor) -> Tensor:  # the centres' clusters in another space: the spheres' clusterer
            return pseudo_labels(rows, m.clustering, seed=m.seed, n_normal_classes=n_classes)[0]

        self._assemble(cfg, arch, in_shape, prep, *trained["multi"], recon=recon, single=single)._calibrate(
            x_raw, x_cal, partition=partition
        )
        self.baseline_ = None
        if harness.baseline:  # one sphere on its own: never its own one-sphere term
            alone = {"score.multi": 1.0, "score.single": 0.0, "score.knn": 0.0, "score.centres": 0.0}
            base_cfg = apply_overrides(cfg, alone)
            base_recon = recon if base_cfg.score.keeps_autoencoder else None
            self.baseline_ = type(self)(base_cfg, device=self.device, contamination=self.contamination)
            self.baseline_._assemble(base_cfg, arch, in_shape, prep, *trained["single"], recon=base_recon)
            self.baseline_._calibrate(x_raw, x_cal)
        if "single" in info and not harness.baseline:  # the sphere is the multi-sphere score's term
            info["multi"]["one_sphere"] = info.pop("single")
        self.fit_info_ = info
        self.n_features_in_ = int(np.prod(in_shape))
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X`` and return one 0/1 outlier label per row of it, as PyOD: ``labels_`` for the rows
        that trained, ``predict`` for the rows held out to set the threshold (``score.calibration``)."""
        self.fit(X)
        held = np.setdiff1d(np.arange(len(X)), self.train_rows_)
        if not len(held):
            return self.labels_
        labels = np.empty(len(X), dtype=np.int64)
        labels[self.train_rows_] = self.labels_
        if isinstance(X, Tensor):
            x_held = X[torch.from_numpy(held)]
        else:
            x_held = X.iloc[held] if hasattr(X, "iloc") else np.asarray(X)[held]  # a DataFrame keeps its names
        labels[held] = self.predict(x_held)
        return labels

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
        names = column_names(cfg.score, single is not None)
        single = None if single is None else (fast_layout(single[0].eval(), device), single[1].to(device))
        pretext = method_of(cfg.pretrain).score if "pretext" in names else None  # the method's score function
        self.scorer_ = Scorer(
            prep,
            fast_layout(encoder.eval(), device),
            head,
            names,
            column_weights(cfg.score, names),
            knn_k=cfg.score.knn_k,
            storage=getattr(torch, cfg.score.storage),
            single=single,
            autoencoder=None if recon is None else fast_layout(recon.eval(), device),
            pretext=pretext,
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
    def space_centres_(self) -> dict[str, Tensor] | None:
        """Space -> the centres the nearest-centre column of that space measures against (None: no
        ``score.centres`` term)."""
        spaces = self.scorer_.centres_spaces
        return {s: self.scorer_.centres(s) for s in spaces} if spaces else None

    score_stats_ = property(
        lambda self: self.scorer_.stats if len(self.scorer_.names) > 1 else None,
        doc="(2, C): each score column's training mean and spread (None: the score is one column)",
    )

    def _calibrate(
        self, x: Tensor, x_cal: Tensor | None = None, batch_size: int = EVAL_BATCH, partition=None
    ) -> MultiRadiusDeepSVDD:
        """From the raw training data ``x``: the scorer's k-NN rows, centres (of ``partition``'s clusters)
        and column statistics, the training scores, and ``threshold_`` (:func:`toolkit.scoring.threshold`;
        on the scores of the held-out normal data ``x_cal`` when ``score.calibration`` > 0)."""
        train = self.scorer_.calibrate(x, batch_size, partition).float().cpu()
        with torch.inference_mode():
            held_out = None if x_cal is None else self.scorer_.score(x_cal, batch_size)[0]
        nu = self.resolved_config().svdd.nu
        self.threshold_ = threshold(self.scorer_, train, held_out, nu, self.contamination)
        self.decision_scores_ = train.numpy()
        self.scorer_.threshold.fill_(self.threshold_)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    def _check_fitted(self) -> MultiRadiusDeepSVDD:
        if not hasattr(self, "scorer_"):
            raise NotFittedError("this detector is not fitted yet: call fit(X) or MultiRadiusDeepSVDD.load(path)")
        return self

    centers_ = property(lambda self: self._check_fitted().head_.centres.detach().cpu().numpy(), doc="(K, D)")
    radii_ = property(lambda self: self._check_fitted().head_.radii.detach().cpu().numpy(), doc="(K,)")
    n_clusters_ = property(lambda self: self._check_fitted().head_.num_clusters, doc="K, the number of spheres")

    # -------------------------------------------------------------- scoring
    def score_with_clusters(self, X: Any, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """The scores (the scorer's, ``toolkit.scoring``) and the nearest sphere of each row."""
        return self._scores(X, batch_size, clusters=True)

    def decision_function(self, X: np.ndarray | Tensor) -> np.ndarray:
        """Anomaly scores, higher = more anomalous; > ``threshold_`` means outside every sphere (or, for the
        distance rule and combined scores, beyond the (1 - nu) quantile of the training scores)."""
        return self._scores(X, EVAL_BATCH, clusters=False)[0]

    @torch.inference_mode()
    def _scores(self, X: Any, batch_size: int, clusters: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The scores and, with ``clusters``, the nearest sphere of each row (-1 where a row could not be
        scored); without, a score that weights the spheres 0 is computed without their encoder."""
        self._check_fitted()._check_params()
        x = self._validate(X, fitting=False)
        check_shape(x, self.input_shape_, type(self).__name__)
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)  # only with non_finite="anomaly"
        x = torch.where(bad.view(-1, *[1] * (x.dim() - 1)), torch.zeros_like(x), x)
        scores_, nearest = self.scorer_.score(x, batch_size, clusters=clusters)
        bad |= torch.isinf(scores_)  # non-finite input, or values whose scoring overflowed
        scores_[bad] = float("inf")  # could not be scored: anomalous, never normal
        if nearest is None:
            return scores_.numpy(), None
        nearest[bad] = -1
        return scores_.numpy(), nearest.numpy()

    def predict(self, X: np.ndarray | Tensor) -> np.ndarray:
        """1 for anomalies (score > ``threshold_``), 0 for normal points (PyOD's convention)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def predict_proba(self, X: np.ndarray | Tensor) -> np.ndarray:
        """(N, 2) probabilities of normal and anomalous, PyOD's "linear" way (scaled by the training scores)."""
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
