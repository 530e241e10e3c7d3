"""Clusters against the true normal classes, and what each partition gives the spheres.

For finished runs (the quality benchmark's run folders), every partition below is computed on the same
embeddings, those of the run's pretrained network on its normal training data, and reported with:

- ``K``: the number of clusters after the toolkit's tidy-up (the run's ``clustering.min_cluster_size``);
- ``ARI`` / ``NMI`` against the true normal classes (which no training step sees), and the purity: the
  share of points in a cluster whose majority class is their own (1 = no cluster mixes modes; ARI and NMI
  also fall when a mode is split into many clusters, purity does not);
- ``spheres AUROC``: the test AUROC of the spheres of that partition before any SVDD training: each centre
  its cluster's mean, the score the squared distance to the nearest centre (the ``multi-pre`` row of
  ``bench.py``), so that partitions are compared without training a model for each.

Beside them, the run's own rows from ``rows.csv`` where the folder's parent has one (the trained spheres,
the 5-NN distance). At the end, across all runs, each partition's means and the rank correlation between
ARI and the spheres' AUROC.

    python benchmarks/partitions.py runs/mnist/*-s0
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from toolkit import MultiRadiusDeepSVDD
from toolkit.clustering import agreement, pseudo_labels
from toolkit.config import ClusteringConfig
from toolkit.data import load_split
from toolkit.nets import embed
from toolkit.pretext import method_of, pretraining_net
from toolkit.runfolder import RunFolder
from toolkit.svdd import all_sq_distances, cluster_means

# name -> (clusterer, options); "n_normal_classes" resolves to the group's size
PARTITIONS = {
    "finch level 0 (finest)": ("finch", {"level": 0}),
    "finch level 1": ("finch", {"level": 1}),
    "finch level 2": ("finch", {"level": 2}),
    "finch coarsest": ("finch", {"level": -1}),
    "k-means, K = classes": ("kmeans", {"n_clusters": "n_normal_classes"}),
    "k-means, K = 100": ("kmeans", {"n_clusters": 100, "n_init": 1}),
    "hdbscan": ("hdbscan", {}),
}


def embeddings(folder: Path):
    """The run's detector, split, and its pretrained network's embeddings of the training and test data."""
    det = MultiRadiusDeepSVDD.load(folder / "detector_multi.pt")
    cfg = det.resolved_config()
    net = pretraining_net(method_of(cfg.pretrain), det.arch_, det.input_shape_, cfg.net)
    stage = RunFolder(folder).load_stage("pretrain")
    if stage is None:
        raise SystemExit(f"{folder} holds no finished pretraining")
    net.load_state_dict(stage["autoencoder"])
    split = load_split(cfg.data, cfg.seed)
    prep = det.preprocessor_
    with torch.inference_mode():
        z = embed(net.encoder, prep(torch.from_numpy(split.x_train)))
        z_test = embed(net.encoder, prep(torch.from_numpy(split.x_test)))
    return cfg, split, z, z_test


def run_rows(folder: Path) -> dict[str, float]:
    """The benchmark's rows of this run (row name -> test AUROC), if its rows.csv is beside it."""
    table = folder.parent / "rows.csv"
    if not table.is_file():
        return {}
    group, _, seed = folder.name.rpartition("-s")
    with open(table, newline="") as f:
        return {r["row"]: float(r["auroc"]) for r in csv.DictReader(f) if (r["group"], r["seed"]) == (group, seed)}


def measure(folder: Path) -> list[dict]:
    cfg, split, z, z_test = embeddings(folder)
    n_classes = len(cfg.data.normal_classes)
    out = []
    for name, (clusterer, options) in PARTITIONS.items():
        ccfg = ClusteringConfig(name=clusterer, options=options, min_cluster_size=cfg.clustering.min_cluster_size)
        try:
            labels, _ = pseudo_labels(z, ccfg, seed=cfg.seed, n_normal_classes=n_classes)
        except Exception as e:  # a partition this embedding cannot give (e.g. a level FINCH did not reach)
            print(f"{folder.name} {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        k = int(labels.max()) + 1
        a = agreement(split.y_train, labels.numpy())
        s = all_sq_distances(z_test, cluster_means(z, labels, k)).min(dim=1)[0]
        auc = float(roc_auc_score(split.is_anomaly_test, s.numpy()))
        purity = np.asarray(a["contingency"]).max(axis=0).sum() / len(labels)
        out.append({"run": folder.name, "partition": name, "k": k, "auroc": auc, "purity": float(purity)} | a)
    return out


def line(*cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def cells(r: dict) -> list[str]:
    return [f"{r['ari']:.2f}", f"{r['nmi']:.2f}", f"{r['purity']:.2f}", f"{r['auroc']:.3f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished run folders")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(line("run", "partition", "K", "ARI", "NMI", "purity", "spheres AUROC") + "\n" + "|---" * 7 + "|")
    rows = []
    for folder in map(Path, args.runs):
        for r in measure(folder):
            rows.append(r)
            print(line(r["run"], r["partition"], r["k"], *cells(r)))
        own = run_rows(folder)
        if own:
            measured = ", ".join(f"{k} {v:.3f}" for k, v in own.items())
            print(line(folder.name, "the run's rows", "", "", "", "", measured))
    print("\n" + line("partition", "runs", "mean K", "mean ARI", "mean NMI", "mean purity", "mean spheres AUROC"))
    print("|---" * 7 + "|")
    for name in PARTITIONS:
        rs = [r for r in rows if r["partition"] == name]
        if rs:
            mean = {key: np.mean([r[key] for r in rs]) for key in ("k", "ari", "nmi", "purity", "auroc")}
            print(line(name, len(rs), f"{mean['k']:.0f}", *cells(mean)))
    ari, auc = [r["ari"] for r in rows], [r["auroc"] for r in rows]
    if len(set(ari)) > 1 and len(set(auc)) > 1:  # a rank correlation needs values that differ
        rho, _ = spearmanr(ari, auc)
        print(f"\nrank correlation of ARI and the spheres' AUROC over {len(rows)} partitions: {rho:+.2f}")


if __name__ == "__main__":
    main()
