"""Analyses of the models quality.py trained, from the squared distances it keeps in scores/ (next to
its CSV): what the CSV's AUROC columns cannot answer.

    python benchmarks/analyse.py --scores runs/bench/scores --data-root ../shared/data

Prints two markdown tables:

1. per group and training seed, the test AUROC (``--rule``) of one sphere, of each multi-sphere row,
   and of each multi-sphere row combined with one sphere (both scores standardised by their training
   mean and spread, then added: what ``svdd.score_single=1`` scores); with --recon, also each of
   these plus the cached autoencoder's reconstruction error (``svdd.score_recon=1``; other weights
   with --single-weight and --recon-weight); the last lines
   hold the means per group size and over all, of the groups and seeds that have every column;
2. per multi-sphere model, the AUROC against each anomaly class alone and the training points'
   composition by cluster (true classes, for diagnosis only): which anomalies a failing model lets in,
   and whether its clusters cut through a class.

With --finch-levels, instead: for every autoencoder quality.py cached (ae/ next to the CSV), FINCH's
partitions of its embeddings, finest to coarsest, with the number of clusters and of impure points
(points outside their cluster's majority class), and the coarsest partition's class composition.

Not part of CI.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import (
    DATA_ROOT,
    ROOT,
    auroc,
    cached_autoencoder,
    combined,
    load_group,
    markdown_table,
    min_scores,
    preprocess,
    recon_errors,
)

from toolkit.config import DataConfig
from toolkit.data import load_split
from toolkit.nets import embed
from toolkit.plugins.finch import FinchClusterer
from toolkit.svdd import sphere_scores

SINGLE = "dsvdd-soft"


def load(folder: Path) -> dict[tuple[str, int, str, str], dict]:
    """Every kept model, keyed by (group, seed, row, setting)."""
    out = {}
    for path in sorted(folder.glob("*.pt")):
        blob = torch.load(path, weights_only=True)
        group, seed, rest = path.stem.split("-s", 1)[0], *path.stem.split("-s", 1)[1].split("-", 1)
        row = rest.rsplit("-", 1)[0]
        out[(group, int(seed), row, blob["setting"])] = blob
    return out


def label(row: str, setting: str, base: str) -> str:
    """A model's column name: its row, plus its setting where it differs from ``base`` (the defaults)."""
    return f"{row} {setting[len(base) + 1 :] if setting.startswith(base) else setting}".strip()


def composition(clusters: np.ndarray, n_clusters: int, y: np.ndarray, classes) -> np.ndarray:
    """(n_clusters, len(classes)) counts of the points of each true class in each cluster."""
    index = clusters * len(classes) + np.searchsorted(classes, y)
    return np.bincount(index, minlength=n_clusters * len(classes)).reshape(n_clusters, len(classes))


def kept_recon_errors(ae_folder: Path, group: str, seed: int, data_root: str, key: str) -> tuple[torch.Tensor, ...]:
    """Test and training reconstruction errors of the autoencoder quality.py cached for ``group`` and
    ``seed`` (``key``: the cache name's epochs-and-settings part, e.g. e150-wd0.0005-m50-l0.01-plain)."""
    ae = cached_autoencoder(ae_folder / f"ae-{group}-s{seed}-{key}.pt")
    x, prep, split = load_group(tuple(int(c) for c in group.split("-")), data_root)
    return recon_errors(ae, preprocess(prep, split.x_test), x)


def ensemble_table(models: dict, rule: str, wanted=None, recon=None, w_single=1.0, w_recon=1.0) -> str:
    """One line per group and seed; per multi-sphere row (and setting, where it differs from the
    shortest one, quality.py's defaults): its AUROC and mean R_k^2, and the AUROC of its score plus one
    sphere's (each standardised by its training mean and spread). With ``recon`` (a callable (group,
    seed) -> (test, training) reconstruction errors), also each of those plus the reconstruction error.
    The last lines: means per group size and over all, of the lines that have every column, and how
    many of them are above one sphere scored the same way (with the error for the "+ recon" columns)."""
    base = min((k[3] for k in models), key=len)
    by_run = defaultdict(dict)
    for (group, seed, row, setting), blob in models.items():
        by_run[(group, seed)][label(row, setting, base)] = blob
    multi = sorted({r for runs in by_run.values() for r in runs if r != SINGLE and (not wanted or r in wanted)})
    names = ["one sphere"] + (["one sphere + recon"] if recon else [])
    for r in multi:
        names += [r, f"{r} + one sphere"] + ([f"{r} + recon", f"{r} + one sphere + recon"] if recon else [])
    lines, full = [], []
    for (group, seed), rows in sorted(by_run.items(), key=lambda kv: (len(kv[0][0]), kv[0])):
        if not any(r in rows for r in multi):
            continue
        r_err = recon(group, seed) if recon else None
        values, notes = ensemble_line(rows, multi, rule, r_err, w_single, w_recon)
        cells = [
            "" if v is None else f"{v:.4f}" + ("" if note is None else f" ({float(note):.3f})")
            for v, note in zip(values, notes, strict=True)
        ]
        lines.append([group.replace("-", ","), seed, *cells])
        if all(v is not None for v in values):
            full.append((len(group.split("-")), values))
    for size in sorted({n for n, _ in full}) + ([None] if full else []):
        chosen = [v for n, v in full if size is None or n == size]
        what = f"mean, all {len(chosen)}" if size is None else f"mean, {size} classes ({len(chosen)})"
        lines.append([what, "", *(f"{v:.4f}" for v in np.mean(np.array(chosen), axis=0))])
    if full:  # each column against one sphere scored the same way (with or without the error)
        against = [int(bool(recon) and name.endswith("+ recon")) for name in names]
        wins = [sum(v[j] > v[b] for _, v in full) for j, b in enumerate(against)]
        lines.append([f"above one sphere (of {len(full)})", "", *wins])
    return markdown_table(["group", "seed", *names], lines)


def ensemble_line(rows: dict, multi: list[str], rule: str, r_err, w_single: float, w_recon: float):
    """One group and seed's AUROC values of ``ensemble_table``'s columns (None: a model is missing) and
    the mean R_k^2 noted beside each model's own AUROC."""
    single = rows.get(SINGLE)
    s1 = min_scores(single, rule) if single is not None else None
    y = next(iter(rows.values()))["y_test"]
    values, notes = [auroc(y, s1[0]) if s1 else None], [single["radii"].pow(2).mean() if s1 else None]
    if r_err is not None:
        values.append(auroc(y, combined([s1[0], r_err[0]], [s1[1], r_err[1]], [1, w_recon])) if s1 else None)
        notes.append(None)
    n = 2 if r_err is None else 4
    for r in multi:
        if r not in rows:
            values += [None] * n
            notes += [None] * n
            continue
        test, train = min_scores(rows[r], rule)
        values += [auroc(y, test), auroc(y, combined([test, s1[0]], [train, s1[1]], [1, w_single])) if s1 else None]
        if r_err is not None:
            values.append(auroc(y, combined([test, r_err[0]], [train, r_err[1]], [1, w_recon])))
            both = combined([test, s1[0], r_err[0]], [train, s1[1], r_err[1]], [1, w_single, w_recon]) if s1 else None
            values.append(auroc(y, both) if s1 else None)
        notes += [rows[r]["radii"].pow(2).mean()] + [None] * (n - 1)
    return values, notes


def class_table(models: dict, rule: str, data_root: str) -> str:
    """Per multi-sphere model: its AUROC against each anomaly class alone, and the training points'
    true classes by nearest sphere."""
    lines, splits = [], {}
    base = min((k[3] for k in models), key=len)
    for (group, seed, row, setting), blob in sorted(models.items()):
        if row == SINGLE:
            continue
        classes = tuple(int(c) for c in group.split("-"))
        if classes not in splits:
            cfg = DataConfig(dataset="mnist", root=data_root, download=False, normal_classes=classes)
            splits[classes] = load_split(cfg)
        split = splits[classes]
        test, _ = min_scores(blob, rule)
        normal = np.isin(split.y_test, classes)
        per = []
        for c in sorted(set(range(10)) - set(classes)):
            keep = normal | (split.y_test == c)
            per.append(f"{c}: {auroc(split.y_test[keep] == c, test.numpy()[keep]):.3f}")
        nearest = sphere_scores(blob["d_train"], blob["radii"], rule).argmin(dim=1).numpy()
        table = composition(nearest, blob["radii"].numel(), split.y_train, classes)
        comp = " ; ".join("/".join(map(str, counts)) for counts in table)
        by_class = f"{comp} (classes {'/'.join(map(str, classes))})"
        lines.append([group.replace("-", ","), seed, label(row, setting, base), ", ".join(per), by_class])
    head = ["group", "seed", "row", "AUROC against each anomaly class", "training points by nearest sphere"]
    return markdown_table(head, lines)


def finch_levels(ae_folder: Path, data_root: str, epochs: int, settings: str) -> str:
    """FINCH's partitions of every cached autoencoder's embeddings of its training points."""
    lines = []
    paths = ae_folder.glob(f"ae-*-e{epochs}-{settings}.pt")
    for path in sorted(paths, key=lambda p: (len(p.name.split("-s")[0]), p.name)):
        classes = tuple(int(c) for c in path.name[3:].split("-s")[0].split("-"))
        seed = int(path.name.split("-s")[1].split("-")[0])
        x, _, split = load_group(classes, data_root)
        f = FinchClusterer()
        f.fit_predict(embed(cached_autoencoder(path).encoder, x).numpy())
        impure, comp = [], ""
        for level in range(f.partitions_.shape[1]):
            lab = f.partitions_[:, level]
            table = composition(lab, int(lab.max()) + 1, split.y_train, classes)
            impure.append(int(table.sum() - table.max(1).sum()))
            comp = " ; ".join("/".join(map(str, row)) for row in table)
        by_class = f"{comp} (classes {'/'.join(map(str, classes))})"
        lines.append([",".join(map(str, classes)), seed, f.n_clusters_per_level_, impure, by_class])
    head = ["group", "seed", "clusters per level", "impure points per level", "coarsest level, by cluster"]
    return markdown_table(head, lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", default=str(ROOT / "runs" / "bench" / "scores"))
    ap.add_argument("--data-root", default=DATA_ROOT)
    ap.add_argument("--rule", default="ratio", choices=("margin", "ratio", "distance"))
    ap.add_argument("--setting", default=None, help="only models run with this quality.py setting")
    ap.add_argument("--rows", default="", help="multi-sphere columns to show, e.g. 'mr-finch,mr-finch finch_level=-2'")
    ap.add_argument("--finch-levels", action="store_true", help="FINCH's levels on the cached autoencoders")
    ap.add_argument("--epochs", type=int, default=150, help="--finch-levels, --recon: the autoencoders' epochs")
    ap.add_argument(
        "--ae-settings", default="wd0.0005-m50-l0.01-plain", help="the autoencoder cache key's settings part"
    )
    ap.add_argument(
        "--recon", action="store_true", help="also each score plus the cached autoencoder's reconstruction error"
    )
    ap.add_argument("--single-weight", type=float, default=1.0, help="the one-sphere term's weight (svdd.score_single)")
    ap.add_argument(
        "--recon-weight", type=float, default=1.0, help="the reconstruction term's weight (svdd.score_recon)"
    )
    a = ap.parse_args()
    if a.finch_levels:
        print(finch_levels(Path(a.scores).parent / "ae", a.data_root, a.epochs, a.ae_settings))
        return
    models = load(Path(a.scores))
    if a.setting is not None:
        models = {k: v for k, v in models.items() if k[3] == a.setting}
    if not models:
        sys.exit(f"no kept models in {a.scores} (quality.py keeps them in scores/ next to its CSV)")
    print(f"{len(models)} models from {a.scores}; rule {a.rule}; weights {a.single_weight} / {a.recon_weight}\n")
    recon = None
    if a.recon:
        ae_folder, key = Path(a.scores).parent / "ae", f"e{a.epochs}-{a.ae_settings}"
        recon = functools.cache(lambda group, seed: kept_recon_errors(ae_folder, group, seed, a.data_root, key))
    wanted = [r for r in a.rows.split(",") if r]
    print(ensemble_table(models, a.rule, wanted, recon, a.single_weight, a.recon_weight) + "\n")
    print(class_table(models, a.rule, a.data_root))


if __name__ == "__main__":
    main()
