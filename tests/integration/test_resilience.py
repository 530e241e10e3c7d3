"""Nothing lost on interruption: SIGKILL and Ctrl-C then --resume give the uninterrupted result; a
diverging loss stops with the last good checkpoint kept; damaged or mismatched run folders are refused.

The interrupted runs interrupt themselves at a chosen checkpoint (:data:`HARNESS`), not after a wait, so
the tests do the same thing however busy the machine is."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import cli_in_process
from torch import nn

from toolkit.config import OptimConfig, SVDDConfig
from toolkit.files import load_npz_checked, read_json_checked, save_checked
from toolkit.handlers import TrainingDiverged
from toolkit.nets import build_autoencoder
from toolkit.run import RunHarness
from toolkit.runfolder import RunFolder, RunFolderError
from toolkit.stages import pretrain, train_svdd

# a short schedule: 5 pretraining and 7 SVDD checkpoints (none after a stage's last epoch)
PRETRAIN_EPOCHS, SVDD_EPOCHS = 6, 8
ARGS = [
    f"--pretrain.epochs={PRETRAIN_EPOCHS}",
    f"--svdd.epochs={SVDD_EPOCHS}",
    "--svdd.warmup_epochs=1",
    "--baseline=False",
    "--eval_every=0",
    "--monitor.projector_samples=100",
    "--monitor.extremes=8",
]

# ``python -c HARNESS ACTION STAGE N ARGS...``: the CLI, which after writing its N-th checkpoint of STAGE
# (counted in this process; STAGE "*" counts every stage) does ACTION: "kill" (SIGKILL itself), "int"
# (Ctrl-C), "hold" (waits, holding the folder)
HARNESS = """
import os, signal, sys, time
import toolkit.handlers as h
from toolkit.__main__ import main

action, stage, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
save, count = h.CheckedDiskSaver._save_func, 0

def patched(self, checkpoint, path, func):
    global count
    save(self, checkpoint, path, func)
    if stage == "*" or path.name.startswith(stage + "_checkpoint_"):
        count += 1
        if count == n and action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if count == n and action == "int":
            os.kill(os.getpid(), signal.SIGINT)
        if count == n and action == "hold":
            print("holding", flush=True)
            time.sleep(3600)

h.CheckedDiskSaver._save_func = patched
sys.exit(main(sys.argv[4:]))
"""


def interrupted(run_dir, action, stage, n, *extra):
    """The CLI run of ARGS in ``run_dir``, interrupted by ``action`` after its ``n``-th checkpoint of ``stage``."""
    cmd = [sys.executable, "-c", HARNESS, action, stage, str(n), *ARGS, f"--run_dir={run_dir}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def same_result(a, b):
    """The run folder ``b`` ends as ``a`` does, with every file it wrote whole and matching its digest."""
    ra, rb = (read_json_checked(d / "results.json") for d in (a, b))
    # equal up to float32 rounding: the recentred spheres come from a pass over the whole training data,
    # whose last bits follow how the work is split across threads in each process
    np.testing.assert_allclose(rb["multi"]["radii"], ra["multi"]["radii"], rtol=1e-5)
    sa, sb = (load_npz_checked(d / "scores.npz")["multi_score"] for d in (a, b))
    np.testing.assert_allclose(sb, sa, rtol=1e-5, atol=1e-5)
    assert len(rb["multi"]["history"]["epochs"]) == SVDD_EPOCHS
    assert len(rb["pretrain"]["history"]["epochs"]) == PRETRAIN_EPOCHS


@pytest.mark.parametrize("stage", ["pretrain", "svdd_multi"])
@pytest.mark.slow  # CLI runs: the reference run, kills and resumes
def test_sigkill_then_resume_equals_uninterrupted_run(reference, tmp_path, stage):
    run_dir = tmp_path / "run"
    r = interrupted(run_dir, "kill", stage, 2)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not (run_dir / "stages" / f"{stage}.pt").exists()  # killed inside the stage
    assert not (run_dir / "results.json").exists()
    r = cli_in_process(*ARGS, f"--run_dir={run_dir}", "--resume=True")
    assert r.returncode == 0, r.stderr
    assert f"{stage}: resuming from" in r.stderr
    same_result(reference, run_dir)


@pytest.mark.slow  # CLI runs: the reference run, an interrupted run and its resumption
def test_ctrl_c_stops_after_a_checkpoint_and_resume_finishes(reference, tmp_path):
    run_dir = tmp_path / "run"
    r = interrupted(run_dir, "int", "svdd_multi", 2)
    assert r.returncode == 130, r.stderr
    assert "--resume=True" in r.stderr and "stopped after epoch" in r.stderr
    r = cli_in_process(f"--run_dir={run_dir}", "--resume=True")  # the run folder's settings: no need to retype them
    assert r.returncode == 0, r.stderr
    same_result(reference, run_dir)


@pytest.mark.slow  # CLI runs: the reference run, kills and resumes
def test_existing_run_folder_needs_resume_and_the_same_settings(reference):
    r = cli_in_process(*ARGS, f"--run_dir={reference}")
    assert r.returncode == 2 and "already holds a run" in r.stderr and "--resume=True" in r.stderr
    r = cli_in_process(*ARGS, "--svdd.nu=0.2", f"--run_dir={reference}", "--resume=True")
    assert r.returncode == 2 and "svdd.nu: 0.1 -> 0.2" in r.stderr
    r = cli_in_process(*ARGS, f"--run_dir={reference.parent / 'none'}", "--resume=True")
    assert r.returncode == 2 and "no run to resume" in r.stderr
    assert not (reference.parent / "none").exists()  # refused before anything was created


def test_damaged_checkpoints(tmp_path):
    folder = RunFolder(tmp_path)
    folder.checkpoints.mkdir(parents=True)
    save_checked(folder.checkpoints / "pretrain_checkpoint_9.pt", {"x": torch.ones(2)})
    (folder.checkpoints / "pretrain_checkpoint_18.pt").write_bytes(b"\x80\x02truncated")
    with pytest.warns(UserWarning, match="skipped damaged checkpoint"):
        path, state = folder.load_latest_checkpoint("pretrain")
    assert path.name == "pretrain_checkpoint_9.pt" and torch.equal(state["x"], torch.ones(2))
    (folder.checkpoints / "pretrain_checkpoint_9.pt").write_bytes(b"garbage")
    with pytest.raises(RunFolderError, match="every checkpoint of pretrain"):
        folder.load_latest_checkpoint("pretrain")


def test_diverging_loss_stops_naming_stage_and_epoch_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(64, 16)
    ae = build_autoencoder("mlp", (16,), rep_dim=4, hidden=(8,))
    # a sane first epoch, then a learning rate of 1e37
    opt = OptimConfig(epochs=4, lr=1e-3, milestones=(1,), gamma=1e40, batch_size=16)
    folder = RunFolder(tmp_path)
    match = r"pretrain: the loss of epoch 2 is (nan|inf).*checkpoint is that of epoch 1"
    with pytest.raises(TrainingDiverged, match=match):
        pretrain(ae, x, opt, seed=0, harness=RunHarness(run=folder))
    assert [p.name for p in folder.checkpoints_of("pretrain")] == ["pretrain_checkpoint_4.pt"]  # epoch 1 only


def test_collapse_is_reported():
    encoder = nn.Linear(16, 4, bias=False)
    nn.init.zeros_(encoder.weight)  # maps everything onto the centre
    labels = torch.zeros(32, dtype=torch.long)
    with pytest.warns(UserWarning, match="collapsed"):
        train_svdd(
            encoder,
            torch.rand(32, 16),
            labels,
            SVDDConfig(epochs=2, warmup_epochs=1, eps=0.0, batch_size=8),
            seed=0,
            stage="svdd_multi",
        )


def test_nan_in_training_data_is_refused_before_training():
    from toolkit import MultiRadiusDeepSVDD

    x = np.random.rand(50, 64).astype(np.float32)
    x[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MultiRadiusDeepSVDD(device="cpu").fit(x)


def test_image_shape_not_matching_the_net_is_refused():
    from toolkit import ConfigError, MultiRadiusDeepSVDD

    with pytest.raises(ConfigError, match=r"net.arch=lenet28 takes images of shape \(1, 28, 28\)"):
        MultiRadiusDeepSVDD(device="cpu", **{"net.arch": "lenet28"}).fit(np.zeros((10, 64), np.float32))


@pytest.mark.slow  # CLI runs: the reference run, kills and resumes
def test_no_half_written_artifacts(reference):
    assert not [p for p in reference.rglob("*.tmp")]
    os.stat(reference / "results.json")
