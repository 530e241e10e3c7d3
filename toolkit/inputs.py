"""What the detector takes as input, checked: data as a float32 tensor of one row per sample, and a
DataFrame's column names by scikit-learn's convention. Each refusal is one ValueError saying what was
wrong and what is accepted."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import _check_feature_names, _get_feature_names, check_array
from torch import Tensor

from .data import image_layout
from .sources import compare_columns


def validate(X: Any, *, fitting: bool, non_finite: str = "raise") -> Tensor:
    """``X`` as a float32 tensor of 2 or more dimensions, one row per sample; a clear ValueError for
    empty, 1-D, too-few-sample, non-numeric or (when fitting, or with ``non_finite="raise"``)
    non-finite input. Grey (N, H, W) and channels-last (N, H, W, C) images come out as (N, C, H, W)."""
    try:
        x = check_array(
            X,
            dtype=np.float32,
            allow_nd=True,
            ensure_all_finite=False,
            ensure_min_samples=2 if fitting else 1,
            input_name="X",
        )
    except (TypeError, ValueError) as e:
        if isinstance(e, TypeError) or "convert" in str(e):  # strings, objects
            raise ValueError(f"X must be numeric (a number array, one row per sample): {e}") from None
        if "Expected 2D array" in str(e):  # scikit-learn's advice to reshape names arrays, not samples
            raise ValueError(
                f"X has shape {np.shape(X)}: one row per sample is needed, a table (N, D) or images (N, C, H, W), "
                "(N, H, W) or (N, H, W, C). Reshape your data: x.reshape(-1, 1) for a single feature, "
                "x.reshape(1, -1) for a single sample"
            ) from None
        raise
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any() and (fitting or non_finite == "raise"):
        rows = np.flatnonzero(bad)
        first = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        what = "training data" if fitting else "X"
        raise ValueError(
            f"the {what} hold NaN or infinite values in {len(rows)} of {len(x)} rows (rows {first}); clean "
            "them" + ("" if fitting else ", or set non_finite='anomaly' to score such rows as anomalies")
        )
    x = np.ascontiguousarray(image_layout(x))
    return torch.from_numpy(x if x.flags.writeable else x.copy())  # a read-only (memory-mapped) array


def check_columns(det: Any, X: Any, *, fitting: bool) -> None:
    """scikit-learn's convention for column names: fitting on a DataFrame whose column names are all
    strings records them as ``det.feature_names_in_`` (fitting on anything else removes it); scoring a
    DataFrame whose names differ from them, in name or in order, is one ValueError, since its values
    would otherwise be scored as the wrong features. Names at fit and none at scoring, or the reverse,
    is scikit-learn's warning."""
    if fitting:
        _check_feature_names(det, X, reset=True)
        return
    names, fitted = _get_feature_names(X), getattr(det, "feature_names_in_", None)
    if names is not None and fitted is not None:
        compare_columns(list(names), list(fitted), "X", "X[detector.feature_names_in_]")
    _check_feature_names(det, X, reset=False)


def check_shape(x: Tensor, input_shape: tuple[int, ...], estimator: str) -> None:
    """Refuse samples of another shape than the detector was fitted on (scikit-learn's wording for tables)."""
    if tuple(x.shape[1:]) == tuple(input_shape):
        return
    if x.dim() == 2 and len(input_shape) == 1:
        raise ValueError(
            f"X has {x.shape[1]} features, but {estimator} is expecting {input_shape[0]} features as input "
            f"(this detector takes {tuple(input_shape)})"
        )
    raise ValueError(
        f"X has samples of shape {tuple(x.shape[1:])}; this detector takes {tuple(input_shape)} "
        f"({int(np.prod(input_shape))} values per sample)"
    )


def check_preprocessed(x_raw: Tensor, x: Tensor) -> None:
    """Refuse training data whose finite values overflow float32 once preprocessed (squared and summed),
    naming the rows."""
    if bool(torch.isfinite(x).all()):
        return
    flat = x_raw.reshape(len(x_raw), -1)
    culprits = ~torch.isfinite(flat.pow(2).sum(dim=1))
    culprits = culprits if bool(culprits.any()) else ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
    rows = torch.nonzero(culprits).flatten().tolist()
    raise ValueError(
        f"the training data overflow float32 when preprocessed: {len(rows)} of {len(x)} rows hold values "
        f"too large (rows {', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}; largest "
        f"magnitude {float(flat.abs().max()):.3g}); rescale them"
    )
