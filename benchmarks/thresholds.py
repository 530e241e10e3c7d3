"""Do thresholds mean nu? The share of held-out normal data that each recipe's default detector flags.

A detector's ``predict`` flags a point whose score is above ``threshold_``; with ``svdd.nu`` = 0.1 a user
expects about 10% of new normal data flagged. Measured on the normal rows of each test set (data the
detector never saw), through the public API, with any ``--set`` overrides (e.g. ``score.calibration=0``):

- ``digits``: the digits recipe, fitted in this process on the CLI's own split, for each group and seed;
- ``table``: the table recipe on the three tables of ``tables.py``, three splits each;
- ``--runs FOLDER ...``: finished runs (e.g. the MNIST benchmark's), their ``detector_multi.pt`` on the
  normal test rows of the run's own split; with ``--set score.KEY=VALUE`` the run's trained stages are
  scored, and the threshold taken, again with those settings (another score of the same run).

    python benchmarks/thresholds.py digits table
    python benchmarks/thresholds.py --set score.calibration=0 digits table
    python benchmarks/thresholds.py --runs bench/mnist/*-s0
    python benchmarks/thresholds.py --runs bench/mnist/*-s0 --set score.centres=0 --set score.knn_space=autoencoder+raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench import rescored  # this folder is on the path when a script here runs
from sklearn.metrics import roc_auc_score
from tables import DATA, parse_sets, split

from toolkit import MultiRadiusDeepSVDD, apply_overrides, load_recipe
from toolkit.data import load_split

DIGITS_GROUPS = ((0, 1, 3), (4, 9), (2, 3, 5, 8), (1, 7), (5, 6))


def flagged(det: MultiRadiusDeepSVDD, x_test: np.ndarray, is_anomaly: np.ndarray) -> tuple[float, float]:
    """The share of the normal test rows flagged, and the test AUROC."""
    s = det.decision_function(x_test)
    return float(np.mean(s[is_anomaly == 0] > det.threshold_)), float(roc_auc_score(is_anomaly, s))


def digits(overrides: dict, seeds: list[int]):
    for group in DIGITS_GROUPS:
        for seed in seeds:
            over = {**overrides, "data.normal_classes": list(group), "seed": seed}
            cfg = apply_overrides(load_recipe("digits"), over)
            split = load_split(cfg.data, seed)
            det = MultiRadiusDeepSVDD(cfg, device="cpu").fit(split.x_train)
            yield "digits", f"digits {group} s{seed}", det, *flagged(det, split.x_test, split.is_anomaly_test)


def table(overrides: dict, seeds: list[int]):
    for name, (loader, normal) in DATA.items():
        for seed in seeds:
            x_train, x_test, y = split(loader, normal, seed)
            det = MultiRadiusDeepSVDD(load_recipe("table"), device="cpu", seed=seed, **overrides).fit(x_train)
            yield "table", f"table: {name} s{seed}", det, *flagged(det, x_test, y)


def runs(folders: list[str], overrides: dict):
    for folder in map(Path, folders):
        det = MultiRadiusDeepSVDD.load(folder / "detector_multi.pt")
        cfg = det.resolved_config()
        split = load_split(cfg.data, cfg.seed)
        if overrides:  # the run's trained stages, assembled and calibrated again with another score
            det = rescored(folder, det, split.x_train, overrides)
        yield cfg.name, f"run {folder.name}", det, *flagged(det, split.x_test, split.is_anomaly_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="*", help="recipes fitted here: digits, table")
    ap.add_argument("--set", action="append", default=[], help="an override, KEY=VALUE")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", nargs="*", default=[], help="finished run folders")
    args = ap.parse_args()
    if unknown := set(args.recipes) - {"digits", "table"}:
        ap.error(f"unknown recipes {sorted(unknown)}; accepted: digits, table")
    overrides = parse_sets(args.set)
    if args.runs and (other := sorted(k for k in overrides if not k.startswith("score."))):
        ap.error(
            f"--set {', '.join(other)}: with --runs, --set takes score.* settings alone (the runs' stages are kept)"
        )
    seeds = [int(s) for s in args.seeds.split(",")]
    sources = [digits(overrides, seeds) if r == "digits" else table(overrides, seeds) for r in args.recipes]
    print("| detector | nu | flagged normal test rows | test AUROC |\n|---|---|---|---|")
    shares = {}
    for rows in [*sources, runs(args.runs, overrides)]:
        for family, name, det, share, auc in rows:
            nu = det.contamination or det.resolved_config().svdd.nu
            shares.setdefault(family, []).append(share - nu)
            print(f"| {name} | {nu:g} | {share:.3f} | {auc:.3f} |", flush=True)
    for what, gaps in shares.items():
        print(f"{what}: flagged share minus nu, mean {np.mean(gaps):+.3f}, range {min(gaps):+.3f} to {max(gaps):+.3f}")


if __name__ == "__main__":
    main()
