"""The scoring object's threshold: split conformal calibration on held-out normal data."""

import numpy as np
import pytest
import torch

from toolkit import MultiRadiusDeepSVDD, load_recipe
from toolkit.config import ConfigError
from toolkit.overrides import apply_overrides
from toolkit.scoring import calibration_rows, conformal_threshold, training_rows

QUICK = {"pretrain.epochs": 3, "svdd.epochs": 3, "svdd.warmup_epochs": 1}


def test_calibration_rows_are_seeded_disjoint_and_whole():
    train, held = calibration_rows(50, 0.2, seed=3)
    assert len(held) == 10 and len(train) == 40
    assert sorted(torch.cat([train, held]).tolist()) == list(range(50))  # every row once
    assert torch.equal(held, calibration_rows(50, 0.2, seed=3)[1])
    assert not torch.equal(held, calibration_rows(50, 0.2, seed=4)[1])
    train, held = calibration_rows(50, 0.0, seed=3)
    assert held is None and train.tolist() == list(range(50))


def test_conformal_threshold_flags_the_rate_of_exchangeable_new_points_on_average():
    """Over many draws of n held-out scores, new points from the same distribution are flagged at the
    rate asked for, on average (the threshold interpolates between the order statistics around
    position (n + 1)(1 - rate))."""
    g = torch.Generator().manual_seed(0)
    for n in (36, 50):
        flagged = []
        for _ in range(2000):
            held, new = torch.randn(n, generator=g), torch.randn(1000, generator=g)
            flagged.append(float((new > conformal_threshold(held, 0.1)).float().mean()))
        assert abs(np.mean(flagged) - 0.1) < 0.004, (n, np.mean(flagged))
    assert conformal_threshold(torch.arange(5.0), 0.1) == 4.0  # too few points for that rate: the largest
    assert conformal_threshold(torch.arange(19.0), 0.1) == 17.0  # position 18 of 19: the 18th smallest
    assert conformal_threshold(torch.arange(10.0), 0.5) == 4.5  # position 5.5: halfway between 5th and 6th


def test_too_few_rows_left_to_train_are_refused_with_what_the_settings_need():
    score = load_recipe("table").score  # a fifth held out, a 5-NN term
    assert len(training_rows(score, 8, seed=0)[0]) == 6  # 5 neighbours besides each row itself
    with pytest.raises(ConfigError, match=r"7 rows given, 1 held out by score.calibration=0.2, 6 rows left"):
        training_rows(apply_overrides(load_recipe("table"), {"score.knn_k": 6}).score, 7, seed=0)
    with pytest.raises(ConfigError, match=r"1 row left to train; these settings need at least 3 \(the clustering"):
        training_rows(load_recipe("digits").score, 2, seed=0)
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    with pytest.raises(ConfigError, match="lower score.knn_k"):  # before any training
        MultiRadiusDeepSVDD(load_recipe("table"), device="cpu").fit(x)


def test_a_seed_out_of_numpys_range_is_refused():
    with pytest.raises(ConfigError, match=r"seed=-1 must be an integer in \[0, 2\*\*32 - 1\]"):
        apply_overrides(load_recipe("digits"), {"seed": -1})


def test_fit_predict_labels_every_row_held_out_ones_too(digits):
    """scikit-learn's and PyOD's fit_predict: one label per row of X, the rows held out to set the
    threshold by predict."""
    x = digits[0]
    det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **QUICK)  # a tenth held out
    labels = det.fit_predict(x)
    held = np.setdiff1d(np.arange(len(x)), det.train_rows_)
    assert len(labels) == len(x) and len(held) == round(0.1 * len(x))
    np.testing.assert_array_equal(labels[det.train_rows_], det.labels_)
    np.testing.assert_array_equal(labels[held], det.predict(x[held]))


def test_calibration_out_of_range_is_refused():
    with pytest.raises(ConfigError, match=r"score.calibration=0.6 must be in \[0, 0.5\)"):
        apply_overrides(load_recipe("digits"), {"score.calibration": 0.6})


def test_a_calibrated_threshold_is_the_conformal_quantile_of_the_held_out_normal_scores(digits):
    normal, _ = digits
    det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **QUICK, **{"score.calibration": 0.25})
    det.fit(normal)
    rows, held_rows = calibration_rows(len(normal), 0.25, seed=0)
    train, held = torch.from_numpy(normal)[rows], torch.from_numpy(normal)[held_rows]
    assert det.fit_info_["n_train"] == len(train) and det.fit_info_["n_calibration"] == len(held)
    assert np.array_equal(det.train_rows_, rows.numpy()) and len(det.cluster_labels_) == len(train)
    assert len(det.decision_scores_) == len(train)
    held_scores = torch.from_numpy(det.decision_function(held.numpy()))
    assert det.threshold_ == conformal_threshold(held_scores, 0.1)
    assert det.predict(held.numpy()).mean() <= 0.1
    pyod = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", contamination=0.2, **QUICK)
    pyod.set_params(**{"score.calibration": 0.25}).fit(normal)  # contamination takes nu's place
    assert pyod.threshold_ == conformal_threshold(torch.from_numpy(pyod.decision_function(held.numpy())), 0.2)
