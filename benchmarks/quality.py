"""Quality benchmark: test AUROC on MNIST with groups of normal classes, every method from one shared
autoencoder per group and seed.

    python benchmarks/quality.py --data-root ../shared/data                 # the paper schedule (150 + 150)
    python benchmarks/quality.py --epochs-scale 0.2                         # 30 + 30 epochs
    python benchmarks/quality.py --group-list 0,1,3 --rows mr-finch --svdd reassign=true,score=ratio

Groups of 2, 3, 4 normal classes are drawn at random (seeded, listed in the output) or given with
--group-list; the other classes are anomalies. Rows: Deep SVDD with one sphere (soft-boundary and
one-class), Multi-Radius with FINCH, k-means (k = number of normal classes), HDBSCAN, the true classes
as clusters (the oracle, label-informed), the autoencoder's reconstruction error, and PyOD's DeepSVDD
(optional dependency). The schedule is Ruff et al.'s published MNIST one (Adam, lr 1e-4 / 10 at epoch
50, batch 200, autoencoder weight decay 0.5e-3, SVDD weight decay 0.5e-6, leaky ReLU 0.01), scaled by
--epochs-scale; --svdd passes any svdd.* setting (the remedies) and every setting that differs from
these defaults is named in the CSV's `setting` column. Autoencoders are kept next to the CSV (ae/), so
rows added later start from the very same weights.

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
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.clustering import ClusteringError, pseudo_labels  # noqa: E402
from toolkit.config import ClusteringConfig, DataConfig, OptimConfig, SVDDConfig  # noqa: E402
from toolkit.data import Preprocessor, TensorBatches, as_tensor, load_split  # noqa: E402
from toolkit.engines import reconstruction_error  # noqa: E402
from toolkit.nets import build_autoencoder, embed, fast_layout, refresh_batchnorm  # noqa: E402
from toolkit.run import RunHooks  # noqa: E402
from toolkit.stages import pretrain, train_svdd  # noqa: E402
from toolkit.svdd import all_sq_distances, combined_scores, score_stats, sphere_scores  # noqa: E402

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
# How each row gets its training labels and what it changes in the SVDD settings.
LABELS = {"dsvdd-soft": "single", "dsvdd-oneclass": "single", "mr-oracle": "oracle"}
CLUSTERERS = {"mr-finch": ("finch", {}), "mr-kmeans": ("kmeans", None), "mr-hdbscan": ("hdbscan", {})}
RULES = ("margin", "ratio", "distance")
AUROC_COLUMNS = [f"auroc_{p}{r}{c}" for p in ("", "bn_") for c in ("", "+recon") for r in RULES]
FIELDS = ["group_size", "group", "seed", "row", "setting", "auroc", "clusters", "seconds", *AUROC_COLUMNS, "curve"]


def schedule(scale: float, milestones=(50, 100), weight_decay: float = 1e-6) -> OptimConfig:
    e = max(1, round(150 * scale))
    return OptimConfig(
        epochs=e,
        lr=1e-4,
        milestones=tuple(max(1, round(m * scale)) for m in milestones),
        weight_decay=weight_decay,
        batch_size=200,
    )


def load_group(group, root):
    """Preprocessed training tensor (fast layout), the fitted preprocessor and the split of ``group``."""
    split = load_split(DataConfig(dataset="mnist", root=root, download=False, normal_classes=tuple(group)))
    x_raw = as_tensor(split.x_train)
    prep = Preprocessor().fit(x_raw)
    return fast_layout(prep(x_raw), "cpu"), prep, split


def shared_autoencoder(
    group,
    seed,
    opt: OptimConfig,
    leak: float,
    x,
    cache: Path | None,
    eval_data=None,
    must_exist: bool = False,
    fused: bool = False,
):
    """The group's autoencoder for ``seed``, trained once and kept in ``cache`` (keyed by every setting
    that changes it), so later rows and later runs start from the very same weights."""
    key = f"ae-{'-'.join(map(str, group))}-s{seed}-e{opt.epochs}-wd{opt.weight_decay:g}"
    key += f"-m{'_'.join(map(str, opt.milestones))}-l{leak:g}" + ("-fused" if fused else "-plain")
    path = None if cache is None else cache / f"{key}.pt"
    torch.manual_seed(seed)
    ae = fast_layout(build_autoencoder("lenet28", (1, 28, 28), leak=leak, fused=fused), "cpu")
    if path is not None and path.is_file():
        blob = torch.load(path, weights_only=True)
        ae.load_state_dict(blob["state"])
        return ae, float(blob["seconds"])
    if must_exist:
        raise FileNotFoundError(f"no cached autoencoder {path}: run the rows of this setting first")
    t0 = time.perf_counter()
    pretrain(ae, x, opt, seed=seed, hooks=evaluating(eval_data, 10))
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state": ae.state_dict(), "seconds": seconds}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return ae, seconds


def evaluating(eval_data, every: int) -> RunHooks:
    """Hooks that evaluate on preprocessed test batches every ``every`` epochs (the test-AUROC curve)."""
    hooks = RunHooks(eval_every=every)
    hooks.eval_data = eval_data
    return hooks


def draw_groups(sizes: list[int], n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        seen: set[tuple[int, ...]] = set()
        while len(seen) < n:
            seen.add(tuple(sorted(rng.choice(10, size=size, replace=False).tolist())))
        out += sorted(seen)
    return out


def svdd_settings(args) -> tuple[SVDDConfig, str]:
    """The SVDD schedule at ``args.epochs_scale`` with the ``--svdd`` overrides, and a short key naming
    every setting that differs from the benchmark's defaults (the CSV's ``setting`` column)."""
    base = schedule(args.epochs_scale, args.svdd_milestones, args.svdd_weight_decay)
    cfg = SVDDConfig(**vars(base), nu=0.1, warmup_epochs=max(1, round(10 * args.epochs_scale)))
    over = dict(kv.split("=", 1) for kv in args.svdd.split(",") if kv)
    types = {f.name: f.type for f in dataclasses.fields(SVDDConfig)}
    for k, v in over.items():
        if k not in types:
            sys.exit(f"--svdd {k}=...: unknown setting; accepted: {', '.join(types)}")
        over[k] = v.lower() == "true" if types[k] in (bool, "bool") else type(getattr(cfg, k))(v)
    cfg = dataclasses.replace(cfg, **over)
    parts = [f"ae_wd={args.ae_weight_decay:g}", f"leak={args.leak:g}"]
    parts += [f"ae_m={'_'.join(map(str, args.ae_milestones))}", f"m={'_'.join(map(str, args.svdd_milestones))}"]
    parts += [f"wd={args.svdd_weight_decay:g}", *(f"{k}={v}" for k, v in sorted(over.items()))]
    parts += [f"finch_level={args.finch_level}"] if args.finch_level is not None else []
    parts += ["layers=fused"] if args.fused_layers else []
    parts += [f"{k}={v}" for k, v in sorted(args.clustering.items())]
    return cfg, ";".join(parts)


def recon_errors(ae, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The autoencoder's reconstruction error of every point of each preprocessed tensor in ``xs``."""
    ae.eval()
    with torch.inference_mode():
        return tuple(torch.cat([reconstruction_error(ae, b) for b in v.split(4096)]) for v in xs)


def min_scores(blob: dict, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Test and training scores (min_k of the per-sphere score by ``rule``) of a kept model."""
    return tuple(sphere_scores(blob[k], blob["radii"], rule).min(dim=1)[0] for k in ("d_test", "d_train"))


def combined(test: list, train: list, weights=None) -> torch.Tensor:
    """What the detector scores with several columns (``svdd.score_single`` / ``score_recon``: the
    weights after the first, which is 1; all 1 by default): the test columns, each standardised by its
    training mean and spread, weighted and added."""
    weights = torch.ones(len(test)) if weights is None else torch.tensor(weights, dtype=torch.float32)
    return combined_scores(torch.stack(test, dim=1), score_stats(torch.stack(train, dim=1)), weights)


def auroc_by_rule(y, d_test, radii, recon_test, d_train, recon_train, prefix: str = "") -> dict[str, float]:
    """Test AUROC of every scoring rule from the same trained model, alone and added to the
    reconstruction error (both standardised by their training-set mean and spread)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for rule in RULES:
        s_test, s_train = min_scores({"d_test": d_test, "d_train": d_train, "radii": radii}, rule)
        out[f"auroc_{prefix}{rule}"] = roc_auc_score(y, s_test.numpy())
        if recon_test is not None:  # the detector's own combination (svdd.score_recon = 1)
            both = combined([s_test, recon_test], [s_train, recon_train])
            out[f"auroc_{prefix}{rule}+recon"] = roc_auc_score(y, both.numpy())
    return out


def pyod_deepsvdd(x, x_test, epochs: int, seed: int):
    """PyOD's DeepSVDD (MLP on the flattened, preprocessed pixels) for ``epochs``; test scores."""
    from pyod.models.deep_svdd import DeepSVDD

    model = DeepSVDD(
        n_features=x.shape[1], epochs=epochs, batch_size=200, random_state=seed, verbose=0, learning_rate=1e-4
    )
    model.fit(x.numpy())
    return model.decision_function(x_test.numpy())


def run_group(group, seed, args, done, writer, f):
    from sklearn.metrics import roc_auc_score

    svdd, setting = svdd_settings(args)
    todo = [r for r in args.rows if (str(list(group)), seed, r, setting) not in done]
    if not todo:
        return
    x, prep, split = load_group(group, args.data_root)
    xt = fast_layout(prep(as_tensor(split.x_test)), "cpu")
    y = split.is_anomaly_test
    eval_data = TensorBatches(xt, torch.from_numpy(np.asarray(y)), batch_size=4096)
    ae_opt = schedule(args.epochs_scale, args.ae_milestones, args.ae_weight_decay)
    cache = None if args.no_cache else Path(args.csv).parent / "ae"
    ae, ae_seconds = shared_autoencoder(group, seed, ae_opt, args.leak, x, cache, fused=args.fused_layers)
    recon_test, recon_train = recon_errors(ae, xt, x)
    z = embed(ae.encoder, x)

    def record(row, auroc, clusters, seconds, extra=None):
        extra = extra or {}
        writer.writerow(
            {
                "group_size": len(group),
                "group": str(list(group)),
                "seed": seed,
                "row": row,
                "setting": setting,
                "auroc": f"{auroc:.5f}",
                "clusters": clusters,
                "seconds": f"{seconds:.1f}",
                **{k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in extra.items()},
            }
        )
        f.flush()
        rules = " ".join(f"{k[6:]} {v:.4f}" for k, v in extra.items() if k.startswith("auroc_"))
        print(
            f"  {list(group)} seed {seed} {row} [{setting}]: AUROC {auroc:.4f}, {clusters} clusters, "
            f"{seconds:.0f} s {rules}",
            file=sys.stderr,
        )

    for row in todo:
        t0 = time.perf_counter()
        if row == "ae-recon":
            record(row, roc_auc_score(y, recon_test.numpy()), 0, ae_seconds)
            continue
        if row == "pyod-deepsvdd":
            try:
                s = pyod_deepsvdd(x.flatten(1), xt.flatten(1), svdd.epochs, seed)
            except ImportError:
                print("  pyod-deepsvdd: PyOD is not installed (pip install pyod); row skipped", file=sys.stderr)
                continue
            record(row, roc_auc_score(y, s), 1, time.perf_counter() - t0)
            continue
        cfg = svdd if row != "dsvdd-oneclass" else dataclasses.replace(svdd, objective="one-class")
        source = LABELS.get(row)
        if source == "single":
            labels = torch.zeros(len(x), dtype=torch.long)
        elif source == "oracle":
            labels = torch.from_numpy(np.searchsorted(group, split.y_train))
        else:
            name, options = CLUSTERERS[row]
            options = {"n_clusters": len(group)} if options is None else options
            if name == "finch" and args.finch_level is not None:
                options = {"level": args.finch_level}
            ccfg = ClusteringConfig(name=name, options=options, **args.clustering)
            try:
                labels, _ = pseudo_labels(z, ccfg, seed=seed)
            except ClusteringError as e:  # a failure is a result too: recorded, not hidden
                print(f"  {list(group)} seed {seed} {row}: failed: {e}", file=sys.stderr)
                record(row, float("nan"), 0, time.perf_counter() - t0)
                continue
        torch.manual_seed(seed)
        encoder = copy.deepcopy(ae.encoder)
        decoder = copy.deepcopy(ae.decoder) if cfg.recon_weight > 0 else None
        hooks = evaluating(eval_data, args.eval_every)
        head, history = train_svdd(encoder, x, labels, cfg, seed=seed, hooks=hooks, stage=row, decoder=decoder)
        extra = {}
        for prefix in ("", "bn_"):  # as trained, then with BatchNorm statistics recomputed over the data
            if prefix and not cfg.refresh_bn:
                refresh_batchnorm(encoder, x)
            d_test = all_sq_distances(embed(encoder, xt), head.centres)
            d_train = all_sq_distances(embed(encoder, x), head.centres)
            extra |= auroc_by_rule(y, d_test, head.radii, recon_test, d_train, recon_train, prefix)
            if not prefix and cache is not None:  # for analyses the CSV cannot answer (ensembles, per-class)
                recon = (recon_test, recon_train)
                save_distances(
                    cache.parent / "scores", group, seed, row, setting, d_test, d_train, head.radii, y, recon
                )
        extra["curve"] = " ".join(f"{t['epoch']}:{t['auroc']:.4f}" for t in history.tests)
        auroc = extra[f"auroc_{cfg.score}"]
        record(row, auroc, head.num_clusters, ae_seconds + time.perf_counter() - t0, extra)


def distances_path(folder: Path, group, seed: int, row: str, setting: str) -> Path:
    import hashlib

    tag = hashlib.sha1(setting.encode()).hexdigest()[:8]
    return folder / f"{'-'.join(map(str, group))}-s{seed}-{row}-{tag}.pt"


def save_distances(folder: Path, group, seed, row, setting, d_test, d_train, radii, y, recon=None) -> Path:
    """A trained row's squared distances to every centre (test and training points), its radii, the
    test labels (1 = anomaly) and the autoencoder's reconstruction errors (test, training), as trained,
    in ``folder`` (one file per group, seed, row and setting)."""
    path = distances_path(folder, group, seed, row, setting)
    folder.mkdir(parents=True, exist_ok=True)
    blob = {"d_test": d_test, "d_train": d_train, "radii": radii, "y_test": torch.as_tensor(np.asarray(y))}
    if recon is not None:
        blob |= {"recon_test": recon[0], "recon_train": recon[1]}
    torch.save(blob | {"setting": setting}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return path


def add_single_columns(rows: list[dict[str, str]], folder: Path, args) -> int:
    """For every multi-sphere CSV row whose model and whose group's one-sphere model (same seed and
    setting) were kept in ``folder``: the test AUROC of each rule plus the one-sphere score, and plus
    both it and the reconstruction error (what ``svdd.score_single=1`` and the recipes score), as
    ``auroc_{rule}+single`` and ``auroc_{rule}+single+recon``, in memory. Files kept before the
    reconstruction errors were get them from the cached autoencoder once (written back). Returns the
    number of rows it filled."""
    from sklearn.metrics import roc_auc_score

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
                r[f"auroc_{name}"] = f"{roc_auc_score(multi['y_test'].numpy(), both.numpy()):.5f}"
        filled += 1
    return filled


def kept_with_recon(path: Path, group, seed: int, args) -> dict:
    """A kept file, with the reconstruction errors of its group's cached autoencoder added (and saved)
    if it was kept before they were."""
    blob = torch.load(path, weights_only=True)
    if "recon_test" not in blob:
        x, prep, split = load_group(group, args.data_root)
        xt = fast_layout(prep(as_tensor(split.x_test)), "cpu")
        ae_opt = schedule(args.epochs_scale, args.ae_milestones, args.ae_weight_decay)
        ae, _ = shared_autoencoder(group, seed, ae_opt, args.leak, x, path.parent.parent / "ae", must_exist=True)
        blob["recon_test"], blob["recon_train"] = recon_errors(ae, xt, x)
        torch.save(blob, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return blob


def read_csv(path: Path, seeds=None) -> list[dict[str, str]]:
    """The finished rows (of training ``seeds`` only, if given); repeated header lines (two runs that
    started the file at once) are skipped."""
    rows = [r for r in csv.DictReader(open(path)) if r["group_size"] != "group_size"]
    return [r for r in rows if seeds is None or int(r["seed"]) in seeds]


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
    head = "| method | " + " | ".join(f"{s} normal classes: AUROC (n) | clusters" for s in sizes) + " | wall time (s) |"
    lines = [head, "|---|" + "---|---|" * len(sizes) + "---|"]
    rule_lines = ["| method | " + " | ".join(c[6:] for c in FIELDS if c.startswith("auroc_")) + " |"]
    rule_lines.append("|---|" + "---|" * sum(c.startswith("auroc_") for c in FIELDS))
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
        by_rule = [[float(r[c]) for r in rs if r.get(c)] for c in FIELDS if c.startswith("auroc_")]
        if any(by_rule):
            rule_lines.append(f"| {key} | " + " | ".join(f"{np.mean(v):.4f}" if v else "" for v in by_rule) + " |")
    out = "\n".join(lines)
    if len(rule_lines) > 2:
        out += (
            "\n\nAUROC by scoring rule (same trained models; +recon: plus the standardised reconstruction error):\n\n"
        )
        out += "\n".join(rule_lines)
    return out


def rules_table(path: Path, columns=("margin", "ratio", "distance", "ratio+recon", "bn_ratio"), seeds=None) -> str:
    """Every (setting, row) in the CSV: mean test AUROC of each scoring-rule column over its groups and
    seeds (n), the clusters found, and the epoch of the best test AUROC on the curve (a diagnostic, never
    a model selection)."""
    rows = [r for r in read_csv(path, seeds) if r.get("auroc_margin")]
    keys = sorted({(r["setting"], r["row"]) for r in rows}, key=lambda k: (k[0], list(ROWS).index(k[1])))
    out = [f"| setting | row | n | {' | '.join(columns)} | clusters | best epoch on the curve |"]
    out.append("|---|---|---|" + "---|" * len(columns) + "---|---|")
    for setting, row in keys:
        rs = [r for r in rows if (r["setting"], r["row"]) == (setting, row)]
        vals = [[float(r["auroc_" + c]) for r in rs if r.get("auroc_" + c)] for c in columns]
        cells = [f"{np.mean(v):.4f}" if v else "" for v in vals]
        best = []
        for r in rs:
            pts = [p.split(":") for p in r["curve"].split()]
            best.append(max(pts, key=lambda p: float(p[1]))[0] if pts else "")
        k = np.mean([int(r["clusters"]) for r in rs])
        out.append(f"| {setting} | {row} | {len(rs)} | {' | '.join(cells)} | {k:.1f} | {', '.join(best)} |")
    return "\n".join(out)


def group_table(csv_rows: list[dict], setting: str, rows_wanted, rule: str = SVDDConfig().score) -> str:
    """One column per group: each row's test AUROC by ``rule`` and, after the slash, by ``rule`` plus
    the standardised reconstruction error (what ``svdd.score_recon=1`` scores), for the rows run with
    ``setting``: the table to read when there are few groups per size. The last column counts the
    models above the soft-boundary sphere of the same group and seed (by ``rule`` / with the error)."""
    rows = [r for r in csv_rows if r["setting"] == setting and r["row"] in rows_wanted]
    groups = sorted({(int(r["group_size"]), r["group"], int(r["seed"])) for r in rows})
    if not groups:
        return "(no finished rows yet)"
    out = ["| method | " + " | ".join(f"{g} seed {sd}" for _, g, sd in groups) + " | mean | above one sphere |"]
    out.append("|---|" + "---|" * (len(groups) + 2))
    single = {(r["group"], int(r["seed"])): r for r in rows if r["row"] == "dsvdd-soft"}
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
        out.append(f"| {label} | " + " | ".join(cells) + f" | {mean} | {won} |")
    return "\n".join(out)


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
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
    ap.add_argument("--svdd", default="", help="SVDD settings, e.g. 'score=distance,reassign=true'")
    ap.add_argument("--finch-level", type=int, default=None, help="FINCH partition (default: its plugin default)")
    ap.add_argument("--clustering", default="", help="tidy-up settings, e.g. 'min_cluster_fraction=0.01'")
    ap.add_argument("--eval-every", type=int, default=10, help="test AUROC every this many epochs (the curve)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--no-cache", action="store_true", help="do not keep the autoencoders next to the CSV")
    ap.add_argument(
        "--fused-layers",
        action="store_true",
        help="run two LeNet layer sequences in toolkit/layers.py's fused forms (--net.fused=True, CPU only): "
        "a speed setting, rounded differently from the default plain sequences",
    )
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
    args.clustering = {
        k: type(getattr(ClusteringConfig(), k))(v)
        for k, v in (kv.split("=", 1) for kv in args.clustering.split(",") if kv)
    }
    if args.summary:  # the main table of this command's setting, then every setting by rule
        setting = svdd_settings(args)[1]
        seeds = None if args.seeds is None else set(ints(args.seeds))
        rows = read_csv(Path(args.csv), seeds)
        if "+single" in args.rule:
            n = add_single_columns(rows, Path(args.csv).parent / "scores", args)
            print(f"(+single: {n} multi-sphere rows had their model and the one sphere's kept in scores/)\n")
        print(table(rows, setting, args.rows, args.rule) + "\n")
        print(f"By group ({args.rule} / {args.rule} + reconstruction error):\n")
        print(group_table(rows, setting, args.rows, args.rule) + "\n")
        print(rules_table(Path(args.csv), seeds=seeds))
        return
    args.seeds = args.seeds or "0"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.group_list:
        groups = [tuple(sorted(ints(g))) for g in args.group_list.split(";")]
    else:
        groups = draw_groups(list(ints(args.group_sizes)), args.groups, args.group_seed)
    svdd, setting = svdd_settings(args)
    print(
        f"groups: {groups}{'' if args.group_list else f' (draw seed {args.group_seed})'}; seeds {args.seeds}; "
        f"{schedule(args.epochs_scale).epochs} + {svdd.epochs} epochs (scale {args.epochs_scale}); "
        f"setting {setting}; torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if path.is_file():
        done = {(r["group"], int(r["seed"]), r["row"], r["setting"]) for r in read_csv(path)}
    t0 = time.perf_counter()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if f.tell() == 0:
            writer.writeheader()
        for group in groups:
            for seed in ints(args.seeds):
                run_group(group, seed, args, done, writer, f)
    print(table(read_csv(path), setting, args.rows, args.rule))
    print(f"\n({time.perf_counter() - t0:.0f} s this call; CSV: {path}; rerun the same command to continue)")


if __name__ == "__main__":
    main()
