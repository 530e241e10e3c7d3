"""benchmarks/baselines.py end to end on generated files in torchvision's layouts and on a table of the
user's own: each dataset the toolkit knows runs by name (own data by path) through the library's own
run, the null control keeps the main run's cluster sizes and autoencoder, and every row lands in the
CSV."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from test_data import make_cifar10, make_mnist

pytestmark = pytest.mark.slow  # the benchmark script end to end, several library runs

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("baselines", ROOT / "benchmarks" / "baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_table(path: Path) -> Path:
    """A labelled .csv of the user's kind: classes 0 and 1 normal, 2 the anomalies."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [60, 60, 40])
    x = rng.normal(size=(len(y), 6)) + 3 * y[:, None]
    rows = ["f0,f1,f2,f3,f4,f5,label", *(",".join(f"{v:.4f}" for v in r) + f",{c}" for r, c in zip(x, y, strict=True))]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10", "own-table"])
def test_every_row_from_the_library_run_on_generated_files(dataset, tmp_path, monkeypatch, capsys):
    name = dataset
    if dataset == "own-table":
        dataset, name = str(write_table(tmp_path / "sensors.csv")), "sensors"
    elif dataset == "cifar10":
        import torchvision.datasets.cifar as cifar

        make_cifar10(tmp_path, per_batch=40, n_test=40)
        monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
        monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    else:
        make_mnist(tmp_path, folder="FashionMNIST", n_train=200, n_test=60)
    bench = load_benchmark()
    out = tmp_path / "out"
    argv = ["baselines.py", "--dataset", dataset, "--data-root", str(tmp_path), "--groups", "0,1", "--seeds", "0"]
    argv += ["--epochs-scale", "0.01", "--set", "clustering.min_cluster_size=5", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    rows = bench.read_csv(out / name / "auroc.csv")
    assert sorted(r["row"] for r in rows) == sorted(bench.ROWS)
    assert all(0.0 <= float(r["auroc"]) <= 1.0 and float(r["seconds"]) >= 0 for r in rows)
    printed = capsys.readouterr().out
    assert "1-NN distance, raw pixels" in printed
    assert "| recipe | null |" in printed and "| recipe | ensemble |" in printed  # the gains over the controls
    where = out / name / "0-1" / "s0"
    results = {v: json.loads((where / v / "results.json").read_text()) for v in ("main", "null", "seed2")}
    assert results["main"]["pretrain"]["history"]["epochs"]  # trained by the library's run
    assert results["main"]["name"] == {"fashion_mnist": "fashion_mnist", "cifar10": "cifar10"}.get(name, "table")
    assert results["null"]["clustering"]["clusterer"] == "random"
    assert results["null"]["clustering"]["sizes"] == results["main"]["clustering"]["sizes"]
    assert len(results["seed2"]["multi"]["radii"]) == 1
    # the controls start from the main run's autoencoder, and the null run from its one sphere too
    stage = lambda v, name: torch.load(where / v / "stages" / f"{name}.pt", weights_only=True)  # noqa: E731
    for v in ("null", "seed2"):
        assert (where / v / "stages" / "pretrain.pt.sha256").is_file()  # copied with its digest: verified on load
        for k, t in stage("main", "pretrain")["autoencoder"].items():
            assert torch.equal(t, stage(v, "pretrain")["autoencoder"][k])
    assert torch.equal(stage("main", "svdd_single")["radii"], stage("null", "svdd_single")["radii"])
    # a second call finds everything done and trains nothing
    bench.main()
    assert len(bench.read_csv(out / name / "auroc.csv")) == len(rows)


def test_autoencoder_rows_train_the_autoencoder_alone_and_score_as_the_detector_setting(tmp_path, monkeypatch, capsys):
    """Rows that need no more than the autoencoder run the main run's first stage only; its 5-NN row is
    what the detector scores with the k-NN term alone in the autoencoder's embedding; rows of the main
    run alone train no control."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from toolkit import MultiRadiusDeepSVDD
    from toolkit import config as C
    from toolkit.data import load_split

    make_mnist(tmp_path, n_train=200, n_test=60)
    bench = load_benchmark()
    out = tmp_path / "out"
    argv = ["baselines.py", "--data-root", str(tmp_path), "--groups", "0,1", "--seeds", "0", "--out", str(out)]
    argv += ["--epochs-scale", "0.01", "--set", "clustering.min_cluster_size=5"]
    monkeypatch.setattr(sys, "argv", [*argv, "--rows", "knn1-raw,knn5-input,ae-recon,knn5-ae,knn5-ae+raw5"])
    bench.main()
    rows = {r["row"]: r for r in bench.read_csv(out / "mnist" / "auroc.csv")}
    assert sorted(rows) == ["ae-recon", "knn1-raw", "knn5-ae", "knn5-ae+raw5", "knn5-input"]
    where = out / "mnist" / "0-1" / "s0"
    assert sorted(p.name for p in (where / "main" / "stages").glob("*.pt")) == ["pretrain.pt"]
    assert not (where / "null").exists() and not (where / "seed2").exists()
    # the settings, fitted by the library from the same recipe, seed and data, score the same
    cfg = bench.scaled(C.load_recipe(ROOT / "recipes" / "mnist.py"), 0.01)
    over = {"data.root": str(tmp_path), "data.download": False, "data.normal_classes": [0, 1]}
    cfg = C.apply_overrides(cfg, {**over, "clustering.min_cluster_size": 5})
    split = load_split(cfg.data, 0)
    knn_alone = {"svdd.score_multi": 0, "svdd.score_single": 0, "svdd.score_recon": 0, "svdd.score_knn": 1}
    for row, space in (("knn5-ae", "autoencoder"), ("knn5-ae+raw5", "autoencoder+raw")):
        det = MultiRadiusDeepSVDD(cfg, device="cpu", **knn_alone, **{"svdd.knn_space": space})
        auroc = roc_auc_score(split.is_anomaly_test, det.fit(split.x_train).decision_function(split.x_test))
        assert float(rows[row]["auroc"]) == pytest.approx(auroc, abs=1e-5)
    # a later full run takes the autoencoder up instead of training it again
    before = torch.load(where / "main" / "stages" / "pretrain.pt", weights_only=True)["autoencoder"]
    monkeypatch.setattr(sys, "argv", [*argv, "--rows", "recipe"])
    bench.main()
    assert not (where / "null").exists() and not (where / "seed2").exists()  # no row asked for the controls
    main = MultiRadiusDeepSVDD.load(where / "main" / "detector_multi.pt")
    for k, t in main.recon_.state_dict().items():
        assert torch.equal(t, before[k])
    assert np.isfinite(float(bench.read_csv(out / "mnist" / "auroc.csv")[-1]["auroc"]))


def test_paired_gains_are_differences_on_the_same_group_and_seed():
    bench = load_benchmark()
    rows = [
        {"row": row, "group": g, "seed": str(seed), "auroc": str(a)}
        for row, g, seed, a in [
            ("recipe", "[0, 9]", 0, 0.90),
            ("recipe", "[0, 9]", 1, 0.80),
            ("recipe", "[2, 3]", 0, 0.70),
            ("null", "[0, 9]", 0, 0.85),
            ("null", "[0, 9]", 1, 0.90),  # [2, 3] has no null run: left out, not paired with another model
        ]
    ]
    by = {}
    for r in rows:
        by.setdefault(r["row"], {})[(r["group"], int(r["seed"]))] = r
    line = next(x for x in bench.paired_gains(by).splitlines() if x.startswith("| recipe | null |"))
    assert line == "| recipe | null | -0.025 +- 0.075 | 1 | 2 |"  # (+0.05, -0.10): mean -0.025, sd 0.075
