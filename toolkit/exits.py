"""How a command of ``python -m toolkit`` ends on an error the user can act on: one line on stderr saying
what went wrong and what to do, and the exit status (2 for a setting, the data, a file or the disk, 1 for
training that diverged or a killed worker, 130 for a stop asked for); anything else is a bug, and its
traceback is shown."""

from __future__ import annotations

import errno
import sys

from . import config as C
from .registry import RegistryError

DISK_FULL = {
    "run": "the finished stages and checkpoints already in the run folder are kept; free space, then rerun "
    "the same command with --resume=True to continue",
    "score": "no output file was left behind; free space and score again",
    "report": "the figures written before are kept; free space and run report again",
    "export": "no file was left behind; free space and export again",
    "plugins": "free space and try again",
}

NOT_ALLOWED = {
    "run": "the run folder must be one you may write to: pass another --run_dir",
    "score": "INPUT must be readable, and --out in a folder you may write to",
    "report": "the report writes into the run folder, which must be writable: copy the folder and report there",
    "export": "--out must be in a folder you may write to (by default the run folder)",
    "plugins": "the clusterers' and pretraining methods' files must be readable",
}


def os_error(e: OSError, verb: str) -> str | None:
    """A full disk, or a file the system refused (permissions, ...), in one line; None for another OSError."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return f"the disk is full{where} ({e.strerror or 'no space left on device'}): {DISK_FULL[verb]}"
    if not (e.filename and e.strerror):
        return None
    allowed = f": {NOT_ALLOWED[verb]}" if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
    return f"{e.filename}: {e.strerror}{allowed}"


def exit_status(e: Exception, verb: str) -> int | None:
    """Print what went wrong and return the exit status, for errors the user can act on: 2 for a
    setting, the data, a file or the disk, 1 for training that diverged, 130 for a stop asked for;
    None for anything else (a bug: its traceback is shown)."""
    if isinstance(e, (C.ConfigError, RegistryError)):  # before importing what the other errors live in
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .clustering import ClusteringError
    from .data import DataError
    from .detector import DetectorFileError
    from .handlers import TrainingDiverged
    from .report import ReportError
    from .run import Interrupted
    from .runfolder import RunFolderError

    if isinstance(e, (DataError, DetectorFileError, ClusteringError, ReportError, RunFolderError)):
        print(f"error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, OSError) and (message := os_error(e, verb)):
        print(f"error: {message}", file=sys.stderr)
        return 2
    if isinstance(e, TrainingDiverged):
        print(f"error: {e}", file=sys.stderr)
        return 1
    if isinstance(e, Interrupted):
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    from torch.multiprocessing import ProcessExitedException

    if isinstance(e, ProcessExitedException):  # a worker of --dist.nproc_per_node killed (signal, out of memory)
        print(
            f"error: worker process {e.error_index} of the run ended without finishing ({e}); the run's checkpoints "
            "are kept: rerun the same command with --resume=True to continue from the last one",
            file=sys.stderr,
        )
        return 1
    return None
