"""Quality benchmark: test AUROC on MNIST with groups of normal classes, every method from one shared
autoencoder per group and seed.

    python benchmarks/quality.py --data-root ../shared/data                 # the paper schedule (150 + 150)
    python benchmarks/quality.py --epochs-scale 0.2                         # 30 + 30 epochs
    python benchmarks/quality.py --group-list 0,1,3 --rows mr-finch --set svdd.reassign=true --set svdd.score=ratio

Groups of 2, 3, 4 normal classes are drawn at random (seeded, listed in the output) or given with
--group-list; the other classes are anomalies. Rows: Deep SVDD with one sphere (soft-boundary and
one-class), Multi-Radius with FINCH, k-means (k = number of normal classes), HDBSCAN, the true classes
as clusters (the oracle, label-informed), the autoencoder's reconstruction error, and PyOD's DeepSVDD
(optional dependency). Every row but PyOD's is the library's own fit,
``MultiRadiusDeepSVDD(mnist recipe, **overrides).fit(training images, hooks=...)``: the row differs in its
clusterer (``single`` for one sphere; the oracle's is registered here) and objective. The schedule is
Ruff et al.'s published MNIST one (Adam, lr 1e-4 / 10 at epoch 50, batch 200, autoencoder weight decay
0.5e-3, SVDD weight decay 0.5e-6, leaky ReLU 0.01), scaled by --epochs-scale, given to the recipe as the
command line's overrides; --set passes any other model setting in the command line's syntax
(``--set svdd.reassign=true``, the names of ``python -m toolkit --svdd.reassign=true``; --svdd k=v,...
is the same for svdd.* names) and every setting that differs from these defaults is named in the CSV's
`setting` column. The fits' hooks keep each group's pretrained autoencoder next to the CSV (ae/, keyed by
every setting that changes it), so rows added later start from the very same weights.

For every trained model the CSV also holds the test AUROC of each scoring rule (margin d-R^2, ratio
d/R^2, distance d), each alone and plus the standardised reconstruction error, with the BatchNorm
statistics as trained and recomputed over the training data (bn_), and the test AUROC every
--eval-every epochs (the curve). Each trained model's squared distances to every centre (test and
training points) and its radii are kept in scores/ next to the CSV, for analyses the CSV cannot
answer, with the reconstruction errors; from them, `--summary --rule ratio+single+recon` (or any
rule plus `+single`) scores the multi-sphere rows as ``svdd.score_single=1`` does, adding the one
sphere of the same group, seed and setting. Every finished row is appended at once; rerunning the
same command skips what the CSV already holds. Prints a markdown table: mean and standard deviation
of test AUROC per group size, clusters found, wall time. Not part of CI.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    AE_FIXED,
    DATA_ROOT,
    ROOT,
    CachedPretraining,
    auroc,
    autoencoder_key,
    cached_autoencoder,
    combined,
    load_group,
    markdown_table,
    min_scores,
    preprocess,
    read_csv,
    recon_errors,
)

from toolkit import MultiRadiusDeepSVDD, register_clusterer
from toolkit.clustering import ClusteringError
from toolkit.config import (
    MODEL_SETTINGS,
    Config,
    ConfigError,
    SVDDConfig,
    apply_overrides,
    field_table,
    load_recipe,
    resolve_key,
)
from toolkit.data import as_tensor
from toolkit.files import atomic_write
from toolkit.nets import embed, refresh_batchnorm
from toolkit.svdd import all_sq_distances

RECIPE = "mnist"  # the packaged recipe every row starts from (LeNet nets, MNIST); the overrides set the rest
ROWS = {
    "dsvdd-soft": "Deep SVDD, one sphere, soft-boundary",
    "dsvdd-oneclass": "Deep SVDD, one sphere, one-class",
    "mr-finch": "Multi-Radius, FINCH (defaults)",
    "mr-kmeans": "Multi-Radius, k-means (k = normal classes)",
    "mr-hdbscan": "Multi-Radius, HDBSCAN",
    "mr-oracle": "Multi-Radius, true classes (oracle, label-informed)",
    "ae-recon": "Autoencoder reconstruction error",
    "pyod-deepsvdd": "PyOD DeepSVDD (MLP, one-class; optional dependency)",
}
ORACLE = "true-classes"  # the oracle row's clusterer, registered for each group by register_oracle
# What each row fitted by the detector changes, as overrides on top of the command's.
ROW_SETTINGS: dict[str, dict[str, Any]] = {
    "dsvdd-soft": {"clustering.name": "single"},
    "dsvdd-oneclass": {"clustering.name": "single", "svdd.objective": "one-class"},
    "mr-finch": {"clustering.name": "finch"},
    "mr-kmeans": {"clustering.name": "kmeans", "clustering.options": {"n_clusters": "n_normal_classes"}},
    "mr-hdbscan": {"clustering.name": "hdbscan"},
    "mr-oracle": {"clustering.name": ORACLE},
    "ae-recon": {"clustering.name": "single", "svdd.epochs": 0},  # the pretraining is the row: no SVDD epoch
}
RULES = ("margin", "ratio", "distance")
AUROC_COLUMNS = [f"auroc_{p}{r}{c}" for p in ("", "bn_") for c in ("", "+recon") for r in RULES]
FIELDS = ["group_size", "group", "seed", "row", "setting", "auroc", "clusters", "seconds", *AUROC_COLUMNS, "curve"]

# --------------------------------------------------------------------------------------------- settings


def schedule(args) -> dict[str, Any]:
    """Ruff et al.'s published MNIST schedule at ``--epochs-scale`` as the command line's overrides of the
    recipe: 150 + 150 epochs at scale 1, Adam at lr 1e-4, divided by 10 at the milestones, batches of
    200, the flags' weight decays and leak, nu 0.1 and 10 warm-up epochs (scaled); the sphere's score
    alone (the CSV's columns add the other terms from the kept distances)."""
    scale = args.epochs_scale
    epochs = max(1, round(150 * scale))

    def at_scale(milestones) -> list[int]:
        return [max(1, round(m * scale)) for m in milestones]

    return {
        **AE_FIXED,
        "net.leak": args.leak,
        "net.fused": args.fused_layers,
        "pretrain.epochs": epochs,
        "pretrain.milestones": at_scale(args.ae_milestones),
        "pretrain.weight_decay": args.ae_weight_decay,
        "svdd.epochs": epochs,
        "svdd.lr": 1e-4,
        "svdd.gamma": 0.1,
        "svdd.batch_size": 200,
        "svdd.milestones": at_scale(args.svdd_milestones),
        "svdd.weight_decay": args.svdd_weight_decay,
        "svdd.objective": "soft-boundary",
        "svdd.nu": 0.1,
        "svdd.warmup_epochs": max(1, round(10 * scale)),
        "svdd.score_single": 0.0,
        "svdd.score_recon": 0.0,
        "svdd.score_knn": 0.0,
        "clustering.options": {},
    }


def cli_value(text: str) -> Any:
    """A value as the command line gives it: JSON where it parses (numbers, true, lists), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def chosen_overrides(args) -> dict[str, Any]:
    """The settings this command changes beyond the schedule (--set, and --svdd / --clustering for
    svdd.* / clustering.* names), by dotted name. The benchmark owns the training seed, the data and
    each row's clusterer; the run's settings (device, run folder, monitoring) mean nothing to a fit."""
    pairs = [(f"svdd.{k}", v) for k, v in (kv.split("=", 1) for kv in args.svdd.split(",") if kv)]
    pairs += [(f"clustering.{k}", v) for k, v in (kv.split("=", 1) for kv in args.clustering.split(",") if kv)]
    for kv in args.set:
        if "=" not in kv:
            raise ConfigError(f"--set {kv!r}: expected KEY=VALUE, e.g. --set svdd.nu=0.05")
        pairs.append(tuple(kv.lstrip("-").split("=", 1)))
    recipe, out = load_recipe(RECIPE), {}
    for key, text in pairs:
        dotted = resolve_key(recipe, key)
        owned = dotted == "seed" or dotted.startswith(("clustering.name", "clustering.options"))
        if dotted.split(".")[0] not in MODEL_SETTINGS or owned:
            raise ConfigError(
                f"--set {key}: not a setting this benchmark passes on; it sets the seed (--seeds), the data "
                "(--group-list) and each row's clusterer (--rows, --finch-level), and takes the model's other "
                "settings (net.*, pretrain.*, clustering.* tidy-up, svdd.*)"
            )
        out[dotted] = cli_value(text)
    return out


def settings(args) -> tuple[dict[str, Any], str]:
    """The overrides every row of this command fits with, and a short key naming every setting that
    differs from the benchmark's defaults (the CSV's ``setting`` column; values as the config holds them)."""
    chosen = chosen_overrides(args)
    overrides = {**schedule(args), **chosen}
    held = field_table(apply_overrides(load_recipe(RECIPE), overrides))  # checks every key and value

    def named(keys, strip: str = "") -> list[str]:
        return [f"{k[len(strip) :]}={held[k][1]}" for k in sorted(keys)]

    parts = [f"ae_wd={args.ae_weight_decay:g}", f"leak={args.leak:g}"]
    parts += [f"ae_m={'_'.join(map(str, args.ae_milestones))}", f"m={'_'.join(map(str, args.svdd_milestones))}"]
    parts += [f"wd={args.svdd_weight_decay:g}", *named([k for k in chosen if k.startswith("svdd.")], "svdd.")]
    parts += [f"finch_level={args.finch_level}"] if args.finch_level is not None else []
    parts += ["layers=fused"] if args.fused_layers else []
    parts += named([k for k in chosen if k.startswith("clustering.")], "clustering.")
    parts += named([k for k in chosen if not k.startswith(("svdd.", "clustering."))])
    return overrides, ";".join(parts)


def group_config(overrides: dict[str, Any], group, seed: int, data_root: str) -> Config:
    """The configuration every row of ``group`` and training ``seed`` fits with (each row adds its own)."""
    data = {"data.root": data_root, "data.download": False, "data.normal_classes": list(group)}
    return apply_overrides(load_recipe(RECIPE), {**overrides, "seed": seed, **data})


def row_overrides(row: str, args) -> dict[str, Any]:
    over = dict(ROW_SETTINGS[row])
    if row == "mr-finch" and args.finch_level is not None:
        over["clustering.options"] = {"level": args.finch_level}
    return over


class TrueClasses:
    """The oracle row's clusterer: the true class of every training point, in the training order
    (label-informed: a reference for the other rows, never a method)."""

    def __init__(self, classes: np.ndarray) -> None:
        self.classes = classes

    def fit_predict(self, z: np.ndarray) -> np.ndarray:
        if len(z) != len(self.classes):
            raise ValueError(f"{ORACLE}: {len(z)} points to label, {len(self.classes)} true classes known")
        return self.classes


def register_oracle(group, y_train: np.ndarray) -> None:
    """Make ``ORACLE`` give ``group``'s training points their true classes (0..K-1)."""
    classes = np.searchsorted(group, y_train)
    register_clusterer(ORACLE, lambda: TrueClasses(classes), overwrite=True)


# --------------------------------------------------------------------------------------------- training


class Results:
    """The CSV being appended to: one line per finished row, flushed at once, and a line on stderr."""

    def __init__(self, f) -> None:
        self.f, self.writer = f, csv.DictWriter(f, FIELDS)
        if f.tell() == 0:
            self.writer.writeheader()

    def add(self, group, seed, setting, row, value, clusters, seconds, extra=None) -> None:
        extra = extra or {}
        self.writer.writerow(
            {
                "group_size": len(group),
                "group": str(list(group)),
                "seed": seed,
                "row": row,
                "setting": setting,
                "auroc": f"{value:.5f}",
                "clusters": clusters,
                "seconds": f"{seconds:.1f}",
                **{k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in extra.items()},
            }
        )
        self.f.flush()
        rules = " ".join(f"{k[6:]} {v:.4f}" for k, v in extra.items() if k.startswith("auroc_"))
        print(
            f"  {list(group)} seed {seed} {row} [{setting}]: AUROC {value:.4f}, {clusters} clusters, "
            f"{seconds:.0f} s {rules}",
            file=sys.stderr,
        )


def run_group(group, seed, args, done, results: Results) -> None:
    """Every row of ``args.rows`` the CSV lacks for ``group`` and ``seed``, in order, each a fit of the
    detector through hooks that pretrain the group's autoencoder once."""
    overrides, setting = settings(args)
    todo = [r for r in args.rows if (str(list(group)), seed, r, setting) not in done]
    if not todo:
        return
    x, prep, split = load_group(group, args.data_root)
    xt, y = preprocess(prep, split.x_test), split.is_anomaly_test
    cfg = group_config(overrides, group, seed, args.data_root)
    folder = None if args.no_cache else Path(args.csv).parent
    test = (as_tensor(split.x_test), torch.from_numpy(np.asarray(y)))
    cache = None if folder is None else folder / "ae"
    hooks = CachedPretraining.for_config(cfg, cache, eval_raw=test, eval_every=args.eval_every)
    register_oracle(group, split.y_train)
    recon = None  # the group's autoencoder's reconstruction errors (test, training), the same for every row

    def add(row, value, clusters, seconds, extra=None):
        results.add(group, seed, setting, row, value, clusters, seconds, extra)

    for row in todo:
        t0 = time.perf_counter()
        if row == "pyod-deepsvdd":
            try:
                s = pyod_deepsvdd(x.flatten(1), xt.flatten(1), cfg.svdd.epochs, seed)
            except ImportError:
                print("  pyod-deepsvdd: PyOD is not installed (pip install pyod); row skipped", file=sys.stderr)
                continue
            add(row, auroc(y, s), 1, time.perf_counter() - t0)
            continue
        try:
            det = fit_row(row, cfg, args, split.x_train, hooks)
        except ClusteringError as e:  # a failure is a result too: recorded, not hidden
            print(f"  {list(group)} seed {seed} {row}: failed: {e}", file=sys.stderr)
            add(row, float("nan"), 0, time.perf_counter() - t0)
            continue
        info = det.fit_info_
        if recon is None:
            recon = recon_errors(det.autoencoder_, xt, x)
        if row == "ae-recon":
            add(row, auroc(y, recon[0]), 0, info["pretrain"]["seconds"])
            continue
        t1 = time.perf_counter()
        extra, (d_test, d_train) = sphere_columns(det, x, xt, y, recon)
        if folder is not None:  # for analyses the CSV cannot answer (ensembles, per-class)
            save_distances(folder / "scores", group, seed, row, setting, d_test, d_train, det.head_.radii, y, recon)
        extra["curve"] = " ".join(f"{t['epoch']}:{t['auroc']:.4f}" for t in info["multi"]["history"]["tests"])
        trained = sum(info[stage]["seconds"] for stage in ("pretrain", "clustering", "multi"))
        seconds = trained + time.perf_counter() - t1
        add(row, extra[f"auroc_{det.head_.rule}"], det.n_clusters_, seconds, extra)


def fit_row(row: str, cfg: Config, args, x_train, hooks: CachedPretraining) -> MultiRadiusDeepSVDD:
    """The row's detector, fitted on the raw training images with the group's hooks."""
    det = MultiRadiusDeepSVDD(cfg, device="cpu", **row_overrides(row, args))
    with warnings.catch_warnings():
        if row == "ae-recon":  # no SVDD epoch: the untrained sphere's zero radius is no collapse
            warnings.filterwarnings("ignore", message=".*looks collapsed")
        return det.fit(x_train, hooks=hooks)


def sphere_columns(det: MultiRadiusDeepSVDD, x, xt, y, recon) -> tuple[dict[str, float], tuple]:
    """Test AUROC of every scoring rule of the fitted model, with the BatchNorm statistics as trained
    and recomputed over the training data (``bn_``, on a copy of the encoder); and the squared
    distances as trained (test, training)."""
    encoder, head, out, kept = det.encoder_, det.head_, {}, None
    for prefix in ("", "bn_"):
        if prefix and not det.resolved_config().svdd.refresh_bn:
            encoder = refresh_batchnorm(copy.deepcopy(encoder), x)
        d_test = all_sq_distances(embed(encoder, xt), head.centres)
        d_train = all_sq_distances(embed(encoder, x), head.centres)
        out |= auroc_by_rule(y, d_test, head.radii, recon[0], d_train, recon[1], prefix)
        kept = kept or (d_test, d_train)
    return out, kept


def auroc_by_rule(y, d_test, radii, recon_test, d_train, recon_train, prefix: str = "") -> dict[str, float]:
    """Test AUROC of every scoring rule from the same trained model, alone and added to the
    reconstruction error (both standardised by their training-set mean and spread)."""
    out = {}
    for rule in RULES:
        s_test, s_train = min_scores({"d_test": d_test, "d_train": d_train, "radii": radii}, rule)
        out[f"auroc_{prefix}{rule}"] = auroc(y, s_test.numpy())
        if recon_test is not None:  # the detector's own combination (svdd.score_recon = 1)
            both = combined([s_test, recon_test], [s_train, recon_train])
            out[f"auroc_{prefix}{rule}+recon"] = auroc(y, both.numpy())
    return out


def pyod_deepsvdd(x, x_test, epochs: int, seed: int):
    """PyOD's DeepSVDD (MLP on the flattened, preprocessed pixels) for ``epochs``; test scores."""
    from pyod.models.deep_svdd import DeepSVDD

    model = DeepSVDD(
        n_features=x.shape[1], epochs=epochs, batch_size=200, random_state=seed, verbose=0, learning_rate=1e-4
    )
    model.fit(x.numpy())
    return model.decision_function(x_test.numpy())


def draw_groups(sizes: list[int], n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        seen: set[tuple[int, ...]] = set()
        while len(seen) < n:
            seen.add(tuple(sorted(rng.choice(10, size=size, replace=False).tolist())))
        out += sorted(seen)
    return out


# --------------------------------------------------------------------------------------------- kept distances


def distances_path(folder: Path, group, seed: int, row: str, setting: str) -> Path:
    tag = hashlib.sha1(setting.encode()).hexdigest()[:8]
    return folder / f"{'-'.join(map(str, group))}-s{seed}-{row}-{tag}.pt"


def save_distances(folder: Path, group, seed, row, setting, d_test, d_train, radii, y, recon=None) -> Path:
    """A trained row's squared distances to every centre (test and training points), its radii, the
    test labels (1 = anomaly) and the autoencoder's reconstruction errors (test, training), as trained,
    in ``folder`` (one file per group, seed, row and setting)."""
    blob = {"d_test": d_test, "d_train": d_train, "radii": radii, "y_test": torch.as_tensor(np.asarray(y))}
    if recon is not None:
        blob |= {"recon_test": recon[0], "recon_train": recon[1]}
    blob["setting"] = setting
    return atomic_write(distances_path(folder, group, seed, row, setting), lambda p: torch.save(blob, p))


def add_single_columns(rows: list[dict[str, str]], folder: Path, args) -> int:
    """For every multi-sphere CSV row whose model and whose group's one-sphere model (same seed and
    setting) were kept in ``folder``: the test AUROC of each rule plus the one-sphere score, and plus
    both it and the reconstruction error (what ``svdd.score_single=1`` and the recipes score), as
    ``auroc_{rule}+single`` and ``auroc_{rule}+single+recon``, in memory. Files kept before the
    reconstruction errors were get them from the cached autoencoder once (written back). Returns the
    number of rows it filled."""
    filled = 0
    for r in rows:
        group, seed = tuple(json.loads(r["group"])), int(r["seed"])
        if not r["row"].startswith("mr-"):
            continue
        paths = [distances_path(folder, group, seed, row, r["setting"]) for row in (r["row"], "dsvdd-soft")]
        if not all(p.is_file() for p in paths):
            continue
        multi, single = kept_with_recon(paths[0], group, seed, args), torch.load(paths[1], weights_only=True)
        for rule in RULES:
            cols = [min_scores(multi, rule), min_scores(single, rule), (multi["recon_test"], multi["recon_train"])]
            for name, use in ((f"{rule}+single", cols[:2]), (f"{rule}+single+recon", cols)):
                both = combined([test for test, _ in use], [train for _, train in use])
                r[f"auroc_{name}"] = f"{auroc(multi['y_test'].numpy(), both.numpy()):.5f}"
        filled += 1
    return filled


def kept_with_recon(path: Path, group, seed: int, args) -> dict:
    """A kept file, with the reconstruction errors of its group's cached autoencoder (this command's
    settings) added (and saved) if it was kept before they were."""
    blob = torch.load(path, weights_only=True)
    if "recon_test" not in blob:
        cfg = group_config(settings(args)[0], group, seed, args.data_root)
        ae_path = path.parent.parent / "ae" / f"{autoencoder_key(cfg)}.pt"
        if not ae_path.is_file():
            raise FileNotFoundError(f"no cached autoencoder {ae_path}: run the rows of this setting first")
        x, prep, split = load_group(group, args.data_root)
        ae, xt = cached_autoencoder(ae_path), preprocess(prep, split.x_test)
        blob["recon_test"], blob["recon_train"] = recon_errors(ae, xt, x)
        atomic_write(path, lambda p: torch.save(blob, p))
    return blob


# --------------------------------------------------------------------------------------------- summary tables


def column(row: dict[str, str], rule: str) -> str | None:
    """A row's test AUROC by ``rule``, if it has one. A one-sphere row is its own one-sphere term, so for
    a ``+single`` rule it gives the rule without it."""
    found = row.get(f"auroc_{rule}")
    if not found and "+single" in rule and not row["row"].startswith("mr-"):
        found = row.get(f"auroc_{rule.replace('+single', '')}")
    return found or None


def auroc_of(row: dict[str, str], rule: str) -> str | None:
    """A CSV row's test AUROC by scoring ``rule``; rows with one score only (autoencoder, PyOD) by it. A
    multi-sphere row without its ``+single`` column (its distances were not kept) has none: missing,
    never a stand-in."""
    if row["auroc"] == "nan":  # a failed clustering
        return "nan"
    found = column(row, rule)
    if found is None and "+single" in rule and row["row"].startswith("mr-"):
        return None
    return found or row["auroc"]


def size_cell(rs: list[dict], size: int) -> list[str]:
    """Mean +- spread of the AUROC of the rows of one group size (failures counted apart), and clusters."""
    a = np.array([float(r["auroc"]) for r in rs if int(r["group_size"]) == size])
    k = [int(r["clusters"]) for r in rs if int(r["group_size"]) == size and r["auroc"] != "nan"]
    ok = a[~np.isnan(a)]
    failed = f", {len(a) - len(ok)} failed" if len(ok) < len(a) else ""
    if len(ok):
        cell = f"{ok.mean():.4f} +- {ok.std():.4f} ({len(ok)}{failed})"
    else:
        cell = f"failed ({len(a)})" if len(a) else ""
    return [cell, f"{np.mean(k):.1f}" if k else ""]


def table(csv_rows: list[dict], setting: str, rows_wanted, rule: str = SVDDConfig().score) -> str:
    """Mean +- spread of test AUROC per group size for the rows run with ``setting``, Deep SVDD models
    scored by ``rule`` (the CSV holds every rule; rows without one, such as the autoencoder's, by their
    own score); below it, the AUROC of every scoring rule (mean over all groups and seeds)."""
    rows = [dict(r) for r in csv_rows if r["setting"] == setting and r["row"] in rows_wanted]
    for r in rows:
        r["auroc"] = auroc_of(r, rule)
    rows = [r for r in rows if r["auroc"] is not None]
    if not rows:
        return "(no finished rows yet)"
    sizes = sorted({int(r["group_size"]) for r in rows})
    columns = [c for c in FIELDS if c.startswith("auroc_")]
    lines, rule_lines = [], []
    for key, label in ROWS.items():
        rs = [r for r in rows if r["row"] == key]
        if not rs:
            continue
        cells = [cell for s in sizes for cell in size_cell(rs, s)]
        lines.append([label, *cells, f"{np.mean([float(r['seconds']) for r in rs]):.0f}"])
        by_rule = [[float(r[c]) for r in rs if r.get(c)] for c in columns]
        if any(by_rule):
            rule_lines.append([key, *(f"{np.mean(v):.4f}" if v else "" for v in by_rule)])
    head = ["method", *(c for s in sizes for c in (f"{s} normal classes: AUROC (n)", "clusters")), "wall time (s)"]
    out = markdown_table(head, lines)
    if rule_lines:
        out += (
            "\n\nAUROC by scoring rule (same trained models; +recon: plus the standardised reconstruction error):\n\n"
        )
        out += markdown_table(["method", *(c[6:] for c in columns)], rule_lines)
    return out


def rules_table(path: Path, columns=("margin", "ratio", "distance", "ratio+recon", "bn_ratio"), seeds=None) -> str:
    """Every (setting, row) in the CSV: mean test AUROC of each scoring-rule column over its groups and
    seeds (n), the clusters found, and the epoch of the best test AUROC on the curve (a diagnostic, never
    a model selection)."""
    rows = [r for r in read_csv(path, seeds) if r.get("auroc_margin")]
    keys = sorted({(r["setting"], r["row"]) for r in rows}, key=lambda k: (k[0], list(ROWS).index(k[1])))
    lines = []
    for setting, row in keys:
        rs = [r for r in rows if (r["setting"], r["row"]) == (setting, row)]
        vals = [[float(r["auroc_" + c]) for r in rs if r.get("auroc_" + c)] for c in columns]
        cells = [f"{np.mean(v):.4f}" if v else "" for v in vals]
        best = []
        for r in rs:
            pts = [p.split(":") for p in r["curve"].split()]
            best.append(max(pts, key=lambda p: float(p[1]))[0] if pts else "")
        k = np.mean([int(r["clusters"]) for r in rs])
        lines.append([setting, row, len(rs), *cells, f"{k:.1f}", ", ".join(best)])
    return markdown_table(["setting", "row", "n", *columns, "clusters", "best epoch on the curve"], lines)


def group_table(csv_rows: list[dict], setting: str, rows_wanted, rule: str = SVDDConfig().score) -> str:
    """One column per group: each row's test AUROC by ``rule`` and, after the slash, by ``rule`` plus
    the standardised reconstruction error (what ``svdd.score_recon=1`` scores), for the rows run with
    ``setting``: the table to read when there are few groups per size. The last column counts the
    models above the soft-boundary sphere of the same group and seed (by ``rule`` / with the error)."""
    rows = [r for r in csv_rows if r["setting"] == setting and r["row"] in rows_wanted]
    groups = sorted({(int(r["group_size"]), r["group"], int(r["seed"])) for r in rows})
    if not groups:
        return "(no finished rows yet)"
    single = {(r["group"], int(r["seed"])): r for r in rows if r["row"] == "dsvdd-soft"}
    lines = []
    for key, label in ROWS.items():
        rs = {(r["group"], int(r["seed"])): r for r in rows if r["row"] == key}
        if not rs:
            continue
        cells, alone, plus, wins = [], [], [], [0, 0, 0]
        for _, g, sd in groups:
            r = rs.get((g, sd))
            r = None if r is None or auroc_of(r, rule) is None else r
            if r is None or r["auroc"] == "nan":
                cells.append("" if r is None else "failed")
                continue
            a, b = auroc_of(r, rule), column(r, f"{rule}+recon")
            alone.append(float(a))
            plus += [float(b)] if b else []
            cells.append(f"{float(a):.4f}" + (f" / {float(b):.4f}" if b else ""))
            one = single.get((g, sd))
            if one is not None and key != "dsvdd-soft":  # the same group, seed and autoencoder
                wins[0] += float(a) > float(auroc_of(one, rule))
                wins[1] += bool(b) and float(b) > float(column(one, f"{rule}+recon"))
                wins[2] += 1
        mean = f"{np.mean(alone):.4f}" + (f" / {np.mean(plus):.4f}" if len(plus) == len(alone) and plus else "")
        won = (f"{wins[0]} / {wins[1]}" if plus else f"{wins[0]}") + f" of {wins[2]}" if wins[2] else ""
        lines.append([label, *cells, mean, won])
    head = ["method", *(f"{g} seed {sd}" for _, g, sd in groups), "mean", "above one sphere"]
    return markdown_table(head, lines)


# --------------------------------------------------------------------------------------------- command line


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=DATA_ROOT)
    ap.add_argument("--group-sizes", default="2,3,4")
    ap.add_argument("--groups", type=int, default=3, help="random groups per size")
    ap.add_argument("--group-list", default="", help="explicit groups instead of a draw, e.g. '0,1,3;2,7'")
    ap.add_argument("--seeds", default=None, help="comma-separated training seeds (0; with --summary: all)")
    ap.add_argument("--group-seed", type=int, default=0, help="seed of the group draw")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="1.0 = 150 + 150 epochs (the paper)")
    ap.add_argument("--rows", default=",".join(r for r in ROWS if r != "pyod-deepsvdd") + ",pyod-deepsvdd")
    ap.add_argument("--ae-weight-decay", type=float, default=0.5e-3, help="autoencoder weight decay")
    ap.add_argument("--ae-milestones", type=ints, default=(50,), help="epochs (at scale 1) of lr / 10")
    ap.add_argument("--svdd-weight-decay", type=float, default=0.5e-6)
    ap.add_argument("--svdd-milestones", type=ints, default=(50,))
    ap.add_argument("--leak", type=float, default=0.01, help="leaky-ReLU slope (0.01: Ruff et al.'s code)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model setting in the command line's syntax, e.g. --set svdd.reassign=true --set net.rep_dim=64 "
        "(the names of `python -m toolkit --KEY=VALUE`; values as JSON where they parse); repeatable",
    )
    ap.add_argument("--svdd", default="", help="svdd.* settings, e.g. 'score=distance,reassign=true' (= --set svdd.*)")
    ap.add_argument("--finch-level", type=int, default=None, help="FINCH partition (default: its plugin default)")
    ap.add_argument(
        "--clustering", default="", help="tidy-up settings, e.g. 'min_cluster_fraction=0.01' (= --set clustering.*)"
    )
    ap.add_argument("--eval-every", type=int, default=10, help="test AUROC every this many epochs (the curve)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--no-cache", action="store_true", help="do not keep the autoencoders next to the CSV")
    layers = ap.add_mutually_exclusive_group()
    layers.add_argument(
        "--fused-layers",
        action="store_true",
        help="run two LeNet layer sequences in toolkit/layers.py's fused forms (--net.fused=True, CPU only): "
        "a speed setting, rounded differently from the default plain sequences",
    )
    layers.add_argument("--plain-layers", action="store_true", help="the plain sequences (the default; older commands)")
    ap.add_argument("--csv", default=str(ROOT / "runs" / "bench" / "quality.csv"))
    ap.add_argument(
        "--rule",
        default=SVDDConfig().score,
        choices=[f"{r}{c}" for c in ("", "+recon", "+single", "+single+recon") for r in RULES],
        help="scoring rule of the main table (+recon: plus the standardised reconstruction error; +single: "
        "multi-sphere rows plus their one sphere's standardised score, from the kept distances, with --summary)",
    )
    ap.add_argument("--summary", action="store_true", help="only print the tables of what the CSV holds")
    args = ap.parse_args()
    args.rows = [r for r in args.rows.split(",") if r]
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        ap.error(f"unknown rows {sorted(unknown)}; accepted: {', '.join(ROWS)}")
    try:
        settings(args)
    except ConfigError as e:
        ap.error(str(e))
    return args


def summary(args) -> None:
    """The main table of this command's setting, by group, then every setting by rule."""
    setting = settings(args)[1]
    seeds = None if args.seeds is None else set(ints(args.seeds))
    rows = read_csv(Path(args.csv), seeds)
    if "+single" in args.rule:
        n = add_single_columns(rows, Path(args.csv).parent / "scores", args)
        print(f"(+single: {n} multi-sphere rows had their model and the one sphere's kept in scores/)\n")
    print(table(rows, setting, args.rows, args.rule) + "\n")
    print(f"By group ({args.rule} / {args.rule} + reconstruction error):\n")
    print(group_table(rows, setting, args.rows, args.rule) + "\n")
    print(rules_table(Path(args.csv), seeds=seeds))


def train(args) -> None:
    """Every group and seed of the command, appending to the CSV; then the main table."""
    args.seeds = args.seeds or "0"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.group_list:
        groups = [tuple(sorted(ints(g))) for g in args.group_list.split(";")]
    else:
        groups = draw_groups(list(ints(args.group_sizes)), args.groups, args.group_seed)
    overrides, setting = settings(args)
    print(
        f"groups: {groups}{'' if args.group_list else f' (draw seed {args.group_seed})'}; seeds {args.seeds}; "
        f"{overrides['pretrain.epochs']} + {overrides['svdd.epochs']} epochs (scale {args.epochs_scale}); "
        f"setting {setting}; torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if path.is_file():
        done = {(r["group"], int(r["seed"]), r["row"], r["setting"]) for r in read_csv(path)}
    t0 = time.perf_counter()
    with open(path, "a", newline="") as f:
        results = Results(f)
        for group in groups:
            for seed in ints(args.seeds):
                run_group(group, seed, args, done, results)
    print(table(read_csv(path), setting, args.rows, args.rule))
    print(f"\n({time.perf_counter() - t0:.0f} s this call; CSV: {path}; rerun the same command to continue)")


def main() -> None:
    args = parse_args()
    summary(args) if args.summary else train(args)


if __name__ == "__main__":
    main()
