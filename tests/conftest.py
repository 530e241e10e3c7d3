import errno
import os
import pathlib

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def cli(*args, cwd=None, env=None):
    """``python -m toolkit ARGS`` in a subprocess. No time limit: on a busy machine a run is slow, not stuck."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, cwd=cwd, env=env)


def fresh_python(code: str):
    """Run ``code`` in a new interpreter (nothing imported yet) and check that it succeeded."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def cli_in_process(*args):
    """``python -m toolkit ARGS`` through ``toolkit.__main__.main`` in this process: the same command without an
    interpreter's start-up (seconds each, mostly importing torch), for the tests of what a command does rather
    than of the process. Gives a ``CompletedProcess`` as :func:`cli` does: the exit status (``SystemExit`` too),
    stdout, and stderr with the CLI's log lines and its warnings, written once per place as a new process
    writes them. The CLI's log handler, the warning filters and the warning format are put back afterwards."""
    import contextlib
    import io
    import logging
    import subprocess
    import sys
    import warnings

    from toolkit.__main__ import main

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    log = logging.getLogger("toolkit")
    handlers, level, fmt = list(log.handlers), log.level, warnings.formatwarning
    out, err = io.StringIO(), io.StringIO()
    log.handlers[:] = []  # the CLI adds its own handler, writing to this call's stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")  # a new interpreter's filters: user warnings once per place
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            warnings.showwarning = show
            try:
                code = main(list(map(str, args)))
            except SystemExit as e:  # as the interpreter ends: an int is the status, anything else is printed
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int) and e.code is not None:
                    print(e.code, file=sys.stderr)
    finally:
        log.handlers[:], warnings.formatwarning = handlers, fmt
        log.setLevel(level)
    return subprocess.CompletedProcess(
        ["python", "-m", "toolkit", *map(str, args)], code, out.getvalue(), err.getvalue()
    )


@pytest.fixture(scope="session")
def digits_cli(tmp_path_factory):
    """One finished CLI run (``python -m toolkit`` in a subprocess) of the default digits recipe with tiny
    epochs, shared by the tests that read it: its run folder and the finished process (stdout, stderr).
    Warm-up 1 with 3 epochs: radii are updated at epochs 1-3; evaluation at epochs 2 and at the end (3)."""
    out = tmp_path_factory.mktemp("run") / "digits"
    r = cli(
        "--pretrain.epochs=2",
        "--svdd.epochs=3",
        "--svdd.warmup_epochs=1",
        "--eval_every=2",
        "--monitor.projector_samples=300",
        "--monitor.extremes=16",
        f"--run_dir={out}",
    )
    assert r.returncode == 0, r.stderr
    assert "Multi-Radius Deep SVDD" in r.stdout and "Deep SVDD (one sphere)" in r.stdout
    terms = "sphere score + one-sphere score + reconstruction error + nearest-centre distance (raw input)"
    assert f"| {terms} |" in r.stdout
    return out, r


@pytest.fixture(scope="session")
def digits_run(digits_cli):
    """The run folder of :func:`digits_cli`."""
    return digits_cli[0]


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits: classes 0, 1, 3 (normal) and the rest (anomalies), as float32 rows."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.astype(np.float32)
    normal = np.isin(d.target, (0, 1, 3))
    return x[normal], x[~normal]


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """One uninterrupted CLI run at the resilience tests' schedule, which interrupted runs must equal."""
    from test_resilience import ARGS

    out = tmp_path_factory.mktemp("ref") / "run"
    r = cli_in_process(*ARGS, f"--run_dir={out}")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def full_disk(monkeypatch):
    """``Path.write_bytes`` writes half the file, then fails as a full disk does (ENOSPC)."""
    write_bytes = pathlib.Path.write_bytes

    def full(self, data):
        write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
