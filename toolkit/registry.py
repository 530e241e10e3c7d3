"""The clustering registry: the one mutable global of the toolkit.

A clusterer is anything built by a factory (a class or a function) whose result has scikit-learn's
``fit_predict(X) -> integer labels`` (-1 = noise). Register one with ``@register_clusterer("name")``
in user code or a recipe, or from a package through the ``toolkit.clusterers`` entry-point group (the
built-ins in ``plugins/`` use the entry points too). Entry points are loaded lazily, by name, so a
broken plugin only matters to the runs that ask for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "toolkit.clusterers"

_REGISTRY: dict[str, Callable[..., Any]] = {}


class RegistryError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _ident(f: Callable[..., Any]) -> tuple[str, str, int]:
    """Where a factory was defined; re-running the same recipe file re-registers rather than clashes."""
    line = getattr(getattr(f, "__code__", None), "co_firstlineno", 0)
    return getattr(f, "__module__", "?"), getattr(f, "__qualname__", repr(f)), line


def register_clusterer(name: str, factory: Callable[..., Any] | None = None, *, overwrite: bool = False):
    """Register ``factory`` under ``name``; usable as ``@register_clusterer("name")`` or as a call."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError(f"clusterer {name!r} must be a class or function, got {type(f).__name__}")
        if not overwrite and name in _REGISTRY and _ident(_REGISTRY[name]) != _ident(f):
            raise RegistryError(
                f"a clusterer named {name!r} is already registered ({_ident(_REGISTRY[name])[0]}); pick another name"
            )
        _REGISTRY[name] = f
        return f

    return deco if factory is None else deco(factory)


def unregister_clusterer(name: str) -> None:
    _REGISTRY.pop(name, None)


def available_clusterers() -> list[str]:
    """Names of every clusterer: registered in this process or declared by an installed entry point."""
    return sorted(set(_REGISTRY) | set(_entry_points()))


def get_clusterer_factory(name: str) -> Callable[..., Any]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    eps = _entry_points()
    if name not in eps:
        raise RegistryError(f"unknown clusterer {name!r}; available: {', '.join(available_clusterers()) or '(none)'}")
    try:
        factory = eps[name].load()
    except Exception as e:  # a broken plugin: say which one and why
        raise RegistryError(f"clusterer {name!r} ({eps[name].value}) failed to load: {e!r}") from e
    _REGISTRY[name] = factory
    return factory


def clusterer_options(name: str) -> dict[str, Any]:
    """The keyword settings a clusterer accepts, with their defaults (``inspect.Parameter.empty`` if none)."""
    factory = get_clusterer_factory(name)
    sig = inspect.signature(factory)
    return {p.name: p.default for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def build_clusterer(name: str, **options: Any) -> Any:
    """Instantiate the clusterer ``name`` with ``options``; unknown options are refused up front."""
    factory = get_clusterer_factory(name)
    sig = inspect.signature(factory)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    if not takes_any:
        unknown = set(options) - set(clusterer_options(name))
        if unknown:
            raise RegistryError(
                f"clusterer {name!r} has no option(s) {sorted(unknown)}; accepted: {sorted(clusterer_options(name))}"
            )
    clusterer = factory(**options)
    if not callable(getattr(clusterer, "fit_predict", None)):
        raise TypeError(f"clusterer {name!r} built a {type(clusterer).__name__} without fit_predict(X)")
    return clusterer
