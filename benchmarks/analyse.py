"""Analyses of the models quality.py trained, from the squared distances it keeps in scores/ (next to
its CSV): what the CSV's AUROC columns cannot answer.

    python benchmarks/analyse.py --scores runs/bench/scores --data-root ../shared/data

Prints two markdown tables:

1. per group and training seed, the test AUROC (``--rule``) of one sphere, of each multi-sphere row,
   and of each multi-sphere row combined with one sphere (both scores standardised by their training
   mean and spread, then added: a label-free ensemble, measured here, not a toolkit setting);
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
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.svdd import combined_scores, score_stats, sphere_scores  # noqa: E402

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


def min_scores(blob: dict, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Test and training scores min_k of the per-sphere score by ``rule``."""
    return tuple(sphere_scores(blob[k], blob["radii"], rule).min(dim=1)[0] for k in ("d_test", "d_train"))


def auroc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(y), np.asarray(s)))


def ensemble_table(models: dict, rule: str, wanted=None) -> str:
    """One line per group and seed; a column pair per multi-sphere row (and setting, where it differs
    from the shortest one, quality.py's defaults): its AUROC and mean R_k^2, and the AUROC of its score
    plus one sphere's (each standardised by its training mean and spread)."""
    base = min((k[3] for k in models), key=len)
    by_run = defaultdict(dict)
    for (group, seed, row, setting), blob in models.items():
        by_run[(group, seed)][label(row, setting, base)] = blob
    multi = sorted({r for runs in by_run.values() for r in runs if r != SINGLE and (not wanted or r in wanted)})
    head = "| group | seed | one sphere (R^2) | " + " | ".join(f"{r} (mean R_k^2) | + one sphere" for r in multi) + " |"
    out = [head, "|---|---|---|" + "---|---|" * len(multi)]
    for (group, seed), rows in sorted(by_run.items(), key=lambda kv: (len(kv[0][0]), kv[0])):
        if not any(r in rows for r in multi):
            continue
        single = rows.get(SINGLE)
        s1 = min_scores(single, rule) if single is not None else None
        y = next(iter(rows.values()))["y_test"]
        cells = [f"{auroc(y, s1[0]):.4f} ({float(single['radii'].pow(2).mean()):.3f})" if s1 else ""]
        for r in multi:
            if r not in rows:
                cells += ["", ""]
                continue
            test, train = min_scores(rows[r], rule)
            cells.append(f"{auroc(y, test):.4f} ({float(rows[r]['radii'].pow(2).mean()):.3f})")
            both = "" if s1 is None else combined_scores(test, s1[0], score_stats(train, s1[1]), 1.0)
            cells.append("" if s1 is None else f"{auroc(y, both):.4f}")
        out.append(f"| {group.replace('-', ',')} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def class_table(models: dict, rule: str, data_root: str) -> str:
    from toolkit.config import DataConfig
    from toolkit.data import load_split

    out = []
    splits = {}
    base = min((k[3] for k in models), key=len)
    for (group, seed, row, setting), blob in sorted(models.items()):
        if row == SINGLE:
            continue
        row = label(row, setting, base)
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
        comp = ["/".join(map(str, counts)) for counts in table]
        out.append(
            f"| {group.replace('-', ',')} | {seed} | {row} | {', '.join(per)} | "
            f"{' ; '.join(comp)} (classes {'/'.join(map(str, classes))}) |"
        )
    head = "| group | seed | row | AUROC against each anomaly class | training points by nearest sphere |"
    return "\n".join([head, "|---|---|---|---|---|", *out])


def finch_levels(ae_folder: Path, data_root: str, epochs: int, settings: str) -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality import load_group

    from plugins.finch import FinchClusterer
    from toolkit.nets import build_autoencoder, embed, fast_layout

    out = ["| group | seed | clusters per level | impure points per level | coarsest level, by cluster |"]
    out.append("|---|---|---|---|---|")
    for path in sorted(
        ae_folder.glob(f"ae-*-e{epochs}-{settings}.pt"), key=lambda p: (len(p.name.split("-s")[0]), p.name)
    ):
        classes = tuple(int(c) for c in path.name[3:].split("-s")[0].split("-"))
        seed = int(path.name.split("-s")[1].split("-")[0])
        leak = float(path.stem.rsplit("-l", 1)[1])
        x, _, split = load_group(classes, data_root)
        ae = fast_layout(build_autoencoder("lenet28", (1, 28, 28), leak=leak), "cpu")
        ae.load_state_dict(torch.load(path, weights_only=True)["state"])
        f = FinchClusterer()
        f.fit_predict(embed(ae.encoder, x).numpy())
        impure, comp = [], ""
        for level in range(f.partitions_.shape[1]):
            lab = f.partitions_[:, level]
            table = composition(lab, int(lab.max()) + 1, split.y_train, classes)
            impure.append(int(table.sum() - table.max(1).sum()))
            comp = " ; ".join("/".join(map(str, row)) for row in table)
        out.append(
            f"| {','.join(map(str, classes))} | {seed} | {f.n_clusters_per_level_} | {impure} | "
            f"{comp} (classes {'/'.join(map(str, classes))}) |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", default=str(ROOT / "runs" / "bench" / "scores"))
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--rule", default="ratio", choices=("margin", "ratio", "distance"))
    ap.add_argument("--setting", default=None, help="only models run with this quality.py setting")
    ap.add_argument("--rows", default="", help="multi-sphere columns to show, e.g. 'mr-finch,mr-finch finch_level=-2'")
    ap.add_argument("--finch-levels", action="store_true", help="FINCH's levels on the cached autoencoders")
    ap.add_argument("--epochs", type=int, default=150, help="with --finch-levels: autoencoders of this many epochs")
    ap.add_argument(
        "--ae-settings", default="wd0.0005-m50-l0.01", help="with --finch-levels: the cache key's settings part"
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
    print(f"{len(models)} models from {a.scores}; rule {a.rule}\n")
    print(ensemble_table(models, a.rule, [r for r in a.rows.split(",") if r]) + "\n")
    print(class_table(models, a.rule, a.data_root))


if __name__ == "__main__":
    main()
