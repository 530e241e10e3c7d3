"""The exported scorer, TorchScript or ONNX, gives the detector's own scores, for every score term and net,
and the export verb checks its options before it writes anything."""

import errno
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD, load_recipe
from toolkit.export import export, export_format
from toolkit.knn import GROUP

TINY = {"pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1}


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        {},  # the digits recipe's score: spheres + one sphere + reconstruction error + pixel centres
        {"score.single": 0.0, "score.pretext": 0.0},  # the sphere score alone
        {"score.knn": 1.0},  # + k-NN in the embedding
        {"score.knn": 0.5, "score.knn_space": "input", "score.rule": "margin"},
        {"score.knn": 1.0, "score.knn_space": "autoencoder", "score.pretext": 0.0, "score.multi": 0.0},
        {"score.knn": 1.0, "score.knn_space": "autoencoder+raw", "score.pretext": 0.0, "score.multi": 0.0},
        {"score.centres": 1.0, "score.centres_space": "raw+autoencoder", "score.single": 0.0, "score.pretext": 0.0},
    ],
)
def test_exported_scorer_equals_decision_function(settings, tmp_path):
    d = load_digits()
    x = d.data.astype(np.float32)
    normal = np.isin(d.target, (0, 1, 3))
    det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **TINY, **settings).fit(x[normal])
    with warnings.catch_warnings():  # the trace records no Python test of a tensor's value or shape
        warnings.simplefilter("error", torch.jit.TracerWarning)
        path = export(det, tmp_path / "scorer.pt")
    scorer = torch.jit.load(str(path))
    batch = x[~normal][:37]  # another batch size than the traced one
    np.testing.assert_allclose(
        scorer(torch.from_numpy(batch)).numpy(), det.decision_function(batch), rtol=1e-5, atol=1e-5
    )
    assert float(scorer.threshold) == pytest.approx(det.threshold_)


@pytest.mark.slow
def test_exported_scorer_of_a_wide_knn_reference(tmp_path):
    """A k-NN column over enough training rows that it picks its nearest through groups' minima
    (``toolkit.knn.smallest``) exports to the same scores, at any batch size: TorchScript (whose trace
    takes the whole-row topk) and ONNX (the groups' minima)."""
    x = load_digits().data.astype(np.float32)  # every digit normal: 1,440 of the first 1,600 rows train
    knn = {"score.knn": 1.0, "score.knn_space": "autoencoder+raw", "score.pretext": 0.0, "score.multi": 0.0}
    det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **TINY, **knn).fit(x[:1600])
    assert len(det.knn_reference_["raw"]) >= 4 * det.config.score.knn_k * GROUP
    new = x[1600:]  # rows the detector has not seen
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        scorer = torch.jit.load(str(export(det, tmp_path / "scorer.pt")))
    for batch in (new[:1], new[:37], new):
        np.testing.assert_allclose(
            scorer(torch.from_numpy(batch)).numpy(), det.decision_function(batch), rtol=1e-5, atol=1e-5
        )
    session = onnx_session(export(det, tmp_path / "scorer.onnx"))
    for batch in (new[:1], new[:37], new):
        np.testing.assert_allclose(
            session.run(None, {"x": batch})[0], det.decision_function(batch), rtol=1e-5, atol=1e-5
        )


@pytest.mark.slow
def test_exported_lenet_scorer(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 28, 28), dtype=np.float32)
    pooled = {"score.knn_space": "autoencoder+pooled"}  # the images' colour layout, averaged in the trace too
    det = MultiRadiusDeepSVDD(
        load_recipe("mnist"), device="cpu", **TINY, **pooled, **{"pretrain.batch_size": 20, "svdd.batch_size": 20}
    ).fit(x)
    assert list(det.knn_reference_) == ["autoencoder", "pooled"]
    scorer = torch.jit.load(str(export(det, tmp_path / "scorer.pt")))
    new = rng.random((9, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(scorer(torch.from_numpy(new)).numpy(), det.decision_function(new), rtol=1e-4, atol=1e-4)
    session = onnx_session(export(det, tmp_path / "scorer.bin", format="onnx"))  # convolutions, the ratio rule
    np.testing.assert_allclose(session.run(None, {"x": new})[0], det.decision_function(new), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
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


# --------------------------------------------------------------------------------------------- ONNX

SCORES = {
    "digits": {},  # the digits recipe's score: spheres + one sphere + reconstruction error
    # k-NN on the raw rows, and the ratio rule (its amin over every radius needs its own ONNX translation)
    "knn-raw": {"score.knn": 1.0, "score.knn_space": "raw", "score.rule": "ratio"},
    "centres-raw": {"score.centres": 1.0, "score.centres_space": "raw"},  # the nearest pixel-space centre
}


@pytest.fixture(scope="module", params=list(SCORES))
def fitted(request, digits):
    """A tiny fitted digits detector and rows it never saw: the last normal rows and every anomaly."""
    normal, anomalies = digits
    det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **TINY, **SCORES[request.param])
    return det.fit(normal[:400]), np.concatenate([normal[400:], anomalies])


def onnx_session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_threshold(session) -> float:
    return float(session.get_modelmeta().custom_metadata_map["threshold"])


@pytest.mark.slow
def test_onnx_scorer_equals_decision_function(fitted, tmp_path):
    det, held_out = fitted
    path = export(det, tmp_path / "scorer.onnx")  # ONNX by its name
    assert [p.name for p in tmp_path.iterdir()] == ["scorer.onnx"]  # no temporary file left
    session = onnx_session(path)
    (x,) = session.get_inputs()
    assert x.name == "x" and x.shape == ["batch", 64] and session.get_outputs()[0].name == "score"
    for batch in (held_out[:1], held_out[:37], held_out):  # batch sizes other than the recorded one (4)
        np.testing.assert_allclose(
            session.run(None, {"x": batch})[0], det.decision_function(batch), rtol=1e-5, atol=1e-5
        )
    assert onnx_threshold(session) == det.threshold_


@pytest.mark.slow
@pytest.mark.parametrize("fitted", ["digits"], indirect=True)
def test_an_onnx_export_on_a_full_disk_leaves_nothing_behind(fitted, tmp_path, full_disk):
    with pytest.raises(OSError) as e:
        export(fitted[0], tmp_path / "scorer.onnx")
    assert e.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []


def test_the_format_is_asked_for_or_read_from_the_name():
    assert export_format("a.onnx") == "onnx" and export_format("a.ONNX") == "onnx"
    assert export_format("a.pt") == "torchscript" and export_format("a.bin", "onnx") == "onnx"
    with pytest.raises(ValueError, match="accepted: torchscript, onnx"):
        export_format("a.pt", "tflite")
    with pytest.raises(ValueError, match="named .onnx"):
        export_format("a.onnx", "torchscript")


def cli_error(*args):
    """The one error line of a refused export command, which must leave nothing behind."""
    from conftest import cli_in_process

    r = cli_in_process("export", *args)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr and r.stdout == "", r.stderr
    return lines[0]


def test_the_export_verb_checks_its_format_before_it_writes(tmp_path, monkeypatch):
    run = tmp_path / "run"  # no run there: the options are refused before the detector is read
    assert "--format='tflite' is unknown; accepted: torchscript, onnx" in cli_error(run, "--format=tflite")
    line = cli_error(run, "--format=torchscript", f"--out={tmp_path / 's.onnx'}")
    assert "named .onnx" in line and "--format=onnx" in line
    monkeypatch.setattr("toolkit.export.ONNX_PACKAGES", ("onnx", "no_such_onnx_package"))
    line = cli_error(run, "--format=onnx")
    assert "no_such_onnx_package not installed" in line and 'pip install "multi-radius-deep-svdd[export]"' in line
    assert "pip install" in cli_error(run, f"--out={tmp_path / 's.onnx'}")  # ONNX by the name of --out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_export_verb_writes_an_onnx_scorer_of_the_run(digits_run, tmp_path):
    import shutil

    from conftest import cli_in_process

    run = tmp_path / "run"  # a copy: the shared run folder stays as it is
    run.mkdir()
    shutil.copy(digits_run / "detector_multi.pt", run)
    r = cli_in_process("export", run, "--format=onnx")
    assert r.returncode == 0 and "detector_multi.onnx (onnx; input: N x 64" in r.stdout, r.stderr
    det = MultiRadiusDeepSVDD.load(run / "detector_multi.pt")
    session = onnx_session(run / "detector_multi.onnx")
    x = load_digits().data.astype(np.float32)[:50]  # the data as fit received them: pixel counts 0..16
    np.testing.assert_allclose(session.run(None, {"x": x})[0], det.decision_function(x), rtol=1e-5, atol=1e-5)
    assert onnx_threshold(session) == det.threshold_
