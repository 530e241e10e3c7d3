"""Fault injection: damaged artifacts are refused or skipped (never trusted), a user's mistake is one line
with exit status 2, a full disk keeps what was written and the run resumable, a run folder takes one run at
a time, and a run killed at random points resumes to the uninterrupted result."""

import errno
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import cli_in_process
from sklearn.datasets import load_digits
from test_resilience import ARGS, HARNESS, interrupted, same_result

from toolkit import MultiRadiusDeepSVDD, files
from toolkit.__main__ import main
from toolkit.config import OptimConfig
from toolkit.detector import DetectorFileError
from toolkit.files import ChecksumError, UncheckedFileError, load_checked, save_checked
from toolkit.handlers import CheckedDiskSaver
from toolkit.nets import build_autoencoder
from toolkit.recipes_loader import default_recipe, load_recipe
from toolkit.report import ReportError, write_report
from toolkit.run import RunHarness
from toolkit.runfolder import RunFolder, RunFolderError
from toolkit.stages import pretrain


def flip(path, at=0.5, n=3):
    """Flip ``n`` bytes in the middle of ``path`` (a bit rot, a bad copy)."""
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    for k in range(i, i + n):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def run_main(capsys):
    """``python -m toolkit ARGV`` in this process: (exit status, stderr); the CLI's log handler and warning
    format are put back afterwards."""
    log = logging.getLogger("toolkit")
    handlers, level, fmt = list(log.handlers), log.level, warnings.formatwarning

    def call(*argv):
        capsys.readouterr()
        code = main(list(map(str, argv)))
        err = capsys.readouterr().err
        return code, err

    yield call
    log.handlers[:], warnings.formatwarning = handlers, fmt
    log.setLevel(level)


def one_line_error(err):
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------------------------- checksums


def test_a_checked_file_carries_its_digest_and_a_flipped_copy_alone_is_refused(tmp_path):
    p = save_checked(tmp_path / "a.pt", {"x": torch.arange(1000.0)})
    assert sorted(tmp_path.iterdir()) == [p]  # one file: nothing has to travel with it
    copy = tmp_path / "copied" / "a.pt"
    copy.parent.mkdir()
    copy.write_bytes(p.read_bytes())
    assert torch.equal(load_checked(copy)["x"], torch.arange(1000.0))
    flip(copy)
    with pytest.raises(ChecksumError, match=r"a\.pt does not match the SHA-256 digest it carries") as e:
        load_checked(copy)
    assert "\n" not in str(e.value) and not list(tmp_path.rglob("*.tmp"))
    assert torch.load(p, weights_only=True)["format"] == files.CHECKED_FORMAT  # tensors and plain values only


def test_files_without_a_digest_are_refused_in_one_line(tmp_path):
    torch.save({"x": torch.ones(2)}, tmp_path / "old.pt")  # as an older version wrote its files
    with pytest.raises(UncheckedFileError, match=r"old\.pt carries no SHA-256 digest .*older version") as e:
        load_checked(tmp_path / "old.pt")
    assert "\n" not in str(e.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ChecksumError, match=r"empty\.pt cannot be read whole"):
        load_checked(tmp_path / "empty.pt")


def test_checked_json_and_npz_files_carry_their_digests_inside(tmp_path):
    obj = {"multi": {"radii": [0.5, 0.25], "test_auroc": None}, "name": "digits"}
    p = files.write_json(tmp_path / "results.json", obj, checked=True)
    assert json.loads(p.read_text())["sha256"] and files.read_json_checked(p) == obj
    files.write_json(p, {"sizes": {2: 1, 10: 2, "a": (3, 4)}}, checked=True)  # read back as JSON has them
    assert files.read_json_checked(p) == {"sizes": {"2": 1, "10": 2, "a": [3, 4]}}
    files.write_json(p, obj, checked=True)
    p.write_text(p.read_text().replace("0.25", "0.35"))  # a changed digit still parses
    with pytest.raises(ChecksumError, match=r"results\.json does not match the SHA-256 digest it carries"):
        files.read_json_checked(p)
    p.write_text(json.dumps(obj))
    with pytest.raises(UncheckedFileError, match="carries no SHA-256 digest"):
        files.read_json_checked(p)
    z = files.savez_checked(tmp_path / "scores.npz", multi_score=np.arange(50.0), labels=np.arange(50))
    assert set(files.load_npz_checked(z)) == {"multi_score", "labels"}
    np.savez(z, multi_score=np.arange(50.0) + 1, labels=np.arange(50))
    with pytest.raises(UncheckedFileError, match=r"scores\.npz carries no SHA-256 digest"):
        files.load_npz_checked(z)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["results.json", "scores.npz"]


def test_a_flipped_checkpoint_is_skipped_for_the_previous_one(tmp_path):
    folder = RunFolder(tmp_path)
    saver = CheckedDiskSaver(str(folder.checkpoints), create_dir=True, require_empty=False, atomic=True)
    for step in (9, 18):
        saver({"x": torch.full((100,), float(step))}, f"pretrain_checkpoint_{step}.pt")
    assert sorted(p.name for p in folder.checkpoints.iterdir()) == [
        "pretrain_checkpoint_18.pt",
        "pretrain_checkpoint_9.pt",
    ]
    flip(folder.checkpoints / "pretrain_checkpoint_18.pt")
    with pytest.warns(UserWarning, match=r"skipped damaged checkpoint\(s\) pretrain_checkpoint_18\.pt .*digest"):
        path, state = folder.load_latest_checkpoint("pretrain")
    assert path.name == "pretrain_checkpoint_9.pt" and torch.equal(state["x"], torch.full((100,), 9.0))


def test_every_checkpoint_damaged_is_one_message_saying_what_to_do(tmp_path):
    folder = RunFolder(tmp_path)
    folder.checkpoints.mkdir(parents=True)
    for step in (9, 18):  # empty files: torch.load's error has no message at all
        (folder.checkpoints / f"svdd_multi_checkpoint_{step}.pt").write_bytes(b"")
    with pytest.raises(RunFolderError, match="every checkpoint of svdd_multi") as e:
        folder.load_latest_checkpoint("svdd_multi")
    assert "delete svdd_multi_checkpoint_* there and resume" in str(e.value)


def test_a_damaged_stage_file_is_refused_saying_delete_and_resume(tmp_path):
    folder = RunFolder(tmp_path)
    folder.save_stage("pretrain", {"w": torch.arange(500.0)})
    assert torch.equal(folder.load_stage("pretrain")["w"], torch.arange(500.0))
    flip(folder.stage_path("pretrain"))
    with pytest.raises(RunFolderError, match=r"pretrain\.pt is damaged .*delete it and resume"):
        folder.load_stage("pretrain")
    torch.save({"w": torch.arange(500.0)}, folder.stage_path("pretrain"))  # as an older version wrote it
    with pytest.raises(RunFolderError, match=r"carries no SHA-256 digest.*start a new run in another --run_dir"):
        folder.load_stage("pretrain")


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint_and_resumes(tmp_path, monkeypatch):
    """ENOSPC on the third checkpoint (Ignite has removed the oldest of the two kept by then): the second
    is intact, no temporary file is left, and resuming ends where an uninterrupted run ends."""
    x = torch.rand(64, 16, generator=torch.Generator().manual_seed(0))
    opt = OptimConfig(epochs=6, lr=1e-3, batch_size=16)

    def train(folder, resume):
        torch.manual_seed(0)
        ae = build_autoencoder("mlp", (16,), rep_dim=4, hidden=(8,))
        pretrain(ae, x, opt, seed=0, harness=RunHarness(run=folder, resume=resume))
        return ae

    reference = train(RunFolder(tmp_path / "ref"), False)
    folder = RunFolder(tmp_path / "run")
    real = files.atomic_write

    def full_disk(path, write):
        if str(path).endswith("_checkpoint_12.pt"):  # the third: 4 batches an epoch
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, write)

    monkeypatch.setattr(files, "atomic_write", full_disk)
    with pytest.raises(OSError) as e:
        train(folder, False)
    assert e.value.errno == errno.ENOSPC
    monkeypatch.setattr(files, "atomic_write", real)
    assert [p.name for p in folder.checkpoints_of("pretrain")] == ["pretrain_checkpoint_8.pt"]
    assert not list(folder.path.rglob("*.tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # intact: no damaged checkpoint skipped
        assert folder.load_latest_checkpoint("pretrain")[0].name == "pretrain_checkpoint_8.pt"
    resumed = train(folder, True)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_full_disk_is_one_line_saying_what_was_kept(run_main, monkeypatch, tmp_path):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "stages" / "pretrain.pt"))

    monkeypatch.setattr("toolkit.run.run", full)
    code, err = run_main(f"--run_dir={tmp_path / 'run'}")
    line = one_line_error(err)
    assert code == 2 and "the disk is full writing" in line and "pretrain.pt" in line
    assert "kept" in line and "--resume=True" in line


# --------------------------------------------------------------------------------------------- run folders


def test_run_dir_that_is_a_file_is_one_line(run_main, tmp_path):
    (tmp_path / "f").write_text("x")
    code, err = run_main(f"--run_dir={tmp_path / 'f'}")
    assert code == 2 and "is a file, not a folder" in one_line_error(err)


def test_damaged_config_json_is_one_line(run_main, tmp_path):
    from toolkit.overrides import apply_overrides

    RunFolder(tmp_path).start(apply_overrides(load_recipe("digits"), {"run_dir": str(tmp_path)}), resume=False)
    p = tmp_path / "config.json"
    p.write_text(p.read_text().replace('"epochs": 60', '"epochs": 61', 1))  # still valid JSON, and settings
    code, err = run_main(f"--run_dir={tmp_path}", "--resume=True")
    line = one_line_error(err)
    assert code == 2 and "config.json is damaged" in line and "does not match its digest" in line
    assert "another --run_dir" in line
    p.write_text('{"name": "digits", "seed": ')
    files.digest_path(p).unlink()  # as an older version wrote it, and cut short
    code, err = run_main(f"--run_dir={tmp_path}", "--resume=True")
    line = one_line_error(err)
    assert code == 2 and "no digest file" in line and "start a new run in another --run_dir" in line


def test_a_runs_config_json_holds_settings_only_and_replays(tmp_path):
    from toolkit.overrides import apply_overrides

    cfg = apply_overrides(load_recipe("digits"), {"svdd.epochs": 3, "run_dir": str(tmp_path)})
    RunFolder(tmp_path).start(cfg, resume=False)
    assert load_recipe(str(tmp_path / "config.json")).svdd.epochs == 3  # no key but settings
    assert RunFolder(tmp_path).saved_config().svdd.epochs == 3


def test_a_locked_run_folder_is_refused_naming_the_holder(run_main, tmp_path):
    holder = RunFolder(tmp_path)
    holder.lock()
    try:
        code, err = run_main(f"--run_dir={tmp_path}")
    finally:
        holder.unlock()
    line = one_line_error(err)
    assert code == 2 and f"in use by another run (pid {os.getpid()} on " in line
    assert not (tmp_path / "config.json").exists()  # refused before anything was written


def test_resume_takes_the_run_folders_settings_and_refuses_model_changes(tmp_path):
    from toolkit.__main__ import resume_config
    from toolkit.overrides import apply_overrides

    started = apply_overrides(load_recipe("digits"), {"svdd.epochs": 3, "run_dir": str(tmp_path)})
    RunFolder(tmp_path).start(started, resume=False)
    cfg = apply_overrides(load_recipe("digits"), {"resume": True, "run_dir": str(tmp_path)})
    cfg = resume_config(cfg, {"resume": True, "run_dir": str(tmp_path), "eval_every": 0})
    assert cfg.svdd.epochs == 3 and cfg.eval_every == 0 and cfg.resume  # no need to retype --svdd.epochs=3
    RunFolder(tmp_path).check(cfg, resume=True)  # a run setting may change
    for change in ({"svdd.epochs": 4}, {"seed": 1}, {"data.normal_classes": [0, 1]}):
        with pytest.raises(RunFolderError, match="other model or data settings"):
            RunFolder(tmp_path).check(apply_overrides(cfg, change), resume=True)


# --------------------------------------------------------------------------------------------- detector files


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    """A run folder holding a tiny fitted digits detector and its config.json."""
    d = load_digits()
    cfg = load_recipe(default_recipe())
    det = MultiRadiusDeepSVDD(cfg, device="cpu", **{"pretrain.epochs": 1, "svdd.epochs": 1, "svdd.warmup_epochs": 1})
    det.fit(d.data[np.isin(d.target, (0, 1))].astype(np.float32))
    out = tmp_path_factory.mktemp("detector")
    det.save(out / "detector_multi.pt")
    (out / "config.json").write_text(json.dumps({"data": {"root": str(out)}}))
    return out


@pytest.mark.slow  # a (tiny) fit
def test_damaged_or_incomplete_detector_files_are_refused(detector_dir, tmp_path):
    good = detector_dir / "detector_multi.pt"
    p = tmp_path / "d.pt"
    p.write_bytes(good.read_bytes())
    MultiRadiusDeepSVDD.load(p)
    p.write_bytes(b"")
    with pytest.raises(DetectorFileError, match="cannot be read whole.*refit the detector and save it again"):
        MultiRadiusDeepSVDD.load(p)
    payload = load_checked(good)
    torch.save(payload, p)  # whole, but as an older version wrote it: without its digest
    with pytest.raises(DetectorFileError, match="carries no SHA-256 digest.*refit the detector with this version"):
        MultiRadiusDeepSVDD.load(p)
    del payload["scorer"]
    save_checked(p, payload)
    with pytest.raises(DetectorFileError, match="lacks scorer.*refit the detector"):
        MultiRadiusDeepSVDD.load(p)


@pytest.mark.slow  # a (tiny) fit
def test_a_detector_file_copied_alone_is_verified_and_refused_when_damaged(detector_dir, tmp_path):
    p = tmp_path / "copied.pt"
    p.write_bytes((detector_dir / "detector_multi.pt").read_bytes())  # the file alone, nothing beside it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: loaded without a warning
        det = MultiRadiusDeepSVDD.load(p)
    assert det.decision_function(np.zeros((2, 64), np.float32)).shape == (2,)
    flip(p, at=0.6, n=1)  # one byte, inside the nets' weights
    with pytest.raises(DetectorFileError) as e:
        MultiRadiusDeepSVDD.load(p)
    message = str(e.value)
    assert "copied.pt does not match the SHA-256 digest it carries" in message and "\n" not in message
    assert "refit the detector and save it again, or copy an intact file" in message


# --------------------------------------------------------------------------------------------- score


@pytest.mark.slow  # a (tiny) fit
def test_bad_score_inputs_are_one_line_and_leave_no_output(detector_dir, tmp_path, run_main):
    out = tmp_path / "scores.csv"
    text = tmp_path / "text.npy"
    text.write_text("1,2,3\n")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([1, "a", None], dtype=object), allow_pickle=True)
    images = tmp_path / "images"
    images.mkdir()
    (images / "fake.png").write_text("not an image")
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((3, 1, 28, 28), np.float32))
    cases = {
        text: "is not a .npy array of numbers",
        objects: "is not a .npy array of numbers",
        images: "fake.png is not a readable image",
        wide: "this detector takes (64,)",
    }
    for source, expected in cases.items():
        code, err = run_main("score", detector_dir, source, f"--out={out}")
        assert code == 2 and expected in one_line_error(err), (source, err)
        assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    code, err = run_main("score", detector_dir, wide, f"--out={tmp_path / 'missing' / 'scores.csv'}")
    assert code == 2 and "folder" in one_line_error(err) and "does not exist" in err
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow  # a (tiny) fit
def test_scoring_a_data_set_of_another_shape_is_one_line(detector_dir, tmp_path, run_main, monkeypatch):
    import torchvision

    class FakeMNIST:  # what torchvision.datasets.MNIST holds, without the download
        def __init__(self, root, train, download):
            self.data = torch.zeros((5, 28, 28), dtype=torch.uint8)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    out = tmp_path / "scores.csv"
    code, err = run_main("score", detector_dir, "mnist:test", f"--out={out}")
    line = one_line_error(err)
    assert code == 2 and "mnist:test" in line and "(1, 28, 28)" in line and "(64,)" in line
    assert not out.exists()


@pytest.mark.slow  # a (tiny) fit
def test_full_disk_while_scoring_leaves_no_output(detector_dir, tmp_path, run_main, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((5, 64), np.float32))
    out = tmp_path / "scores.csv"

    class FullDisk:  # the CSV file: its third write finds the disk full
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, text):
            self.writes += 1
            if self.writes > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("toolkit.score.open", lambda *a, **k: FullDisk(open(*a, **k)), raising=False)
    code, err = run_main("score", detector_dir, tmp_path / "x.npy", f"--out={out}", "--batch_size=2")
    line = one_line_error(err)
    assert code == 2 and "the disk is full" in line and "no output file was left behind" in line
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


# --------------------------------------------------------------------------------------------- report


def test_report_never_writes_through_a_symlink(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "roc.png").symlink_to(outside)
    with pytest.raises(ReportError, match=r"roc\.png is a symbolic link"):
        write_report(run_dir)
    assert outside.read_bytes() == b"keep me"


def test_the_reports_arrays_carry_digests_and_damaged_ones_are_refused(reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    assert not list(run_dir.rglob("*.pt.sha256")) and not list(run_dir.rglob("*.npz.sha256"))
    for name in ("scores.npz", "embeddings.npz", "extremes.npz"):
        assert files.load_npz_checked(run_dir / name)  # written with its digest inside, and intact
    files.read_json_checked(run_dir / "results.json")
    data = bytearray((run_dir / "scores.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run_dir / "scores.npz").write_bytes(bytes(data))
    with pytest.raises(ReportError, match=r"scores\.npz is damaged \(.*(digest|cannot be read whole)"):
        write_report(run_dir, projection="pca")
    arrays = dict(np.load(reference / "scores.npz"))
    del arrays["sha256"]
    np.savez(run_dir / "scores.npz", **arrays)  # intact arrays, but no digest: as an older version wrote them
    with pytest.raises(ReportError, match=r"scores\.npz carries no SHA-256 digest .*start a new run"):
        write_report(run_dir, projection="pca")


def test_atomic_write_never_writes_through_a_planted_temporary_link(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.write_text("keep me")
    (tmp_path / "a.txt.0.tmp").symlink_to(outside)
    names = iter(["0", "1"])  # the first temporary name drawn is the planted link's
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    files.atomic_write(tmp_path / "a.txt", lambda p: p.write_text("new"))
    assert outside.read_text() == "keep me" and (tmp_path / "a.txt").read_text() == "new"


def test_two_writers_of_one_path_each_rename_a_whole_file_and_a_users_tmp_file_is_kept(tmp_path):
    (tmp_path / "out.csv.tmp").write_text("my notes")
    seen = []

    def first(p):  # the second writer starts and finishes while the first is half-way
        p.write_text("first, half")
        files.atomic_write(tmp_path / "out.csv", lambda q: seen.append(q) or q.write_text("second\n"))
        p.write_text("first\n")

    files.atomic_write(tmp_path / "out.csv", first)
    assert (tmp_path / "out.csv").read_text() == "first\n" and seen[0].name.startswith("out.csv.")
    assert (tmp_path / "out.csv.tmp").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.csv.tmp"]  # no temporary file left


# --------------------------------------------------------------------------------------------- whole runs


@pytest.mark.slow  # CLI runs: the reference run, a killed run and its resumption
def test_a_flipped_checkpoint_is_skipped_and_the_resumed_run_ends_identical(reference, tmp_path):
    run_dir = tmp_path / "run"
    r = interrupted(run_dir, "kill", "svdd_multi", 3)
    assert r.returncode == -signal.SIGKILL, r.stderr
    newest, previous = RunFolder(run_dir).checkpoints_of("svdd_multi")
    flip(newest)
    r = cli_in_process(f"--run_dir={run_dir}", "--resume=True")
    assert r.returncode == 0, r.stderr
    assert f"skipped damaged checkpoint(s) {newest.name}" in r.stderr and f"resuming from {previous.name}" in r.stderr
    same_result(reference, run_dir)


@pytest.mark.slow  # CLI runs: the reference run, a run on a full disk and its resumption
def test_full_disk_during_a_run_is_one_line_and_resumable(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    save, written = CheckedDiskSaver._save_func, []

    def full_after_two(self, checkpoint, path, func):  # the third checkpoint of svdd_multi finds the disk full
        if len(written) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        save(self, checkpoint, path, func)
        if path.name.startswith("svdd_multi_checkpoint_"):
            written.append(path.name)

    with monkeypatch.context() as m:
        m.setattr(CheckedDiskSaver, "_save_func", full_after_two)
        r = cli_in_process(*ARGS, f"--run_dir={run_dir}")
    assert r.returncode == 2, r.stderr
    line = one_line_error(r.stderr)
    assert "the disk is full" in line and "svdd_multi_checkpoint_" in line and "--resume=True" in line
    assert not list(run_dir.rglob("*.tmp"))
    r = cli_in_process(f"--run_dir={run_dir}", "--resume=True")
    assert r.returncode == 0, r.stderr
    assert "svdd_multi: resuming from" in r.stderr and "skipped" not in r.stderr
    same_result(reference, run_dir)


@pytest.mark.slow  # CLI runs: one holding the folder, one refused
def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-c", HARNESS, "hold", "pretrain", "1", *ARGS, f"--run_dir={run_dir}"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout.readline().strip() == "holding"  # the first is inside pretraining, holding the lock
        for extra in ([], ["--resume=True"]):
            r = cli_in_process(*ARGS, f"--run_dir={run_dir}", *extra)
            assert r.returncode == 2 and f"in use by another run (pid {first.pid} on " in one_line_error(r.stderr)
    finally:
        first.kill()
        first.wait()
    r = cli_in_process(f"--run_dir={run_dir}", "--resume=True")  # the OS released the killed run's lock
    assert r.returncode == 0, r.stderr


@pytest.mark.slow  # CLI runs: the reference run, then a run killed three times and resumed each time
def test_seeded_kills_and_resumes_end_identical_to_the_uninterrupted_run(reference, tmp_path):
    rng = random.Random(0)
    run_dir = tmp_path / "run"
    resume: list[str] = []
    for _ in range(3):  # SIGKILL right after a random checkpoint of whatever stage is running
        r = interrupted(run_dir, "kill", "*", rng.randint(1, 4), *resume)
        assert r.returncode == -signal.SIGKILL, r.stderr
        if resume:
            assert "resuming from" in r.stderr  # continued, not started over
        resume = ["--resume=True"]
    r = cli_in_process(f"--run_dir={run_dir}", "--resume=True")
    assert r.returncode == 0, r.stderr
    same_result(reference, run_dir)
    assert not list(run_dir.rglob("*.tmp"))
