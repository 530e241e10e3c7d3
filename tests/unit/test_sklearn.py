"""The detector as a scikit-learn estimator with PyOD's names: scikit-learn's own estimator checks,
clone / GridSearchCV parameters, input validation with clear messages, and the non-finite policy."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from toolkit import MultiRadiusDeepSVDD
from toolkit.detector import NotFittedError

pytestmark = pytest.mark.slow

# a tiny schedule and one sphere, so each of scikit-learn's checks fits in a moment
TINY = {
    "pretrain.epochs": 2,
    "svdd.epochs": 2,
    "svdd.warmup_epochs": 1,
    "score.single": 0.0,
    "score.pretext": 0.0,
    "clustering.name": "single",
}


def expected_failures(estimator):
    return {
        # PyOD's convention: predict gives 1 for anomalies and 0 for normal points, scikit-learn's -1 / 1
        "check_outliers_fit_predict": "0/1 labels (PyOD's convention), not -1/1",
        "check_outliers_train": "0/1 labels (PyOD's convention), not -1/1",
        # every bad input is one ValueError with a message; this check wants a TypeError for dicts in X
        "check_dtype_object": "non-numeric input raises ValueError, not TypeError",
    }


@parametrize_with_checks([MultiRadiusDeepSVDD(device="cpu", **TINY)], expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def fitted(digits):
    return MultiRadiusDeepSVDD(device="cpu", **TINY).fit(digits[0])


def test_unfitted_is_scikit_learns_not_fitted_error(digits):
    det = MultiRadiusDeepSVDD(device="cpu")
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(det)
    with pytest.raises(SklearnNotFittedError, match="not fitted"):  # the toolkit's own is a subclass
        det.decision_function(digits[0])
    assert issubclass(NotFittedError, SklearnNotFittedError)


def test_pyod_names_on_the_training_data(fitted, digits):
    x = digits[0]
    check_is_fitted(fitted)
    assert fitted.n_features_in_ == 64
    assert fitted.decision_scores_.shape == (len(x),)
    assert set(np.unique(fitted.labels_)) <= {0, 1}
    np.testing.assert_array_equal(fitted.labels_, (fitted.decision_scores_ > fitted.threshold_).astype(int))
    assert fitted.cluster_labels_.shape == (len(x),)
    proba = fitted.predict_proba(digits[1])
    assert proba.shape == (len(digits[1]), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    labels = MultiRadiusDeepSVDD(device="cpu", **TINY).fit_predict(x)
    assert labels.shape == (len(x),) and set(np.unique(labels)) <= {0, 1}


def test_contamination_sets_the_share_flagged_on_the_training_data(digits):
    det = MultiRadiusDeepSVDD(device="cpu", contamination=0.2, **TINY).fit(digits[0])
    assert det.labels_.mean() == pytest.approx(0.2, abs=0.01)
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_scores_, 0.8))
    with pytest.raises(ValueError, match=r"contamination=0.9 must be None or a number in \(0, 0.5\]"):
        MultiRadiusDeepSVDD(device="cpu", contamination=0.9).fit(digits[0])


def test_clone_and_grid_search_set_settings(digits):
    det = MultiRadiusDeepSVDD(device="cpu", **TINY, **{"svdd.nu": 0.05})
    twin = clone(det)
    assert twin.get_params() == det.get_params() and twin.get_params()["svdd.nu"] == 0.05
    with pytest.raises(ValueError, match=r"unknown setting 'svdd.epoch'; did you mean 'svdd.epochs' "):  # at fit
        clone(det).set_params(**{"svdd.epoch": 3}).fit(digits[0])

    def auroc_on_anomalies(estimator, x, y=None):
        return float(np.mean(estimator.decision_function(digits[1])) - np.mean(estimator.decision_function(x)))

    search = GridSearchCV(det, {"svdd.nu": [0.05, 0.2]}, scoring=auroc_on_anomalies, cv=2).fit(digits[0])
    assert search.best_params_["svdd.nu"] in (0.05, 0.2)
    assert search.best_estimator_.resolved_config().svdd.nu == search.best_params_["svdd.nu"]


def test_pipeline_decision_function(digits):
    pipe = make_pipeline(StandardScaler(), MultiRadiusDeepSVDD(device="cpu", **TINY)).fit(digits[0])
    assert pipe.decision_function(digits[1]).shape == (len(digits[1]),)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((0, 64), np.float32), "0 sample"),
        (np.zeros(64, np.float32), r"has shape \(64,\): one row per sample is needed"),
        (np.zeros((1, 64), np.float32), "minimum of 2 is required"),
        (np.array([["a"] * 64] * 5), "must be numeric"),
    ],
)
def test_bad_training_input_is_one_clear_error(x, match):
    with pytest.raises(ValueError, match=match):
        MultiRadiusDeepSVDD(device="cpu", **TINY).fit(x)


def test_non_finite_rows_are_refused_or_flagged_never_called_normal(fitted, digits):
    x = digits[1][:10].copy()
    x[[2, 7], 5] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"NaN or infinite values in 2 of 10 rows \(rows 2, 7\).*non_finite='anomaly'"):
        fitted.decision_function(x)
    train = digits[0].copy()
    train[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"training data hold NaN or infinite values in 1 of"):
        MultiRadiusDeepSVDD(device="cpu", **TINY).fit(train)
    fitted.set_params(non_finite="anomaly")
    try:
        s = fitted.decision_function(x)
        assert np.isinf(s[[2, 7]]).all() and np.isfinite(np.delete(s, [2, 7])).all()
        assert fitted.predict(x)[[2, 7]].tolist() == [1, 1]
        np.testing.assert_allclose(s[[0, 1, 3]], fitted.decision_function(x[[0, 1, 3]]), rtol=1e-5)
    finally:
        fitted.set_params(non_finite="raise")


def test_wrong_number_of_features_is_one_line(fitted):
    with pytest.raises(ValueError, match="X has 10 features, but MultiRadiusDeepSVDD is expecting 64 features"):
        fitted.decision_function(np.zeros((3, 10), np.float32))
