"""benchmarks/bench.py end to end on generated MNIST files: the recipe's run, every row scored through
the public API from that one run, resumed rows not measured twice, and the summary table; and
benchmarks/partitions.py on such a run."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from fakes import make_mnist

from toolkit import load_recipe

pytestmark = pytest.mark.slow  # the benchmark end to end: a library run and a null-control fit

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--pretrain.epochs=1", "--svdd.epochs=1", "--svdd.warmup_epochs=1", "--clustering.min_cluster_size=5"]


def load_bench(name: str = "bench"):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_from_one_run_and_the_summary(tmp_path, monkeypatch, capsys):
    make_mnist(tmp_path, n_train=200, n_test=60)
    bench = load_bench()
    out = tmp_path / "out"
    rows = "default,multi,multi-pre,single,knn5-ae,knn1-raw,multi+raw,multi+ae,two-distance,null"
    rows += ",multi+two-distance,ae+centres-raw,multi+ae+centres-raw,ae+centres-raw@float16"
    # relative paths, as a user types them: the recipe's run resolves them from the same folder as the harness
    monkeypatch.chdir(tmp_path)
    argv = ["bench.py", "--recipe", "mnist", "--groups", "0,1", "--seeds", "0", "--rows", rows, "--out", "out"]
    argv += ["--data.root=.", "--data.download=False", *TINY]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    got = bench.read_rows(out / "rows.csv")
    assert sorted(r["row"] for r in got) == sorted(rows.split(","))
    assert all(0.0 <= float(r["auroc"]) <= 1.0 for r in got)
    by = {r["row"]: r for r in got}
    results = json.loads((out / "0-1-s0" / "results.json").read_text())
    # the harness scores the run's own detector: the same AUROC as the run measured at its end
    assert float(by["default"]["auroc"]) == pytest.approx(results["multi"]["test_auroc"], abs=1e-6)
    assert float(by["single"]["auroc"]) == pytest.approx(results["single"]["test_auroc"], abs=1e-6)
    assert int(by["null"]["n_clusters"]) == len(results["clustering"]["sizes"])
    assert float(by["default"]["size_mb"]) > 0 and float(by["default"]["img_s"]) > 0
    # the score rows are the run's trained spheres, assembled again with another score: the spheres alone
    # give the spheres' column of the run's own detector, and keep no training image (a smaller file)
    det = bench.MultiRadiusDeepSVDD.load(out / "0-1-s0" / "detector_multi.pt")
    split = bench.split_of("mnist", [0, 1], 0, [f"--data.root={tmp_path}", "--data.download=False"])
    spheres = det.scorer_.score_column("multi", bench.torch.from_numpy(split.x_test))
    assert float(by["multi"]["auroc"]) == pytest.approx(bench.auroc(split.is_anomaly_test, spheres), abs=1e-6)
    assert float(by["multi"]["size_mb"]) < float(by["multi+raw"]["size_mb"])
    # the pixel centres in place of the pixels' 5-NN distance: fewer rows kept than training images
    assert float(by["ae+centres-raw"]["size_mb"]) < float(by["two-distance"]["size_mb"])
    assert float(by["ae+centres-raw@float16"]["size_mb"]) < float(by["ae+centres-raw"]["size_mb"])
    assert all(float(by[r]["img_s"]) > 0 for r in ("multi", "multi+raw", "multi+ae", "two-distance", "knn5-ae"))
    assert sorted(p.name for p in out.iterdir()) == ["0-1-s0", "rows.csv"]  # the rescored files are gone
    bench.main()  # every row is there: nothing is measured again
    assert len(bench.read_rows(out / "rows.csv")) == len(got)
    # thresholds.py on the finished run: its own detector, and with --set another score of the same run
    thresholds = load_bench("thresholds")
    two = ["--set", "score.centres=0", "--set", "score.knn_space=autoencoder+raw", "--set", "score.storage=float32"]
    for sets, row in (([], "default"), (two, "two-distance")):
        monkeypatch.setattr(sys, "argv", ["thresholds.py", "--runs", str(out / "0-1-s0"), *sets])
        capsys.readouterr()
        thresholds.main()
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| run 0-1-s0 |"))
        share, auc = (float(v) for v in line.strip("| ").split(" | ")[2:])
        assert auc == pytest.approx(float(by[row]["auroc"]), abs=5e-4) and 0.0 <= share <= 1.0
    monkeypatch.setattr(sys, "argv", ["thresholds.py", "--runs", str(out / "0-1-s0"), "--set", "svdd.nu=0.2"])
    with pytest.raises(SystemExit):
        thresholds.main()
    assert "with --runs, --set takes score.* settings alone" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["bench.py", "--out", str(out), "--summary"])
    capsys.readouterr()
    bench.main()
    table = capsys.readouterr().out
    assert "| multi | " in table and "multi - single:" in table and "2 classes" in table
    assert "| {0, 1} | 0 | " in table and "| mean, 2 classes | 1 models |" in table  # the per-group table
    assert "multi img/s / default img/s:" in table and "; 2 classes " in table
    monkeypatch.setattr(sys, "argv", ["bench.py", "--out", str(out), "--summary", "--rows", "single,multi,default"])
    bench.main()
    head = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| group |"))
    assert head == "| group | seeds | single | multi | default | multi: MB, img/s | default: MB, img/s |"
    argv = ["bench.py", "--out", str(out), "--summary", "--rows", "ae+centres-raw,single", "--against", "default"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    lines = [line for line in capsys.readouterr().out.splitlines() if " - default: " in line or "img/s / " in line]
    d = float(by["ae+centres-raw"]["auroc"]) - float(by["default"]["auroc"])
    assert lines[0].startswith(f"ae+centres-raw - default: {d:+.3f} +- 0.000 over 1 models, above on {int(d > 0)}")
    assert lines[1].startswith("ae+centres-raw img/s / default img/s: ")
    assert lines[2].startswith("single - default: ") and len(lines) == 3  # one sphere is not timed


def test_svdd_trained_again_on_a_runs_pretraining_and_partition(tmp_path, monkeypatch, capsys):
    """benchmarks/svdd_again.py: the spheres before SVDD are the run's clusters' means in its unit-length
    rotation embedding (the centres as they are, not pushed to +-eps): the bench's multi-pre row; after
    SVDD at a learning rate they move, on the same pretrained net and partition (nothing pretrained again)."""
    make_mnist(tmp_path, n_train=200, n_test=60)
    bench, again = load_bench(), load_bench("svdd_again")
    out = tmp_path / "out"
    data = [f"--data.root={tmp_path}", "--data.download=False"]
    argv = ["bench.py", "--recipe", "mnist", "--groups", "0,1", "--seeds", "0", "--rows", "multi-pre,pretext,single"]
    argv += ["--out", str(out)]
    monkeypatch.setattr(sys, "argv", [*argv, *data, "--pretrain.method=rotation", *TINY])
    bench.main()
    by = {r["row"]: float(r["auroc"]) for r in bench.read_rows(out / "rows.csv")}
    pre, pretext = by["multi-pre"], by["pretext"]
    folder, svdd = out / "0-1-s0", ["--svdd.epochs=2", "--svdd.warmup_epochs=1"]
    assert again.spheres_again(folder, "mnist", data, 0.0) == {"multi": pytest.approx(pre, abs=1e-6)}
    # the one sphere trained again at the run's own schedule and rate is the run's one sphere
    run_svdd = [*data, "--svdd.epochs=1", "--svdd.warmup_epochs=1"]
    lr = load_recipe("mnist").svdd.lr
    assert again.spheres_again(folder, "mnist", run_svdd, lr, single=True)["single"] == pytest.approx(by["single"])
    trained = again.spheres_again(folder, "mnist", [*data, *svdd], 0.01, rows=("multi", "multi+pretext", "pretext"))
    assert 0.0 <= trained["multi"] <= 1.0 and trained["multi"] != pytest.approx(pre, abs=1e-6)
    # the rotation's own score does not depend on SVDD: the run's row; the spheres beside it differ from both
    assert trained["pretext"] == pytest.approx(pretext, abs=1e-6)
    assert trained["multi+pretext"] not in (pytest.approx(trained["multi"]), pytest.approx(trained["pretext"]))
    monkeypatch.setattr(sys, "argv", ["svdd_again.py", str(folder), "--recipe", "mnist", "--lrs", "0", "--null", *data])
    again.main()
    table = capsys.readouterr().out
    assert "| 0-1-s0 | the run's | before SVDD |" in table and "| 0-1-s0 | random | before SVDD |" in table
    assert "| run | partition | svdd.lr | multi | seconds |" in table
    monkeypatch.setattr(
        sys, "argv", ["svdd_again.py", str(folder), "--recipe", "mnist", "--lrs", "0", "--null", "--single", *data]
    )
    again.main()
    table = capsys.readouterr().out  # the one sphere's column is empty beside the random partition
    assert "| run | partition | svdd.lr | multi | single | seconds |" in table
    assert re.search(r"\| 0-1-s0 \| the run's \| before SVDD \| 0\.\d{4} \| 0\.\d{4} \| \d+ \|", table)
    assert re.search(r"\| 0-1-s0 \| random \| before SVDD \| 0\.\d{4} \|  \| \d+ \|", table)
    monkeypatch.setattr(sys, "argv", ["svdd_again.py", str(folder), "--rows", "multi,knn1-raw", *data])
    with pytest.raises(SystemExit, match="rescored rows only"):
        again.main()


def test_an_unknown_row_is_refused_before_anything_runs(tmp_path, monkeypatch):
    bench = load_bench()
    argv = ["bench.py", "--groups", "0,1", "--seeds", "0", "--rows", "multi,knn9-ae", "--out", str(tmp_path / "o")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=r"unknown rows \['knn9-ae'\]; accepted: default, multi"):
        bench.main()
    monkeypatch.setattr(sys, "argv", [*argv[:-3], "multi@float8", *argv[-2:]])
    with pytest.raises(SystemExit, match="followed by @float16"):
        bench.main()
    assert not (tmp_path / "o").exists()


def test_rows_of_a_run_pretrained_by_rotation(tmp_path, monkeypatch):
    """The pretrained network's rows rebuild whatever net the run's pretraining method trained, and the
    pretext rows score with that method's own score (rotation's cross-entropy); the nearest centre in the
    pretrained embedding, as a detector, is the spheres before training. The mirrored rows score the same
    net with ``score_mirrored``."""
    make_mnist(tmp_path, n_train=200, n_test=60)
    bench = load_bench()
    out = tmp_path / "out"
    rows = "default,multi-pre,knn5-ae,pretext,pretext+ae,multi+pretext,multi+pretext+ae,centres-ae,pretext+centres-ae"
    rows += ",pretext-mirrored,pretext-mirrored+ae,pretext+two-distance,pretext+ae+centres-raw,pretext+centres-raw"
    rows += ",knn5-ae-mirrored,pretext-mirrored+ae-mirrored,multi+pretext+centres-raw,multi+pretext-mirrored"
    argv = ["bench.py", "--recipe", "mnist", "--groups", "0,1", "--seeds", "0", "--rows", rows]
    argv += ["--out", str(out), f"--data.root={tmp_path}", "--data.download=False", "--pretrain.method=rotation"]
    monkeypatch.setattr(sys, "argv", [*argv, *TINY])
    bench.main()
    measured = {r["row"]: r for r in bench.read_rows(out / "rows.csv")}
    got = {row: float(r["auroc"]) for row, r in measured.items()}
    assert sorted(got) == sorted(rows.split(",")) and all(0.0 <= v <= 1.0 for v in got.values())
    size = {row: float(r["size_mb"]) for row, r in measured.items() if r["size_mb"]}
    assert size["pretext+ae"] > size["pretext"]  # the k-NN term keeps the training embeddings
    assert size["pretext+two-distance"] > size["pretext+ae+centres-raw"] > size["pretext+ae"]  # + images, + centres
    assert size["pretext+ae+centres-raw"] > size["pretext+centres-raw"] > size["pretext"]  # - embeddings, + centres
    assert size["multi+pretext+centres-raw"] == pytest.approx(size["pretext+centres-raw"], rel=1e-3)  # spheres: kept
    assert got["multi+pretext+centres-raw"] not in (got["pretext+centres-raw"], got["multi+pretext"])
    assert size["pretext-mirrored"] == pytest.approx(size["pretext"], rel=1e-3)  # a setting, no more state
    assert got["pretext-mirrored"] != got["pretext"]  # the setting reaches the rescored detector
    assert size["multi+pretext-mirrored"] == pytest.approx(size["multi+pretext"], rel=1e-3)
    assert got["multi+pretext-mirrored"] != got["multi+pretext"]
    assert size["knn5-ae-mirrored"] == pytest.approx(size["knn5-ae"], rel=1e-3)
    assert got["knn5-ae-mirrored"] != got["knn5-ae"]
    assert got["centres-ae"] == pytest.approx(got["multi-pre"], abs=1e-6)


def test_partitions_of_a_run(tmp_path, monkeypatch, capsys):
    """Every partition is measured on the run's own pretrained embedding: the run's own partition (FINCH's
    finest, clusters of 5 or more) gives back the spheres-before-training row of the same run."""
    make_mnist(tmp_path, n_train=200, n_test=60)
    bench, partitions = load_bench(), load_bench("partitions")
    out = tmp_path / "out"
    argv = ["bench.py", "--recipe", "mnist", "--groups", "0,1", "--seeds", "0", "--rows", "multi-pre"]
    argv += ["--out", str(out), f"--data.root={tmp_path}", "--data.download=False"]
    argv += ["--clustering.options.level=0", *TINY]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    got = {r["partition"]: r for r in partitions.measure(out / "0-1-s0")}
    assert "finch level 0 (finest)" in got and "k-means, K = classes" in got
    for r in got.values():
        assert 0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["purity"] <= 1.0 and -1.0 <= r["ari"] <= 1.0 and r["k"] >= 1
    assert got["k-means, K = classes"]["k"] == 2
    pre = float(bench.read_rows(out / "rows.csv")[0]["auroc"])
    assert got["finch level 0 (finest)"]["auroc"] == pytest.approx(pre, abs=1e-6)
    monkeypatch.setattr(sys, "argv", ["partitions.py", str(out / "0-1-s0")])
    partitions.main()
    table = capsys.readouterr().out
    assert "| finch level 0 (finest) | 1 |" in table and "the run's rows" in table


def test_centres_on_the_raw_pixels(tmp_path, monkeypatch, capsys):
    """benchmarks/centres.py: the k-NN distances and the nearest centre of two FINCH levels, nothing trained."""
    make_mnist(tmp_path, n_train=200, n_test=60)
    centres = load_bench("centres")
    argv = ["centres.py", "--groups", "0,1", f"--data.root={tmp_path}", "--data.download=False"]
    monkeypatch.setattr(sys, "argv", argv)
    centres.main()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| {0, 1} |")).strip("| ").split(" | ")
    n, k0 = int(row[2]), int(row[6])
    assert 1 <= k0 < n and all(0.0 <= float(row[i]) <= 1.0 for i in (4, 5, 8))
    assert row[9:] == ["-"] * 3 or 1 <= int(row[9]) <= k0  # the next level, where this small data has one
    assert "mean AUROC: 1-NN" in out


def test_the_detectors_of_a_run_are_timed_in_turns():
    """Each round times every detector once, in the same order, on the same images: a drift of the
    machine's speed meets them alike. Each keeps its best pass."""
    bench = load_bench()
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def decision_function(self, x):
            calls.append((self.name, len(x)))
            return x

    x = list(range(bench.TIMED_IMAGES + 10))
    rates = bench.throughputs({"a": Fake("a"), "b": Fake("b")}, x)
    assert calls == [("a", bench.TIMED_IMAGES), ("b", bench.TIMED_IMAGES)] * bench.TIMED_ROUNDS
    assert sorted(rates) == ["a", "b"] and all(r > 0 for r in rates.values())
