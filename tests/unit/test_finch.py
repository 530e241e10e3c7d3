"""FINCH with chunked neighbour search: same hierarchy as finch-clust, partition choice rules."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from toolkit.plugins.finch import FinchClusterer, choose_level, finch_partitions, merge_to


def finch_clust(x, metric):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from finch import FINCH
    c, num_clust, _ = FINCH(x, distance=metric, ensure_early_exit=False, verbose=False)
    return np.asarray(c).reshape(len(x), -1), list(num_clust)


def canonical(labels):
    """Relabel by order of first appearance, so equal partitions compare equal."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hierarchy_equals_finch_clust(metric, seed):
    x, _ = make_blobs(n_samples=800, centers=6, n_features=8, cluster_std=2.0, random_state=seed)
    x = x.astype(np.float32)
    ref, ref_counts = finch_clust(x, metric)
    ours = finch_partitions(torch.from_numpy(x).double(), metric, chunk_size=97)
    assert [int(p.max()) + 1 for p in ours] == ref_counts
    for level, p in enumerate(ours):
        assert np.array_equal(canonical(p.numpy()), canonical(ref[:, level]))


def test_levels_get_coarser_and_nest():
    x = torch.randn(600, 5)
    parts = finch_partitions(x, "euclidean", chunk_size=50)
    counts = [int(p.max()) + 1 for p in parts]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts)
    for fine, coarse in zip(parts, parts[1:], strict=False):  # every fine cluster lies inside one coarse cluster
        pairs = torch.unique(torch.stack([fine, coarse], 1), dim=0)
        assert len(pairs) == int(fine.max()) + 1


def test_choose_level_is_finest_with_all_clusters_big_enough():
    parts = [torch.tensor([0, 0, 1, 1, 2, 3]), torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0] * 6)]
    assert choose_level(parts, 2) == 1
    assert choose_level(parts, 1) == 0
    assert choose_level(parts, 7) == 2  # none qualifies: the coarsest


def test_requested_number_of_clusters():
    x, y = make_blobs(n_samples=400, centers=5, n_features=4, cluster_std=0.5, random_state=3)
    f = FinchClusterer(n_clusters=5)
    labels = f.fit_predict(x)
    assert len(np.unique(labels)) == 5
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, labels) > 0.99
    assert f.n_clusters_per_level_[f.level_] >= 5


def test_merge_to_merges_closest_pairs():
    x = torch.tensor([[0.0], [0.1], [1.0], [1.1], [10.0]])
    labels = merge_to(x, torch.tensor([0, 1, 2, 3, 4]), 3, "euclidean", 2)
    assert canonical(labels.numpy()).tolist() == [0, 0, 1, 1, 2]


def test_level_auto_and_integer_levels():
    x, _ = make_blobs(n_samples=500, centers=4, n_features=3, cluster_std=1.0, random_state=0)
    f = FinchClusterer(level="auto", min_cluster_size=20)
    labels = f.fit_predict(x)
    assert np.bincount(labels).min() >= 20 or f.level_ == len(f.n_clusters_per_level_) - 1
    for lv in range(f.level_):  # every finer level has a cluster under the minimum
        assert np.bincount(f.partitions_[:, lv]).min() < 20
    assert np.array_equal(FinchClusterer(level=0).fit_predict(x), f.partitions_[:, 0])


@pytest.mark.parametrize("bad", [{"level": "finest"}, {"level": 1.5}, {"n_clusters": 0}, {"distance": "l3"}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        FinchClusterer(**bad)
