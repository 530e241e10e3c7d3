"""The fitted detector, with scikit-learn's conventions (as PyOD): ``fit`` returns self, learned
attributes end in ``_``, scores are "higher = more anomalous", ``predict`` checks that it is fitted.
Saved files hold tensors and plain values only and load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import config as C
from .data import Preprocessor, as_tensor
from .engines import reconstruction_error
from .nets import build_autoencoder, build_encoder, fast_layout
from .svdd import SphereHead, combined_scores, scores

FORMAT = "multi-radius-deep-svdd/1"


class NotFittedError(RuntimeError):
    pass


class DetectorFileError(ValueError):
    """A detector file that is not one, is damaged, or carries something other than tensors and values."""


class MultiRadiusDeepSVDD:
    """Multi-Radius Deep SVDD: one hypersphere per pseudo-label cluster of the normal data.

    Parameters
    ----------
    config: the full run configuration (:class:`toolkit.config.Config`); defaults to ``Config()``.
    **overrides: settings applied on top, with the names the command line takes
        (``svdd.epochs=3`` via ``**{"svdd.epochs": 3}``, or unambiguous bare names such as ``nu=0.05``).
    device: where to train and score ("auto": CUDA when available).

    After ``fit``: ``centers_`` (K, D), ``radii_`` (K,), ``threshold_`` (a score above it is outside every
    sphere: 0 for the margin rule, 1 for the ratio rule; the (1 - nu) quantile of the training scores for
    the distance rule and combined scores), ``labels_`` (pseudo-label of each training point),
    ``n_clusters_``; with ``svdd.score_recon`` > 0 also ``recon_`` (the pretrained autoencoder) and
    ``score_stats_`` (training mean and spread of the sphere scores and reconstruction errors).
    """

    def __init__(self, config: C.Config | None = None, *, device: str = "auto", **overrides: Any) -> None:
        self.config = config
        self.device = device
        self.overrides = overrides

    # -------------------------------------------------------------- sklearn plumbing
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"config": self.config, "device": self.device, **self.overrides}

    def set_params(self, **params: Any) -> MultiRadiusDeepSVDD:
        for k, v in params.items():
            if k in ("config", "device"):
                setattr(self, k, v)
            else:
                self.overrides[k] = v
        return self

    def resolved_config(self) -> C.Config:
        return C.apply_overrides(self.config or C.Config(), self.overrides)

    # -------------------------------------------------------------- fitting
    def fit(self, X: np.ndarray | Tensor, y: Any = None) -> MultiRadiusDeepSVDD:
        """Fit on raw normal data ``X`` of shape (N, C, H, W) or (N, D); ``y`` is ignored."""
        from .pipeline import Context, fit, resolve_device

        cfg = self.resolved_config()
        fitted, info = fit(cfg, X, ctx=Context(device=resolve_device(self.device), progress=False))
        self.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
        self.fit_info_ = info
        return self

    @classmethod
    def _from_parts(
        cls,
        cfg: C.Config,
        arch: str,
        in_shape: tuple[int, ...],
        prep: Preprocessor,
        encoder: nn.Module,
        head: SphereHead,
        labels: Tensor,
        threshold: float,
        recon: nn.Module | None = None,
        score_stats: Tensor | None = None,
    ) -> MultiRadiusDeepSVDD:
        if (recon is None) != (score_stats is None) or (recon is not None) != (cfg.svdd.score_recon > 0):
            raise ValueError("svdd.score_recon > 0 needs the autoencoder and the score statistics, and only then")
        device = head.centres.device
        det = cls(cfg, device=str(device))
        det.arch_, det.input_shape_ = arch, tuple(in_shape)
        det.preprocessor_, det.encoder_, det.head_ = prep, fast_layout(encoder.eval(), device), head
        det.recon_ = None if recon is None else fast_layout(recon.eval(), device)
        det.score_stats_ = None if score_stats is None else score_stats.detach().to(device)
        det.labels_ = labels.detach().cpu().numpy()
        det.threshold_ = float(threshold)
        return det

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
        if not hasattr(self, "head_"):
            raise NotFittedError("this detector is not fitted yet: call fit(X) or MultiRadiusDeepSVDD.load(path)")

    # -------------------------------------------------------------- scoring
    @torch.inference_mode()
    def score_with_clusters(self, X: np.ndarray | Tensor, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Scores min_k(||phi(x) - c_k||^2 - R_k^2) (or the configured ``svdd.score`` rule, plus the
        standardised reconstruction error with ``svdd.score_recon``) and the cluster k attaining the
        minimum."""
        self._check_fitted()
        x = as_tensor(X)
        if tuple(x.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(x.shape[1:])}; this detector takes {self.input_shape_}")
        device = self.head_.centres.device
        self.encoder_.eval()
        out_s, out_k = [], []
        weight = self.resolved_config().svdd.score_recon
        for s in range(0, x.shape[0], batch_size):
            xb = fast_layout(self.preprocessor_(x[s : s + batch_size].to(device)), device)
            sc, k = scores(self.encoder_(xb), self.head_.centres, self.head_.radii, self.head_.rule)
            if self.recon_ is not None:
                r = reconstruction_error(self.recon_, xb)
                sc = combined_scores(sc, r, self.score_stats_, weight)
            out_s.append(sc.cpu())
            out_k.append(k.cpu())
        return torch.cat(out_s).numpy(), torch.cat(out_k).numpy()

    def decision_function(self, X: np.ndarray | Tensor) -> np.ndarray:
        """Anomaly scores, higher = more anomalous; > ``threshold_`` means outside every sphere (or, for the
        distance rule and combined scores, beyond the (1 - nu) quantile of the training scores)."""
        return self.score_with_clusters(X)[0]

    def predict(self, X: np.ndarray | Tensor) -> np.ndarray:
        """1 for anomalies (score > ``threshold_``), 0 for normal points (PyOD's convention)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write tensors and plain values only (readable with ``weights_only=True``), atomically."""
        self._check_fitted()
        payload = {
            "format": FORMAT,
            "config": C.dumps(self.resolved_config()),
            "arch": self.arch_,
            "input_shape": list(self.input_shape_),
            "threshold": self.threshold_,
            "encoder": {k: v.detach().cpu() for k, v in self.encoder_.state_dict().items()},
            "preprocessor": {k: v.detach().cpu() for k, v in self.preprocessor_.state_dict().items()},
            "centres": self.head_.centres.detach().cpu(),
            "radii": self.head_.radii.detach().cpu(),
            "labels": torch.from_numpy(np.asarray(self.labels_)),
        }
        if self.recon_ is not None:
            payload["autoencoder"] = {k: v.detach().cpu() for k, v in self.recon_.state_dict().items()}
            payload["score_stats"] = self.score_stats_.detach().cpu()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> MultiRadiusDeepSVDD:
        """Load a saved detector; never unpickles arbitrary objects."""
        path = Path(path)
        if not path.is_file():
            raise DetectorFileError(f"no detector file at {str(path)!r}")
        try:
            p = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:
            raise DetectorFileError(
                f"{str(path)!r} is not a readable detector file (damaged, truncated, or it holds objects other "
                f"than tensors and plain values, which are refused): {str(e).splitlines()[0][:300]}"
            ) from None
        if not isinstance(p, dict) or p.get("format") != FORMAT:
            raise DetectorFileError(f"{str(path)!r} is not a detector file of format {FORMAT!r}")
        cfg = C.from_dict(json.loads(p["config"]))
        in_shape = tuple(p["input_shape"])
        encoder = build_encoder(p["arch"], in_shape, cfg.net.rep_dim, cfg.net.hidden, cfg.net.leak)
        encoder.load_state_dict(p["encoder"])
        prep = Preprocessor()
        prep.load_state_dict(p["preprocessor"])
        head = SphereHead(p["centres"], p["radii"], rule=cfg.svdd.score)
        recon = None
        if "autoencoder" in p:
            recon = build_autoencoder(p["arch"], in_shape, cfg.net.rep_dim, cfg.net.hidden, cfg.net.leak)
            recon.load_state_dict(p["autoencoder"])
            recon = recon.to(device)
        return cls._from_parts(
            cfg,
            p["arch"],
            in_shape,
            prep.to(device),
            encoder.to(device),
            head.to(device),
            p["labels"],
            threshold=p["threshold"],
            recon=recon,
            score_stats=p.get("score_stats"),
        )
