"""Checked settings: command-line overrides and the help table.

Overrides use dotted names (``svdd.epochs``) or, where unambiguous, the bare field name
(``normal_classes``). Every override is checked against the field's type; unknown keys are refused with the
nearest valid ones, because python-fire alone accepts typos silently. ``--help`` lists every setting with
its type, its value and the help text its field keeps in its metadata (:mod:`toolkit.config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from typing import Any

from .config import (
    ARCHS,
    BACKENDS,
    IMAGE_MODES,
    KNN_SPACES,
    OBJECTIVES,
    PREPROCESS,
    PRETRAIN_METHODS,
    PROGRESS,
    RADIUS_UPDATES,
    SCORE_RULES,
    STORAGES,
    Config,
    ConfigError,
)


def field_types(cls: type) -> dict[str, Any]:
    """The type of each field of the dataclass ``cls``, by name (its annotations resolved)."""
    return typing.get_type_hints(cls)


def field_table(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Every leaf setting as ``dotted name -> (type, current value)``."""
    out: dict[str, tuple[Any, Any]] = {}
    hints = field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(field_table(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (hints[f.name], value)
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    if isinstance(tp, types.UnionType):
        return " | ".join(_type_name(t) for t in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


@functools.cache
def field_help() -> dict[str, str]:
    """Each setting's help text, by dotted name: the ``help`` in its field's metadata (the one place it is
    written), whole."""

    def walk(cls: type, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        hints = field_types(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                out.update(walk(hints[f.name], f"{prefix}{f.name}."))
            else:
                out[f"{prefix}{f.name}"] = f.metadata.get("help", "")
        return out

    return walk(Config, "")


# the settings with a closed set of values, shown with their help
CHOICES = {
    "preprocess": PREPROCESS,
    "data.image_mode": IMAGE_MODES,
    "net.arch": ARCHS,
    "pretrain.method": PRETRAIN_METHODS,
    "svdd.objective": OBJECTIVES,
    "score.rule": SCORE_RULES,
    "svdd.radius_update": RADIUS_UPDATES,
    "score.knn_space": KNN_SPACES,
    "score.storage": STORAGES,
    "dist.backend": BACKENDS,
    "progress": PROGRESS,
}


def describe(cfg: Config) -> str:
    """Human-readable list of every setting: its type, its value in ``cfg``, what it does and, where the
    values are a closed set, which are accepted."""
    helps = {k: h + (f" [{', '.join(map(repr, CHOICES[k]))}]" if k in CHOICES else "") for k, h in field_help().items()}
    rows = [(k, _type_name(t), repr(list(v) if isinstance(v, tuple) else v)) for k, (t, v) in field_table(cfg).items()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows if len(r[2]) <= 24)
    return "\n".join(f"  --{k:<{w0}}  {t:<{w1}}  {v:<{w2}}  {helps.get(k, '')}".rstrip() for k, t, v in rows)


def coerce(key: str, tp: Any, value: Any, *, strict: bool = False, name: str | None = None) -> Any:
    """Check ``value`` against the field type ``tp``; return it in the field's own type. ``strict`` (a saved
    configuration, whose values have their own types) takes no text for a boolean and no number for a
    string, as the command line does; ``name`` is how the message names the setting (``--KEY``)."""
    origin = typing.get_origin(tp)

    def bad(accepted: str) -> ConfigError:
        return ConfigError(f"{name or '--' + key}={value!r} has the wrong type: expected {accepted}")

    if tp is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad("a boolean (True or False)" if not strict else "a boolean (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if not strict and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # the command line reads --run_dir=2024 as an int
        raise bad("a string")
    if origin is tuple:
        (elem,) = typing.get_args(tp)[:1]
        single = isinstance(value, elem) and not isinstance(value, bool) and "," not in str(value)
        items = [value] if single else value
        if not isinstance(items, (list, tuple)) or not all(
            isinstance(v, elem) and not isinstance(v, bool) for v in items
        ):
            raise bad(f"a list of {_type_name(elem)}, e.g. [0,1,3]")
        return tuple(items)
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise bad("a mapping, e.g. '{\"level\": 2}'")
    raise bad(_type_name(tp))  # pragma: no cover - every field type is handled above


# settings that moved: the old name is refused with the new one (the score's settings have their own section;
# the pretrained network's own score term is score.pretext, whatever its method scores by)
RENAMED = {
    "svdd.score": "score.rule",
    "svdd.score_multi": "score.multi",
    "svdd.score_single": "score.single",
    "svdd.score_recon": "score.pretext",
    "score.recon": "score.pretext",
    "svdd.score_knn": "score.knn",
    "svdd.knn_k": "score.knn_k",
    "svdd.knn_space": "score.knn_space",
}
RENAMED.update({old.split(".")[1]: new for old, new in RENAMED.items()})  # the bare names too


def renamed(key: str) -> str:
    """The message for a setting that moved, or "" for any other key."""
    new = RENAMED.get(key)
    return f"--{key} is now --{new}; did you mean --{new}?" if new else ""


def as_keywords(message: str) -> str:
    """A refusal worded for the command line (``--svdd.nu``), reworded for a Python caller, who gave the
    setting as a keyword (``'svdd.nu'``)."""
    message = message.replace("(--help lists every setting", "(python -m toolkit -h lists every setting")
    message = re.sub(r"(?<![\w-])--([A-Za-z_][\w.]*)=", r"\1=", message)  # --svdd.nu=3: svdd.nu=3
    return re.sub(r"(?<![\w-])--([A-Za-z_][\w.]*)", r"'\1'", message)


def resolve_key(cfg: Config, key: str) -> str:
    """Map a dotted or bare key to its dotted field name; refuse unknown or ambiguous keys."""
    table = field_table(cfg)
    key = key.replace("-", "_")
    if key in table:
        return key
    if message := renamed(key):
        raise ConfigError(message)
    head, _, tail = key.rpartition(".")
    if head in table and table[head][0] is dict and tail:
        return key  # an entry inside a dict setting, e.g. clustering.options.level
    matches = [k for k in table if k.split(".")[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"--{key} is ambiguous; use one of: {', '.join('--' + m for m in matches)}")
    near = difflib.get_close_matches(key, list(table), n=3, cutoff=0.6)
    near += [k for k in table if k.split(".")[-1] == key.split(".")[-1] and k not in near][:1]
    hint = f"; did you mean {' or '.join('--' + k for k in near)}?" if near else ""
    raise ConfigError(f"unknown setting --{key}{hint} (--help lists every setting with its type, value and meaning)")


def _replace_tree(obj: Any, tree: dict[str, Any], prefix: str = "") -> Any:
    """``obj`` with the changes ``tree`` (nested by section) applied, each dataclass replaced once with all
    of its changes: a section is checked on its final settings, so the order of the overrides does not
    matter (``data.normal_classes`` may name folders before ``data.dataset`` names the folder). A value
    ``Entries`` holds dotted entries merged into a dict setting."""
    changes = {}
    for name, value in tree.items():
        child = getattr(obj, name)
        if isinstance(value, Entries):
            changes[name] = {**child, **value}
        elif isinstance(value, dict) and dataclasses.is_dataclass(child):
            changes[name] = _replace_tree(child, value, f"{prefix}{name}.")
        else:
            changes[name] = value
    try:
        return dataclasses.replace(obj, **changes)
    except ConfigError as e:
        mine = [f"--{prefix}{k}={v!r}" for k, v in tree.items() if not isinstance(v, dict) or isinstance(v, Entries)]
        raise ConfigError(f"{' '.join(mine)}: {e}" if mine and prefix else str(e)) from None


class Entries(dict):
    """Entries of a dict setting given one by one (``--clustering.options.level=1``)."""


# a plugin's options belong to that plugin: naming another one starts its options afresh
PLUGIN_OPTIONS = {"clustering.name": "clustering.options", "pretrain.method": "pretrain.options"}


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return ``cfg`` with ``overrides`` applied; every key and value is checked first. Naming another
    clusterer (or pretraining method) starts its options afresh: the recipe's options were for the one
    it replaces, and the new one may not take them (options given with it apply)."""
    table = field_table(cfg)
    keys = [resolve_key(cfg, k) for k in overrides]
    tree: dict[str, Any] = {}
    for name, options in PLUGIN_OPTIONS.items():
        if name in keys and overrides[list(overrides)[keys.index(name)]] != table[name][1]:
            section, field_name = options.split(".")
            tree.setdefault(section, {})[field_name] = {}  # replaces the recipe's options
    for raw_key, value in overrides.items():
        key = resolve_key(cfg, raw_key)
        setting, entry = key, None
        if key in table:
            value = coerce(key, table[key][0], value)
        else:  # an entry of a dict setting: "clustering.options.level"
            setting = next(k for k in sorted(table, key=len, reverse=True) if key.startswith(k + "."))
            entry = key[len(setting) + 1 :]
        *sections, name = setting.split(".")
        node = tree
        for section in sections:
            node = node.setdefault(section, {})
        if entry is None:
            node[name] = dict(value) if isinstance(value, dict) else value
        else:  # merged into the options given or reset above, else into the recipe's
            node.setdefault(name, Entries())[entry] = value
    if tree:
        cfg = _replace_tree(cfg, tree)
    return cfg
