"""What a user's slip must never do: a misspelled option is refused before a verb reads or writes anything,
nothing in a run folder is written through a symbolic link, a replayed config.json is checked as overrides
are, and each mistake or fault is one line (``error: ...``, exit status 2), never a traceback, leaving
nothing half-made behind."""

import errno
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import cli_in_process
from sklearn.datasets import load_digits
from torch.multiprocessing import ProcessExitedException

from toolkit import MultiRadiusDeepSVDD, files
from toolkit.overrides import apply_overrides
from toolkit.recipes_loader import dumps, load_recipe
from toolkit.runfolder import RunFolder

# a tiny run on the digits: enough to reach the end of a run, fast
TINY = [
    "--pretrain.epochs=1",
    "--svdd.epochs=1",
    "--svdd.warmup_epochs=1",
    "--baseline=False",
    "--score.single=0",
    "--eval_every=0",
    "--monitor.projector_samples=50",
    "--monitor.extremes=4",
    "--progress=none",
]


def one_line_error(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder holding a tiny fitted digits detector (detector_multi.pt) and its config.json."""
    d = load_digits()
    cfg = load_recipe("digits")
    det = MultiRadiusDeepSVDD(cfg, device="cpu", **{"pretrain.epochs": 1, "svdd.epochs": 1, "svdd.warmup_epochs": 1})
    det.fit(d.data[np.isin(d.target, (0, 1))].astype(np.float32))
    out = tmp_path_factory.mktemp("run")
    det.save(out / "detector_multi.pt")
    (out / "config.json").write_text(dumps(cfg))
    return out


@pytest.fixture
def rows(tmp_path):
    """40 digits as a .npy file."""
    path = tmp_path / "x.npy"
    np.save(path, load_digits().data.astype(np.float32)[:40])
    return path


def started(run: pathlib.Path) -> None:
    """``run`` as a run folder holding a started run (its config.json), to resume."""
    RunFolder(run).start(apply_overrides(load_recipe("digits"), {"run_dir": str(run)}), resume=False)


# --------------------------------------------------------------------------------------------- options


@pytest.mark.slow  # a (tiny) fit
def test_a_misspelled_option_is_refused_before_any_file_is_touched(run_dir, rows, tmp_path, monkeypatch):
    out = tmp_path / "x.csv"
    r = cli_in_process("score", run_dir, rows, f"--out={out}", "--modle=single")
    assert "unknown option --modle; did you mean --model?" in one_line_error(r)
    assert not out.exists()
    monkeypatch.chdir(tmp_path)  # --output is no option: the default scores.csv must stay as it is
    pathlib.Path("scores.csv").write_text("mine\n")
    r = cli_in_process("score", run_dir, rows, "--output=mine.csv")
    assert "unknown option --output; did you mean --out?" in one_line_error(r)
    assert pathlib.Path("scores.csv").read_text() == "mine\n" and not pathlib.Path("mine.csv").exists()
    r = cli_in_process("export", run_dir, "--modle=single", f"--out={tmp_path / 's.pt'}")
    assert "unknown option --modle; did you mean --model?" in one_line_error(r)
    assert not (tmp_path / "s.pt").exists() and not list(run_dir.glob("*.torchscript.pt"))
    before = sorted(p.name for p in run_dir.iterdir())
    for argv, expected in (
        (["report", run_dir, "--projektion=pca"], "did you mean --projection?"),
        (["report", run_dir, "--projection=umap"], "accepted: tsne, pca"),
        (["score", run_dir, rows, "--batch_size=many"], "expected an integer"),
        (["score", run_dir, rows, "--model=both"], "accepted: multi, single"),
        (["score", run_dir, rows, "--out=a.csv", "--out=b.csv"], "given twice"),
        (["score", run_dir], "INPUT missing"),
        (["plugins", "--verbose"], "it takes no options"),
    ):
        r = cli_in_process(*argv)
        assert expected in one_line_error(r) and r.stdout == "", argv
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_runs_extra_argument_is_refused_before_the_run_folder_is_made(tmp_path):
    r = cli_in_process("digits", "mnist", f"--run_dir={tmp_path / 'run'}")
    assert "unexpected argument 'mnist'" in one_line_error(r)
    r = cli_in_process("--svdd.epoch=3", f"--run_dir={tmp_path / 'run'}")
    assert "did you mean --svdd.epochs" in one_line_error(r)
    assert not (tmp_path / "run").exists()


def test_a_verbs_extra_argument_is_refused_not_read_as_an_option(run_dir, rows):
    for args in (
        ["score", str(run_dir), str(rows), "extra"],
        ["export", str(run_dir), "a"],
        ["report", str(run_dir), "b"],
    ):
        assert f"{args[0]}: unexpected argument '{args[-1]}'" in one_line_error(cli_in_process(*args))


def test_a_run_folder_without_the_detector_asked_for_says_why(run_dir, rows, tmp_path):
    (tmp_path / "a-file").write_text("x")
    started(tmp_path / "unfinished")
    finished = tmp_path / "finished"  # a finished run made with --baseline=False
    finished.mkdir()
    (finished / "detector_multi.pt").write_bytes((run_dir / "detector_multi.pt").read_bytes())
    (finished / "results.json").write_text("{}")
    cases = [
        (tmp_path / "missing", "multi", "does not exist"),
        (tmp_path / "a-file", "multi", "is a file, not a run folder"),
        (tmp_path / "unfinished", "multi", "has not finished (no results.json): continue it with"),
        (finished, "single", "has no one-sphere detector: the run was made with --baseline=False"),
    ]
    for folder, model, message in cases:
        for verb in (["score", str(folder), str(rows), f"--out={tmp_path / 's.csv'}"], ["export", str(folder)]):
            assert message in one_line_error(cli_in_process(*verb, f"--model={model}"))
    r = cli_in_process("export", str(run_dir), f"--out={tmp_path}")
    assert "is a folder; pass the path of the file to write" in one_line_error(r)
    assert "is a file, not a run folder" in one_line_error(cli_in_process("report", str(tmp_path / "a-file")))


@pytest.mark.parametrize("verb", ["score", "report", "export", "plugins"])
def test_a_verbs_help_is_its_usage_and_what_it_does(verb):
    r = cli_in_process(verb, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m toolkit {verb}"), r.stdout
    assert "INFO" not in r.stdout + r.stderr and "Showing help" not in r.stdout + r.stderr


def test_help_into_a_closed_pipe_is_quiet():
    """``python -m toolkit --help | head -1``: the reader goes away before the help is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([sys.executable, "-m", "toolkit", "--help"], stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr and r.stderr == "", r.stderr


# --------------------------------------------------------------------------------------------- links


def test_a_linked_lock_is_refused_and_what_it_points_at_is_untouched(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    run = tmp_path / "run"
    started(run)
    (run / "lock").symlink_to(outside)
    for extra in (["--resume=True"], []):
        r = cli_in_process(f"--run_dir={run}", *extra)
        assert f"{run / 'lock'} is a symbolic link" in one_line_error(r)
        assert outside.read_text() == "keep me\n"
    fresh = tmp_path / "fresh"  # a folder holding nothing but the link
    fresh.mkdir()
    (fresh / "lock").symlink_to(outside)
    r = cli_in_process(f"--run_dir={fresh}", *TINY)
    assert "lock is a symbolic link" in one_line_error(r)
    assert outside.read_text() == "keep me\n" and sorted(p.name for p in fresh.iterdir()) == ["lock"]


@pytest.mark.parametrize("name", ["projector_config.pbtxt", "00000", "checkpoints", "results.json"])
def test_a_link_in_the_run_folder_is_refused_before_anything_is_written(tmp_path, name):
    outside = tmp_path / "outside"
    if name in ("00000", "checkpoints"):
        outside.mkdir()
    else:
        outside.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(outside)
    r = cli_in_process(f"--run_dir={run}", *TINY)
    assert f"{run / name} is a symbolic link" in one_line_error(r)
    assert sorted(p.name for p in run.iterdir()) == [name]  # no config.json, no lock left
    started(run / "resumed")
    (run / "resumed" / name).symlink_to(outside)
    r = cli_in_process(f"--run_dir={run / 'resumed'}", "--resume=True")
    assert f"{name} is a symbolic link" in one_line_error(r)
    assert (list(outside.iterdir()) == []) if outside.is_dir() else outside.read_text() == "keep me\n"


@pytest.mark.slow  # a (tiny) run
def test_a_link_made_during_a_run_is_refused_before_the_projector_writes(tmp_path, monkeypatch):
    from toolkit.run import RunStore

    outside = tmp_path / "outside"
    outside.mkdir()
    run = tmp_path / "run"
    record = RunStore.record

    def plant(self, stage, payload):  # the projector's folder linked away while training runs
        record(self, stage, payload)
        if not (run / "00000").is_symlink():
            (run / "00000").symlink_to(outside)

    monkeypatch.setattr(RunStore, "record", plant)
    r = cli_in_process(f"--run_dir={run}", *TINY)
    assert f"{run / '00000'} is a symbolic link" in one_line_error(r)
    assert list(outside.iterdir()) == [] and not (run / "projector_config.pbtxt").exists()


# --------------------------------------------------------------------------------------------- score


@pytest.mark.slow  # a (tiny) fit
def test_nan_rows_are_named_by_their_row_in_the_file_or_scored_as_anomalies(run_dir, tmp_path):
    x = load_digits().data.astype(np.float32)[:40]
    x[37, 5] = np.nan
    np.save(tmp_path / "nan.npy", x)
    out = tmp_path / "s.csv"
    r = cli_in_process("score", run_dir, tmp_path / "nan.npy", f"--out={out}", "--batch_size=16")
    line = one_line_error(r)
    assert "first in row 37)" in line and "--non_finite=anomaly" in line and not out.exists()
    r = cli_in_process(
        "score", run_dir, tmp_path / "nan.npy", f"--out={out}", "--batch_size=16", "--non_finite=anomaly"
    )
    assert r.returncode == 0, r.stderr
    last = out.read_text().splitlines()[1 + 37].split(",")
    assert last == ["37", "inf", "1", "-1"]
    r = cli_in_process("score", run_dir, tmp_path / "nan.npy", f"--out={out}", "--non_finite=skip")
    assert "accepted: raise, anomaly" in one_line_error(r)


@pytest.mark.slow  # a (tiny) fit
def test_an_output_that_may_not_be_written_is_one_line(run_dir, rows, tmp_path, monkeypatch):
    def refused(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("toolkit.score.open", refused, raising=False)
    r = cli_in_process("score", run_dir, rows, f"--out={tmp_path / 's.csv'}")
    line = one_line_error(r)
    assert "Permission denied" in line and "--out" in line and not list(tmp_path.glob("s.csv*"))


@pytest.mark.slow  # a (tiny) fit
def test_export_on_a_full_disk_leaves_nothing_behind(run_dir, tmp_path, full_disk):
    r = cli_in_process("export", run_dir, f"--out={tmp_path / 'scorer.pt'}")
    line = one_line_error(r)
    assert "the disk is full" in line and "no file was left behind" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a (tiny) fit
def test_a_file_of_python_objects_is_refused_without_torchs_advice_to_load_it_anyway(run_dir, rows, tmp_path):
    from toolkit.detector import DetectorFileError

    foreign = tmp_path / "run"
    foreign.mkdir()
    files.save_checked(foreign / "detector_multi.pt", {"format": 1, "x": pathlib.PurePosixPath("a")})
    with pytest.raises(DetectorFileError) as e:
        MultiRadiusDeepSVDD.load(foreign / "detector_multi.pt")
    r = cli_in_process("score", foreign, rows, f"--out={tmp_path / 's.csv'}")
    for message in (str(e.value), one_line_error(r)):
        assert "PurePosixPath" in message and "other than tensors and plain values" in message
        assert "weights_only" not in message and "trust" not in message and "\x1b" not in message


# --------------------------------------------------------------------------------------------- runs


def test_a_run_folder_under_a_file_and_a_batch_too_small_are_one_line(tmp_path):
    (tmp_path / "somefile").write_text("x")
    r = cli_in_process(f"--run_dir={tmp_path / 'somefile' / 'sub'}", *TINY)
    assert "which is a file, not a folder" in one_line_error(r)
    r = cli_in_process("--pretrain.batch_size=1", f"--run_dir={tmp_path / 'run'}", *TINY)
    assert "batch normalisation" in one_line_error(r)
    r = cli_in_process("--backend=gloo", "--nproc_per_node=2", "--svdd.batch_size=3", f"--run_dir={tmp_path / 'run'}")
    assert "too small for 2 processes" in one_line_error(r)
    assert not (tmp_path / "run").exists()


def test_a_failed_start_leaves_no_folder_holding_only_its_lock(tmp_path):
    r = cli_in_process(f"--data.dataset={tmp_path / 'missing.npy'}", f"--run_dir={tmp_path / 'a' / 'b'}", *TINY)
    one_line_error(r)
    assert not (tmp_path / "a").exists()
    r = cli_in_process("--net.arch=lenet28", f"--run_dir={tmp_path / 'c'}", *TINY)  # no net for 8x8 digits
    assert "lenet28" in one_line_error(r)
    assert not (tmp_path / "c").exists()
    (tmp_path / "d").mkdir()  # a folder that was there stays, without a lock
    r = cli_in_process("--net.arch=lenet28", f"--run_dir={tmp_path / 'd'}", *TINY)
    one_line_error(r)
    assert (tmp_path / "d").is_dir() and list((tmp_path / "d").iterdir()) == []


def test_data_that_fit_would_refuse_are_one_line_and_leave_no_run(tmp_path):
    """Non-finite values, a 1-D array, too few rows for the settings and a score term that cannot measure
    the data (the pooled space of a table) are refused when the data are loaded, before the run folder is
    written, so the same command runs once the data or the settings are fixed."""
    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    np.save(tmp_path / "flat.npy", np.arange(10.0))
    cases = [
        ("table", f"--data.dataset={tmp_path / 'nan.npy'}", "NaN or infinite values in 1 of 40 rows (rows 3)"),
        ("table", f"--data.dataset={tmp_path / 'flat.npy'}", "has shape (10,): one row per sample is needed"),
        ("digits", "--score.knn=1", "score.knn_k=5000 neighbours besides each training row itself"),
        ("digits", "--score.centres_space=pooled", "score.centres_space=pooled averages images (C, H, W)"),
    ]
    for recipe, data, message in cases:
        extra = ["--score.knn_k=5000"] if data == "--score.knn=1" else []
        r = cli_in_process(recipe, data, *extra, f"--run_dir={tmp_path / 'run'}", *TINY)
        assert message in one_line_error(r)
        assert not (tmp_path / "run").exists()


def test_a_resume_removes_the_temporary_files_of_a_killed_writer_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    started(run)
    (run / "stages").mkdir()
    (run / "stages" / "pretrain.pt.0badc0de.tmp").write_bytes(b"half a file")  # a writer killed mid-write
    (run / "notes.tmp").write_text("mine")
    cfg = apply_overrides(load_recipe("digits"), {"run_dir": str(run)})
    folder = RunFolder(run)
    folder.lock()
    try:
        folder.start(cfg, resume=True)
    finally:
        folder.unlock()
    assert not (run / "stages" / "pretrain.pt.0badc0de.tmp").exists() and (run / "notes.tmp").read_text() == "mine"


def test_a_replayed_config_with_resume_resumes_the_run_it_belongs_to(tmp_path, monkeypatch):
    """Not the newest run of its name under runs/: the folder that holds the config.json."""
    started(tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    started(tmp_path / "runs" / "digits-20990101-000000")  # newer by name, another run
    r = cli_in_process(str(tmp_path / "a" / "config.json"), "--resume=True", "--pretrain.epochs=3")
    assert f"--resume: {tmp_path / 'a'} was started with other model or data settings" in one_line_error(r)


def test_a_ctrl_c_before_the_run_starts_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    """Not the advice to resume: a run stopped while its data load holds no run to resume."""
    import toolkit.run
    from toolkit.__main__ import main

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(toolkit.run, "load_split", stopped)
    assert main([f"--run_dir={tmp_path / 'run'}", *TINY]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "interrupted: before the run started: no run was written; run the command again"
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_may_not_be_written_is_one_line(tmp_path, monkeypatch):
    def refused(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.path / "lock"))

    monkeypatch.setattr(RunFolder, "_open_lock", refused)
    r = cli_in_process(f"--run_dir={tmp_path / 'run'}", *TINY)
    line = one_line_error(r)
    assert "Permission denied" in line and "--run_dir" in line and not (tmp_path / "run").exists()


def test_a_failing_clean_up_never_hides_the_first_error(tmp_path, monkeypatch):
    from ignite.contrib.handlers import TensorboardLogger

    from toolkit.data import DataError

    def fails(*args, **kwargs):
        raise DataError("the first error")

    def close_fails(self):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "events")

    monkeypatch.setattr(MultiRadiusDeepSVDD, "fit", fails)
    monkeypatch.setattr(TensorboardLogger, "close", close_fails)
    r = cli_in_process(f"--run_dir={tmp_path / 'run'}", *TINY)
    assert "the first error" in one_line_error(r)
    monkeypatch.setattr(pathlib.Path, "unlink", lambda self, missing_ok=False: close_fails(None))

    def write(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    with pytest.raises(PermissionError):  # the write's error, not the clean-up's
        files.atomic_write(tmp_path / "a.txt", write)


# --------------------------------------------------------------------------------------------- messages


def test_messages_are_cut_between_words():
    text = "it was damaged or changed after it was written"
    assert files.shorten(text, 100) == text
    assert files.shorten(text, 30) == "it was damaged or changed ..."
    e = files.ChecksumError(f"/{'x' * 120}/pretrain_checkpoint_18.pt does not match its checksum: {text}")
    short = files.describe(e, 160)
    assert len(short) <= 160 and short.endswith(" ...") and short[:-4] in str(e)
    assert str(e)[len(short) - 4] == " "  # the cut falls between two words


def test_checkpoint_warning_names_whole_words(tmp_path):
    folder = RunFolder(tmp_path / ("deep" * 20))
    folder.checkpoints.mkdir(parents=True)
    files.save_checked(folder.checkpoints / "pretrain_checkpoint_9.pt", {"x": torch.ones(1)})
    files.save_checked(folder.checkpoints / "pretrain_checkpoint_18.pt", {"x": torch.ones(1)})
    (folder.checkpoints / "pretrain_checkpoint_18.pt").write_bytes(b"changed")
    with pytest.warns(UserWarning) as warned:
        folder.load_latest_checkpoint("pretrain")
    message = str(warned[0].message)
    assert "skipped damaged checkpoint" in message and "wri)" not in message
    detail = message.split("(", 1)[1].rsplit(")", 1)[0]
    assert detail.endswith(" ...") or detail.endswith("written")


# --------------------------------------------------------------------------------------------- replays


def test_a_replayed_config_with_an_unknown_key_or_a_wrong_type_is_refused(tmp_path):
    saved = json.loads(dumps(load_recipe("digits")))
    cases = [
        (("svdd", "epocs", 3), "unknown setting 'svdd.epocs'; did you mean 'svdd.epochs'"),
        (("svdd", "epocs", 3), "(svdd takes: epochs, optimizer, lr, momentum, milestones, "),
        (("svdd", "epochs", 2.7), "svdd.epochs=2.7 has the wrong type: expected an integer"),
        (("", "baseline", "yes"), "baseline='yes' has the wrong type: expected a boolean"),
        (("data", "normal_classes", "0,1"), "data.normal_classes='0,1' has the wrong type"),
    ]
    for (section, key, value), expected in cases:
        d = json.loads(json.dumps(saved))
        (d[section] if section else d)[key] = value
        path = tmp_path / "cfg.json"
        path.write_text(json.dumps(d))
        r = cli_in_process(path, f"--run_dir={tmp_path / 'run'}", "--progress=none")
        line = one_line_error(r)
        assert expected in line and str(path) in line, line
    assert not (tmp_path / "run").exists()


def test_a_replayed_config_that_leaves_settings_out_says_which_take_the_toolkits_default(tmp_path):
    from toolkit.recipes_loader import replay

    saved = json.loads(dumps(load_recipe("digits")))
    del saved["score"], saved["svdd"]["nu"]
    with pytest.warns(UserWarning, match=r"cfg.json leaves out score, svdd.nu: the toolkit's default is taken"):
        cfg = replay(saved, "cfg.json")
    assert cfg.score == type(cfg.score)() and cfg.svdd.nu == type(cfg.svdd)().nu


@pytest.mark.parametrize(
    "raised, code, line",
    [
        (KeyboardInterrupt(), 130, "interrupted at once; the last epoch's checkpoint is kept: rerun with --resume"),
        (
            ProcessExitedException("process 1 terminated with signal SIGKILL", 1, 4242, -9, "SIGKILL"),
            1,
            "error: worker process 1 of the run ended without finishing (process 1 terminated with signal SIGKILL); "
            "the run's checkpoints are kept: rerun the same command with --resume=True",
        ),
    ],
)
def test_a_second_ctrl_c_and_a_killed_worker_end_in_one_line(monkeypatch, capsys, raised, code, line):
    """A second Ctrl-C (the first stops after the epoch's checkpoint) and a killed worker process of a
    distributed run end the command with one line saying how to go on, not a traceback."""
    import toolkit.run
    from toolkit.__main__ import main

    def stopped(cfg):
        raise raised

    monkeypatch.setattr(toolkit.run, "run", stopped)
    assert main(["digits", "--svdd.epochs=1"]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith(line) and len(err.splitlines()) == 1 and "Traceback" not in err
