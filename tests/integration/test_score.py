"""Scoring new data from a run folder: .npy arrays, folders of images, torchvision datasets."""

import csv

import numpy as np
import pytest
from conftest import cli_in_process
from PIL import Image
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD

pytestmark = pytest.mark.slow  # every test runs the CLI's score verb on a run folder


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float32)[:60]


def test_score_npy_matches_decision_function(digits_run, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits)
    out = tmp_path / "s.csv"
    r = cli_in_process("score", str(digits_run), str(tmp_path / "x.npy"), f"--out={out}", "--batch_size=16")
    assert r.returncode == 0, r.stderr
    rows = read(out)
    det = MultiRadiusDeepSVDD.load(digits_run / "detector_multi.pt")
    s, k = det.score_with_clusters(digits)
    assert [row["id"] for row in rows] == [str(i) for i in range(60)]
    np.testing.assert_allclose([float(row["score"]) for row in rows], s, rtol=1e-5, atol=1e-6)
    assert [int(row["cluster"]) for row in rows] == k.tolist()
    assert [int(row["is_anomaly"]) for row in rows] == (s > det.threshold_).astype(int).tolist()


def test_score_image_folder(digits_run, digits, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, v in enumerate(digits[:20]):  # 0..16 -> 0..255 exactly
        Image.fromarray((v.reshape(8, 8) * 15).astype(np.uint8), mode="L").save(folder / f"d{i:02d}.png")
    out = tmp_path / "s.csv"
    r = cli_in_process("score", str(digits_run), str(folder), f"--out={out}", "--model=single")
    assert r.returncode == 0, r.stderr
    rows = read(out)
    det = MultiRadiusDeepSVDD.load(digits_run / "detector_single.pt")
    assert [row["id"] for row in rows] == [f"d{i:02d}.png" for i in range(20)]
    np.testing.assert_allclose(
        [float(row["score"]) for row in rows], det.decision_function(digits[:20]), rtol=1e-4, atol=1e-5
    )  # global contrast normalisation makes the scale irrelevant


def test_score_bad_inputs(digits_run, tmp_path):
    r = cli_in_process("score", str(digits_run), "nothing-here", f"--out={tmp_path / 's.csv'}")
    assert r.returncode == 2 and "none of" in r.stderr
    r = cli_in_process("score", str(digits_run), "imagenet:test", f"--out={tmp_path / 's.csv'}")
    assert r.returncode == 2 and "NAME:SPLIT" in r.stderr
    (tmp_path / "big").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "big" / "a.png")
    r = cli_in_process("score", str(digits_run), str(tmp_path / "big"), f"--out={tmp_path / 's.csv'}")
    assert r.returncode == 2 and "takes 8x8" in r.stderr
    assert not (tmp_path / "s.csv").exists()  # nothing half-written


def test_score_a_digits_runs_own_test_split_gives_its_test_auroc(digits_run, tmp_path):
    import json

    from sklearn.metrics import roc_auc_score

    from toolkit.data import load_split

    out = tmp_path / "s.csv"
    r = cli_in_process("score", str(digits_run), "digits:test", f"--out={out}")
    assert r.returncode == 0, r.stderr
    det = MultiRadiusDeepSVDD.load(digits_run / "detector_multi.pt")
    split = load_split(det.resolved_config().data, det.resolved_config().seed)
    scores = [float(row["score"]) for row in read(out)]
    assert len(scores) == len(split.x_test)
    auroc = json.loads((digits_run / "results.json").read_text())["multi"]["test_auroc"]
    assert roc_auc_score(split.is_anomaly_test, scores) == pytest.approx(auroc, abs=1e-4)
    r = cli_in_process("score", str(digits_run), str(tmp_path / "missing.csv"), f"--out={out}")
    assert r.returncode == 2 and "missing.csv': no such file" in r.stderr


def test_score_torchvision_dataset(tmp_path):
    from fakes import make_mnist

    make_mnist(tmp_path, n_train=60, n_test=25)  # a tiny 28x28 run, then its test split scored by name
    r = cli_in_process(
        "--data.dataset=mnist",
        f"--data.root={tmp_path}",
        "--data.download=False",
        "--net.arch=lenet28",
        "--net.rep_dim=32",
        "--pretrain.epochs=1",
        "--svdd.epochs=1",
        "--clustering.name=single",
        "--pretrain.batch_size=20",
        "--svdd.batch_size=20",
        f"--run_dir={tmp_path / 'run'}",
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "s.csv"
    r = cli_in_process("score", str(tmp_path / "run"), "mnist:test", f"--out={out}")
    assert r.returncode == 0, r.stderr
    assert len(read(out)) == 25
