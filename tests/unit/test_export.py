"""The exported TorchScript scorer gives the detector's own scores, for every score term and net."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD, load_recipe
from toolkit.export import export

pytestmark = pytest.mark.slow

TINY = {"pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1}


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the digits recipe's score: spheres + one sphere + reconstruction error
        {"score.single": 0.0, "score.recon": 0.0},  # the sphere score alone
        {"score.knn": 1.0},  # + k-NN in the embedding
        {"score.knn": 0.5, "score.knn_space": "input", "score.rule": "margin"},
        {"score.knn": 1.0, "score.knn_space": "autoencoder", "score.recon": 0.0, "score.multi": 0.0},
        {"score.knn": 1.0, "score.knn_space": "autoencoder+raw", "score.recon": 0.0, "score.multi": 0.0},
    ],
)
def test_exported_scorer_equals_decision_function(settings, tmp_path):
    d = load_digits()
    x = d.data.astype(np.float32)
    normal = np.isin(d.target, (0, 1, 3))
    det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **TINY, **settings).fit(x[normal])
    path = export(det, tmp_path / "scorer.pt")
    scorer = torch.jit.load(str(path))
    batch = x[~normal][:37]  # another batch size than the traced one
    np.testing.assert_allclose(
        scorer(torch.from_numpy(batch)).numpy(), det.decision_function(batch), rtol=1e-5, atol=1e-5
    )
    assert float(scorer.threshold) == pytest.approx(det.threshold_)


def test_exported_lenet_scorer(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 28, 28), dtype=np.float32)
    det = MultiRadiusDeepSVDD(
        load_recipe("mnist"), device="cpu", **TINY, **{"pretrain.batch_size": 20, "svdd.batch_size": 20}
    ).fit(x)
    scorer = torch.jit.load(str(export(det, tmp_path / "scorer.pt")))
    new = rng.random((9, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(scorer(torch.from_numpy(new)).numpy(), det.decision_function(new), rtol=1e-4, atol=1e-4)


def test_export_verb_writes_a_scorer_of_the_run(digits_run, tmp_path):
    from conftest import cli_in_process

    r = cli_in_process("export", str(digits_run), f"--out={tmp_path / 'scorer.pt'}")
    assert r.returncode == 0, r.stderr
    det = MultiRadiusDeepSVDD.load(digits_run / "detector_multi.pt")
    x = load_digits().data.astype(np.float32)[:50]
    scorer = torch.jit.load(str(tmp_path / "scorer.pt"))
    np.testing.assert_allclose(scorer(torch.from_numpy(x)).numpy(), det.decision_function(x), rtol=1e-5, atol=1e-5)
    bad = cli_in_process("export", str(digits_run), "--model=both")
    assert bad.returncode == 2 and "accepted: multi, single" in bad.stderr and "Traceback" not in bad.stderr
    version = cli_in_process("--version")
    assert version.returncode == 0 and version.stdout.startswith("multi-radius-deep-svdd ")
