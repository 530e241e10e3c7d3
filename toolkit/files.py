"""Atomic, self-verifying writes: a file is written to ``NAME.<random>.tmp`` and renamed into place, so a killed process
never leaves a half-written artifact that a later run would trust, and a failed write leaves no leftover.

Artifacts that a later run or command trusts carry their own SHA-256 digest inside, so a file copied on its
own is verified as well as one in its run folder, and no second file has to travel with it:

- torch files (finished stages, checkpoints, detector files) hold ``{"format": CHECKED_FORMAT, "sha256": HEX,
  "payload": BYTES}``: the serialised payload as a uint8 tensor and its digest. Both layers load with
  ``torch.load(weights_only=True)``; the payload is read only once its digest matches;
- JSON files (``results.json``) hold the digest as a top-level key ``"sha256"``: that of the rest of the
  object, serialised canonically (sorted keys, no spaces), so a reformatted file still verifies;
- ``.npz`` files (the report's arrays) hold it as an array ``sha256``: that of every other array's name,
  type, shape and bytes.

A damaged file (a flipped bit, a partial copy, an empty file) or one that carries no digest (written by an
older version, or by another program) is refused with :class:`ChecksumError`, in one line.

A run's ``config.json`` is the one exception: it holds settings only, since replaying it
(``python -m toolkit RUN_DIR/config.json``) reads it as a recipe, where every key must be a setting; its
digest is kept beside it, in ``config.json.sha256`` (:func:`write_with_digest_file`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKED_FORMAT = "sha256-checked/1"  # the wrapper of a self-verifying torch file
DIGEST_KEY = "sha256"  # the digest's key in a JSON object and its array's name in a .npz file
DIGEST_SUFFIX = ".sha256"  # the digest file beside a run's config.json


class ChecksumError(ValueError):
    """A file that cannot be trusted: its content does not match the digest it carries (it was damaged after
    writing), it cannot be read whole, or it carries no digest at all."""


class UncheckedFileError(ChecksumError):
    """A file that carries no digest: written by an older version of this package, or by another program."""


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
    """Call ``write(tmp)`` and rename ``tmp`` to ``path``; on failure remove ``tmp`` and re-raise.

    ``tmp`` is ``NAME.<random>.tmp`` beside ``path``, created here (``O_EXCL``: never an existing file or a
    link planted there), so two processes writing one path each rename a whole file of their own, and a
    user's own ``NAME.tmp`` is never touched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask's permissions
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):  # a failed clean-up must not hide why the write failed
            tmp.unlink(missing_ok=True)
        raise
    return path


def write_checked(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. ``data`` is a whole file as serialised in memory (a full disk
    raises ``OSError`` (ENOSPC) from the write and leaves the previous file as it was); it carries its own
    digest when made by :func:`pack`, :func:`json_bytes` or :func:`npz_bytes`."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def _no_digest(path: Path, what: str) -> UncheckedFileError:
    return UncheckedFileError(
        f"{path} carries no SHA-256 digest ({what}): it was written by an older version of this package or by "
        "another program, and is refused"
    )


def _mismatch(path: Path) -> ChecksumError:
    return ChecksumError(
        f"{path} does not match the SHA-256 digest it carries: it was damaged or changed after it was written"
    )


def _unreadable(path: Path, e: BaseException) -> ChecksumError:
    return ChecksumError(f"{path} cannot be read whole, so it is damaged or cut short ({describe(e, 120)})")


# --------------------------------------------------------------------------------------------- torch files


def pack(data: bytes) -> bytes:
    """The bytes of a self-verifying torch file holding the serialised payload ``data`` and its digest."""
    import torch

    wrapper = {
        "format": CHECKED_FORMAT,
        DIGEST_KEY: hashlib.sha256(data).hexdigest(),
        "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8),
    }
    buf = io.BytesIO()
    torch.save(wrapper, buf)
    return buf.getvalue()


def _torch_load(source: Any, path: Path, **load_args: Any) -> Any:
    """``torch.load(source, weights_only=True)``; a file of pickled objects is :class:`UnsafeFileError`."""
    import torch

    try:
        return torch.load(source, weights_only=True, **load_args)
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


def unpack(path: str | Path) -> bytes:
    """The payload bytes of the self-verifying torch file at ``path``, once they match its digest;
    :class:`ChecksumError` for a damaged file or one without a digest."""
    import torch

    path = Path(path)
    try:
        wrapper = _torch_load(path, path, map_location="cpu")
    except (UnsafeFileError, OSError):
        raise
    except Exception as e:  # a damaged container: torch's errors name no common type
        raise _unreadable(path, e) from None
    if not (isinstance(wrapper, dict) and wrapper.get("format") == CHECKED_FORMAT):
        raise _no_digest(path, "not a file of tensors wrapped with its digest")
    digest, payload = wrapper.get(DIGEST_KEY), wrapper.get("payload")
    if not (isinstance(digest, str) and isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8):
        raise _mismatch(path)
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise _mismatch(path)
    return data


def save_checked(path: str | Path, payload: Any, **save_args: Any) -> Path:
    """``torch.save(payload)`` to ``path``, wrapped with its digest, atomically. Serialised in memory first,
    so that a full disk raises ``OSError`` (ENOSPC) from the write, and nothing is left behind but the
    previous file."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf, **save_args)
    return write_checked(path, pack(buf.getvalue()))


def load_checked(path: str | Path, **load_args: Any) -> Any:
    """The payload of a file written by :func:`save_checked`, once it matches its digest
    (:class:`ChecksumError` if not), loaded with ``weights_only=True`` (tensors and plain values only;
    nothing is unpickled)."""
    path = Path(path)
    return _torch_load(io.BytesIO(unpack(path)), path, **load_args)


# --------------------------------------------------------------------------------------------- JSON


def _json_digest(obj: dict[str, Any]) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_bytes(obj: dict[str, Any]) -> bytes:
    """``obj`` (a JSON object) as indented JSON text with its digest as the top-level key ``"sha256"``."""
    if not isinstance(obj, dict) or DIGEST_KEY in obj:
        raise ValueError(f"a checked JSON file holds an object without a {DIGEST_KEY!r} key of its own")
    obj = json.loads(json.dumps(obj))  # as it will be read back: keys as strings, tuples as lists
    return json.dumps({**obj, DIGEST_KEY: _json_digest(obj)}, indent=2).encode()


def write_json(path: str | Path, obj: Any, *, checked: bool = False) -> Path:
    """Write ``obj`` as JSON atomically; ``checked`` adds its digest (:func:`json_bytes`)."""
    data = json_bytes(obj) if checked else json.dumps(obj, indent=2).encode()
    return write_checked(path, data)


def read_json_checked(path: str | Path) -> Any:
    """The object in the JSON file at ``path`` written with ``write_json(checked=True)``, its digest key taken
    off, once the rest matches it (:class:`ChecksumError` if not, or if it carries none)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise _unreadable(path, e) from None
    if not isinstance(obj, dict) or not isinstance(obj.get(DIGEST_KEY), str):
        raise _no_digest(path, f"no top-level {DIGEST_KEY!r} key")
    digest = obj.pop(DIGEST_KEY)
    if _json_digest(obj) != digest:
        raise _mismatch(path)
    return obj


# --------------------------------------------------------------------------------------------- .npz


def _arrays_digest(arrays: dict[str, Any]) -> str:
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def savez_checked(path: str | Path, **arrays: Any) -> Path:
    """``numpy.savez_compressed(path, **arrays)`` with the array ``sha256`` (their digest), atomically
    (serialised in memory first)."""
    import numpy as np

    if DIGEST_KEY in arrays:
        raise ValueError(f"{DIGEST_KEY!r} is the digest's name in a checked .npz file; name the array otherwise")
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays, **{DIGEST_KEY: np.array(_arrays_digest(arrays))})
    return write_checked(path, buf.getvalue())


def load_npz_checked(path: str | Path) -> dict[str, Any]:
    """The arrays of a file written by :func:`savez_checked` (numbers only, nothing unpickled), once they
    match the digest it carries (:class:`ChecksumError` if not, or if it carries none)."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except OSError:
        raise
    except Exception as e:  # a damaged zip: a bad CRC, a cut-short member, a broken directory
        raise _unreadable(path, e) from None
    digest = arrays.pop(DIGEST_KEY, None)
    if digest is None or digest.dtype.kind != "U" or digest.shape != ():
        raise _no_digest(path, f"no array {DIGEST_KEY!r}")
    if _arrays_digest(arrays) != str(digest):
        raise _mismatch(path)
    return arrays


# --------------------------------------------------------------------------------------------- config.json


def digest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def write_with_digest_file(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and then its digest to ``NAME.sha256``, both atomically, for a file that must
    hold nothing but its own content (a run's config.json). An older digest file is removed first, so that a
    kill between the two writes leaves a file without a digest (refused), never one with a wrong digest."""
    path = Path(path)
    digest_path(path).unlink(missing_ok=True)
    write_checked(path, data)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write(digest_path(path), lambda p: p.write_text(f"{digest}  {path.name}\n"))
    return path


def read_with_digest_file(path: str | Path) -> bytes:
    """The bytes of ``path``, once they match the digest in ``NAME.sha256`` beside it (:class:`ChecksumError`
    if not, or if there is no such file)."""
    path = Path(path)
    side = digest_path(path)
    data = path.read_bytes()
    try:
        expected = side.read_text().split()[:1]
    except FileNotFoundError:
        raise UncheckedFileError(
            f"{path} has no digest file beside it ({side.name}): it was written by an older version of this "
            "package or by hand, and is refused"
        ) from None
    if expected != [hashlib.sha256(data).hexdigest()]:
        raise ChecksumError(
            f"{path} does not match its digest ({side.name}): it was damaged or changed after it was written"
        )
    return data
