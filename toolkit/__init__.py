"""Multi-Radius Deep SVDD: deep one-class anomaly detection with one hypersphere per mode of the
normal data. See docs/architecture.md for the stages and where to hook in."""

from .config import Config, ConfigError, apply_overrides, load_recipe
from .detector import MultiRadiusDeepSVDD
from .engines import SVDDEvents
from .registry import available_clusterers, build_clusterer, register_clusterer
from .stages import Hooks

__all__ = [
    "Config",
    "ConfigError",
    "Hooks",
    "MultiRadiusDeepSVDD",
    "SVDDEvents",
    "apply_overrides",
    "available_clusterers",
    "build_clusterer",
    "load_recipe",
    "register_clusterer",
]
__version__ = "0.1.0"
