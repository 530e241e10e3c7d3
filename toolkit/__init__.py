"""Multi-Radius Deep SVDD: deep one-class anomaly detection with one hypersphere per mode of the
normal data. See docs/architecture.md for the stages and where to hook in.

The detector, its events and harness load torch, Ignite and scikit-learn when first used, so that
``import toolkit`` and ``python -m toolkit --help`` / ``--version`` stay light."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError
from .overrides import apply_overrides
from .recipes_loader import load_recipe
from .registry import (
    available_clusterers,
    available_pretrainers,
    build_clusterer,
    register_clusterer,
    register_pretrainer,
)

if TYPE_CHECKING:
    from .detector import MultiRadiusDeepSVDD
    from .engines import SVDDEvents
    from .stages import FitEvents, Harness, StageStore

_LAZY = {
    "MultiRadiusDeepSVDD": ".detector",
    "SVDDEvents": ".engines",
    "FitEvents": ".stages",
    "Harness": ".stages",
    "StageStore": ".stages",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Config",
    "ConfigError",
    "FitEvents",
    "Harness",
    "MultiRadiusDeepSVDD",
    "SVDDEvents",
    "StageStore",
    "apply_overrides",
    "available_clusterers",
    "available_pretrainers",
    "build_clusterer",
    "load_recipe",
    "register_clusterer",
    "register_pretrainer",
]
__version__ = "0.1.0"
