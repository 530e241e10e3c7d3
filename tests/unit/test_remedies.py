"""The multi-sphere remedies, each an explicit setting: scoring rule, per-batch or shared
radius, re-assignment to the nearest sphere, reconstruction loss kept during SVDD training."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Events
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD
from toolkit.config import ConfigError, SVDDConfig
from toolkit.detector import DetectorFileError
from toolkit.engines import create_svdd_trainer, reconstruction_error
from toolkit.files import load_checked, save_checked
from toolkit.nets import MLPEncoder
from toolkit.overrides import apply_overrides
from toolkit.recipes_loader import default_recipe, load_recipe
from toolkit.spheres import SphereUpdate
from toolkit.stages import Harness, train_svdd
from toolkit.svdd import SphereHead, cluster_quantiles, combined_scores, init_centres, score_stats, scores

# every row trains and the threshold is the training scores' quantile (test_scoring.py holds rows out); the
# terms studied here without the recipe's pixel centres (tests/unit/test_centres.py)
TINY = {"pretrain.epochs": 3, "svdd.epochs": 4, "svdd.warmup_epochs": 1, "score.centres": 0.0, "score.calibration": 0.0}


def test_per_batch_radii_follow_each_batch_after_warm_up():
    torch.manual_seed(0)
    x = torch.randn(60, 5)
    labels = torch.arange(60) % 3
    encoder = MLPEncoder(5, (8,), 4)
    with torch.no_grad():
        head = SphereHead(init_centres(encoder.eval()(x), labels, 3))
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    engine = create_svdd_trainer(encoder, head, opt, "soft-boundary", 0.1, 60)
    SphereUpdate(head, labels, 0.1, warmup_epochs=1, per_batch=True).attach(engine)
    seen = []

    @engine.on(Events.ITERATION_COMPLETED)
    def _check(engine):
        if engine.state.epoch > 1:  # after warm-up: the radii are this batch's quantiles
            _, _, lab = engine.state.batch
            q = cluster_quantiles(engine.state.output["dist"].sqrt(), lab, 3, 0.9)
            seen.append(torch.allclose(head.radii, q))
        else:
            seen.append(bool((head.radii == 0).all()))

    batches = [(torch.arange(i, i + 20), x[i : i + 20], labels[i : i + 20]) for i in (0, 20, 40)]
    engine.run(batches, max_epochs=2)
    assert seen == [True] * 6


def test_reassign_moves_points_to_their_nearest_sphere_in_place():
    head = SphereHead(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([1.0, 1.0]))
    labels = torch.tensor([0, 0, 1, 1])
    z = torch.tensor([[0.5, 0.0], [9.0, 0.0], [1.0, 0.0], [11.0, 0.0]])
    state = SimpleNamespace(epoch=1, epoch_z=z, epoch_dist=torch.zeros(4))
    handler = SphereUpdate(head, labels, 0.1, warmup_epochs=2, reassign=True)  # still in warm-up: no radii
    handler(SimpleNamespace(state=state))
    assert labels.tolist() == [0, 1, 0, 1]
    assert handler.moved == [2]
    assert torch.allclose(state.epoch_dist, torch.tensor([0.25, 1.0, 1.0, 1.0]))


def test_recentred_training_ends_with_the_final_nets_cluster_means_and_quantiles():
    torch.manual_seed(0)
    x = torch.randn(60, 4)
    labels = (x[:, 0] > 0).long()
    encoder = MLPEncoder(4, (8,), 3)
    cfg = SVDDConfig(epochs=3, lr=1e-2, milestones=(), batch_size=20, warmup_epochs=1, nu=0.2, recentre=True)
    head, history = train_svdd(encoder, x, labels, cfg, seed=0, stage="svdd_multi")
    encoder.eval()
    with torch.no_grad():
        z = encoder(x)
    means = torch.stack([z[labels == k].mean(0) for k in range(2)])
    torch.testing.assert_close(head.centres, means)
    own = (z - means[labels]).pow(2).sum(1).sqrt()
    want = torch.stack([torch.quantile(own[labels == k], 0.8) for k in range(2)])
    torch.testing.assert_close(head.radii, want)
    # the last epoch's record describes these spheres: its radii, and a share nu outside each (up to one point)
    last = history.epochs[-1]
    assert last["radii"] == head.radii.tolist()
    sizes = torch.bincount(labels).tolist()
    assert all(out <= 0.2 + 1.0 / n for out, n in zip(last["outside"], sizes, strict=True))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"score.rule": "nearest"}, "accepted"),
        ({"svdd.radius_update": "step"}, "accepted"),
        ({"svdd.recon_weight": -1.0}, ">= 0"),
        ({"svdd.single_lr": -1e-4}, "svdd.single_lr=-0.0001 must be >= 0 \\(0 = svdd.lr\\)"),
        ({"score.pretext": -0.5}, "score.pretext=-0.5 must be >= 0"),
        ({"score.single": -1.0}, "score.single=-1.0 must be >= 0"),
        ({"svdd.radius_update": "batch", "dist.backend": "gloo", "dist.nproc_per_node": 2}, "several processes"),
    ],
)
def test_bad_remedy_settings_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(load_recipe(default_recipe()), bad)


@pytest.mark.slow  # a whole fit
def test_every_remedy_together_fits_scores_and_round_trips(tmp_path):
    d = load_digits()
    x = d.data.astype(np.float32)
    normal = np.isin(d.target, (0, 1, 3))
    settings = {
        **TINY,
        "score.rule": "distance",
        "svdd.radius_update": "batch",
        "svdd.shared_radius": True,
        "svdd.reassign": True,
        "svdd.recon_weight": 0.1,
        "score.single": 0.0,  # the sphere score alone (the digits recipe adds one sphere's score
        "score.pretext": 0.0,  # and the reconstruction error)
    }
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x[normal])
    r = det.radii_
    assert np.allclose(r, r[0])  # one shared radius
    s_normal, s_anom = det.decision_function(x[normal]), det.decision_function(x[~normal])
    z = det.encoder_(det.preprocessor_(torch.from_numpy(x[normal])))
    assert np.allclose(s_normal, scores(z, det.head_.centres, det.head_.radii, "distance")[0].detach().numpy())
    assert np.median(s_anom) > np.median(s_normal)
    # the distance rule has no sphere boundary: the threshold flags a share nu of the training data
    assert np.mean(s_normal > det.threshold_) == pytest.approx(0.1, abs=0.02)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    assert loaded.head_.rule == "distance"
    np.testing.assert_array_equal(loaded.decision_function(x[:200]), det.decision_function(x[:200]))


def test_combined_scores_standardise_every_column():
    s, r = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 10.0, 40.0])
    stats = score_stats(torch.stack([s, r], dim=1))
    spread_r = float(np.std([10.0, 10.0, 40.0], ddof=1))
    assert torch.allclose(stats, torch.tensor([[2.0, 20.0], [1.0, spread_r]]))
    want = (s - 2.0) + 0.5 * (r - 20.0) / spread_r
    assert torch.allclose(combined_scores(torch.stack([s, r], dim=1), stats, torch.tensor([1.0, 0.5])), want)
    # three columns, checked against the obvious loop
    parts = torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1], dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.5])
    slow = sum(w[c] * (parts[:, c] - parts[:, c].mean()) / parts[:, c].std() for c in range(3))
    assert torch.allclose(combined_scores(parts, score_stats(parts), w), slow)
    flat = score_stats(torch.stack([torch.ones(3), r], dim=1))  # a constant column: floored spread, finite
    assert torch.isfinite(combined_scores(torch.stack([torch.ones(3), r], dim=1), flat, torch.ones(2))).all()


@pytest.mark.slow  # a whole fit
def test_reconstruction_error_joins_the_score_and_round_trips(tmp_path):
    """The autoencoder's pretext column is its reconstruction error, to the bit."""
    d = load_digits()
    x = d.data.astype(np.float32)
    normal = np.isin(d.target, (0, 1, 3))
    settings = {**TINY, "score.pretext": 2.0, "score.single": 0.0}
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings)
    det.fit(x[normal])
    assert det.scorer_.names == ["multi", "pretext"]
    # the pretrained autoencoder scores the reconstruction, not the SVDD-trained encoder
    first = (next(det.recon_.encoder.parameters()), next(det.encoder_.parameters()))
    assert not torch.equal(*first)
    with torch.inference_mode():
        xb = det.preprocessor_(torch.from_numpy(x[normal]))
        sphere = scores(det.encoder_(xb), det.head_.centres, det.head_.radii, det.head_.rule)[0]
        recon = reconstruction_error(det.recon_, xb)
        assert torch.equal(det.scorer_.columns(torch.from_numpy(x[normal]))[0][:, 1], recon)
    parts = torch.stack([sphere, recon], dim=1)
    assert torch.allclose(det.score_stats_, score_stats(parts))
    want = combined_scores(parts, det.score_stats_, torch.tensor([1.0, 2.0])).numpy()
    s_normal = det.decision_function(x[normal])
    np.testing.assert_allclose(s_normal, want, rtol=1e-5, atol=1e-5)
    assert abs(s_normal.mean()) < 1e-4  # both terms standardised on the training data: mean 0
    assert np.median(det.decision_function(x[~normal])) > np.median(s_normal)
    # no sphere boundary for a combined score: the threshold flags a share nu of the training data
    assert np.mean(det.predict(x[normal])) == pytest.approx(0.1, abs=0.02)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    np.testing.assert_array_equal(loaded.decision_function(x[:200]), det.decision_function(x[:200]))
    assert loaded.threshold_ == det.threshold_
    # a file whose settings and columns name the term score.recon and "recon" loads as score.pretext
    p = load_checked(tmp_path / "det.pt")
    p["config"] = p["config"].replace('"pretext":', '"recon":')
    p["columns"] = ["multi", "recon"]
    save_checked(tmp_path / "old.pt", p)
    old = MultiRadiusDeepSVDD.load(tmp_path / "old.pt")
    assert old.scorer_.names == ["multi", "pretext"] and old.resolved_config().score.pretext == 2.0
    np.testing.assert_array_equal(old.decision_function(x[:200]), det.decision_function(x[:200]))


@pytest.mark.slow  # a whole fit
def test_one_sphere_term_is_the_baseline_model_and_round_trips(tmp_path):
    d = load_digits()
    x = torch.from_numpy(d.data.astype(np.float32))
    normal = torch.from_numpy(np.isin(d.target, (0, 1, 3)))
    cfg = apply_overrides(load_recipe(default_recipe()), {**TINY, "score.single": 0.5, "score.pretext": 2.0})
    multi = MultiRadiusDeepSVDD(cfg, device="cpu").fit(x[normal], harness=Harness(baseline=True))
    single = multi.baseline_
    # the one-sphere term is the very model the baseline trained (same seed, same data order)
    assert multi.single_encoder_ is single.encoder_
    assert single.single_head_ is None and single.resolved_config().score.single == 0.0
    assert single.n_clusters_ == 1 and multi.single_head_.num_clusters == 1
    with torch.inference_mode():
        xb = multi.preprocessor_(x[normal])
        columns = [
            scores(multi.encoder_(xb), multi.head_.centres, multi.head_.radii, multi.head_.rule)[0],
            scores(single.encoder_(xb), single.head_.centres, single.head_.radii, single.head_.rule)[0],
            reconstruction_error(multi.recon_, xb),
        ]
    parts = torch.stack(columns, dim=1)
    assert torch.allclose(multi.score_stats_, score_stats(parts))
    want = combined_scores(parts, multi.score_stats_, torch.tensor([1.0, 0.5, 2.0])).numpy()
    s_normal = multi.decision_function(x[normal])
    np.testing.assert_allclose(s_normal, want, rtol=1e-5, atol=1e-5)
    assert np.median(multi.decision_function(x[~normal])) > np.median(s_normal)
    assert np.mean(multi.predict(x[normal])) == pytest.approx(0.1, abs=0.02)  # the (1 - nu) quantile
    loaded = MultiRadiusDeepSVDD.load(multi.save(tmp_path / "det.pt"))
    assert loaded.single_head_.num_clusters == 1 and loaded.threshold_ == multi.threshold_
    np.testing.assert_array_equal(loaded.decision_function(x[:200]), multi.decision_function(x[:200]))
    # without the pretext term (the reconstruction error): two columns, the multi-sphere score first
    cfg2 = apply_overrides(cfg, {"score.pretext": 0.0})
    alone = MultiRadiusDeepSVDD(cfg2, device="cpu").fit(x[normal])
    assert alone.baseline_ is None and alone.recon_ is None
    assert alone.score_stats_.shape == (2, 2)


@pytest.mark.slow  # a whole fit
def test_detector_files_of_another_format_version_are_refused_by_name(tmp_path):
    d = load_digits()
    x = d.data.astype(np.float32)
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **TINY).fit(x[d.target < 3])
    path = det.save(tmp_path / "det.pt")
    p = load_checked(path)
    p["format"] = "multi-radius-deep-svdd/1"
    save_checked(path, p)
    with pytest.raises(DetectorFileError, match=r"format 'multi-radius-deep-svdd/1'.*refit the detector") as e:
        MultiRadiusDeepSVDD.load(path)
    assert "\n" not in str(e.value)


def test_recon_weight_needs_the_decoder():
    x = torch.randn(30, 4)
    with pytest.raises(ValueError, match="decoder"):
        train_svdd(
            MLPEncoder(4, (8,), 4),
            x,
            torch.zeros(30, dtype=torch.long),
            SVDDConfig(epochs=1, recon_weight=1.0),
            seed=0,
            stage="t",
        )


def test_holdout_mask_takes_a_share_of_every_cluster():
    from toolkit.stages import holdout_mask

    labels = torch.tensor([0] * 50 + [1] * 9 + [2] * 1 + [3] * 40)
    held = holdout_mask(labels, 0.2, seed=0)
    assert [int(held[labels == k].sum()) for k in range(4)] == [10, 1, 0, 8]
    assert not torch.equal(held, holdout_mask(labels, 0.2, seed=1))  # seeded, not fixed


def test_early_stopping_on_held_out_normals_keeps_the_best_epoch():
    """A learning rate far too high makes the held-out loss worse after its best epoch: training stops
    `patience` epochs later and the encoder and radii of the best epoch are put back."""
    d = load_digits()
    x = torch.from_numpy(d.data[np.isin(d.target, (0, 1))].astype(np.float32) / 16)
    torch.manual_seed(0)
    encoder = MLPEncoder(64, (32,), 8)
    labels = torch.zeros(len(x), dtype=torch.long)
    cfg = SVDDConfig(epochs=40, lr=0.05, milestones=(), warmup_epochs=1, holdout_fraction=0.2, patience=3)
    head, history = train_svdd(encoder, x, labels, cfg, seed=0, stage="t")
    losses = [e["holdout_loss"] for e in history.epochs if "holdout_loss" in e]
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 3 < 40  # stopped `patience` epochs after the best
    rows = [e for e in history.epochs if "holdout_loss" in e]
    assert head.radii.tolist() == pytest.approx(rows[best]["radii"])
