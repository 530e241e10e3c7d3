"""The fitted detector: scikit-learn conventions, scoring, and a save/load that never unpickles objects."""

import os
import pickle

import numpy as np
import pytest
import torch

from toolkit import MultiRadiusDeepSVDD
from toolkit.detector import DetectorFileError, NotFittedError
from toolkit.recipes_loader import default_recipe, load_recipe

TINY = {
    "pretrain.epochs": 3,
    "svdd.epochs": 4,
    "svdd.warmup_epochs": 2,
    "score.single": 0.0,
    "score.pretext": 0.0,
    "score.centres": 0.0,
    "score.calibration": 0.0,
}  # the sphere score alone, trained on every row (tests/unit/test_scoring.py holds a share out)


@pytest.fixture(scope="module")
def fitted(digits):
    x_normal, _ = digits
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **TINY)
    assert det.fit(x_normal) is det
    return det


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_learned_attributes(fitted, digits):
    k = fitted.n_clusters_
    assert fitted.centers_.shape == (k, 16) and fitted.radii_.shape == (k,)
    assert (fitted.radii_ > 0).all()
    # the digits recipe's distance rule has no sphere boundary: the threshold flags a share nu of the training data
    assert fitted.head_.rule == "distance"
    assert fitted.threshold_ == pytest.approx(float(np.quantile(fitted.decision_scores_, 0.9)), rel=1e-5)
    assert fitted.cluster_labels_.shape == (len(digits[0]),) and set(fitted.cluster_labels_.tolist()) == set(range(k))


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_a_config_that_is_not_a_config_says_how_to_get_one(digits):
    with pytest.raises(TypeError, match=r"config must be a Config, such as a recipe's: .*load_recipe\('digits'\)"):
        MultiRadiusDeepSVDD("digits").fit(digits[0])


def test_load_says_what_a_path_is_when_it_is_no_detector_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a detector")
    with pytest.raises(DetectorFileError, match="is not a readable detector file .not a file written by save"):
        MultiRadiusDeepSVDD.load(tmp_path / "notes.txt")
    with pytest.raises(DetectorFileError, match="is a folder; a run's detector file is RUN_DIR/detector_multi.pt"):
        MultiRadiusDeepSVDD.load(tmp_path)


def test_decision_function_is_min_over_spheres(fitted, digits):
    x = digits[1][:50]
    got = fitted.decision_function(x)
    with torch.inference_mode():
        z = fitted.encoder_(fitted.preprocessor_(torch.from_numpy(x)))
        d = torch.cdist(z, fitted.head_.centres).pow(2)
        expected = d.min(dim=1)[0]  # the digits recipe's distance rule, written out
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4)
    assert fitted.predict(x).tolist() == (got > fitted.threshold_).astype(int).tolist()


@pytest.mark.slow  # a whole fit
def test_the_ratio_rule_is_min_over_spheres_with_the_boundary_at_one(digits):
    x_normal, x_new = digits
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **TINY, **{"score.rule": "ratio"})
    det.fit(x_normal)
    assert det.threshold_ == 1.0  # d_k / R_k^2 > 1 is outside sphere k
    got = det.decision_function(x_new[:50])
    with torch.inference_mode():
        z = det.encoder_(det.preprocessor_(torch.from_numpy(x_new[:50])))
        expected = (torch.cdist(z, det.head_.centres).pow(2) / det.head_.radii.pow(2)).min(dim=1)[0]
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4)
    assert det.predict(x_new[:50]).tolist() == (got > 1.0).astype(int).tolist()


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_anomalies_score_higher_than_normals(fitted, digits):
    from sklearn.metrics import roc_auc_score

    x_normal, x_anom = digits
    s = np.concatenate([fitted.decision_function(x_normal), fitted.decision_function(x_anom)])
    y = np.r_[np.zeros(len(x_normal)), np.ones(len(x_anom))]
    assert roc_auc_score(y, s) > 0.6  # even a few epochs separate digits {0,1,3} from the rest


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_save_load_round_trip_gives_identical_scores(fitted, digits, tmp_path):
    path = fitted.save(tmp_path / "det.pt")
    loaded = MultiRadiusDeepSVDD.load(path)
    x = np.concatenate(digits)[:300]
    np.testing.assert_array_equal(loaded.decision_function(x), fitted.decision_function(x))
    np.testing.assert_array_equal(loaded.radii_, fitted.radii_)
    assert loaded.config == fitted.resolved_config()  # the overrides travel with the file


def test_unfitted_detector_says_so():
    with pytest.raises(NotFittedError, match="fit"):
        MultiRadiusDeepSVDD().predict(np.zeros((2, 64), np.float32))


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_wrong_input_shape(fitted):
    with pytest.raises(ValueError, match=r"takes \(64,\)"):
        fitted.decision_function(np.zeros((2, 32), np.float32))


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_load_refuses_pickled_objects_and_damaged_files(fitted, tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "multi-radius-deep-svdd/1", "payload": _Boom()}, evil)
    with pytest.raises(DetectorFileError, match="refused"):
        MultiRadiusDeepSVDD.load(evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(DetectorFileError):
        MultiRadiusDeepSVDD.load(raw)
    good = fitted.save(tmp_path / "good.pt")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DetectorFileError):
        MultiRadiusDeepSVDD.load(truncated)
    with pytest.raises(DetectorFileError, match="no detector file"):
        MultiRadiusDeepSVDD.load(tmp_path / "missing.pt")


@pytest.mark.slow  # a (tiny) fit
def test_a_dataframes_column_names_are_kept_and_checked_when_scoring(digits, tmp_path):
    import warnings

    import pandas as pd

    x = digits[0][:200]
    names = [f"px{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names)
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **TINY).fit(frame)
    assert det.feature_names_in_.dtype == object and det.feature_names_in_.tolist() == names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the columns of fit: no warning
        scores = det.decision_function(frame)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):  # scikit-learn's warning
        np.testing.assert_array_equal(det.decision_function(x), scores)
    cases = {
        "another order": frame[names[::-1]],
        "unseen at fit: c0, c1, c2, c3, c4, ...; missing: px0, px1": frame.set_axis(
            [f"c{i}" for i in range(64)], axis=1
        ),
        "missing: px3, px4": frame[names[:3]],
    }
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    assert loaded.feature_names_in_.tolist() == names  # kept in the file, as plain strings
    for model in (det, loaded):
        for expected, bad in cases.items():
            with pytest.raises(ValueError, match=expected) as e:
                model.predict(bad)
            assert "\n" not in str(e.value) and "feature_names_in_" in str(e.value)
    det.fit(x)  # refitted on an array: the names go
    assert not hasattr(det, "feature_names_in_")


@pytest.mark.slow  # the module's fitted detector: a whole fit
def test_huge_finite_values_score_as_anomalies_everywhere(fitted, digits, tmp_path):
    """Values so large that float32 overflows in the preprocessing give no NaN score called normal: the
    score is +inf and the row anomalous, in decision_function, predict and the exported scorer."""
    from toolkit.export import export

    x = digits[1][:4].copy()
    x[1] = 1e37
    s = fitted.decision_function(x)
    assert np.isinf(s[1]) and s[1] > 0 and np.isfinite(s[[0, 2, 3]]).all()
    assert fitted.predict(x)[1] == 1
    assert fitted.score_with_clusters(x)[1][1] == -1
    scorer = torch.jit.load(str(export(fitted, tmp_path / "scorer.pt")))
    assert torch.isinf(scorer(torch.from_numpy(x))[1])


@pytest.mark.slow  # a fit that is refused after preprocessing
def test_training_rows_that_overflow_are_refused_by_row(digits):
    x = digits[0][:60].copy()
    x[7] = 1e37
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **TINY)
    with pytest.raises(
        ValueError, match=r"overflow float32 when preprocessed: 1 of 60 rows hold values too large \(rows 7; .*rescale"
    ):
        det.fit(x)


@pytest.mark.slow  # a whole (small) fit of a LeNet
def test_a_detector_of_another_net_width_saves_and_loads_its_own_net(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 28, 28), dtype=np.float32)
    settings = {**TINY, "pretrain.batch_size": 20, "svdd.batch_size": 20, "net.width": 0.5}
    det = MultiRadiusDeepSVDD(load_recipe("mnist"), device="cpu", **settings).fit(x)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))  # the half-width nets' weights fit it
    assert loaded.config.net.width == 0.5
    new = rng.random((7, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(loaded.decision_function(new), det.decision_function(new))
