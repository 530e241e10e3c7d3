"""benchmarks/baselines.py end to end on generated files in torchvision's layouts: each dataset the
toolkit knows runs by name through the library's own run, the null control keeps the main run's cluster
sizes and autoencoder, and every row lands in the CSV."""

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


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_every_row_from_the_library_run_on_generated_files(dataset, tmp_path, monkeypatch, capsys):
    if dataset == "cifar10":
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
    rows = bench.read_csv(out / dataset / "auroc.csv")
    assert sorted(r["row"] for r in rows) == sorted(bench.ROWS)
    assert all(0.0 <= float(r["auroc"]) <= 1.0 and float(r["seconds"]) >= 0 for r in rows)
    assert "1-NN distance, raw pixels" in capsys.readouterr().out
    where = out / dataset / "0-1" / "s0"
    results = {v: json.loads((where / v / "results.json").read_text()) for v in ("main", "null", "seed2")}
    assert results["main"]["pretrain"]["history"]["epochs"]  # trained by the library's run
    assert results["null"]["clustering"]["clusterer"] == "random"
    assert results["null"]["clustering"]["sizes"] == results["main"]["clustering"]["sizes"]
    assert len(results["seed2"]["multi"]["radii"]) == 1
    # the controls start from the main run's autoencoder, and the null run from its one sphere too
    stage = lambda v, name: torch.load(where / v / "stages" / f"{name}.pt", weights_only=True)  # noqa: E731
    for v in ("null", "seed2"):
        for k, t in stage("main", "pretrain")["autoencoder"].items():
            assert torch.equal(t, stage(v, "pretrain")["autoencoder"][k])
    assert torch.equal(stage("main", "svdd_single")["radii"], stage("null", "svdd_single")["radii"])
    # a second call finds everything done and trains nothing
    bench.main()
    assert len(bench.read_csv(out / dataset / "auroc.csv")) == len(rows)
