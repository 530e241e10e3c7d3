"""Detector files: what a fitted detector is saved as and loaded from.

A file holds tensors and plain values only, so it loads with ``torch.load(weights_only=True)`` and
never unpickles an object: the settings (as JSON), the net architecture and sample shape, the
pseudo-labels of the training data and their scores, the column names of a DataFrame it was fitted
on, and the scorer's whole state
(``toolkit.scoring.Scorer``: the preprocessor, the nets, the spheres, the k-NN rows, the columns'
statistics and weights, the threshold; the k-NN rows and centres in ``score.storage``'s precision, read
back as float32). It is written atomically and carries its own SHA-256 digest
(``toolkit.files``), checked on load: a damaged file is refused even when copied on its own. A file of
another format version is refused by name.

Loading rebuilds every net from the saved settings, by the pretraining method that built it in the fit
(``pretrain.method``, ``toolkit.pretext``): a method of your own must be registered before loading. A
setting or score column that a file holds under an earlier name is read under its name now
(``score.recon`` and the column "recon": ``score.pretext``, "pretext"; ``recipes_loader.from_saved``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config as C
from .files import ChecksumError, UncheckedFileError, describe, load_checked, save_checked
from .preprocessing import build_preprocessor, preprocessor_kind
from .pretext import method_of, pretraining_net
from .recipes_loader import dumps, from_saved
from .svdd import SphereHead

FORMAT = "multi-radius-deep-svdd/2"
FILE_KEYS = ("config", "arch", "input_shape", "labels", "decision_scores", "threshold", "scorer")
SAVED_COLUMNS = {"recon": "pretext"}  # score columns saved under an earlier name -> the name now


class DetectorFileError(ValueError):
    """A detector file that is not one, is damaged, or carries something other than tensors and values."""


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _scorer_state(scorer: Any) -> dict[str, torch.Tensor]:
    """The scorer's state on the CPU, the rows the training data sizes in the scorer's storage precision
    (``score.storage``: calibration rounded them to it already, so nothing is lost)."""
    state = _cpu(scorer.state_dict())
    return state | {name: state[name].to(scorer.storage) for name in scorer.sized_by_data}


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of one submodule of the scorer's state, its prefix taken off."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def save_detector(det: Any, path: str | Path) -> Path:
    """Write the fitted detector ``det`` to ``path``, with its digest inside, atomically."""
    names = getattr(det, "feature_names_in_", None)  # the column names of a DataFrame it was fitted on
    payload = {
        "format": FORMAT,
        "config": dumps(det.resolved_config()),
        "arch": det.arch_,
        "input_shape": list(det.input_shape_),
        "labels": torch.from_numpy(np.asarray(det.cluster_labels_)),
        "decision_scores": torch.from_numpy(np.asarray(det.decision_scores_, dtype=np.float32)),
        "threshold": float(det.threshold_),
        "columns": list(det.scorer_.names),
        "feature_names": None if names is None else [str(n) for n in names],
        "scorer": _scorer_state(det.scorer_),
    }
    return save_checked(path, payload)


def _read(path: Path, device: str) -> dict[str, Any]:
    if path.is_dir():
        raise DetectorFileError(f"{str(path)!r} is a folder; a run's detector file is RUN_DIR/detector_multi.pt")
    if not path.is_file():
        raise DetectorFileError(f"no detector file at {str(path)!r}")
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) == 4 and head != b"PK\x03\x04":  # save() writes torch's zip format; shorter: cut short
            raise DetectorFileError(
                f"{str(path)!r} is not a readable detector file (not a file written by save()); use a file "
                "written by save(), or refit and save the detector again"
            )
    try:
        p = load_checked(path, map_location=device)
    except UncheckedFileError as e:
        raise DetectorFileError(f"{e}; refit the detector with this version and save it again") from None
    except ChecksumError as e:
        raise DetectorFileError(f"{e}; refit the detector and save it again, or copy an intact file") from None
    except Exception as e:
        raise DetectorFileError(
            f"{str(path)!r} is not a readable detector file (damaged, truncated, or it holds objects other "
            f"than tensors and plain values, which are refused): {describe(e, 300)}; use a file written by "
            "save(), or refit and save the detector again"
        ) from None
    if not isinstance(p, dict) or not isinstance(p.get("format"), str) or "multi-radius-deep-svdd" not in p["format"]:
        raise DetectorFileError(f"{str(path)!r} is not a detector file of format {FORMAT!r}")
    if p["format"] != FORMAT:
        raise DetectorFileError(
            f"{str(path)!r} was written by another version of this package (format {p['format']!r}; this "
            f"version reads {FORMAT!r}): refit the detector with this version and save it again"
        )
    if missing := [k for k in FILE_KEYS if k not in p]:
        raise DetectorFileError(
            f"{str(path)!r} lacks {', '.join(missing)}: it was not written whole by save(); refit the "
            "detector and save it again"
        )
    return p


def load_detector(cls: type, path: str | Path, device: str = "cpu") -> Any:
    """A detector of class ``cls`` from the file at ``path``, on ``device``."""
    path = Path(path)
    p = _read(path, device)
    try:
        cfg = from_saved(json.loads(p["config"]))
        method = method_of(cfg.pretrain)
    except C.ConfigError as e:
        raise DetectorFileError(f"{str(path)!r} holds settings that cannot be used here: {e}") from None
    in_shape = tuple(p["input_shape"])
    state = p["scorer"]
    columns = [SAVED_COLUMNS.get(c, c) for c in p["columns"]]

    def pretrained() -> torch.nn.Module:
        """The pretrained net of the file's method, as fit built it; every encoder is its encoder's kind."""
        return pretraining_net(method, p["arch"], in_shape, cfg.net)

    def encoder(prefix: str) -> torch.nn.Module:
        e = pretrained().encoder
        e.load_state_dict(_part(state, prefix))
        return e.to(device)

    def head(prefix: str) -> SphereHead:
        return SphereHead(state[prefix + "centres"], state[prefix + "radii"], rule=cfg.score.rule).to(device)

    prep_state = _part(state, "prep.")
    prep = build_preprocessor(preprocessor_kind(prep_state), in_shape)
    prep.load_state_dict(prep_state)
    autoencoder = None  # the scorer's slot for the pretrained net, of any method
    if any(k.startswith("autoencoder.") for k in state):
        autoencoder = pretrained()
        autoencoder.load_state_dict(_part(state, "autoencoder."))
    single = (encoder("single_encoder."), head("single_head.")) if "single" in columns else None
    det = cls(cfg, device=device)
    det._assemble(
        cfg,
        p["arch"],
        in_shape,
        prep.to(device),
        encoder("encoder."),
        head("head."),
        p["labels"],
        recon=None if autoencoder is None else autoencoder.to(device),
        single=single,
    )
    scorer = det.scorer_
    if columns != scorer.names:
        raise DetectorFileError(
            f"{str(path)!r} holds the score columns {p['columns']}, but its settings give {scorer.names}: "
            "it was not written by save(); refit the detector and save it again"
        )
    for name in scorer.sized_by_data:  # taken as saved, scored in float32 whatever they are kept in
        setattr(scorer, name, state[name].to(device, torch.float32))
    scorer.stats = state["stats"].to(device)
    try:
        scorer.load_state_dict(state)
    except RuntimeError as e:
        raise DetectorFileError(f"{str(path)!r} does not fit its own settings: {describe(e, 300)}") from None
    det.threshold_ = float(p["threshold"])
    det.decision_scores_ = p["decision_scores"].cpu().numpy()
    det.labels_ = (det.decision_scores_ > det.threshold_).astype(np.int64)
    det.n_features_in_ = int(np.prod(in_shape))
    if p.get("feature_names") is not None:
        det.feature_names_in_ = np.asarray(p["feature_names"], dtype=object)
    return det
