"""TensorBoard tells the story (read back with TensorBoard's event accumulator) and the report verb."""

import json
import struct

import numpy as np
import pytest
from conftest import cli_in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from toolkit import MultiRadiusDeepSVDD
from toolkit.report import SIZES, expected_pixels

pytestmark = pytest.mark.slow  # every test reads the CLI run's folder or runs the CLI's report verb


@pytest.fixture(scope="module")
def events(digits_run):
    acc = EventAccumulator(str(digits_run), size_guidance={"tensors": 0, "scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def results(digits_run):
    return json.loads((digits_run / "results.json").read_text())


def test_scalars_per_cluster_and_stage(events, results):
    tags = set(events.Tags()["scalars"])
    k = len(results["clustering"]["sizes"])
    for stage in ("pretrain", "svdd_multi", "svdd_single"):
        assert {f"{stage}/loss", f"{stage}/lr/group_0", f"{stage}/test/auroc", f"{stage}/test/aupr"} <= tags
        # Ignite's optimizer-parameters handler logs each epoch's learning rate, as the history records it
        logged = [(e.step, e.value) for e in events.Scalars(f"{stage}/lr/group_0")]
        hist = results[stage.removeprefix("svdd_")]["history"]["epochs"] if stage != "pretrain" else None
        hist = hist or results["pretrain"]["history"]["epochs"]
        assert logged == [(row["epoch"], pytest.approx(row["lr"])) for row in hist]
    for m, n in (("svdd_multi", k), ("svdd_single", 1)):
        assert {f"{m}/radius/{i}" for i in range(n)} | {f"{m}/outside/{i}" for i in range(n)} <= tags
    assert {"clustering/ari", "clustering/nmi", "clustering/sizes", "clustering/sizes_before"} <= tags


def test_radius_curves_end_at_the_detectors_radii(events, digits_run):
    det = MultiRadiusDeepSVDD.load(digits_run / "detector_multi.pt")
    for i, r in enumerate(det.radii_):
        values = events.Scalars(f"svdd_multi/radius/{i}")
        assert [v.step for v in values] == [1, 2, 3]
        assert values[-1].value == pytest.approx(float(r), rel=1e-6)


def test_outside_share_and_test_metrics_match_results(events, results):
    for i, out in enumerate(results["multi"]["history"]["epochs"][-1]["outside"]):
        assert events.Scalars(f"svdd_multi/outside/{i}")[-1].value == pytest.approx(out, rel=1e-6)
        assert out <= 0.1 + 1.0 / results["clustering"]["sizes"][i]  # nu = 0.1, up to one point
    auroc = events.Scalars("svdd_multi/test/auroc")
    assert [v.step for v in auroc] == [2, 3]
    # the curve is of the sphere score; the final test_auroc is the detector's (plus reconstruction error)
    assert auroc[-1].value == pytest.approx(results["multi"]["history"]["tests"][-1]["auroc"], rel=1e-6)


def test_histograms_images_pr_curves_text_and_layout(events, results):
    k = len(results["clustering"]["sizes"])
    t = events.Tags()
    assert {f"svdd_multi/distance/{i}" for i in range(k)} <= set(t["histograms"])
    assert len(events.Histograms("svdd_multi/distance/0")) == 3  # one per epoch
    for m in ("svdd_multi", "svdd_single"):
        assert {f"{m}/most_normal_test_images", f"{m}/most_anomalous_test_images"} <= set(t["images"])
        assert f"{m}/test_pr_curve" in t["tensors"]
    assert {"custom_scalars__config__", "clustering/contingency/text_summary"} <= set(t["tensors"])
    assert set(events.PluginTagToContent("hparams")) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    assert events.Scalars("hparam/test_auroc_multi")[-1].value == pytest.approx(results["multi"]["test_auroc"])


def test_projector_files_have_one_row_per_sample(digits_run):
    config = (digits_run / "projector_config.pbtxt").read_text()
    for tag, step in (("test_embeddings_after_pretraining", "00000"), ("test_embeddings_end", "00003")):
        folder = digits_run / step / tag
        assert f"{step}/{tag}/tensors.tsv" in config
        tensors = (folder / "tensors.tsv").read_text().strip().splitlines()
        meta = (folder / "metadata.tsv").read_text().strip().splitlines()
        assert len(tensors) == 300 and len(tensors[0].split("\t")) == 16  # 16-d embeddings of the MLP
        assert meta[0].split("\t") == ["cluster", "true_class", "kind", "score"] and len(meta) == 301
        assert (folder / "sprite.png").stat().st_size > 0


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_report_verb_writes_every_figure_from_the_run_folder(digits_run):
    r = cli_in_process("report", str(digits_run), "--projection=pca")
    assert r.returncode == 0, r.stderr
    for name in SIZES:
        path = digits_run / name
        assert path.stat().st_size > 1000
        assert png_size(path) == expected_pixels(name)
        from matplotlib.image import imread

        img = imread(path)
        assert img.std() > 0.01  # not a blank canvas
    md = (digits_run / "report.md").read_text()
    assert all(f"]({name})" in md for name in SIZES)
    assert "Multi-Radius Deep SVDD" in md and "AUROC" in md
    loss = json.loads((digits_run / "results.json").read_text())["pretrain"]["eval_loss"]
    assert f"{loss:.4g} in evaluation mode" in md


def test_the_embeddings_true_classes_are_those_of_the_rows_that_trained(digits_run):
    """The digits recipe holds a tenth out to set the threshold: the figure's classes are those of the rows
    whose embeddings it draws (the run keeps every one: projector_samples above the rows that trained)."""
    from toolkit.data import load_split
    from toolkit.files import load_npz_checked
    from toolkit.scoring import calibration_rows

    det = MultiRadiusDeepSVDD.load(digits_run / "detector_multi.pt")
    cfg = det.resolved_config()
    split = load_split(cfg.data, cfg.seed)
    rows, held = calibration_rows(len(split.x_train), cfg.score.calibration, cfg.seed)  # as the fit drew them
    emb = load_npz_checked(digits_run / "embeddings.npz")
    assert len(held) == round(0.1 * len(split.x_train)) and len(emb["train_class"]) == len(rows)
    np.testing.assert_array_equal(emb["train_class"], split.y_train[rows.numpy()])
    np.testing.assert_array_equal(emb["train_cluster"], det.cluster_labels_)
    assert bool(emb["train_classes_known"])


def test_report_of_a_run_that_kept_no_extreme_images(tmp_path):
    run = tmp_path / "run"
    tiny = ["--pretrain.epochs=1", "--svdd.epochs=1", "--svdd.warmup_epochs=1", "--baseline=False", "--progress=none"]
    assert cli_in_process(*tiny, "--monitor.extremes=0", f"--run_dir={run}").returncode == 0
    r = cli_in_process("report", str(run), "--projection=pca")
    assert r.returncode == 0, r.stderr
    assert (run / "extremes.png").is_file() and "](extremes.png)" in (run / "report.md").read_text()


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    r = cli_in_process("report", str(tmp_path))
    assert r.returncode == 2 and "results.json is missing" in r.stderr


def test_saved_scores_match_the_detector(digits_run):
    from toolkit.data import load_split
    from toolkit.recipes_loader import default_recipe, load_recipe

    cfg = json.loads((digits_run / "config.json").read_text())
    split = load_split(load_recipe(default_recipe()).data, seed=cfg["seed"])
    saved = np.load(digits_run / "scores.npz")
    det = MultiRadiusDeepSVDD.load(digits_run / "detector_multi.pt")
    np.testing.assert_allclose(saved["multi_score"], det.decision_function(split.x_test), rtol=1e-5, atol=1e-6)


def test_hparams_hold_the_settings_not_where_the_run_happened():
    from toolkit.config import Config
    from toolkit.monitor import _flat_hparams
    from toolkit.overrides import apply_overrides

    cfg = apply_overrides(Config(), {"run_dir": "/tmp/x", "data.root": "/data", "dist.backend": "gloo"})
    hp = _flat_hparams(cfg)
    assert "svdd.nu" in hp and "seed" in hp and "data.normal_classes" in hp
    assert not {"run_dir", "resume", "device", "data.root", "data.download"} & set(hp)
    assert not [k for k in hp if k.startswith("dist.")]


def test_fit_from_python_logs_to_tensorboard_with_the_runs_harness(digits, tmp_path, caplog):
    import logging

    from ignite.contrib.handlers import TensorboardLogger

    from toolkit.run import RunHarness

    settings = {"pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1}
    with caplog.at_level(logging.INFO, logger="toolkit"), TensorboardLogger(log_dir=str(tmp_path)) as tb:
        det = MultiRadiusDeepSVDD(device="cpu", **settings).fit(digits[0], harness=RunHarness(tb=tb, progress="lines"))
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"pretrain/loss", "svdd_multi/loss", "clustering/n_clusters"} <= tags
    assert {f"svdd_multi/radius/{k}" for k in range(det.n_clusters_)} <= tags
    assert [e.step for e in acc.Scalars("svdd_multi/loss")] == [1, 2]
    assert "svdd_multi: epoch 2/2" in caplog.text  # progress as one log record per epoch
    assert not list(tmp_path.glob("checkpoints"))  # no run folder: nothing but the events is written


def test_a_one_epoch_training_figure_draws_each_value_as_a_dot(tmp_path, monkeypatch):
    """A line of one point draws nothing: the values of a one-epoch run are dots."""
    from toolkit import report

    drawn = []
    monkeypatch.setattr(report, "_save", lambda plt, fig, path: drawn.extend(fig.axes) or plt.close(fig) or path)
    row = {"epoch": 1, "loss": 0.5, "radii": [0.3, 0.4]}
    results = {key: {"radii": row["radii"], "history": {"epochs": [row]}} for key in ("multi", "single")}
    report.training_figure(tmp_path, results)
    lines = [line for ax in drawn for line in ax.get_lines()]
    assert len(lines) == 5  # two clusters, the one sphere, two losses
    assert all(line.get_marker() == "o" for line in lines)


def test_training_figure_draws_many_spheres_by_their_spread(tmp_path):
    """Rows recorded by their spread (more spheres than SPHERES_ONE_BY_ONE) draw as a band, not a line each."""
    from toolkit.report import training_figure

    rows = [
        {"epoch": e, "loss": 1.0 / e, "radius_quantiles": [0.1 * e, 0.2 * e, 0.3 * e, 0.4 * e, 0.5 * e]}
        for e in (1, 2, 3)
    ]
    results = {"multi": {"radii": [0.5] * 500, "history": {"epochs": rows}}}
    path = training_figure(tmp_path, results)
    assert path.is_file() and path.stat().st_size > 0
