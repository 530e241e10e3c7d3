"""Plugins from anywhere: an installed third-party package, a broken entry point, an entry point that
takes a built-in's name, a recipe's own clusterer; and the tidy-up rules every plugin's labels go through."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from toolkit.clustering import ClusteringError, agreement, pseudo_labels, singleton_fraction, tidy_labels
from toolkit.config import ClusteringConfig
from toolkit.recipes_loader import load_recipe
from toolkit.registry import ENTRY_POINT_GROUP, register_clusterer, unregister_clusterer

ROOT = Path(__file__).resolve().parents[2]


def py(code, pythonpath):
    """``python -c CODE`` in a new interpreter with ``pythonpath`` first on its path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example package, installed by pip into a temporary folder (no network, no build isolation)."""
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(ROOT / "examples" / "toolkit-plugin-example"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return target


@pytest.fixture(scope="module")
def example_process(installed_example):
    """A new interpreter with the installed example package on its path: it builds the package's clusterer
    through the registry (the labels, as JSON, are stdout's first line), then runs the CLI's plugins verb."""
    return py(
        textwrap.dedent("""
        import json
        import numpy as np
        from toolkit.registry import available_clusterers, build_clusterer
        assert "agglomerative" in available_clusterers(), available_clusterers()
        x = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 9]
        print(json.dumps(build_clusterer("agglomerative", n_clusters=2).fit_predict(x).tolist()))
        from toolkit.__main__ import main
        raise SystemExit(main(["plugins"]))
    """),
        installed_example,
    )


@pytest.mark.slow  # pip installs the example package
def test_installed_package_is_discovered_and_builds(example_process):
    r = example_process
    assert r.returncode == 0, r.stderr
    labels = json.loads(r.stdout.splitlines()[0])
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]


@pytest.mark.slow  # pip installs the example package
def test_plugins_verb_shows_third_party_settings(example_process):
    r = example_process
    assert r.returncode == 0, r.stderr
    assert "agglomerative(n_clusters=3, linkage='ward')" in r.stdout.split("\n", 1)[1]


@pytest.mark.slow  # a Python subprocess, which runs the CLI's plugins verb too
def test_broken_or_clashing_entry_point_only_matters_to_runs_that_use_it(tmp_path):
    assert ENTRY_POINT_GROUP == "multi_radius_deep_svdd.clusterers"
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbroken = no_such_module_xyz:factory\nkmeans = some_module:not_the_builtin\n"
    )
    r = py(  # then the CLI's plugins verb, in the same new interpreter, after a line "--"
        textwrap.dedent("""
        import numpy as np
        from toolkit.registry import RegistryError, available_clusterers, build_clusterer
        assert "broken" in available_clusterers()
        build_clusterer("finch").fit_predict(np.random.rand(50, 3))  # unaffected
        for name in ("broken", "kmeans"):
            try:
                build_clusterer(name, n_clusters=2)
            except RegistryError as e:
                print(e)
        print("--")
        from toolkit.__main__ import main
        raise SystemExit(main(["plugins"]))
    """),
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    errors, plugins = r.stdout.split("\n--\n")
    broken, clash = errors.splitlines()
    assert "'broken'" in broken and "no_such_module_xyz" in broken and "failed to load" in broken
    # the built-in is neither replaced nor silently preferred: the run that asks for the name is told why
    assert "'kmeans' is built in" in clash and "some_module:not_the_builtin (broken-plugin)" in clash
    assert "rename the entry point" in clash
    assert "broken: unavailable" in plugins and "kmeans: unavailable" in plugins and "finch(" in plugins


@pytest.mark.slow  # a CLI run
def test_recipe_registers_its_own_clusterer_and_runs_end_to_end(tmp_path):
    from conftest import cli_in_process

    out = tmp_path / "run"
    r = cli_in_process(
        ROOT / "recipes" / "custom_clusterer.py",
        "--pretrain.epochs=2",
        "--svdd.epochs=2",
        "--baseline=False",
        f"--run_dir={out}",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["clustering"]["clusterer"] == "gmm" and len(res["clustering"]["sizes_before"]) == 3
    assert "single" not in res and 0 <= res["multi"]["test_auroc"] <= 1
    # no baseline, but the recipe's score holds one sphere's: trained, and reported with the multi-radius model
    assert len(res["multi"]["one_sphere"]["radii"]) == 1


def test_loading_a_recipe_twice_re_registers_without_clash():
    load_recipe(ROOT / "recipes" / "custom_clusterer.py")
    cfg = load_recipe(ROOT / "recipes" / "custom_clusterer.py")
    assert cfg.clustering.name == "gmm"
    assert load_recipe("custom_clusterer") == cfg  # by name: the same file, the same registration


# ----------------------------------------------------------------------------------------- tidy-up


def test_noise_goes_to_nearest_cluster():
    z = torch.tensor([[0.0], [0.2], [10.0], [10.2], [1.0], [9.0]])
    out = tidy_labels(z, torch.tensor([0, 0, 1, 1, -1, -1]), min_size=1)
    assert out.tolist() == [0, 0, 1, 1, 0, 1]


def test_small_clusters_merge_into_nearest_big_one_and_labels_are_renumbered():
    z = torch.tensor([[0.0], [0.1], [0.2], [5.0], [9.0], [9.1], [9.2], [4.0]])
    raw = torch.tensor([7, 7, 7, 3, 12, 12, 12, 3])  # cluster 3 (2 points, centre 4.5) is small
    out = tidy_labels(z, raw, min_size=3)
    assert out.tolist() == [0, 0, 0, 0, 1, 1, 1, 0]


def test_min_size_as_fraction():
    assert ClusteringConfig(min_cluster_size=5, min_cluster_fraction=0.1).min_size(200) == 20
    assert ClusteringConfig(min_cluster_size=50, min_cluster_fraction=0.1).min_size(200) == 50


def test_one_cluster_degrades_to_single_sphere():
    register_clusterer("test-tiny", lambda: type("C", (), {"fit_predict": lambda s, X: np.arange(len(X)) // 2})())
    try:
        with pytest.warns(UserWarning, match="one sphere"):
            labels, info = pseudo_labels(torch.randn(20, 2), ClusteringConfig(name="test-tiny", min_cluster_size=5))
        assert labels.tolist() == [0] * 20 and info["sizes"] == [20] and len(info["sizes_before"]) == 10
    finally:
        unregister_clusterer("test-tiny")


def test_nearly_all_singletons_is_an_error_naming_the_setting():
    register_clusterer("test-alone", lambda: type("C", (), {"fit_predict": lambda s, X: np.arange(len(X))})())
    try:
        with pytest.raises(ClusteringError, match="max_singleton_fraction.*level"):
            pseudo_labels(torch.randn(20, 2), ClusteringConfig(name="test-alone"))
    finally:
        unregister_clusterer("test-alone")
    assert singleton_fraction(np.array([0, 0, 1, 2, -1])) == pytest.approx(0.6)


def test_min_cluster_size_reaches_plugins_that_take_it():
    seen = {}

    @register_clusterer("test-minsize")
    def factory(min_cluster_size: int = 1, random_state: int = 99):
        seen.update(min_cluster_size=min_cluster_size, random_state=random_state)
        return type("C", (), {"fit_predict": lambda s, X: np.zeros(len(X), int)})()

    try:
        pseudo_labels(torch.randn(100, 2), ClusteringConfig(name="test-minsize", min_cluster_fraction=0.2), seed=4)
        assert seen == {"min_cluster_size": 20, "random_state": 4}
    finally:
        unregister_clusterer("test-minsize")


def test_agreement_with_true_classes():
    a = agreement(np.array([0, 0, 1, 1, 3, 3]), np.array([1, 1, 0, 0, 2, 2]))
    assert a["ari"] == pytest.approx(1.0) and a["nmi"] == pytest.approx(1.0)
    assert a["classes"] == [0, 1, 3] and a["contingency"] == [[0, 2, 0], [2, 0, 0], [0, 0, 2]]
