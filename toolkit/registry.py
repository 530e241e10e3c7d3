"""The plugin registries, the one mutable global state of the toolkit: clusterers and pretraining methods.

Both are found the same way, by name. A plugin is built by a factory (a class or a function) whose keyword
arguments are its settings. Register one with ``@register_clusterer("name")`` / ``@register_pretrainer("name")``
in user code or a recipe, or from a package through the ``multi_radius_deep_svdd.clusterers`` /
``multi_radius_deep_svdd.pretrainers`` entry-point group. The built-ins (clusterers in ``toolkit.plugins``,
the repository's ``plugins/`` folder; pretraining methods in ``toolkit.pretext``) are listed by name, so
they work without installed metadata, and their names are reserved. Built-ins and entry points alike are
imported on first use: importing the toolkit stays light, and a broken plugin only matters to the runs
that ask for it.

A clusterer is whatever has scikit-learn's ``fit_predict(X) -> integer labels`` (-1 = noise); a pretraining
method has ``build`` and ``loss`` (the contract is in ``toolkit/pretext.py``).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterator
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any


class RegistryError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _declared_by(eps: list[EntryPoint]) -> str:
    return ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else 'unknown distribution'})" for ep in eps)


def _ident(f: Callable[..., Any]) -> tuple[str, str, int]:
    """Where a factory was defined; re-running the same recipe file re-registers rather than clashes."""
    line = getattr(getattr(f, "__code__", None), "co_firstlineno", 0)
    return getattr(f, "__module__", "?"), getattr(f, "__qualname__", repr(f)), line


class Registry:
    """Factories of one kind of plugin, by name: the built-ins (``builtins``: name -> "module:attribute",
    imported when first asked for), those registered in this process, and the installed entry points of
    ``group``. ``contract`` names the methods every built object must have."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str], contract: tuple[str, ...]) -> None:
        self.kind, self.group, self.builtins, self.contract = kind, group, builtins, contract
        self.registered: dict[str, Callable[..., Any]] = {}

    def entry_points(self) -> dict[str, list[EntryPoint]]:
        """Installed entry points by name; one name may be declared by several distributions."""
        found: dict[str, list[EntryPoint]] = {}
        for ep in entry_points(group=self.group):
            same = found.setdefault(ep.name, [])
            if all(ep.value != other.value for other in same):  # one package seen twice on sys.path is one
                same.append(ep)
        return found

    def _load_builtin(self, name: str) -> Callable[..., Any]:
        clash = self.entry_points().get(name)
        if clash:  # a built-in is never replaced behind the user's back
            raise RegistryError(
                f"{self.kind} {name!r} is built in, and the entry point {_declared_by(clash)} in group "
                f"{self.group!r} declares the same name; built-in names ({', '.join(sorted(self.builtins))}) "
                "are reserved: rename the entry point"
            )
        module, _, attr = self.builtins[name].partition(":")
        try:
            return getattr(import_module(module), attr)
        except Exception as e:  # e.g. a library the built-in needs is missing: say which and why
            raise RegistryError(f"{self.kind} {name!r} ({self.builtins[name]}) failed to load: {e!r}") from e

    def register(self, name: str, factory: Callable[..., Any] | None = None, *, overwrite: bool = False):
        """Register ``factory`` under ``name``; usable as a decorator (``factory`` left out) or as a call."""

        def deco(f: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(f):
                raise TypeError(f"{self.kind} {name!r} must be a class or function, got {type(f).__name__}")
            if not overwrite and name in self.builtins:  # loaded yet or not: the same answer
                raise RegistryError(
                    f"{name!r} is a built-in {self.kind} ({self.builtins[name]}); pick another name, or pass "
                    "overwrite=True"
                )
            if not overwrite and name in self.registered and _ident(self.registered[name]) != _ident(f):
                raise RegistryError(
                    f"a {self.kind} named {name!r} is already registered ({_ident(self.registered[name])[0]}); "
                    "pick another name"
                )
            self.registered[name] = f
            return f

        return deco if factory is None else deco(factory)

    def unregister(self, name: str) -> None:
        self.registered.pop(name, None)

    def available(self) -> list[str]:
        """Every name: built in, registered in this process, or declared by an installed entry point."""
        return sorted(set(self.builtins) | set(self.registered) | set(self.entry_points()))

    def known(self, name: str) -> bool:
        """Whether ``name`` is available, without importing anything (entry points are read only for a
        name that is neither built in nor registered)."""
        return name in self.builtins or name in self.registered or name in self.entry_points()

    def near(self, name: str) -> str:
        """`` (did you mean 'x'?)`` with the available names nearest to ``name``; empty if none is near."""
        near = difflib.get_close_matches(str(name), self.available(), n=2, cutoff=0.6)
        return f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""

    def unknown(self, name: str) -> str:
        """The message for a name that is not available: the nearest names, then every name."""
        return f"unknown {self.kind} {name!r}{self.near(name)}; available: {', '.join(self.available())}"

    def factory(self, name: str) -> Callable[..., Any]:
        if name in self.registered:
            return self.registered[name]
        if name in self.builtins:
            factory = self._load_builtin(name)
        else:
            eps = self.entry_points().get(name)
            if not eps:
                raise RegistryError(self.unknown(name))
            if len(eps) > 1:
                raise RegistryError(
                    f"{self.kind} {name!r} is declared by several entry points: {_declared_by(eps)}; uninstall or "
                    "rename one"
                )
            try:
                factory = eps[0].load()
            except Exception as e:  # a broken plugin: say which one and why
                raise RegistryError(f"{self.kind} {name!r} ({eps[0].value}) failed to load: {e!r}") from e
        self.registered[name] = factory
        return factory

    def options(self, name: str) -> dict[str, Any]:
        """The keyword settings a plugin takes, with their defaults (``inspect.Parameter.empty`` if none)."""
        params = inspect.signature(self.factory(name)).parameters.values()
        return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def listing(self) -> Iterator[str]:
        """One line per plugin (``python -m toolkit plugins``): its name and settings with their defaults, or
        why it is unavailable."""
        for name in self.available():
            try:
                opts = self.options(name)
            except RegistryError as e:
                yield f"{name}: unavailable ({e})"
                continue
            shown = ", ".join(f"{k}" if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in opts.items())
            yield f"{name}({shown})"

    def _check_types(self, name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
        """Refuse an option whose value is not of the plain type (int, float, bool, str) the factory's
        signature declares for it, before anything is built: a factory may only store its options, and
        the wrong type would then fail once training is done. Other annotations are the plugin's to check."""
        try:
            hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
        except Exception:  # annotations that do not resolve: nothing to check them by
            return
        for key, value in options.items():
            want = hints.get(key)
            ok = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}.get(want)
            if ok and (not isinstance(value, ok) or (want is not bool and isinstance(value, bool))):
                raise TypeError(
                    f"{self.kind} {name!r}: option {key}={value!r} has the wrong type; {want.__name__} expected"
                )

    def build(self, name: str, **options: Any) -> Any:
        """The plugin ``name`` built with ``options``; unknown options are refused up front, and so is a
        result without the methods of the contract."""
        factory = self.factory(name)
        sig = inspect.signature(factory)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            unknown = set(options) - set(self.options(name))
            if unknown:
                raise RegistryError(
                    f"{self.kind} {name!r} has no option(s) {sorted(unknown)}; accepted: {sorted(self.options(name))}"
                )
        self._check_types(name, factory, options)
        plugin = factory(**options)
        if missing := [m for m in self.contract if not callable(getattr(plugin, m, None))]:
            wants = ", ".join(f"{m}()" for m in missing)
            raise TypeError(f"{self.kind} {name!r} built a {type(plugin).__name__} without {wants}")
        return plugin


# ----------------------------------------------------------------------------------------- clusterers

ENTRY_POINT_GROUP = "multi_radius_deep_svdd.clusterers"

# name -> "module:attribute"; imported when the name is first asked for. These names are reserved.
BUILTINS: dict[str, str] = {
    "finch": "toolkit.plugins.finch:FinchClusterer",
    "kmeans": "toolkit.plugins.kmeans:KMeansClusterer",
    "hdbscan": "toolkit.plugins.hdbscan:HDBSCANClusterer",
    "single": "toolkit.plugins.single:SingleCluster",
    "random": "toolkit.plugins.random_partition:RandomPartition",
}

CLUSTERERS = Registry("clusterer", ENTRY_POINT_GROUP, BUILTINS, ("fit_predict",))
_REGISTRY = CLUSTERERS.registered


def register_clusterer(name: str, factory: Callable[..., Any] | None = None, *, overwrite: bool = False):
    """Register ``factory`` under ``name``; usable as ``@register_clusterer("name")`` or as a call."""
    return CLUSTERERS.register(name, factory, overwrite=overwrite)


def unregister_clusterer(name: str) -> None:
    CLUSTERERS.unregister(name)


def available_clusterers() -> list[str]:
    """Names of every clusterer: built in, registered in this process, or declared by an installed entry point."""
    return CLUSTERERS.available()


def get_clusterer_factory(name: str) -> Callable[..., Any]:
    return CLUSTERERS.factory(name)


def clusterer_options(name: str) -> dict[str, Any]:
    """The keyword settings a clusterer accepts, with their defaults (``inspect.Parameter.empty`` if none)."""
    return CLUSTERERS.options(name)


def build_clusterer(name: str, **options: Any) -> Any:
    """Instantiate the clusterer ``name`` with ``options``; unknown options are refused up front."""
    return CLUSTERERS.build(name, **options)


# ------------------------------------------------------------------------------------ pretraining methods

PRETRAINER_GROUP = "multi_radius_deep_svdd.pretrainers"

PRETRAINER_BUILTINS: dict[str, str] = {
    "autoencoder": "toolkit.pretext:Autoencoding",
    "rotation": "toolkit.pretext:Rotation",
}

PRETRAINERS = Registry("pretraining method", PRETRAINER_GROUP, PRETRAINER_BUILTINS, ("build", "loss"))


def register_pretrainer(name: str, factory: Callable[..., Any] | None = None, *, overwrite: bool = False):
    """Register a pretraining method's ``factory`` under ``name``; usable as ``@register_pretrainer("name")``."""
    return PRETRAINERS.register(name, factory, overwrite=overwrite)


def unregister_pretrainer(name: str) -> None:
    PRETRAINERS.unregister(name)


def available_pretrainers() -> list[str]:
    """Names of every pretraining method: built in, registered in this process, or by an entry point."""
    return PRETRAINERS.available()


def pretrainer_options(name: str) -> dict[str, Any]:
    """The keyword settings a pretraining method takes (``--pretrain.options.NAME=VALUE``), with defaults."""
    return PRETRAINERS.options(name)


def build_pretrainer(name: str, **options: Any) -> Any:
    """The pretraining method ``name`` built with ``options``; unknown options are refused up front."""
    return PRETRAINERS.build(name, **options)
