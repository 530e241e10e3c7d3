"""Atomic, verifiable writes: a file is written to ``NAME.tmp`` and renamed into place, so a killed process
never leaves a half-written artifact that a later run would trust, and a failed write leaves no leftover.

Artifacts that a later run or command trusts (finished stages, checkpoints, detector files, config.json and
results.json) also get a SHA-256 digest in a sidecar ``NAME.sha256``, written atomically right after the
file: a file damaged later (a flipped bit, a partial copy) is then refused instead of loaded. Files written
before digests were kept have no sidecar; they still load, with one warning per process."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIGEST_SUFFIX = ".sha256"
_warned_unchecked = False


class ChecksumError(ValueError):
    """A file whose content does not match its recorded SHA-256 digest: it was damaged after writing."""


class UnsafeFileError(ValueError):
    """A file holding Python objects other than tensors and plain values: refused, since loading such a file
    could run code."""


def shorten(text: str, limit: int) -> str:
    """``text`` whole if it has at most ``limit`` characters; else cut at the last space before the limit (a
    word is never cut in two), with " ..." in place of the rest."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 4, 1)]
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip(" ,;:(") + " ..."


def describe(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters, cut between words), or its
    type when the message is empty."""
    lines = str(e).strip().splitlines()
    return shorten(lines[0], limit) if lines else type(e).__name__


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path``; on failure remove ``tmp`` and re-raise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.is_symlink():  # never write through a link left where the temporary file goes
        tmp.unlink()
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):  # a failed clean-up must not hide why the write failed
            tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any, *, checked: bool = False) -> Path:
    """Write ``obj`` as JSON atomically; ``checked`` adds the ``NAME.sha256`` digest."""
    data = json.dumps(obj, indent=2).encode()
    return write_checked(path, data) if checked else atomic_write(path, lambda p: p.write_bytes(data))


# --------------------------------------------------------------------------------------------- digests


def digest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_digest(path: str | Path, digest: str | None = None) -> Path:
    """Record ``path``'s SHA-256 (computed unless given) in ``NAME.sha256``, atomically."""
    path = Path(path)
    digest = digest or sha256_file(path)
    return atomic_write(digest_path(path), lambda p: p.write_text(f"{digest}  {path.name}\n"))


def write_checked(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and then its digest, both atomically. An older digest is removed first, so
    that a kill between the two writes leaves a file without a digest, never one with a wrong digest."""
    path = Path(path)
    digest_path(path).unlink(missing_ok=True)
    atomic_write(path, lambda p: p.write_bytes(data))
    write_digest(path, hashlib.sha256(data).hexdigest())
    return path


def verify(path: str | Path) -> bool:
    """Check ``path`` against its digest: True when it matches, False (and one warning per process) when it
    has no digest; :class:`ChecksumError` when it does not match."""
    global _warned_unchecked
    path = Path(path)
    side = digest_path(path)
    if not side.is_file():
        if not _warned_unchecked:
            _warned_unchecked = True
            warnings.warn(
                f"{path} has no checksum file ({side.name}; written by an older version): loaded unverified. "
                "Other files without one load unverified too, without a further warning",
                stacklevel=3,
            )
        return False
    expected = side.read_text().split()[:1]
    actual = sha256_file(path)
    if expected != [actual]:
        raise ChecksumError(
            f"{path} does not match its checksum ({side.name}): it was damaged or changed after it was written"
        )
    return True


def save_checked(path: str | Path, payload: Any) -> Path:
    """``torch.save(payload)`` to ``path`` with its digest. Serialised in memory first, so that a full disk
    raises ``OSError`` (ENOSPC) from the write, and nothing is left behind but the previous file."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    return write_checked(path, buf.getvalue())


def load_checked(path: str | Path, **load_args: Any) -> Any:
    """Verify ``path`` against its digest (:class:`ChecksumError` if damaged), then ``torch.load`` it with
    ``weights_only=True`` (tensors and plain values only; nothing is unpickled)."""
    import torch

    verify(path)
    try:
        return torch.load(path, weights_only=True, **load_args)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise
        # torch's own message suggests turning the protection off; this one says what the file holds
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise UnsafeFileError(
            f"{path} holds Python objects{what} other than tensors and plain values; such files are refused, "
            "since loading them could run code"
        ) from None


def savez_checked(path: str | Path, **arrays: Any) -> Path:
    """``numpy.savez_compressed(path, **arrays)`` with its digest (serialised in memory first)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return write_checked(path, buf.getvalue())


def load_npz_checked(path: str | Path) -> Any:
    """Verify ``path`` against its digest, then load its arrays (numbers only, nothing unpickled)."""
    import numpy as np

    verify(path)
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def read_json_checked(path: str | Path) -> Any:
    """Verify ``path`` against its digest, then parse it as JSON."""
    verify(path)
    return json.loads(Path(path).read_text())
