"""The table recipe against the usual tabular baselines, on tables that scikit-learn ships.

Each data set: one class is normal (breast cancer: benign; wine: class 0; digits as a table of 64
pixel columns: {0, 1, 3}), a random 60% of the normal rows trains, the test set is the other normal rows
and every anomaly; three splits (seeds 0, 1, 2). Rows: the table recipe (through the public API, any
``--set`` overrides applied), PyOD's KNN rule (the distance to the 5th nearest training row, on the raw
features; PyOD's default) and IsolationForest (scikit-learn's, which PyOD's IForest wraps), each scored
by test AUROC. One process; a table of means and of every split.

    python benchmarks/tables.py
    python benchmarks/tables.py --set score.knn=1 --set score.knn_space=raw
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from toolkit import MultiRadiusDeepSVDD, load_recipe

DATA = {
    "breast cancer (benign normal)": (load_breast_cancer, (1,)),
    "wine (class 0 normal)": (load_wine, (0,)),
    "digits as a table ({0, 1, 3} normal)": (load_digits, (0, 1, 3)),
}


def split(loader, normal, seed: int):
    x, y = loader(return_X_y=True)
    x = x.astype(np.float32)
    is_normal = np.isin(y, normal)
    idx = np.flatnonzero(is_normal)
    train = np.random.default_rng(seed).permutation(idx)[: int(0.6 * len(idx))]
    test = np.setdiff1d(np.arange(len(y)), train)
    return x[train], x[test], (~is_normal[test]).astype(int)


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=VALUE`` overrides: each value read as JSON when it is, as text otherwise."""
    overrides = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return overrides


def knn5(train, test) -> np.ndarray:
    return NearestNeighbors(n_neighbors=5).fit(train).kneighbors(test)[0][:, -1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", default=[], help="a table recipe override, KEY=VALUE")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    overrides = parse_sets(args.set)
    rows = {"table recipe": [], "PyOD KNN (5th neighbour)": [], "IsolationForest": []}
    per_data = []
    for name, (loader, normal) in DATA.items():
        got = {r: [] for r in rows}
        for seed in map(int, args.seeds.split(",")):
            x_train, x_test, y = split(loader, normal, seed)
            det = MultiRadiusDeepSVDD(load_recipe("table"), device="cpu", seed=seed, **overrides).fit(x_train)
            got["table recipe"].append(roc_auc_score(y, det.decision_function(x_test)))
            got["PyOD KNN (5th neighbour)"].append(roc_auc_score(y, knn5(x_train, x_test)))
            forest = IsolationForest(random_state=seed).fit(x_train)
            got["IsolationForest"].append(roc_auc_score(y, -forest.score_samples(x_test)))
        per_data.append((name, got))
    print("| data | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for name, got in per_data:
        cells = [f"{np.mean(v):.3f} ({', '.join(f'{a:.3f}' for a in v)})" for v in got.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
