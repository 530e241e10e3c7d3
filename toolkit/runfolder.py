"""The run folder: every artifact written atomically, finished stages recorded, checkpoints found.

A file is written to a temporary ``NAME.<random>.tmp`` and renamed into place, so a killed process never leaves a
half-written artifact that a later run would trust. Finished stages (the pretrained autoencoder, the
pseudo-labels, each trained SVDD model) are kept under ``stages/`` and are not redone on ``--resume``.
Stage files and checkpoints hold tensors and plain values only and are read with ``weights_only=True``,
after the SHA-256 digest each carries inside is checked (``toolkit.files``); config.json, which holds
settings only (it is replayed as a recipe), has its digest beside it in ``config.json.sha256``. The
folder is locked (``lock``, an ``flock``) for the whole of a run, so two runs never write into one folder.
Nothing in the folder is written through a symbolic link: a run refuses a folder holding one (it could
point anywhere), naming it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import stat
import warnings
from pathlib import Path
from typing import IO, Any

from . import config as C
from .files import (
    ChecksumError,
    UncheckedFileError,
    describe,
    load_checked,
    read_with_digest_file,
    save_checked,
    write_json,  # noqa: F401  (the run folder's JSON files)
    write_with_digest_file,
)
from .overrides import field_table
from .recipes_loader import dumps, from_saved

TEMPORARY = re.compile(r".+\.[0-9a-f]{8}\.tmp")  # toolkit.files.atomic_write's temporary files


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked; the message says what to do instead."""


# settings a resumed run must share with the run it continues: the model's and what the data are (the
# finished stages were trained on them); the rest (device, processes, evaluation, monitoring, where the
# data are found) may change
RESUME_FIXED = (*C.MODEL_SETTINGS, "data.dataset", "data.normal_classes", "data.test_fraction")


def detector_file(run_dir: str | Path, model: str) -> Path:
    """``RUN_DIR/detector_MODEL.pt``, or a :class:`RunFolderError` saying why a run folder has none: no
    such folder, a file, a run not finished (resume it), a run trained without its one-sphere baseline."""
    run_dir = Path(run_dir)
    path = run_dir / f"detector_{model}.pt"
    if path.is_file():
        return path
    if not run_dir.exists():
        raise RunFolderError(f"run folder {str(run_dir)!r} does not exist")
    if not run_dir.is_dir():
        raise RunFolderError(f"{str(run_dir)!r} is a file, not a run folder (the folder holding detector_{model}.pt)")
    if (run_dir / "config.json").is_file() and not (run_dir / "results.json").is_file():
        raise RunFolderError(
            f"the run in {str(run_dir)!r} has not finished (no results.json): continue it with "
            f"python -m toolkit {run_dir / 'config.json'} --run_dir={run_dir} --resume=True"
        )
    if model == "single" and (run_dir / "detector_multi.pt").is_file():
        raise RunFolderError(
            f"{str(run_dir)!r} has no one-sphere detector: the run was made with --baseline=False; use --model=multi"
        )
    raise RunFolderError(f"no detector file at {str(path)!r}: {str(run_dir)!r} is not a finished run's folder")


def resume_fixed(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_FIXED)


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: IO[str] | None = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def has_run(self) -> bool:
        return (self.path / "config.json").is_file()

    def check_path(self) -> None:
        """Refuse a path that is a file, or lies under one (``somefile/run``)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--run_dir={str(self.path)!r} is a file, not a folder; pass a folder's path")
        for parent in self.path.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise RunFolderError(
                        f"--run_dir={str(self.path)!r} lies under {str(parent)!r}, which is a file, not a folder; "
                        "pass a folder's path"
                    )
                return

    def missing(self) -> list[Path]:
        """The folders that creating this one would make, deepest first (none when it exists)."""
        out, p = [], self.path.absolute()
        while not (p.exists() or p.is_symlink()) and p != p.parent:
            out.append(p)
            p = p.parent
        return out

    def links(self) -> list[Path]:
        """Every symbolic link inside the folder (the folder itself may be one)."""
        found = []
        if self.path.is_dir():
            for root, dirs, files in os.walk(self.path):  # never descends into a linked folder
                found += [p for name in (*dirs, *files) if (p := Path(root, name)).is_symlink()]
        return sorted(found)

    def check_links(self) -> None:
        """Refuse a folder holding a symbolic link: a run writes plain files and folders only, never through a
        link, which could point anywhere (a run would write where the link points)."""
        if found := self.links():
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise RunFolderError(
                f"{found[0]} is a symbolic link{more}; a run writes only plain files and folders inside its run "
                "folder, never through a link: remove it, or replace it by a copy"
            )

    def saved_config(self) -> C.Config:
        """The configuration the run in this folder was started with (its config.json)."""
        p = self.path / "config.json"
        try:
            return from_saved(json.loads(read_with_digest_file(p)))
        except UncheckedFileError as e:
            raise RunFolderError(
                f"{describe(e)}, so this run cannot be resumed; start a new run in another --run_dir"
            ) from None
        except (ChecksumError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise RunFolderError(
                f"{p} is damaged ({describe(e)}), so this run cannot be resumed; start a new run in another "
                "--run_dir (or put back an intact config.json)"
            ) from None

    def check(self, cfg: C.Config, resume: bool) -> None:
        """Refuse a folder that cannot take this run: a file, a folder holding a symbolic link, a run already
        there (without ``resume``), no run or a damaged one to resume, or a resume that changes the model's
        settings or data."""
        self.check_path()
        self.check_links()
        if resume:
            if not self.has_run():
                raise RunFolderError(f"--resume: {self.path} holds no run to resume (no config.json)")
            saved = field_table(self.saved_config())
            now = field_table(cfg)
            diff = [k for k in now if resume_fixed(k) and now[k][1] != saved.get(k, (None, None))[1]]
            if diff:
                shown = ", ".join(f"{k}: {saved[k][1]!r} -> {now[k][1]!r}" for k in diff if k in saved)
                raise RunFolderError(
                    f"--resume: {self.path} was started with other model or data settings ({shown}); resume it "
                    "without changing them, or start a new run in another --run_dir"
                )
        elif self.has_run():
            raise RunFolderError(
                f"{self.path} already holds a run; pass --resume=True to continue it, or choose another --run_dir"
            )

    def start(self, cfg: C.Config, resume: bool) -> None:
        """Create the folder for a new run, or check that ``cfg`` may resume the run there."""
        self.check(cfg, resume)
        if not resume:
            self.path.mkdir(parents=True, exist_ok=True)
            write_with_digest_file(self.path / "config.json", dumps(cfg).encode())
        else:  # the folder is locked: a temporary file in it is a killed writer's, never renamed into place
            for tmp in self.path.rglob("*.tmp"):
                if TEMPORARY.fullmatch(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                    tmp.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- the lock
    def lock(self) -> None:
        """Hold ``RUN_DIR/lock`` (an exclusive ``flock``) until :meth:`unlock` or the process ends (the OS
        releases it on a crash or a kill too); refuse if another process holds it, naming that process."""
        if self._lock is not None:
            return
        self.check_path()
        self.path.mkdir(parents=True, exist_ok=True)
        f = self._open_lock()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "a process that has not written its name yet"
            f.close()
            raise RunFolderError(
                f"{self.path} is in use by another run ({holder}); wait for it to end, or pass another --run_dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._lock = f

    def _open_lock(self) -> IO[str]:
        """``RUN_DIR/lock``, opened (created if missing) for reading and writing: a plain file, never a symbolic
        link's target (the lock is truncated and written)."""
        p = self.path / "lock"
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(p, flags, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP or p.is_symlink():
                raise RunFolderError(
                    f"{p} is a symbolic link; a run writes only plain files inside its run folder, never through a "
                    "link: remove it"
                ) from None
            if e.errno == errno.EISDIR:
                raise RunFolderError(f"{p} is a folder; a run keeps its lock file there: move it away") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunFolderError(f"{p} is not a plain file; a run keeps its lock file there: move it away")
        return os.fdopen(fd, "r+")

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def discard(self, created: list[Path]) -> None:
        """Undo a start that failed before the run's config.json was written: release and remove the lock, and
        remove the folders in ``created`` (made by this start, deepest first) if nothing else is in them. A
        failure here is ignored, so that it never hides why the start failed."""
        if self.has_run():
            return
        with contextlib.suppress(OSError):
            if self._lock is not None:
                (self.path / "lock").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.unlock()
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only an empty folder goes

    # ----------------------------------------------------------------------------- finished stages
    def stage_path(self, name: str) -> Path:
        return self.path / "stages" / f"{name}.pt"

    def save_stage(self, name: str, payload: dict[str, Any]) -> None:
        save_checked(self.stage_path(name), payload)

    def load_stage(self, name: str) -> dict[str, Any] | None:
        p = self.stage_path(name)
        if not p.is_file():
            return None
        try:
            return load_checked(p, map_location="cpu")
        except UncheckedFileError as e:
            raise RunFolderError(f"{describe(e)}; start a new run in another --run_dir") from None
        except Exception as e:
            raise RunFolderError(f"{p} is damaged ({describe(e)}); delete it and resume to redo that stage") from None

    # ----------------------------------------------------------------------------- checkpoints
    def checkpoints_of(self, prefix: str) -> list[Path]:
        """Checkpoints of one stage, newest first (Ignite names them PREFIX_checkpoint_STEP.pt)."""
        pat = re.compile(rf"^{re.escape(prefix)}_checkpoint_(\d+)\.pt$")
        found = [(int(m.group(1)), p) for p in self.checkpoints.glob("*.pt") if (m := pat.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def load_latest_checkpoint(self, prefix: str) -> tuple[Path, dict[str, Any]] | None:
        """The newest intact checkpoint of a stage; a damaged one (unreadable, not matching the digest it
        carries, or carrying none) is skipped for the one before it, with a warning naming it."""
        damaged: list[str] = []
        for p in self.checkpoints_of(prefix):
            try:
                state = load_checked(p, map_location="cpu")
            except Exception as e:
                damaged.append(f"{p.name} ({describe(e, 160)})")
                continue
            if damaged:
                warnings.warn(
                    f"skipped damaged checkpoint(s) {'; '.join(damaged)}; resuming from {p.name}", stacklevel=2
                )
            return p, state
        if damaged:
            raise RunFolderError(
                f"every checkpoint of {prefix} in {self.checkpoints} is damaged: {'; '.join(damaged)}; delete "
                f"{prefix}_checkpoint_* there and resume to redo that stage from its start"
            )
        return None
