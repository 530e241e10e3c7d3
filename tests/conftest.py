import numpy as np
import pytest
import torch


def pytest_configure(config):
    # a marker only selects: plain `pytest` runs every test; `-m "not slow"` is the fast loop
    config.addinivalue_line(
        "markers", "slow: end to end (CLI subprocesses, whole fits, spawned processes, benchmarks); -m 'not slow' skips"
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def cli(*args, cwd=None, env=None):
    """``python -m toolkit ARGS`` in a subprocess. No time limit: on a busy machine a run is slow, not stuck."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One finished CLI run of the default digits recipe with tiny epochs, shared by the tests that read it.
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
    return out


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
    r = cli(*ARGS, f"--run_dir={out}")
    assert r.returncode == 0, r.stderr
    return out
