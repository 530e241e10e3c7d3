"""The run folder: every artifact written atomically, finished stages recorded, checkpoints found.

A file is written to ``NAME.tmp`` and renamed into place, so a killed process never leaves a
half-written artifact that a later run would trust. Finished stages (the pretrained autoencoder, the
pseudo-labels, each trained SVDD model) are kept under ``stages/`` and are not redone on ``--resume``.
Stage files and checkpoints hold tensors and plain values only and are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from . import config as C
from .files import atomic_write, write_json  # noqa: F401  (write_json: the run folder's JSON files)


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked; the message says what to do instead."""


# settings that may differ between the first run and its resumption
RESUME_FREE = {"resume", "device", "run_dir", "dist.backend", "dist.nproc_per_node"}


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def has_run(self) -> bool:
        return (self.path / "config.json").is_file()

    def start(self, cfg: C.Config, resume: bool) -> None:
        """Create the folder for a new run, or check that ``cfg`` matches the run being resumed."""
        if resume:
            if not self.has_run():
                raise RunFolderError(f"--resume: {self.path} holds no run to resume (no config.json)")
            saved = C.field_table(C.from_dict(json.loads((self.path / "config.json").read_text())))
            now = C.field_table(cfg)
            diff = [k for k in now if k not in RESUME_FREE and now[k][1] != saved.get(k, (None, None))[1]]
            if diff:
                shown = ", ".join(f"{k}: {saved[k][1]!r} -> {now[k][1]!r}" for k in diff if k in saved)
                raise RunFolderError(
                    f"--resume: {self.path} was started with other settings ({shown}); resume it with the "
                    "same settings, or start a new run in another --run_dir"
                )
            return
        if self.has_run():
            raise RunFolderError(
                f"{self.path} already holds a run; pass --resume=True to continue it, or choose another --run_dir"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path / "config.json", lambda p: p.write_text(C.dumps(cfg)))

    # ----------------------------------------------------------------------------- finished stages
    def stage_path(self, name: str) -> Path:
        return self.path / "stages" / f"{name}.pt"

    def save_stage(self, name: str, payload: dict[str, Any]) -> None:
        atomic_write(self.stage_path(name), lambda p: torch.save(payload, p))

    def load_stage(self, name: str) -> dict[str, Any] | None:
        p = self.stage_path(name)
        if not p.is_file():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RunFolderError(
                f"{p} is damaged ({str(e).splitlines()[0][:200]}); delete it and resume to redo that stage"
            ) from None

    # ----------------------------------------------------------------------------- checkpoints
    def checkpoints_of(self, prefix: str) -> list[Path]:
        """Checkpoints of one stage, newest first (Ignite names them PREFIX_checkpoint_STEP.pt)."""
        pat = re.compile(rf"^{re.escape(prefix)}_checkpoint_(\d+)\.pt$")
        found = [(int(m.group(1)), p) for p in self.checkpoints.glob("*.pt") if (m := pat.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def load_latest_checkpoint(self, prefix: str) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable checkpoint of a stage; a damaged one is skipped for the one before it."""
        damaged: list[str] = []
        for p in self.checkpoints_of(prefix):
            try:
                state = torch.load(p, map_location="cpu", weights_only=True)
            except Exception as e:
                damaged.append(f"{p.name} ({str(e).splitlines()[0][:120]})")
                continue
            if damaged:
                warnings.warn(
                    f"skipped damaged checkpoint(s) {'; '.join(damaged)}; resuming from {p.name}", stacklevel=2
                )
            return p, state
        if damaged:
            raise RunFolderError(
                f"every checkpoint of {prefix} in {self.checkpoints} is damaged: {'; '.join(damaged)}. "
                "Delete them to restart that stage"
            )
        return None
