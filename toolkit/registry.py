"""The clustering registry: the one mutable global of the toolkit.

A clusterer is anything built by a factory (a class or a function) whose result has scikit-learn's
``fit_predict(X) -> integer labels`` (-1 = noise). Register one with ``@register_clusterer("name")``
in user code or a recipe, or from a package through the ``multi_radius_deep_svdd.clusterers``
entry-point group. The built-ins (``toolkit.plugins``, the repository's ``plugins/`` folder) are listed
in ``BUILTINS`` by name, so they work without installed metadata. Built-ins and entry points alike are
imported on first use: importing the toolkit stays light, and a broken plugin only matters to the runs
that ask for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any

ENTRY_POINT_GROUP = "multi_radius_deep_svdd.clusterers"

# name -> "module:attribute"; imported when the name is first asked for. These names are reserved.
BUILTINS: dict[str, str] = {
    "finch": "toolkit.plugins.finch:FinchClusterer",
    "kmeans": "toolkit.plugins.kmeans:KMeansClusterer",
    "hdbscan": "toolkit.plugins.hdbscan:HDBSCANClusterer",
    "single": "toolkit.plugins.single:SingleCluster",
    "random": "toolkit.plugins.random_partition:RandomPartition",
}

_REGISTRY: dict[str, Callable[..., Any]] = {}


class RegistryError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _entry_points() -> dict[str, list[EntryPoint]]:
    """Installed entry points by name; one name may be declared by several distributions."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        same = found.setdefault(ep.name, [])
        if all(ep.value != other.value for other in same):  # one package seen twice on sys.path is one
            same.append(ep)
    return found


def _declared_by(eps: list[EntryPoint]) -> str:
    return ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else 'unknown distribution'})" for ep in eps)


def _load_builtin(name: str) -> Callable[..., Any]:
    clash = _entry_points().get(name)
    if clash:  # a built-in is never replaced behind the user's back
        raise RegistryError(
            f"clusterer {name!r} is built in, and the entry point {_declared_by(clash)} in group "
            f"{ENTRY_POINT_GROUP!r} declares the same name; built-in names ({', '.join(sorted(BUILTINS))}) "
            "are reserved: rename the entry point"
        )
    module, _, attr = BUILTINS[name].partition(":")
    try:
        return getattr(import_module(module), attr)
    except Exception as e:  # e.g. a library the built-in needs is missing: say which and why
        raise RegistryError(f"clusterer {name!r} ({BUILTINS[name]}) failed to load: {e!r}") from e


def _ident(f: Callable[..., Any]) -> tuple[str, str, int]:
    """Where a factory was defined; re-running the same recipe file re-registers rather than clashes."""
    line = getattr(getattr(f, "__code__", None), "co_firstlineno", 0)
    return getattr(f, "__module__", "?"), getattr(f, "__qualname__", repr(f)), line


def register_clusterer(name: str, factory: Callable[..., Any] | None = None, *, overwrite: bool = False):
    """Register ``factory`` under ``name``; usable as ``@register_clusterer("name")`` or as a call."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError(f"clusterer {name!r} must be a class or function, got {type(f).__name__}")
        if not overwrite and name in BUILTINS:  # loaded yet or not: the same answer
            raise RegistryError(
                f"{name!r} is a built-in clusterer ({BUILTINS[name]}); pick another name, or pass overwrite=True"
            )
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
    """Names of every clusterer: built in, registered in this process, or declared by an installed entry point."""
    return sorted(set(BUILTINS) | set(_REGISTRY) | set(_entry_points()))


def get_clusterer_factory(name: str) -> Callable[..., Any]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTINS:
        factory = _load_builtin(name)
    else:
        eps = _entry_points().get(name)
        if not eps:
            raise RegistryError(f"unknown clusterer {name!r}; available: {', '.join(available_clusterers())}")
        if len(eps) > 1:
            raise RegistryError(
                f"clusterer {name!r} is declared by several entry points: {_declared_by(eps)}; uninstall or rename one"
            )
        try:
            factory = eps[0].load()
        except Exception as e:  # a broken plugin: say which one and why
            raise RegistryError(f"clusterer {name!r} ({eps[0].value}) failed to load: {e!r}") from e
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
