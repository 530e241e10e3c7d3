"""How a setting is declared and checked: each field of the configuration's frozen dataclasses keeps its
help text in its metadata, and a value that cannot be used raises :class:`ConfigError` saying what is
accepted."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A recipe or an override that cannot be used; the message says what is accepted."""


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def setting(default: Any = dataclasses.MISSING, text: str = "", *, factory: Any = dataclasses.MISSING) -> Any:
    """A field with its help text in its metadata: ``field(default=..., metadata={"help": text})``."""
    return field(default=default, default_factory=factory, metadata={"help": text})
