"""Spheres on the raw pixels, no training: the nearest centre of a clusterer's partition against the
nearest training images.

For each group of normal classes (and seed: the recipe's split), on the raw pixels of the normal
training images: the test AUROC of the 1-NN and 5-NN distances (every training image kept), and of the
distance to the nearest centre (``score.centres`` with ``score.centres_space=raw``: each centre the
mean of one cluster) for FINCH's finest partition and the next level (clusters of 3 or more, merged as
the toolkit tidies them), with the number of centres K and the megabytes a detector keeps for them.
Nothing is trained: this measures what a partition of the pixels keeps of the k-NN distance in K rows.

    python benchmarks/centres.py --data.root=../shared/data --data.download=False
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import MNIST_GROUPS, auroc, label, markdown_table, parse_group, split_of  # noqa: E402

from toolkit.centres import nearest_centre  # noqa: E402
from toolkit.clustering import ClusteringError, pseudo_labels  # noqa: E402
from toolkit.config import ClusteringConfig  # noqa: E402
from toolkit.knn import knn_distance  # noqa: E402
from toolkit.svdd import cluster_means  # noqa: E402

LEVELS = (0, 1)


def measure(recipe: str, group: list, seed: int, extra: list[str]) -> list:
    split = split_of(recipe, group, seed, extra)
    flat = lambda a: torch.from_numpy(a.reshape(len(a), -1)).float()  # noqa: E731
    train, test, y = flat(split.x_train), flat(split.x_test), split.is_anomaly_test
    cells = [len(train), f"{train.numel() * 4 / 2**20:.1f}"]
    cells += [f"{auroc(y, knn_distance(test, train, k)):.3f}" for k in (1, 5)]
    for level in LEVELS:
        cfg = ClusteringConfig(name="finch", options={"level": level}, min_cluster_size=3)
        try:
            labels = pseudo_labels(train, cfg, seed=seed, n_normal_classes=len(group))[0]
        except ClusteringError:  # FINCH found fewer levels on this data
            cells += ["-"] * 3
            continue
        centres = cluster_means(train, labels, int(labels.max()) + 1)
        cells += [len(centres), f"{centres.numel() * 4 / 2**20:.1f}", f"{auroc(y, nearest_centre(test, centres)):.3f}"]
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="mnist")
    ap.add_argument("--groups", default=MNIST_GROUPS, help="normal classes per group, ';' between groups")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=1)
    args, extra = ap.parse_known_args()  # extra: the data settings, e.g. --data.root=../shared/data
    torch.set_num_threads(args.threads)
    head = ["group", "seed", "N", "MB", "1-NN", "5-NN"]
    for level in LEVELS:
        head += [f"level {level}: K", "MB", "AUROC"]
    rows = []
    for g in args.groups.split(";"):
        group = parse_group(g)
        for seed in map(int, args.seeds.split(",")):
            rows.append([label("-".join(map(str, group))), seed, *measure(args.recipe, group, seed, extra)])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    auc = np.array([[float(r[i]) if r[i] != "-" else np.nan for i in (4, 5, 8, 11)] for r in rows])
    print(markdown_table(head, rows))
    names = ("1-NN", "5-NN", f"level {LEVELS[0]}", f"level {LEVELS[1]}")
    print("\nmean AUROC: " + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, np.nanmean(auc, 0), strict=True)))
    print(f"level {LEVELS[0]} above 1-NN on {(auc[:, 2] > auc[:, 0]).sum()} of {len(auc)}")


if __name__ == "__main__":
    main()
