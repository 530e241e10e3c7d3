"""Recipes and saved configurations: load a recipe by name or path, replay a run's config.json, and the
dictionary and JSON forms of a :class:`~toolkit.config.Config`.

A recipe is a Python file that defines ``config = Config(...)`` (values only); the packaged ones are
installed as ``toolkit.recipes`` (``recipes/`` in the repository). A replayed config.json is checked key by
key and value by value, as command-line overrides are (:mod:`toolkit.overrides`).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import json
import runpy
import typing
import warnings
from pathlib import Path
from typing import Any

from .config import Config, ConfigError
from .overrides import RENAMED, coerce, field_types, renamed


def packaged_recipes() -> dict[str, Path]:
    """The recipes installed with the toolkit (``toolkit.recipes``, ``recipes/`` in the repository), by name:
    found through the package, so ``python -m toolkit mnist`` works from a wheel as from a checkout."""
    try:
        root = Path(str(importlib.resources.files("toolkit.recipes")))
    except ModuleNotFoundError:
        raise ConfigError(
            "the packaged recipes (toolkit.recipes) are not installed; install the project (pip install -e .) "
            "or pass a path to a recipe .py file"
        ) from None
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.name.startswith("_")}


def default_recipe() -> Path:
    """The packaged ``digits`` recipe (``recipes/digits.py``): it runs on data shipped with scikit-learn."""
    return packaged_recipes()["digits"]


def load_recipe(path: str | Path) -> Config:
    """Run a recipe and return the ``config`` it defines. ``path`` is a packaged recipe's name (a string
    such as ``"mnist"``, no ``/`` and no suffix), the path of any recipe file, or a run's config.json (its
    settings replayed, each checked by :func:`replay`). A bare name ending in ``.py`` or ``.json``, or naming
    a file in the current folder and no packaged recipe, is a path."""
    if isinstance(path, str) and Path(path).name == path and Path(path).suffix not in (".py", ".json"):
        recipes = packaged_recipes()
        if path in recipes:
            path = recipes[path]
        elif not Path(path).is_file():  # a file of that name in the current folder is taken as its path
            raise ConfigError(
                f"unknown recipe {path!r}; packaged recipes: {', '.join(recipes)}; "
                "or pass the path of a .py file that defines `config = Config(...)`"
            )
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"recipe {str(path)!r} does not exist; pass a packaged recipe name ({', '.join(packaged_recipes())}), "
            "the path of a .py file such as recipes/mnist.py, or a run's config.json"
        )
    if p.suffix == ".json":  # a run's config.json: replay its settings, into a new run folder
        from .files import describe

        try:
            saved = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{str(path)!r} is not a run's config.json ({describe(e)})") from None
        cfg = replay(saved, str(path))
        return dataclasses.replace(cfg, run_dir="", resume=False)
    if p.suffix != ".py":
        raise ConfigError(
            f"recipe {str(path)!r} is not a Python file (.py) defining `config = Config(...)`, nor a run's config.json"
        )
    ns = runpy.run_path(str(p), run_name=f"recipe_{p.stem}")
    cfg = ns.get("config")
    if not isinstance(cfg, Config):
        raise ConfigError(f"recipe {str(path)!r} defines no `config = Config(...)` (found {type(cfg).__name__})")
    return cfg


def replay(saved: Any, source: str) -> Config:
    """The configuration a saved run's settings (a config.json's content) describe, every key and value
    checked as the command line's are: an unknown key is refused (with the nearest valid ones and the
    keys its section takes), and so is a value of the wrong type (2.7 for an integer, "3" for a number).
    A key the file leaves out keeps the toolkit's default (a file saved before that setting existed), said
    in a warning naming it."""
    values: dict[str, Any] = {}
    left_out: list[str] = []

    def walk(obj: Any, cls: type, prefix: str) -> None:
        where = prefix.rstrip(".") or "the file"
        if not isinstance(obj, dict):
            raise ConfigError(f"{source}: {where} is {obj!r}; a JSON object of settings is expected")
        hints = field_types(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        left_out.extend(prefix + n for n in names if n not in obj)
        for key, value in obj.items():
            dotted = f"{prefix}{key}"
            if key not in names:
                if message := renamed(dotted):
                    raise ConfigError(f"{source}: {message.replace('--', '')}")
                near = difflib.get_close_matches(str(key), names, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(prefix + n) for n in near)}?" if near else ""
                raise ConfigError(
                    f"{source}: unknown setting {dotted!r}{hint} ({'the top level' if not prefix else where} takes: "
                    f"{', '.join(names)})"
                )
            if dataclasses.is_dataclass(hints[key]):
                walk(value, hints[key], f"{dotted}.")
            else:
                values[dotted] = coerce(dotted, hints[key], value, strict=True, name=f"{source}: {dotted}")

    walk(saved, Config, "")
    if left_out:
        shown = ", ".join(left_out[:6]) + (f" and {len(left_out) - 6} more" if len(left_out) > 6 else "")
        warnings.warn(
            f"{source} leaves out {shown}: the toolkit's default is taken for each, not a recipe's", stacklevel=2
        )
    nested: dict[str, Any] = {}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return from_dict(nested)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> Config:
    """Inverse of :func:`to_dict` (lists become tuples again)."""

    def build(cls: type, values: dict[str, Any]) -> Any:
        hints = field_types(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            v, tp = values[f.name], hints[f.name]
            if dataclasses.is_dataclass(tp):
                v = build(tp, v)
            elif typing.get_origin(tp) is tuple:
                v = tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return build(Config, d)


# settings that a fit or a run saved under an earlier name: (section, that name) -> the name now; the
# renamed settings that stayed in their section (a setting that moved to another section predates the
# files this version reads)
SAVED_AS = {
    tuple(old.split(".")): new.split(".")[1]
    for old, new in RENAMED.items()
    if "." in old and old.split(".")[0] == new.split(".")[0]
}


def from_saved(d: dict[str, Any]) -> Config:
    """A configuration that a fit or a run saved (a detector file's settings, a run folder's config.json):
    :func:`from_dict`, each setting saved under an earlier name (:data:`SAVED_AS`: ``score.recon``, the
    pretrained network's own score term) read under its name now (``score.pretext``). A recipe, an override
    or a replayed config.json that gives an earlier name is refused with the name now
    (:data:`toolkit.overrides.RENAMED`)."""
    d = dict(d)
    for (section, old), new in SAVED_AS.items():
        values = d.get(section)
        if isinstance(values, dict) and old in values and new not in values:
            d[section] = {(new if k == old else k): v for k, v in values.items()}
    return from_dict(d)


def dumps(cfg: Config) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
