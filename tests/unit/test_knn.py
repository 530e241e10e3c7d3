"""The k-NN distance against a brute-force reference, the k-NN score term of the detector, and the
random partition that serves as the null control for pseudo-labels."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD
from toolkit.config import ConfigError
from toolkit.knn import knn_distance, smallest
from toolkit.overrides import apply_overrides
from toolkit.pretext import score_terms
from toolkit.recipes_loader import default_recipe, load_recipe
from toolkit.registry import build_clusterer
from toolkit.scoring import pooled
from toolkit.svdd import combined_scores, score_stats, scores

TINY = {
    "pretrain.epochs": 3,
    "svdd.epochs": 4,
    "svdd.warmup_epochs": 2,
    "score.single": 0.0,
    "score.centres": 0.0,
    "score.calibration": 0.0,
}  # the k-NN term beside the recipe's spheres and reconstruction error; the pixel centres are test_centres.py's
AE_KNN = {**TINY, "score.multi": 0.0, "score.pretext": 0.0, "score.knn": 1.0, "score.knn_space": "autoencoder"}
# every row trains: the reference rows are the whole training data


def digits_013():
    """scikit-learn's digits as float32 rows, and which are normal: the classes 0, 1 and 3."""
    d = load_digits()
    return d.data.astype(np.float32), np.isin(d.target, (0, 1, 3))


def brute_force(query, reference, k, exclude_self=False):
    """Every distance by a Python loop, sorted: the slow, obvious way."""
    out = []
    for i, q in enumerate(query.tolist()):
        d = [sum((a - b) ** 2 for a, b in zip(q, r, strict=True)) ** 0.5 for r in reference.tolist()]
        if exclude_self:
            d.pop(i)
        out.append(sum(sorted(d)[:k]) / k)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("chunk", [1, 5, 1024])
def test_knn_distance_matches_brute_force(k, chunk):
    g = torch.Generator().manual_seed(k)
    ref = torch.randn(23, 4, generator=g, dtype=torch.float64)
    query = torch.randn(11, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(knn_distance(query, ref, k, chunk=chunk), brute_force(query, ref, k))
    # leave-one-out on the reference itself: no point is its own neighbour
    torch.testing.assert_close(
        knn_distance(ref, ref, k, exclude_self=True, chunk=chunk), brute_force(ref, ref, k, exclude_self=True)
    )


def test_knn_distance_with_duplicate_points_and_float32():
    ref = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    # the duplicate is a neighbour at distance 0; only the point's own index is left out
    torch.testing.assert_close(knn_distance(ref, ref, 1, exclude_self=True), torch.tensor([0.0, 0.0, 5.0]))
    big = torch.randn(300, 784) * 50  # pixel-sized values: the matrix-product form stays close to exact
    torch.testing.assert_close(
        knn_distance(big[:20], big[20:], 5),
        brute_force(big[:20].double(), big[20:].double(), 5).float(),
        rtol=1e-4,
        atol=1e-3,
    )


@pytest.mark.parametrize("k", [1, 2, 5])
def test_smallest_gives_the_k_smallest_of_wide_rows_exactly(k):
    """The groups' minima pick where to look; the values are topk's, ties and the columns past the last
    whole group included."""
    g = torch.Generator().manual_seed(k)
    values = torch.randint(0, 50, (40, 4 * k * 64 + 37), generator=g).float()  # many ties
    values[0, -1] = -1.0  # the smallest in the columns past the last whole group
    values[1, :64] = -2.0  # a row whose k smallest are all in one group
    values[2, 5::64] = -3.0  # ... or one in each of many groups
    want = values.topk(k, dim=1, largest=False).values.sort(dim=1).values
    assert torch.equal(smallest(values, k).sort(dim=1).values, want)
    narrow = values[:, : 4 * k * 64 - 1]  # too few groups: the whole-row topk
    want = narrow.topk(k, dim=1, largest=False).values.sort(dim=1).values
    assert torch.equal(smallest(narrow, k).sort(dim=1).values, want)


def test_knn_distance_over_many_reference_rows_matches_the_whole_matrix():
    g = torch.Generator().manual_seed(0)
    ref, query = torch.randn(2000, 3, generator=g), torch.randn(50, 3, generator=g)
    d = torch.cdist(query.double(), ref.double())
    want = d.topk(5, dim=1, largest=False).values.mean(dim=1).float()
    torch.testing.assert_close(knn_distance(query, ref, 5), want, rtol=1e-4, atol=1e-4)


def test_knn_distance_refuses_bad_k_and_shapes():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"k=4 must be in \[1, 3\]"):
        knn_distance(x, x, 4, exclude_self=True)
    with pytest.raises(ValueError, match="takes \\(N, D\\) and \\(M, D\\)"):
        knn_distance(torch.zeros(4, 3), x, 1)


def test_random_partition_has_the_asked_sizes_and_is_seeded():
    x = np.zeros((100, 2))
    labels = build_clusterer("random", sizes=[50, 30, 20], random_state=3).fit_predict(x)
    assert np.bincount(labels).tolist() == [50, 30, 20]
    again = build_clusterer("random", sizes=[50, 30, 20], random_state=3).fit_predict(x)
    other = build_clusterer("random", sizes=[50, 30, 20], random_state=4).fit_predict(x)
    assert np.array_equal(labels, again) and not np.array_equal(labels, other)
    assert labels[:50].tolist() != [0] * 50  # shuffled, not in blocks
    assert np.bincount(build_clusterer("random", n_clusters=3).fit_predict(x)).tolist() == [34, 33, 33]


@pytest.mark.parametrize(
    "options, match",
    [
        ({}, "one of the two"),
        ({"n_clusters": 2, "sizes": [1, 1]}, "one of the two"),
        ({"sizes": [3, 0]}, "positive integers"),
        ({"n_clusters": 0}, "positive integer"),
    ],
)
def test_random_partition_refuses_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        build_clusterer("random", **options)


def test_random_partition_sizes_must_add_up():
    with pytest.raises(ValueError, match="add up to 5, not to the 6 points"):
        build_clusterer("random", sizes=[2, 3]).fit_predict(np.zeros((6, 1)))


@pytest.mark.slow  # a whole fit
def test_knn_term_joins_the_score_leave_one_out_and_round_trips(tmp_path):
    x, normal = digits_013()
    det = MultiRadiusDeepSVDD(
        load_recipe(default_recipe()), device="cpu", **TINY, **{"score.knn": 2.0, "score.knn_k": 3}
    ).fit(x[normal])
    with torch.inference_mode():
        xb = det.preprocessor_(torch.from_numpy(x[normal]))
        z = det.encoder_(xb)
        sphere = scores(z, det.head_.centres, det.head_.radii, det.head_.rule)[0]
        pretext = det.scorer_.columns(torch.from_numpy(x[normal]))[0][:, 1]  # the reconstruction error
    assert list(det.knn_reference_) == ["embedding"]
    torch.testing.assert_close(det.knn_reference_["embedding"], z)
    loo = brute_force(z.double(), z.double(), 3, exclude_self=True).float()
    train_parts = torch.stack([sphere, pretext, loo], dim=1)
    torch.testing.assert_close(det.score_stats_, score_stats(train_parts), rtol=1e-4, atol=1e-4)
    # new points are scored against every training point (no point left out)
    x_new = x[~normal][:50]
    with torch.inference_mode():
        z_new = det.encoder_(det.preprocessor_(torch.from_numpy(x_new)))
        new_parts = det.scorer_.columns(torch.from_numpy(x_new))[0]
    torch.testing.assert_close(
        new_parts[:, 2], brute_force(z_new.double(), z.double(), 3).float(), rtol=1e-4, atol=1e-4
    )
    want = combined_scores(new_parts, det.score_stats_, torch.tensor([1.0, 1.0, 2.0])).numpy()
    np.testing.assert_allclose(det.decision_function(x_new), want, rtol=1e-5, atol=1e-5)
    # the threshold is the (1 - nu) quantile of the training scores as calibrated (leave-one-out): a training
    # point scored later finds itself at distance 0, so fewer than nu of them are flagged then
    calibrated = combined_scores(train_parts, det.score_stats_, torch.tensor([1.0, 1.0, 2.0]))
    assert det.threshold_ == pytest.approx(float(torch.quantile(calibrated, 0.9)), rel=1e-4)
    assert np.mean(det.predict(x[normal])) < 0.1
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    np.testing.assert_array_equal(loaded.decision_function(x[:200]), det.decision_function(x[:200]))
    assert loaded.threshold_ == det.threshold_


def test_knn_term_in_the_input_space_measures_preprocessed_inputs():
    x, normal = digits_013()
    settings = {**TINY, "score.pretext": 0.0, "score.knn": 1.0, "score.knn_space": "input"}
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x[normal])
    with torch.inference_mode():
        xb = det.preprocessor_(torch.from_numpy(x[normal]))
        column = det.scorer_.columns(torch.from_numpy(x[~normal][:30]))[0][:, 1]
        x_new = det.preprocessor_(torch.from_numpy(x[~normal][:30]))
    torch.testing.assert_close(det.knn_reference_["input"], xb)
    want = brute_force(x_new.double(), xb.double(), 5).float()
    torch.testing.assert_close(column, want, rtol=1e-4, atol=1e-4)


def test_knn_term_in_the_autoencoder_space_alone(tmp_path):
    """knn_space="autoencoder" measures in the pretrained autoencoder's embedding, which the detector keeps
    (and saves) without a reconstruction term; score.multi=0 leaves the spheres out of the score."""
    x, normal = digits_013()
    settings = AE_KNN
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x[normal])
    x_new = x[~normal][:40]
    with torch.inference_mode():
        xb = det.preprocessor_(torch.from_numpy(x[normal]))
        z_ae = det.recon_.encoder(xb)
        parts = det.scorer_.columns(torch.from_numpy(x_new))[0]
        z_new = det.recon_.encoder(det.preprocessor_(torch.from_numpy(x_new)))
    assert parts.shape[1] == 2  # the multi-sphere score and the k-NN distance: no reconstruction column
    torch.testing.assert_close(det.knn_reference_["autoencoder"], z_ae)
    knn = brute_force(z_new.double(), z_ae.double(), 5).float()
    torch.testing.assert_close(parts[:, 1], knn, rtol=1e-4, atol=1e-4)
    stats = det.score_stats_
    loo = brute_force(z_ae.double(), z_ae.double(), 5, exclude_self=True).float()
    torch.testing.assert_close(stats[:, 1], torch.stack([loo.mean(), loo.std()]), rtol=1e-4, atol=1e-4)
    want = ((knn - stats[0, 1]) / stats[1, 1]).numpy()  # the standardised k-NN distance alone
    np.testing.assert_allclose(det.decision_function(x_new), want, rtol=1e-4, atol=1e-4)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    np.testing.assert_array_equal(loaded.decision_function(x_new), det.decision_function(x_new))


def test_a_score_without_the_spheres_scores_without_their_encoder():
    """score.multi=0: decision_function (and the exported forward) never runs the multi-sphere encoder,
    whose column adds nothing; score_with_clusters still runs it for the nearest sphere, and both give the
    same scores."""
    x, normal = digits_013()
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **AE_KNN).fit(x[normal])
    calls = []
    det.encoder_.register_forward_hook(lambda *_: calls.append(1))
    x_new = x[~normal][:40]
    fast = det.decision_function(x_new)
    assert calls == []
    scores_, clusters = det.score_with_clusters(x_new)
    assert calls and clusters.shape == (40,) and 0 <= clusters.min() and clusters.max() < det.n_clusters_
    np.testing.assert_array_equal(fast, scores_)
    with torch.inference_mode():
        np.testing.assert_array_equal(det.scorer_(torch.from_numpy(x_new)).numpy(), fast)


def test_knn_term_in_two_spaces_adds_one_column_each(tmp_path):
    """knn_space="autoencoder+raw": the k-NN distance in the pretrained autoencoder's embedding and on the
    data as given (before preprocessing), each standardised by its leave-one-out training scores and
    weighted by score.knn."""
    x, normal = digits_013()
    settings = {
        **TINY,
        "score.multi": 0.0,
        "score.pretext": 0.0,
        "score.knn": 2.0,
        "score.knn_k": 3,
        "score.knn_space": "autoencoder+raw",
    }
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x[normal])
    assert list(det.knn_reference_) == ["autoencoder", "raw"]
    torch.testing.assert_close(det.knn_reference_["raw"], torch.from_numpy(x[normal]))
    x_new = x[~normal][:40]
    with torch.inference_mode():
        z_ae = det.recon_.encoder(det.preprocessor_(torch.from_numpy(x[normal])))
        z_new = det.recon_.encoder(det.preprocessor_(torch.from_numpy(x_new)))
    torch.testing.assert_close(det.knn_reference_["autoencoder"], z_ae)
    ae = brute_force(z_new.double(), z_ae.double(), 3).float()
    raw = brute_force(torch.from_numpy(x_new).double(), torch.from_numpy(x[normal]).double(), 3).float()
    loo = [
        brute_force(z_ae.double(), z_ae.double(), 3, exclude_self=True).float(),
        brute_force(torch.from_numpy(x[normal]).double(), torch.from_numpy(x[normal]).double(), 3, exclude_self=True),
    ]
    stats = det.score_stats_
    for col, train in ((1, loo[0]), (2, loo[1].float())):
        torch.testing.assert_close(stats[:, col], torch.stack([train.mean(), train.std()]), rtol=1e-4, atol=1e-4)
    want = (2 * (ae - stats[0, 1]) / stats[1, 1] + 2 * (raw - stats[0, 2]) / stats[1, 2]).numpy()
    np.testing.assert_allclose(det.decision_function(x_new), want, rtol=1e-4, atol=1e-4)
    assert det.resolved_config().score.terms() == (
        "2 x 3-NN distance (autoencoder embedding) + 2 x 3-NN distance (raw input)"
    )
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    np.testing.assert_array_equal(loaded.decision_function(x_new), det.decision_function(x_new))


def test_pooled_averages_each_channel_over_a_four_by_four_grid_of_patches():
    x = torch.rand(5, 3, 32, 32)
    want = x.reshape(5, 3, 4, 8, 4, 8).mean(dim=(3, 5)).flatten(1)  # 8 x 8 patches, channel by channel
    torch.testing.assert_close(pooled(x), want)
    assert pooled(torch.rand(2, 1, 28, 28)).shape == (2, 16)  # 7 x 7 patches of a grey image


def test_knn_term_in_the_pooled_space_measures_the_images_colour_layout(tmp_path):
    """knn_space="pooled": the k-NN distance between the images as given, each channel averaged over a
    4 x 4 grid of patches, beside the other terms; the rows kept are those 48 values an image."""
    rng = np.random.default_rng(0)
    x = rng.random((60, 3, 32, 32), dtype=np.float32)
    x[:, 0] *= np.linspace(0.2, 1.0, 60, dtype=np.float32)[:, None, None]  # images of more or less red
    settings = {"pretrain.epochs": 1, "svdd.epochs": 1, "svdd.warmup_epochs": 0, "pretrain.batch_size": 20}
    settings |= {"svdd.batch_size": 20, "score.knn": 1.0, "score.knn_k": 1, "score.knn_space": "pooled"}
    det = MultiRadiusDeepSVDD(load_recipe("cifar10"), device="cpu", **settings).fit(x)
    ref = pooled(torch.from_numpy(x))
    torch.testing.assert_close(det.knn_reference_["pooled"], ref)
    new = rng.random((7, 3, 32, 32), dtype=np.float32)
    with torch.inference_mode():
        column = det.scorer_.columns(torch.from_numpy(new))[0][:, -1]
    torch.testing.assert_close(column, brute_force(pooled(torch.from_numpy(new)).double(), ref.double(), 1).float())
    assert "1-NN distance (pooled raw images)" in det.resolved_config().score.terms()
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    np.testing.assert_array_equal(loaded.decision_function(new), det.decision_function(new))


@pytest.mark.parametrize("setting", ["knn", "centres"])
def test_the_pooled_space_of_rows_that_are_not_images_is_refused_before_training(setting):
    x, normal = digits_013()
    settings = {**TINY, f"score.{setting}": 1.0, f"score.{setting}_space": "pooled"}
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings)
    want = f"score.{setting}_space=pooled averages images \\(C, H, W\\).*shape \\(64,\\): use raw or input"
    with pytest.raises(ConfigError, match=want):
        det.fit(x[normal])
    assert not hasattr(det, "scorer_")


def test_float16_storage_halves_the_kept_rows_and_scores_alike_once_loaded(tmp_path):
    """score.storage=float16: the k-NN rows and the centres are rounded to float16 when fitted (the same
    fit otherwise), written to the file as float16 (half their bytes), and a loaded detector scores exactly
    as the fitted one, in float32."""
    x, normal = digits_013()
    settings = {**AE_KNN, "score.centres": 1.0, "score.centres_space": "raw"}
    full = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x[normal])
    half = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings, **{"score.storage": "float16"})
    half.fit(x[normal])
    rows, centres = half.knn_reference_["autoencoder"], half.space_centres_["raw"]
    assert rows.dtype == centres.dtype == torch.float32  # scored in float32
    torch.testing.assert_close(rows, full.knn_reference_["autoencoder"].half().float(), rtol=0, atol=0)
    torch.testing.assert_close(centres, full.space_centres_["raw"].half().float(), rtol=0, atol=0)
    assert not torch.equal(centres, full.space_centres_["raw"])  # the means of digits' pixels are not all halves
    kept = (rows.numel() + centres.numel()) * 2  # bytes saved by float16
    sizes = [det.save(tmp_path / f"{name}.pt").stat().st_size for name, det in (("full", full), ("half", half))]
    assert sizes[0] - sizes[1] >= 0.95 * kept
    x_new = x[~normal][:40]
    loaded = MultiRadiusDeepSVDD.load(tmp_path / "half.pt")
    assert loaded.knn_reference_["autoencoder"].dtype == torch.float32
    np.testing.assert_array_equal(loaded.decision_function(x_new), half.decision_function(x_new))
    np.testing.assert_allclose(half.decision_function(x_new), full.decision_function(x_new), rtol=1e-2, atol=1e-2)
    with pytest.raises(ConfigError, match="score.storage='float8' is unknown; accepted: \\('float32', 'float16'\\)"):
        apply_overrides(load_recipe(default_recipe()), {"score.storage": "float8"})


def test_score_terms_name_what_the_score_adds_up():
    """The pretext term is named by the run's pretraining method (its ``score_name``)."""
    cfg = load_recipe(default_recipe())
    pixels = "nearest-centre distance (raw input)"
    assert score_terms(cfg) == f"sphere score + one-sphere score + reconstruction error + {pixels}"
    knn = {"score.multi": 0, "score.single": 0.5, "score.knn": 1, "score.knn_space": "autoencoder"}
    assert score_terms(apply_overrides(cfg, knn)) == (
        f"0.5 x one-sphere score + reconstruction error + 5-NN distance (autoencoder embedding) + {pixels}"
    )
    rotation = apply_overrides(cfg, {"pretrain.method": "rotation", "score.pretext": 2, "score.centres": 0})
    assert score_terms(rotation) == "sphere score + one-sphere score + 2 x rotation cross-entropy"
    assert cfg.score.terms("own score") == f"sphere score + one-sphere score + own score + {pixels}"


def test_a_score_with_no_term_is_refused_before_training():
    cfg = apply_overrides(load_recipe(default_recipe()), {**TINY, "score.multi": 0.0, "score.pretext": 0.0})
    x = load_digits().data.astype(np.float32)
    with pytest.raises(ConfigError, match="score.multi=0 leaves no score"):
        MultiRadiusDeepSVDD(cfg, device="cpu").fit(x)


@pytest.mark.parametrize(
    "bad",
    [
        {"score.knn": -1.0},
        {"score.knn_k": 0},
        {"score.knn_space": "pixels"},
        {"score.knn_space": "autoencoder+pixels"},
        {"score.knn_space": "raw+raw"},
        {"score.knn_space": "autoencoder+"},
        {"score.multi": -1.0},
    ],
)
def test_bad_knn_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        apply_overrides(load_recipe(default_recipe()), bad)
