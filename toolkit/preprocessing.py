"""The preprocessing of raw samples, fitted on the normal training data and saved with the detector: the
paper's GCN + min-max for images, per-feature standardisation or min-max for tables, or none
(``preprocess``; ``auto`` picks by the samples' shape)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def global_contrast_normalization(x: Tensor) -> Tensor:
    """Per-sample: subtract the mean, divide by the mean absolute deviation (l1 scale)."""
    flat = x.flatten(1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    scale = flat.abs().mean(dim=1, keepdim=True).clamp(min=1e-12)
    return (flat / scale).view_as(x)


class Preprocessor(nn.Module):
    """GCN (l1), then min-max scaling with the min and max of the *normal training data*.

    The statistics are buffers, so the fitted detector saves them with its weights.
    """

    lo: Tensor
    hi: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(1.0))

    def fit(self, x: Tensor) -> Preprocessor:
        g = global_contrast_normalization(x.float())
        self.lo.copy_(g.min())
        self.hi.copy_(g.max())
        return self

    def forward(self, x: Tensor) -> Tensor:
        g = global_contrast_normalization(x.float())
        return (g - self.lo) / (self.hi - self.lo).clamp(min=1e-12)


class Standardizer(nn.Module):
    """Per feature: subtract the training mean, divide by the training standard deviation (constant
    features by 1). The default for tables, whose columns have their own units."""

    mean: Tensor
    scale: Tensor

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    def fit(self, x: Tensor) -> Standardizer:
        x = x.double()
        self.mean = x.mean(dim=0).float()
        std = x.std(dim=0, unbiased=False)
        self.scale = torch.where(std > 1e-12, std, torch.ones_like(std)).float()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x.float() - self.mean) / self.scale


class FeatureMinMax(Standardizer):
    """Per feature: the training minimum to 0 and maximum to 1 (constant features unscaled), kept as the
    same shift and scale as :class:`Standardizer`. Unlike it, a feature that is nearly constant in the
    training data (a border pixel) is not blown up by its tiny spread."""

    def fit(self, x: Tensor) -> FeatureMinMax:
        lo, hi = x.double().min(dim=0).values, x.double().max(dim=0).values
        self.mean = lo.float()
        self.scale = torch.where(hi - lo > 1e-12, hi - lo, torch.ones_like(lo)).float()
        return self


class NoPreprocessing(nn.Module):
    """The data as they are (as float32): for data already scaled as the user wants."""

    def fit(self, x: Tensor) -> NoPreprocessing:
        return self

    def forward(self, x: Tensor) -> Tensor:
        return x.float()


PREPROCESSORS = {
    "gcn-minmax": Preprocessor,
    "standardize": Standardizer,
    "minmax": FeatureMinMax,
    "none": NoPreprocessing,
}


def resolve_preprocess(setting: str, in_shape: tuple[int, ...]) -> str:
    """The ``preprocess`` setting's choice for samples of ``in_shape``: "auto" is the paper's GCN + min-max
    for images and per-feature standardisation for vectors (tables)."""
    if setting != "auto":
        return setting
    return "gcn-minmax" if len(in_shape) > 1 else "standardize"


def build_preprocessor(kind: str, in_shape: tuple[int, ...] = ()) -> nn.Module:
    """An unfitted preprocessor of ``kind`` (see ``PREPROCESSORS``) for samples of ``in_shape``."""
    return PREPROCESSORS[kind](in_shape) if kind in ("standardize", "minmax") else PREPROCESSORS[kind]()


def preprocessor_kind(state: dict[str, Tensor]) -> str:
    """Which preprocessor a saved state dict belongs to (by its buffers)."""
    return "gcn-minmax" if "lo" in state else "standardize" if "mean" in state else "none"
