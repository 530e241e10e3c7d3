"""Clustering benchmark: speed and peak memory of FINCH on MNIST embeddings, and the partition rules.

    python benchmarks/clustering.py --data-root ../shared/data

1. Embeds all 60,000 MNIST training images with a LeNet autoencoder (``--pretrain-epochs`` epochs on all
   of them; 32-d embeddings), cached in ``--cache``.
2. Times the toolkit's FINCH (chunked first-neighbour search, every level) and finch-clust's exact path
   (its default for N <= ann_threshold, which builds N x N matrices) on the first N embeddings, each in a
   fresh process so its peak resident memory (the whole process: Python, torch, data) is its own.
3. For every FINCH level on all 60,000 points and on the normal classes {0, 1, 3}: clusters, smallest
   cluster, agreement with the true classes (ARI, NMI), and which level the rules pick (level=-1; 'auto'
   with a minimum size of ``--min-size`` points and of 1% of the points).

Prints markdown tables. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def embed_mnist(data_root: str, epochs: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    if cache.is_file():
        d = np.load(cache)
        return d["z"], d["y"]
    import torchvision

    from toolkit.config import OptimConfig
    from toolkit.data import as_tensor
    from toolkit.nets import build_autoencoder, embed
    from toolkit.preprocessing import Preprocessor
    from toolkit.stages import Harness, pretrain

    ds = torchvision.datasets.MNIST(data_root, train=True, download=False)
    x = as_tensor(ds.data.numpy()[:, None].astype(np.float32) / 255.0)
    y = ds.targets.numpy()
    torch.manual_seed(0)
    prep = Preprocessor().fit(x)
    xp = prep(x)
    ae = build_autoencoder("lenet28", (1, 28, 28))
    t0 = time.perf_counter()
    opt = OptimConfig(epochs=epochs, lr=1e-3, milestones=(), batch_size=200)
    pretrain(ae, xp, opt, seed=0, harness=Harness(progress=True))
    print(f"pretrained {epochs} epoch(s) on {len(x)} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    z = embed(ae.encoder, xp).numpy()
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, z=z, y=y)
    return z, y


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM). Unlike ru_maxrss, it does not carry over the
    parent's peak across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(method: str, cache: str, n: int) -> None:
    """Run one clustering in this (fresh) process; print seconds, peak RSS and cluster counts as JSON."""
    d = np.load(cache)
    z = np.ascontiguousarray(d["z"][:n], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from finch import FINCH

        from toolkit.plugins.finch import finch_partitions
    t0 = time.perf_counter()
    if method == "toolkit":
        counts = [int(p.max()) + 1 for p in finch_partitions(torch.from_numpy(z), "euclidean")]
    else:  # finch-clust's exact path: pairwise distances, N x N
        _, counts, _ = FINCH(z, distance="euclidean", ann_threshold=n + 1, verbose=False)
        counts = [int(c) for c in counts]
    seconds = time.perf_counter() - t0
    peak_mib = peak_rss_mib()
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "counts": counts}))


def run_worker(method: str, cache: Path, n: int) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--cache", str(cache), "--n", str(n)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["killed"])[-1][:80]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def level_table(z: np.ndarray, y: np.ndarray, min_sizes: list[int]) -> list[str]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from toolkit.plugins.finch import choose_level, finch_partitions

    parts = finch_partitions(torch.from_numpy(z), "euclidean")
    auto = {m: choose_level(parts, m) for m in min_sizes}
    rows = ["| level | clusters | smallest | ARI | NMI | picked by |", "|---|---|---|---|---|---|"]
    for lv, p in enumerate(parts):
        lab = p.numpy()
        pick = []
        pick += [f"auto, min size {m}" for m, chosen in auto.items() if chosen == lv]
        if lv == len(parts) - 1:
            pick.append("level=-1 (default)")
        rows.append(
            f"| {lv} | {int(lab.max()) + 1} | {int(np.bincount(lab).min())} | {adjusted_rand_score(y, lab):.3f} "
            f"| {normalized_mutual_info_score(y, lab):.3f} | {', '.join(pick)} |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench" / "mnist_embeddings.npz"))
    ap.add_argument("--sizes", default="5000,10000,20000,60000")
    ap.add_argument("--exact-max", type=int, default=20000, help="largest N to try with finch-clust's exact path")
    ap.add_argument("--min-size", type=int, default=10)
    ap.add_argument("--worker", choices=["toolkit", "finch-clust"])
    ap.add_argument("--n", type=int)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.cache, a.n)
        return
    cache = Path(a.cache)
    z, y = embed_mnist(a.data_root, a.pretrain_epochs, cache)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; embeddings {z.shape}\n"
    )
    print("| N | method | seconds | peak RSS (MiB) | clusters per level |")
    print("|---|---|---|---|---|")
    for n in [int(s) for s in a.sizes.split(",")]:
        for method in ("toolkit", "finch-clust"):
            if method == "finch-clust" and n > a.exact_max:
                gib = n * n * 4 / 2**30
                print(f"| {n} | finch-clust exact | not run (N x N float32 = {gib:.1f} GiB per matrix) | | |")
                continue
            r = run_worker(method, cache, n)
            if "error" in r:
                print(f"| {n} | {method} | failed: {r['error']} | | |")
            else:
                label = "toolkit FINCH (chunked)" if method == "toolkit" else "finch-clust exact"
                print(f"| {n} | {label} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {r['counts']} |")
            sys.stdout.flush()
    print("\nFINCH levels on all 60,000 training embeddings (true classes 0-9):\n")
    print("\n".join(level_table(z, y, [a.min_size, math.ceil(0.01 * len(z))])))
    sel = np.isin(y, (0, 1, 3))
    print(f"\nFINCH levels on the normal classes {{0, 1, 3}} ({int(sel.sum())} embeddings):\n")
    print("\n".join(level_table(z[sel], y[sel], [a.min_size, math.ceil(0.01 * int(sel.sum()))])))


if __name__ == "__main__":
    main()
