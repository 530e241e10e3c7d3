"""The clustering registry and the built-in plugins."""

import numpy as np
import pytest
import torch
from conftest import fresh_python
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, homogeneity_score

from toolkit.clustering import ClusteringError, describe_sizes, pseudo_labels, tidy_labels
from toolkit.config import ClusteringConfig
from toolkit.plugins.finch import first_neighbours
from toolkit.registry import (
    BUILTINS,
    RegistryError,
    available_clusterers,
    build_clusterer,
    clusterer_options,
    register_clusterer,
    unregister_clusterer,
)


@pytest.fixture
def blobs():
    x, y = make_blobs(n_samples=300, centers=[[0, 0], [10, 10], [-10, 10]], cluster_std=0.8, random_state=0)
    return x.astype(np.float32), y


@pytest.mark.slow  # a Python subprocess
def test_builtins_are_registered_in_code_and_imported_on_first_use():
    assert set(BUILTINS) == {"finch", "kmeans", "hdbscan", "single", "random"}
    assert set(BUILTINS) <= set(available_clusterers())
    code = (
        "import sys, toolkit\n"
        "from toolkit.registry import available_clusterers, get_clusterer_factory\n"
        "available_clusterers()\n"
        "assert not [m for m in sys.modules if m.startswith('toolkit.plugins')], 'imported before use'\n"
        "assert get_clusterer_factory('kmeans').__module__ == 'toolkit.plugins.kmeans'\n"
        "assert 'toolkit.plugins.finch' not in sys.modules, 'one name imported another'\n"
    )
    fresh_python(code)


def test_builtin_names_are_reserved(monkeypatch):
    from toolkit import registry

    monkeypatch.delitem(registry._REGISTRY, "kmeans", raising=False)  # not yet imported, whatever ran before
    with pytest.raises(RegistryError, match="'kmeans' is a built-in clusterer.*pick another name"):
        register_clusterer("kmeans", lambda: None)
    build_clusterer("single")  # loaded: the same answer
    with pytest.raises(RegistryError, match="'single' is a built-in clusterer.*pick another name"):
        register_clusterer("single", lambda: None)


def test_decorator_registers_and_builds():
    @register_clusterer("test-halves")
    class Halves:
        def __init__(self, offset: int = 0):
            self.offset = offset

        def fit_predict(self, X):
            return (np.arange(len(X)) >= len(X) // 2).astype(int) + self.offset

    try:
        assert "test-halves" in available_clusterers()
        assert clusterer_options("test-halves") == {"offset": 0}
        assert build_clusterer("test-halves", offset=1).fit_predict(np.zeros((4, 2))).tolist() == [1, 1, 2, 2]
    finally:
        unregister_clusterer("test-halves")


def test_duplicate_name_raises():
    register_clusterer("test-dup", lambda: None)
    try:
        with pytest.raises(RegistryError, match="already registered"):
            register_clusterer("test-dup", lambda: None)
    finally:
        unregister_clusterer("test-dup")


def test_unknown_name_lists_what_is_available():
    with pytest.raises(RegistryError) as e:
        build_clusterer("no-such-clusterer")
    msg = str(e.value)
    assert "no-such-clusterer" in msg and "finch" in msg and "kmeans" in msg and "hdbscan" in msg


def test_unknown_option_is_refused_with_accepted_list():
    with pytest.raises(RegistryError, match="accepted"):
        build_clusterer("finch", levle=2)


def test_factory_without_fit_predict_is_refused():
    register_clusterer("test-bad", lambda: object())
    try:
        with pytest.raises(TypeError, match="fit_predict"):
            build_clusterer("test-bad")
    finally:
        unregister_clusterer("test-bad")


@pytest.mark.parametrize(
    "name,options",
    [("finch", {}), ("kmeans", {"n_clusters": 3}), ("hdbscan", {"min_cluster_size": 10})],
)
def test_builtin_plugins_recover_blobs(blobs, name, options):
    x, y = blobs
    labels = build_clusterer(name, **options).fit_predict(x)
    assert labels.shape == (len(x),)
    if name == "finch":  # FINCH may split a blob (over-clustering), but never mixes well-separated blobs
        assert homogeneity_score(y, labels) > 0.99 and len(np.unique(labels)) <= 6
    else:
        assert adjusted_rand_score(y, labels) > 0.95


def test_single_cluster_plugin():
    assert set(build_clusterer("single").fit_predict(np.zeros((5, 2))).tolist()) == {0}


def test_kmeans_without_cluster_count_says_which_setting():
    with pytest.raises(ValueError, match="n_clusters"):
        build_clusterer("kmeans")


def test_finch_levels_and_bad_level(blobs):
    x, _ = blobs
    f = build_clusterer("finch", level=0)
    fine = f.fit_predict(x)
    assert len(np.unique(fine)) == f.n_clusters_per_level_[0]
    assert f.n_clusters_per_level_ == sorted(f.n_clusters_per_level_, reverse=True)
    with pytest.raises(ValueError, match="does not exist"):
        build_clusterer("finch", level=50).fit_predict(x)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_chunked_first_neighbours_equal_exact(metric):
    x = torch.randn(500, 8, dtype=torch.float64)
    got, got_d = first_neighbours(x, metric, chunk_size=64, tile_cols=100)
    xx = torch.nn.functional.normalize(x, dim=1) if metric == "cosine" else x
    d = torch.cdist(xx, xx)
    d.fill_diagonal_(float("inf"))
    assert torch.equal(got, d.argmin(1))
    assert torch.allclose(got_d, d.min(1).values ** 2)


def test_tidy_assigns_noise_and_merges_small_clusters():
    z = torch.tensor([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2], [10.3], [5.2], [0.05], [9.9]])
    raw = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, -1, -1])  # cluster 2 is tiny, two noise points
    out = tidy_labels(z, raw, min_size=2)
    assert out.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 1]


def test_tidy_all_small_falls_back_to_one_cluster():
    out = tidy_labels(torch.randn(6, 2), torch.tensor([0, 1, 2, 3, 4, 5]), min_size=2)
    assert out.tolist() == [0] * 6


def test_pseudo_labels_refuse_wrong_label_count_and_type():
    register_clusterer("test-short", lambda: type("C", (), {"fit_predict": lambda self, X: np.zeros(2, int)})())
    register_clusterer("test-float", lambda: type("C", (), {"fit_predict": lambda self, X: np.zeros(len(X))})())
    try:
        with pytest.raises(ClusteringError, match="one per point"):
            pseudo_labels(torch.randn(5, 2), ClusteringConfig(name="test-short", min_cluster_size=1))
        with pytest.raises(ClusteringError, match="integers"):
            pseudo_labels(torch.randn(5, 2), ClusteringConfig(name="test-float", min_cluster_size=1))
    finally:
        unregister_clusterer("test-short")
        unregister_clusterer("test-float")


def test_a_clusterers_refusal_of_these_data_names_the_clusterer_and_its_options():
    """A value the clusterer accepts but these data cannot take (more clusters than points) is one
    ClusteringError naming the clusterer, the options given and the number of points."""
    cfg = ClusteringConfig(name="kmeans", options={"n_clusters": 50}, min_cluster_size=1)
    with pytest.raises(ClusteringError, match=r"'kmeans' \(n_clusters=50\) could not cluster the 20 training"):
        pseudo_labels(torch.randn(20, 2), cfg)

    def broken(X):
        raise RuntimeError("boom")

    register_clusterer("test-broken", lambda: type("C", (), {"fit_predict": lambda self, X: broken(X)})())
    try:  # a plugin's own fault: one line naming it, the traceback kept as the cause
        with pytest.raises(ClusteringError, match=r"'test-broken' \(its defaults\) could not .*: RuntimeError: boom"):
            pseudo_labels(torch.randn(20, 2), ClusteringConfig(name="test-broken", min_cluster_size=1))
    finally:
        unregister_clusterer("test-broken")


def test_an_option_of_another_type_than_the_factory_declares_is_refused_before_building():
    built = []

    def factory(n_components: int = 2, scale: float = 1.0):
        built.append(n_components)
        return type("C", (), {"fit_predict": lambda self, X: np.zeros(len(X), int)})()

    register_clusterer("test-typed", factory)
    try:
        with pytest.raises(TypeError, match=r"option n_components='abc' has the wrong type; int expected"):
            build_clusterer("test-typed", n_components="abc")
        with pytest.raises(TypeError, match=r"option scale=True has the wrong type; float expected"):
            build_clusterer("test-typed", scale=True)
        build_clusterer("test-typed", n_components=3, scale=2)  # an int is a number
        assert built == [3]
    finally:
        unregister_clusterer("test-typed")


def test_pseudo_labels_kmeans_takes_number_of_normal_classes_when_asked(blobs):
    x, _ = blobs
    cfg = ClusteringConfig(name="kmeans", options={"n_clusters": "n_normal_classes"})
    labels, info = pseudo_labels(torch.from_numpy(x), cfg, n_normal_classes=3)
    assert len(info["sizes"]) == 3 and sum(info["sizes"]) == len(x)


def test_cluster_sizes_in_the_log_stay_one_short_line():
    """A fine partition has thousands of clusters: the log line gives the largest, median and smallest."""
    assert describe_sizes([5, 3, 9]) == "[5, 3, 9]"
    line = describe_sizes(list(range(3, 2003)))
    assert line == "largest [2002, 2001, 2000, 1999, 1998], median 1002, smallest 3"
