"""The command line on the embedded digits recipe: one run end to end in a subprocess (the session's
``digits_run``), and the verbs, refusals and a replayed run through the CLI's ``main`` in this process."""

import json

import numpy as np
import pytest
import torch
from conftest import cli_in_process, fresh_python
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from toolkit import MultiRadiusDeepSVDD

pytestmark = pytest.mark.slow  # every test runs the CLI or reads the CLI run's folder


@pytest.fixture
def run_dir(digits_run):
    return digits_run


def test_run_folder_holds_config_events_detectors_results(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "results.json", "detector_multi.pt", "detector_single.pt", "checkpoints"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["svdd"]["epochs"] == 3 and cfg["data"]["dataset"] == "digits"


def test_results_json(run_dir):
    from sklearn.metrics import roc_auc_score

    from toolkit.data import load_split
    from toolkit.recipes_loader import from_dict

    res = json.loads((run_dir / "results.json").read_text())
    cfg = from_dict(json.loads((run_dir / "config.json").read_text()))
    # the digits recipe adds one sphere's score, the reconstruction error and the pixel centres to the spheres'
    assert (cfg.score.single, cfg.score.pretext, cfg.score.centres, cfg.score.centres_space) == (1.0, 1.0, 1.0, "raw")
    saved = np.load(run_dir / "scores.npz")
    split = load_split(cfg.data, cfg.seed)
    k = len(res["clustering"]["sizes"])
    assert sum(res["clustering"]["sizes"]) == res["n_train"]
    assert len(res["multi"]["radii"]) == k and len(res["single"]["radii"]) == 1
    # what each model's AUROC measures, in words, as the summary prints it
    pixels = "nearest-centre distance (raw input)"
    assert res["multi"]["score"] == f"sphere score + one-sphere score + reconstruction error + {pixels}"
    assert res["single"]["score"] == "sphere score + reconstruction error"
    for name in ("multi", "single"):
        assert 0.0 <= res[name]["test_auroc"] <= 1.0
        assert [t["epoch"] for t in res[name]["history"]["tests"]] == [2, 3]  # every 2 epochs, and at the end
        assert [row["epoch"] for row in res[name]["history"]["epochs"]] == [1, 2, 3]
        assert res[name]["history"]["epochs"][-1]["radii"] == res[name]["radii"]
        # the final figure is the detector's own score (the terms above) on the test set ...
        assert res[name]["test_auroc"] == pytest.approx(roc_auc_score(saved["is_anomaly"], saved[f"{name}_score"]))
        # ... the curve during training is the sphere score alone, whose last point is the final model's
        det = MultiRadiusDeepSVDD.load(run_dir / f"detector_{name}.pt")
        with torch.inference_mode():
            sphere = det.head_(det.encoder_(det.preprocessor_(torch.from_numpy(split.x_test))))
        curve_end = res[name]["history"]["tests"][-1]["auroc"]
        assert curve_end == pytest.approx(roc_auc_score(split.is_anomaly_test, sphere.numpy()), abs=1e-6)


def test_tensorboard_has_one_radius_curve_per_cluster(run_dir):
    res = json.loads((run_dir / "results.json").read_text())
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    k = len(res["clustering"]["sizes"])
    assert {f"svdd_multi/radius/{i}" for i in range(k)} <= tags
    assert f"svdd_multi/radius/{k}" not in tags and "svdd_single/radius/0" in tags
    assert {"pretrain/loss", "svdd_multi/loss", "svdd_multi/test/auroc", "svdd_single/test/auroc"} <= tags
    last = [e.value for e in acc.Scalars("svdd_multi/radius/0")][-1]
    assert last == pytest.approx(res["multi"]["radii"][0], rel=1e-6)


def test_saved_detector_loads_and_scores(run_dir):
    det = MultiRadiusDeepSVDD.load(run_dir / "detector_multi.pt")
    res = json.loads((run_dir / "results.json").read_text())
    assert det.radii_.tolist() == pytest.approx(res["multi"]["radii"])


def test_help_lists_settings_and_defaults():
    r = cli_in_process("--help")
    assert r.returncode == 0
    assert "--svdd.epochs" in r.stdout and "--clustering.name" in r.stdout and "'finch'" in r.stdout


def test_help_and_version_answer_without_loading_torch():
    """The commands a user types first stay fast: no torch, Ignite or scikit-learn behind them."""
    code = (
        "import sys\n"
        "from toolkit.__main__ import main\n"
        "assert main(['--help']) == 0 and main(['--version']) == 0 and main(['mnist', '--help']) == 0\n"
        "assert main(['--svdd.epoch=3']) == 2  # a refused setting is answered as lightly\n"
        "loaded = sorted(m for m in ('torch', 'ignite', 'sklearn') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    assert "multi-radius-deep-svdd 0.1.0 (torch " in fresh_python(code).stdout


def test_unknown_key_and_wrong_type_are_refused():
    r = cli_in_process("--svdd.epoch=3")
    assert r.returncode == 2 and "unknown setting --svdd.epoch" in r.stderr and "--svdd.epochs" in r.stderr
    r = cli_in_process("--svdd.nu=high")
    assert r.returncode == 2 and "wrong type" in r.stderr


def test_missing_recipe_and_unknown_clusterer(tmp_path):
    unused = tmp_path / "unused"  # each command is refused before its run folder is made
    r = cli_in_process("recipes/nope.py")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli_in_process("--clustering.name=nope", "--pretrain.epochs=1", "--svdd.epochs=1", f"--run_dir={unused}")
    assert r.returncode == 2 and "unknown clusterer 'nope'" in r.stderr and "finch" in r.stderr
    r = cli_in_process("--clustering.name=kmeans", f"--run_dir={unused}")  # k-means without its cluster count
    assert r.returncode == 2 and "n_clusters" in r.stderr and "pretrain" not in r.stderr  # refused up front
    no_terms = ("--score.multi=0", "--score.single=0", "--score.pretext=0", "--score.centres=0")
    r = cli_in_process(*no_terms, f"--run_dir={unused}")
    assert r.returncode == 2 and "leaves no score" in r.stderr and "pretrain" not in r.stderr
    assert not unused.exists()


def test_plugins_verb_lists_clusterers_with_settings():
    r = cli_in_process("plugins")
    assert r.returncode == 0
    assert "finch(level=-1" in r.stdout and "kmeans(n_clusters=None" in r.stdout and "hdbscan(" in r.stdout


def test_redirected_progress_is_one_line_per_epoch_and_a_run_replays_from_its_config(digits_cli, tmp_path):
    first, r = digits_cli  # 2 pretraining epochs, its stderr a pipe
    assert "\r" not in r.stderr and "pretrain: epoch 2/2, loss" in r.stderr  # output is not a terminal
    again = tmp_path / "again"
    r = cli_in_process(str(first / "config.json"), f"--run_dir={again}", "--progress=none")
    assert r.returncode == 0, r.stderr
    assert "epoch 1/2" not in r.stderr and "epoch 1/3" not in r.stderr
    saved = [json.loads((d / "config.json").read_text()) for d in (first, again)]
    for cfg in saved:
        cfg.pop("run_dir"), cfg.pop("progress")
    assert saved[0] == saved[1]
    same = [json.loads((d / "results.json").read_text())["multi"]["radii"] for d in (first, again)]
    # the same settings and seed train the same model (up to float32 rounding of the recentring pass)
    assert same[0] == pytest.approx(same[1], rel=1e-5)
    bad = cli_in_process("--progress=fancy")
    assert bad.returncode == 2 and "accepted: ('auto', 'bar', 'lines', 'none')" in bad.stderr


def test_cifar10_recipe_runs_on_torchvision_files_and_on_a_folder_copy(tmp_path, monkeypatch):
    """The recipe ships rotation pretraining and its score; it reads torchvision's CIFAR-10 files, and a
    folder copy (one subfolder per class, train and test apart) given by --data.dataset and --data.test."""
    import torchvision.datasets.cifar as cifar
    from fakes import make_cifar10
    from PIL import Image

    make_cifar10(tmp_path, per_batch=20, n_test=40)
    # generated files cannot have the official MD5 sums; everything else is torchvision's own path
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    tiny = ["--pretrain.epochs=1", "--pretrain.milestones=[]", "--svdd.epochs=1", "--svdd.warmup_epochs=0"]
    tiny += ["--pretrain.batch_size=20", "--svdd.batch_size=20", "--progress=none"]
    tv = [f"--data.root={tmp_path}", "--data.download=False", f"--run_dir={tmp_path / 'tv'}"]
    r = cli_in_process("cifar10", *tv, *tiny)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "tv" / "results.json").read_text())
    want = "sphere score + rotation cross-entropy + 1-NN distance (pooled raw images)"
    assert results["multi"]["score"] == want
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c in ("airplane", "automobile", "bird"):
            (tmp_path / "copy" / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "copy" / split / c / f"{i}.png")
    folder = [f"--data.dataset={tmp_path / 'copy' / 'train'}", f"--data.test={tmp_path / 'copy' / 'test'}"]
    folder += ["--data.normal_classes=[airplane,automobile]", f"--run_dir={tmp_path / 'own'}"]
    r = cli_in_process("cifar10", *folder, *tiny)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "own" / "results.json").read_text())
    assert (results["n_train"], results["n_test"], results["n_test_anomalies"]) == (24, 12, 4)
