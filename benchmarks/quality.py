"""Quality benchmark: test AUROC on MNIST with groups of normal classes, every method from one shared
autoencoder per group and seed.

    python benchmarks/quality.py --data-root ../shared/data                 # the paper schedule (150 + 150)
    python benchmarks/quality.py --epochs-scale 0.05 --group-sizes 3 --groups 1   # a quick look

Groups of 2, 3, 4 normal classes are drawn at random (seeded, listed in the output); the other classes
are anomalies. Rows: Deep SVDD with one sphere (soft-boundary and one-class), Multi-Radius with FINCH,
k-means (k = number of normal classes), HDBSCAN, the true classes as clusters (the oracle, label-
informed), and the autoencoder's reconstruction error. Every finished row is appended to the CSV at
once; rerunning the same command skips what the CSV already holds, so a long run can be continued.
Prints a markdown table: mean and standard deviation of test AUROC per group size, clusters found,
wall time. Not part of CI.
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.clustering import ClusteringError, pseudo_labels  # noqa: E402
from toolkit.config import ClusteringConfig, DataConfig, OptimConfig, SVDDConfig  # noqa: E402
from toolkit.data import Preprocessor, as_tensor, load_split  # noqa: E402
from toolkit.detector import MultiRadiusDeepSVDD  # noqa: E402
from toolkit.engines import reconstruction_error  # noqa: E402
from toolkit.nets import build_autoencoder, embed, fast_layout  # noqa: E402
from toolkit.pipeline import Context, pretrain, train_svdd  # noqa: E402

ROWS = {
    "dsvdd-soft": "Deep SVDD, one sphere, soft-boundary",
    "dsvdd-oneclass": "Deep SVDD, one sphere, one-class",
    "mr-finch": "Multi-Radius, FINCH (defaults)",
    "mr-kmeans": "Multi-Radius, k-means (k = normal classes)",
    "mr-hdbscan": "Multi-Radius, HDBSCAN",
    "mr-oracle": "Multi-Radius, true classes (oracle, label-informed)",
    "ae-recon": "Autoencoder reconstruction error",
}
FIELDS = ["group_size", "group", "seed", "row", "auroc", "clusters", "seconds"]


def schedule(scale: float) -> OptimConfig:
    e = max(1, round(150 * scale))
    return OptimConfig(
        epochs=e,
        lr=1e-4,
        milestones=(max(1, round(50 * scale)), max(1, round(100 * scale))),
        weight_decay=1e-6,
        batch_size=200,
    )


def draw_groups(sizes: list[int], n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        seen: set[tuple[int, ...]] = set()
        while len(seen) < n:
            seen.add(tuple(sorted(rng.choice(10, size=size, replace=False).tolist())))
        out += sorted(seen)
    return out


def run_group(group, seed, args, done, writer, f):
    from sklearn.metrics import roc_auc_score

    todo = [r for r in args.rows if (len(group), str(list(group)), seed, r) not in done]
    if not todo:
        return
    split = load_split(DataConfig(dataset="mnist", root=args.data_root, download=False, normal_classes=group))
    x_raw = as_tensor(split.x_train)
    prep = Preprocessor().fit(x_raw)
    x = fast_layout(prep(x_raw), "cpu")
    y = split.is_anomaly_test
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    ae = fast_layout(build_autoencoder("lenet28", (1, 28, 28)), "cpu")
    pretrain(ae, x, schedule(args.epochs_scale), seed=seed, ctx=Context(progress=False))
    ae_seconds = time.perf_counter() - t0
    z = embed(ae.encoder, x)
    svdd = SVDDConfig(**vars(schedule(args.epochs_scale)), nu=0.1, warmup_epochs=max(1, round(10 * args.epochs_scale)))

    def record(row, auroc, clusters, seconds):
        writer.writerow(
            {
                "group_size": len(group),
                "group": str(list(group)),
                "seed": seed,
                "row": row,
                "auroc": f"{auroc:.5f}",
                "clusters": clusters,
                "seconds": f"{seconds:.1f}",
            }
        )
        f.flush()
        print(
            f"  {list(group)} seed {seed} {row}: AUROC {auroc:.4f}, {clusters} clusters, {seconds:.0f} s",
            file=sys.stderr,
        )

    for row in todo:
        t0 = time.perf_counter()
        if row == "ae-recon":
            ae.eval()
            with torch.inference_mode():
                xt = fast_layout(prep(as_tensor(split.x_test)), "cpu")
                s = torch.cat([reconstruction_error(ae, xt[i : i + 4096]) for i in range(0, len(xt), 4096)])
            record(row, roc_auc_score(y, s.numpy()), 0, ae_seconds)
            continue
        cfg = svdd if row != "dsvdd-oneclass" else SVDDConfig(**{**vars(svdd), "objective": "one-class"})
        if row.startswith("dsvdd"):
            labels = torch.zeros(len(x), dtype=torch.long)
        elif row == "mr-oracle":
            labels = torch.from_numpy(np.searchsorted(group, split.y_train))
        else:
            name, options = {
                "mr-finch": ("finch", {}),
                "mr-kmeans": ("kmeans", {"n_clusters": len(group)}),
                "mr-hdbscan": ("hdbscan", {}),
            }[row]
            try:
                labels, _ = pseudo_labels(z, ClusteringConfig(name=name, options=options), seed=seed)
            except ClusteringError as e:  # a failure is a result too: recorded, not hidden
                print(f"  {list(group)} seed {seed} {row}: failed: {e}", file=sys.stderr)
                record(row, float("nan"), 0, time.perf_counter() - t0)
                continue
        encoder = copy.deepcopy(ae.encoder)
        head, _ = train_svdd(encoder, x, labels, cfg, seed=seed, ctx=Context(progress=False), tag=row)
        det = MultiRadiusDeepSVDD._from_parts(None, "lenet28", (1, 28, 28), prep, encoder, head, labels, 0.0)
        s = det.decision_function(split.x_test)
        record(row, roc_auc_score(y, s), head.num_clusters, ae_seconds + time.perf_counter() - t0)


def table(path: Path) -> str:
    rows = list(csv.DictReader(open(path)))
    sizes = sorted({int(r["group_size"]) for r in rows})
    head = "| method | " + " | ".join(f"{s} normal classes: AUROC (n) | clusters" for s in sizes) + " | wall time (s) |"
    lines = [head, "|---|" + "---|---|" * len(sizes) + "---|"]
    for key, label in ROWS.items():
        rs = [r for r in rows if r["row"] == key]
        if not rs:
            continue
        cells = []
        for s in sizes:
            a = np.array([float(r["auroc"]) for r in rs if int(r["group_size"]) == s])
            k = [int(r["clusters"]) for r in rs if int(r["group_size"]) == s and r["auroc"] != "nan"]
            ok = a[~np.isnan(a)]
            failed = f", {len(a) - len(ok)} failed" if len(ok) < len(a) else ""
            cell = (
                f"{ok.mean():.4f} +- {ok.std():.4f} ({len(ok)}{failed})"
                if len(ok)
                else (f"failed ({len(a)})" if len(a) else "")
            )
            cells += [cell, f"{np.mean(k):.1f}" if k else ""]
        secs = np.mean([float(r["seconds"]) for r in rs])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {secs:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--group-sizes", default="2,3,4")
    ap.add_argument("--groups", type=int, default=3, help="random groups per size")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--group-seed", type=int, default=0, help="seed of the group draw")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="1.0 = 150 + 150 epochs (the paper)")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--csv", default=str(ROOT / "runs" / "bench" / "quality.csv"))
    args = ap.parse_args()
    args.rows = [r for r in args.rows.split(",") if r]
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        ap.error(f"unknown rows {sorted(unknown)}; accepted: {', '.join(ROWS)}")
    groups = draw_groups([int(s) for s in args.group_sizes.split(",")], args.groups, args.group_seed)
    print(
        f"groups (draw seed {args.group_seed}): {groups}; seeds {args.seeds}; epochs scale {args.epochs_scale} "
        f"({schedule(args.epochs_scale).epochs} + {schedule(args.epochs_scale).epochs} epochs)\n"
    )
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if path.is_file():
        done = {(int(r["group_size"]), r["group"], int(r["seed"]), r["row"]) for r in csv.DictReader(open(path))}
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if not done and f.tell() == 0:
            writer.writeheader()
        for group in groups:
            for seed in (int(s) for s in args.seeds.split(",")):
                run_group(group, seed, args, done, writer, f)
    print(table(path))
    print(f"\n(CSV: {path}; rerun the same command to continue an interrupted run)")


if __name__ == "__main__":
    main()
