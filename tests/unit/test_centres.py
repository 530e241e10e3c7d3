"""The nearest-centre distance against brute force, its leave-one-out form, and the score term it makes:
spheres in another space, whose centres are the means of the clusterer's partition there."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD
from toolkit.centres import nearest_centre, nearest_centre_loo
from toolkit.clustering import pseudo_labels
from toolkit.config import ConfigError
from toolkit.overrides import apply_overrides
from toolkit.recipes_loader import default_recipe, load_recipe
from toolkit.svdd import cluster_means, combined_scores, score_stats, scores

TINY = {"pretrain.epochs": 3, "svdd.epochs": 4, "svdd.warmup_epochs": 2, "score.single": 0.0, "score.calibration": 0.0}


def brute_force(rows, labels, leave_out: bool):
    """Each row's distance to the nearest cluster mean, by Python loops; ``leave_out``: the row's own
    cluster's mean computed without the row (no own centre when it is alone)."""
    out = []
    for i, r in enumerate(rows):
        best = float("inf")
        for k in sorted(set(labels.tolist())):
            members = [j for j in range(len(rows)) if labels[j] == k and not (leave_out and j == i)]
            if members:
                best = min(best, float(np.linalg.norm(r - rows[members].mean(0))))
        out.append(best)
    return np.array(out)


def test_nearest_centre_and_its_leave_one_out_form_match_brute_force():
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(40, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 6, (40,), generator=g)
    labels[0] = 6  # one row alone in its cluster: measured against the others only
    labels = torch.unique(labels, return_inverse=True)[1]
    centres = cluster_means(rows, labels, int(labels.max()) + 1)
    np.testing.assert_allclose(nearest_centre(rows, centres).numpy(), brute_force(rows.numpy(), labels.numpy(), False))
    for chunk in (1, 7, 1024):
        loo = nearest_centre_loo(rows, labels, centres, chunk=chunk).numpy()
        np.testing.assert_allclose(loo, brute_force(rows.numpy(), labels.numpy(), True), rtol=1e-10)
    assert (nearest_centre_loo(rows, labels, centres) >= nearest_centre(rows, centres) - 1e-12).all()
    with pytest.raises(ValueError, match="one label per row"):
        nearest_centre_loo(rows, labels[:-1], centres)


@pytest.mark.slow  # a whole fit
def test_centres_term_joins_the_score_leave_one_out_and_round_trips(tmp_path):
    d = load_digits()
    x, normal = d.data.astype(np.float32), np.isin(d.target, (0, 1, 3))
    settings = {**TINY, "score.pretext": 0.0, "score.centres": 2.0, "score.centres_space": "raw"}
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x[normal])
    cfg = det.resolved_config()
    raw = torch.from_numpy(x[normal])
    labels = pseudo_labels(raw, cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes))[0]
    k = int(labels.max()) + 1
    assert 1 < k < len(raw)  # a partition of the rows: fewer centres than rows
    torch.testing.assert_close(det.space_centres_["raw"], cluster_means(raw, labels, k))
    with torch.inference_mode():
        z = det.encoder_(det.preprocessor_(raw))
        sphere = scores(z, det.head_.centres, det.head_.radii, det.head_.rule)[0]
    loo = torch.from_numpy(brute_force(x[normal].astype(np.float64), labels.numpy(), True)).float()
    torch.testing.assert_close(det.score_stats_, score_stats(torch.stack([sphere, loo], 1)), rtol=1e-4, atol=1e-4)
    x_new = x[~normal][:40]
    with torch.inference_mode():
        parts = det.scorer_.columns(torch.from_numpy(x_new))[0]
    means = [x[normal][labels.numpy() == j].astype(np.float64).mean(0) for j in range(k)]
    want = np.array([min(np.linalg.norm(r - m) for m in means) for r in x_new.astype(np.float64)])
    np.testing.assert_allclose(parts[:, 1].numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        det.decision_function(x_new),
        combined_scores(parts, det.score_stats_, torch.tensor([1.0, 2.0])).numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    assert cfg.score.terms() == "sphere score + 2 x nearest-centre distance (raw input)"
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    np.testing.assert_array_equal(loaded.decision_function(x_new), det.decision_function(x_new))
    torch.testing.assert_close(loaded.space_centres_["raw"], det.space_centres_["raw"])
    assert det.knn_reference_ is None


def test_centres_need_a_partition():
    d = load_digits()
    settings = {**TINY, "pretrain.epochs": 1, "svdd.epochs": 1, "svdd.warmup_epochs": 1, "score.pretext": 0.0}
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(d.data[:300])
    over = apply_overrides(det.resolved_config(), {"score.centres": 1.0})
    from toolkit.scoring import Scorer, column_names, column_weights

    names = column_names(over.score, False)
    assert names == ["multi", "centres:raw"]
    scorer = Scorer(det.preprocessor_, det.encoder_, det.head_, names, column_weights(over.score, names))
    with pytest.raises(ValueError, match="need a partition"):
        scorer.calibrate(torch.from_numpy(d.data[:300].astype(np.float32)), 64)


@pytest.mark.parametrize(
    "bad",
    [{"score.centres": -1.0}, {"score.centres_space": "pixels"}, {"score.centres_space": "raw+raw"}],
)
def test_bad_centres_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="score.centres"):
        apply_overrides(load_recipe(default_recipe()), bad)
