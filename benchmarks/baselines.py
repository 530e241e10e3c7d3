"""Quality against the simple baselines and the controls: test AUROC per group of normal classes, every
model trained by the library's own run (``toolkit.run.run``, the job behind ``python -m toolkit``).

    python benchmarks/baselines.py --data-root ../shared/data                      # ten groups, seeds 0 and 1
    python benchmarks/baselines.py --epochs-scale 0.2 --groups '0,9;2,3' --seeds 0
    python benchmarks/baselines.py --dataset fashion_mnist --data-root ~/data --set svdd.knn_k=10
    python benchmarks/baselines.py --dataset photos/ --groups 'good' --seeds 0      # your own labelled data
    python benchmarks/baselines.py --summary                                       # the tables of what is done

``--dataset`` is a built-in name or the path of your own labelled data (an image folder with one
subfolder per class, a .npz with ``y``, a .csv with a label column; ``toolkit.sources``), trained by
the ``folder`` recipe (images) or the ``table`` recipe (vectors) unless ``--recipe`` names another;
groups are then folder names or label values.

For each group and seed up to three runs of the dataset's recipe go into ``OUT/DATASET/GROUP/sSEED/``:
``main`` (the recipe's nets and schedule: autoencoder, one sphere, FINCH spheres, scored by the three
together, ``MAIN_SCORE``), ``null`` (FINCH's labels replaced by a random partition with the same cluster
sizes: clusterer ``random``) and ``seed2`` (a second one-sphere model, SVDD seed + 1000); the controls
only when a row asks for them, and only the main run's first stage when the rows need no more than the
autoencoder. The controls start from the main run's finished stages (its autoencoder; the null run also
its one sphere), copied into their folders and taken up by ``--resume``, so they differ from the main
run only where they should. A run that was interrupted is resumed; a finished one is never redone.

Every row is then a score computed from those models' columns, each standardised by its training mean
and spread and added (the detector's own combination, ``toolkit.svdd.combined_scores``): the spheres'
score (row ``recipe``, checked equal to the main detector's ``decision_function``), its parts, the
controls, k-NN
distances on raw pixels (x / 255, flattened) and in each learned embedding (``toolkit.knn``; training
points leave themselves out), and candidate combinations. ``seconds`` is the training time of the
models a row uses plus the time to compute its columns. Rows append to ``OUT/DATASET/auroc.csv``;
``--summary`` prints mean +- spread per group size, the groups where a row beats 1-NN on raw pixels, and
one column per group. Not part of CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit import MultiRadiusDeepSVDD  # noqa: E402
from toolkit import config as C  # noqa: E402
from toolkit.data import as_tensor, build_preprocessor, load_split, resolve_preprocess  # noqa: E402
from toolkit.engines import reconstruction_error  # noqa: E402
from toolkit.files import digest_path  # noqa: E402
from toolkit.knn import knn_distance  # noqa: E402
from toolkit.nets import build_autoencoder, embed, fast_layout, net_options, resolve_arch  # noqa: E402
from toolkit.run import RunHooks, run  # noqa: E402
from toolkit.runfolder import RunFolder  # noqa: E402
from toolkit.svdd import combined_scores, score_stats, scores  # noqa: E402

RECIPES = {"mnist": "mnist.py", "fashion_mnist": "fashion_mnist.py", "cifar10": "cifar10.py", "digits": "digits.py"}
# The ten MNIST groups of docs/results.md (a seeded draw of three groups per size, one more of size 2, ...).
GROUPS = "0,9;2,3;6,7;0,1,3;2,7,8;5,6,9;6,7,9;0,1,7,9;0,2,4,6;0,3,7,8"

# row -> (label, the columns it adds up, the models it needs trained)
ROWS = {
    "knn1-raw": ("1-NN distance, raw pixels", ["knn1_raw"], []),
    "knn5-raw": ("5-NN mean distance, raw pixels", ["knn5_raw"], []),
    "ae-recon": ("autoencoder reconstruction error", ["recon"], ["pretrain"]),
    "knn5-ae": (
        "5-NN, autoencoder embedding (score_multi=0, knn_space=autoencoder)",
        ["knn5_ae"],
        ["pretrain"],
    ),
    "knn5-ae+recon": (
        "5-NN autoencoder embedding + its reconstruction error (score_multi=0, score_recon=1)",
        ["knn5_ae", "recon"],
        ["pretrain"],
    ),
    "knn5-ae+input": (
        "5-NN autoencoder embedding + 5-NN preprocessed input (knn_space=autoencoder+input)",
        ["knn5_ae", "knn5_input"],
        ["pretrain"],
    ),
    "knn5-ae+raw": (
        "5-NN autoencoder embedding + 1-NN raw pixels",
        ["knn5_ae", "knn1_raw"],
        ["pretrain"],
    ),
    "knn5-ae+raw5": (
        "5-NN autoencoder embedding + 5-NN raw pixels (the MNIST recipe: knn_space=autoencoder+raw)",
        ["knn5_ae", "knn5_raw"],
        ["pretrain"],
    ),
    "single": ("one sphere", ["single"], ["pretrain", "single"]),
    "single+recon": ("one sphere + recon", ["single", "recon"], ["pretrain", "single"]),
    "knn5-single": ("5-NN, one-sphere embedding", ["knn5_single"], ["pretrain", "single"]),
    "finch": ("FINCH spheres alone", ["multi"], ["pretrain", "multi"]),
    "knn5-multi": ("5-NN, FINCH-sphere embedding", ["knn5_multi"], ["pretrain", "multi"]),
    "recipe": (
        "spheres' score: FINCH + one sphere + recon",
        ["multi", "single", "recon"],
        ["pretrain", "single", "multi"],
    ),
    "null": (
        "null control: random partition + one sphere + recon",
        ["null", "single", "recon"],
        ["pretrain", "single", "null"],
    ),
    "ensemble": (
        "ensemble control: one sphere x 2 seeds + recon",
        ["single", "seed2", "recon"],
        ["pretrain", "single", "seed2"],
    ),
    "recipe+knn": (
        "spheres' score + 5-NN (FINCH-sphere embedding)",
        ["multi", "single", "recon", "knn5_multi"],
        ["pretrain", "single", "multi"],
    ),
    "finch+knn": ("FINCH spheres + 5-NN (same embedding)", ["multi", "knn5_multi"], ["pretrain", "multi"]),
    "single+recon+knn": (
        "one sphere + recon + 5-NN (one-sphere embedding)",
        ["single", "recon", "knn5_single"],
        ["pretrain", "single"],
    ),
    "recipe+knn-raw": (
        "spheres' score + 5-NN raw pixels",
        ["multi", "single", "recon", "knn5_raw"],
        ["pretrain", "single", "multi"],
    ),
    "knn5-input": ("5-NN, preprocessed input", ["knn5_input"], []),
    "recipe+knn-input": (
        "spheres' score + 5-NN preprocessed input (svdd.knn_space=input)",
        ["multi", "single", "recon", "knn5_input"],
        ["pretrain", "single", "multi"],
    ),
    "recipe+knn-ae": (
        "spheres' score + 5-NN autoencoder embedding (svdd.knn_space=autoencoder)",
        ["multi", "single", "recon", "knn5_ae"],
        ["pretrain", "single", "multi"],
    ),
    "finch+knn-ae": (
        "FINCH spheres + 5-NN autoencoder embedding (svdd.knn_space=autoencoder, no other term)",
        ["multi", "knn5_ae"],
        ["pretrain", "multi"],
    ),
    "finch+knn-ae+raw5": (
        "FINCH spheres + the MNIST recipe's two 5-NN distances",
        ["multi", "knn5_ae", "knn5_raw"],
        ["pretrain", "multi"],
    ),
    "recipe+knn-ae+raw5": (
        "spheres' score + the MNIST recipe's two 5-NN distances",
        ["multi", "single", "recon", "knn5_ae", "knn5_raw"],
        ["pretrain", "single", "multi"],
    ),
    "null+knn-ae+raw5": (
        "null control (random-partition spheres) + the MNIST recipe's two 5-NN distances",
        ["null", "knn5_ae", "knn5_raw"],
        ["pretrain", "single", "null"],
    ),
    "finch+knn-input": ("FINCH spheres + 5-NN preprocessed input", ["multi", "knn5_input"], ["pretrain", "multi"]),
    "single+recon+knn-input": (
        "one sphere + recon + 5-NN preprocessed input",
        ["single", "recon", "knn5_input"],
        ["pretrain", "single"],
    ),
    "null+knn": (
        "null control + 5-NN (random-partition embedding)",
        ["null", "single", "recon", "knn5_null"],
        ["pretrain", "single", "null"],
    ),
}
# The main run's score, whatever the recipe's default: the sum its decision_function is checked against
MAIN_SCORE = {
    "svdd.score_multi": 1.0,
    "svdd.score_single": 1.0,
    "svdd.score_recon": 1.0,
    "svdd.score_knn": 0.0,
    "svdd.knn_space": "embedding",
}
FIELDS = ["dataset", "group_size", "group", "seed", "row", "auroc", "seconds", "clusters"]


def scaled(cfg: C.Config, scale: float) -> C.Config:
    """``cfg`` with every epoch count (and the learning-rate milestones and warm-up) times ``scale``."""

    def n(v: int) -> int:
        return max(1, round(v * scale))

    over = {}
    for stage in ("pretrain", "svdd"):
        opt = getattr(cfg, stage)
        over[f"{stage}.epochs"] = n(opt.epochs)
        over[f"{stage}.milestones"] = [n(m) for m in opt.milestones]
    over["svdd.warmup_epochs"] = n(cfg.svdd.warmup_epochs) if cfg.svdd.warmup_epochs else 0
    return C.apply_overrides(cfg, over)


def parse_value(text: str):
    """A ``--set`` value as the command line reads it: JSON where it parses (numbers, lists, true), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False}.get(text, text)


def train(cfg: C.Config, folder: Path, stages_from: Path | None = None, stages=()) -> dict:
    """The library's run into ``folder`` (skipped when finished, resumed when interrupted); a new
    control run first gets ``stages`` copied from the finished run in ``stages_from``."""
    if (folder / "results.json").is_file():
        return json.loads((folder / "results.json").read_text())
    started = RunFolder(folder).has_run()
    if not started:
        RunFolder(folder).start(cfg, resume=False)
        for name in stages:
            dst = RunFolder(folder).stage_path(name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = RunFolder(stages_from).stage_path(name)
            for a, b in ((src, dst), (digest_path(src), digest_path(dst))):  # the stage and its digest
                shutil.copyfile(a, b)
    print(f"  training {folder} ...", file=sys.stderr, flush=True)
    return run(C.apply_overrides(cfg, {"resume": True, "run_dir": str(folder)}), progress=False)


def group_over(group, seed: int) -> dict:
    """The settings of one group and seed's runs."""
    return {"data.normal_classes": list(group), "seed": seed, "eval_every": 0}


def train_group(base: C.Config, group, seed: int, where: Path, controls=("null", "seed2")) -> dict[str, dict]:
    """The main run and the ``controls`` runs of one group and seed; their results.json."""
    cfg = C.apply_overrides(base, group_over(group, seed))
    main = train(cfg, where / "main")
    out = {"main": main}
    if "null" in controls:
        sizes = main["clustering"]["sizes"]
        null = C.apply_overrides(
            cfg, {"clustering.name": "random", "clustering.options": {"sizes": sizes}, "baseline": False}
        )
        out["null"] = train(null, where / "null", where / "main", ("pretrain", "svdd_single"))
    if "seed2" not in controls:
        return out
    seed2 = C.apply_overrides(
        cfg,
        {
            "seed": seed + 1000,
            "clustering.name": "single",
            "baseline": False,
            "svdd.score_single": 0.0,
            "svdd.score_recon": 0.0,
        },
    )
    out["seed2"] = train(seed2, where / "seed2", where / "main", ("pretrain",))
    return out


class _Pretrained(Exception):
    """Raised where the library's fit turns from pretraining to clustering."""


class PretrainOnly(RunHooks):
    """The run's harness, stopping ``fit`` once the autoencoder's stage is recorded in the run folder."""

    def finished(self, stage: str):
        if stage == "clustering":
            raise _Pretrained
        return super().finished(stage)


def pretrain_only(cfg: C.Config, folder: Path, split) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """The main run's first stage alone, by the library's own fit, into ``folder`` (a later full run
    resumes from it): the fitted preprocessor, the pretrained autoencoder and its training seconds."""
    rf = RunFolder(folder)
    rf.lock()  # as the library's run does: another process training here is named, not raced
    try:
        if not rf.has_run():
            rf.start(cfg, resume=False)
        if rf.load_stage("pretrain") is None:
            print(f"  pretraining {folder} ...", file=sys.stderr, flush=True)
            hooks = PretrainOnly(device=torch.device("cpu"), progress="none", run=rf, resume=True)
            try:
                MultiRadiusDeepSVDD(cfg, device="cpu").fit(split.x_train, hooks=hooks)
            except _Pretrained:
                pass
    finally:
        rf.unlock()
    done = rf.load_stage("pretrain")
    x = as_tensor(split.x_train)
    in_shape = tuple(x.shape[1:])
    arch = resolve_arch(cfg.net.arch, in_shape)
    prep = build_preprocessor(resolve_preprocess(cfg.preprocess, in_shape), in_shape).fit(x)
    ae = build_autoencoder(arch, in_shape, *net_options(cfg.net))
    ae.load_state_dict(done["autoencoder"])
    return prep, ae.eval(), json.loads(done["info"])["seconds"]


def put_column(cols: dict, secs: dict, name: str, fn) -> None:
    """Column ``name`` on the training and the test data (``fn(split_name)``), and its seconds."""
    t0 = time.perf_counter()
    for s in ("train", "test"):
        cols[s][name] = fn(s).float()
    secs[name] = time.perf_counter() - t0


def put_knn(cols: dict, secs: dict, space: str, z, ks=(5,)) -> None:
    """k-NN distance columns ``knn{k}_{space}`` of rows ``z(split_name)``; training points leave themselves out."""
    ref = z("train")
    for k in ks:
        put_column(
            cols,
            secs,
            f"knn{k}_{space}",
            lambda s, k=k: knn_distance(ref, ref, k, exclude_self=True) if s == "train" else knn_distance(z(s), ref, k),
        )


@torch.inference_mode()
def inputs(split, prep) -> tuple[dict, dict]:
    """The raw training and test data, and the same preprocessed by ``prep``."""
    xs = {"train": as_tensor(split.x_train), "test": as_tensor(split.x_test)}
    return xs, {s: fast_layout(prep(v), "cpu") for s, v in xs.items()}


@torch.inference_mode()
def autoencoder_columns(xs: dict, x: dict, ae, k: int = 5) -> tuple[dict, dict]:
    """The columns that need no more than the pretrained autoencoder, from raw ``xs`` and preprocessed
    ``x`` (:func:`inputs`): k-NN on raw pixels (k = 1 and ``k``), on the preprocessed input and in the
    autoencoder's embedding, and its reconstruction error."""
    cols, secs = {"train": {}, "test": {}}, {}
    put_column(cols, secs, "recon", lambda s: torch.cat([reconstruction_error(ae, b) for b in x[s].split(256)]))
    put_knn(cols, secs, "raw", lambda s: xs[s].flatten(1), ks=(1, k))
    put_knn(cols, secs, "input", lambda s: x[s].reshape(x[s].shape[0], -1), ks=(k,))
    put_knn(cols, secs, "ae", lambda s: embed(ae.encoder, x[s]), ks=(k,))
    return cols, secs


@torch.inference_mode()
def columns(where: Path, split, controls=("null", "seed2"), k: int = 5) -> tuple[dict, dict, dict]:
    """Every score column on the training data (k-NN: leave-one-out) and the test data, and the seconds
    each took, from the group's main detector and its ``controls``."""
    dets = {v: MultiRadiusDeepSVDD.load(where / v / "detector_multi.pt") for v in ("main", *controls)}
    for det in dets.values():
        det._eval()
    main = dets["main"]
    xs, prep = inputs(split, main.preprocessor_)
    cols, secs = autoencoder_columns(xs, prep, main.recon_, k)

    def put(name, fn):
        put_column(cols, secs, name, fn)

    def sphere(det):
        head = det.head_
        return lambda s: scores(embed(det.encoder_, prep[s]), head.centres, head.radii, head.rule)[0]

    put("multi", sphere(main))
    put("single", lambda s: main.single_head_(embed(main.single_encoder_, prep[s])))
    for v in controls:
        put(v, sphere(dets[v]))
    encoders = {"single": main.single_encoder_, "multi": main.encoder_}
    if "null" in dets:
        encoders["null"] = dets["null"].encoder_
    for space, encoder in encoders.items():
        put_knn(cols, secs, space, lambda s, encoder=encoder: embed(encoder, prep[s]), ks=(k,))
    recipe = cols["test"]["multi"], cols["test"]["single"], cols["test"]["recon"]
    want = torch.from_numpy(main.decision_function(split.x_test))
    got = combined_scores(torch.stack(recipe, 1), main.score_stats_.cpu(), torch.ones(3))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # the benchmark scores as the library does
    return cols, secs, dets


def raw_columns(split, ks=(1, 5)) -> tuple[dict, dict]:
    """The k-NN columns on raw pixels alone (x / 255, flattened), and their seconds: no model needed."""
    x = {"train": as_tensor(split.x_train).flatten(1), "test": as_tensor(split.x_test).flatten(1)}
    cols, secs = {"train": {}, "test": {}}, {}
    put_knn(cols, secs, "raw", x.get, ks=ks)
    return cols, secs


def row_score(cols: dict, names: list[str]) -> torch.Tensor:
    """One column as it is, several standardised by their training mean and spread and added."""
    if len(names) == 1:
        return cols["test"][names[0]]
    train = torch.stack([cols["train"][n] for n in names], dim=1)
    test = torch.stack([cols["test"][n] for n in names], dim=1)
    return combined_scores(test, score_stats(train), torch.ones(len(names)))


def read_csv(path: Path) -> list[dict[str, str]]:
    """The finished rows; a repeated header (two processes that started the file at once) is skipped."""
    return [r for r in csv.DictReader(open(path)) if r["dataset"] != "dataset"] if path.is_file() else []


def summary(rows: list[dict[str, str]], rows_wanted) -> str:
    """Mean +- standard deviation of test AUROC per group size (over groups and seeds), the groups where
    the row's seed-mean beats 1-NN on raw pixels, mean wall time; then one column per group."""
    by = {}
    for r in rows:
        by.setdefault(r["row"], {})[(r["group"], int(r["seed"]))] = r
    ref = by.get("knn1-raw", {})
    groups = sorted({(int(r["group_size"]), r["group"]) for r in rows})
    sizes = sorted({s for s, _ in groups})
    seeds = sorted({int(r["seed"]) for r in rows})
    head = "| method | " + " | ".join(f"{s} classes" for s in sizes) + " | all | above 1-NN raw (groups) | seconds |"
    lines = [head, "|---|" + "---|" * (len(sizes) + 3)]
    per_group = ["| method | " + " | ".join(g for _, g in groups) + " |", "|---|" + "---|" * len(groups)]
    for key in rows_wanted:
        got = by.get(key, {})
        if not got:
            continue
        cells = []
        for s in sizes:
            a = np.array([float(r["auroc"]) for r in got.values() if int(r["group_size"]) == s])
            cells.append(f"{a.mean():.3f} +- {a.std():.3f} ({len(a)})" if len(a) else "")
        a = np.array([float(r["auroc"]) for r in got.values()])
        gmean = {g: np.mean([float(got[(g, sd)]["auroc"]) for sd in seeds if (g, sd) in got]) for _, g in groups}
        rmean = {g: np.mean([float(ref[(g, sd)]["auroc"]) for sd in seeds if (g, sd) in ref]) for _, g in groups}
        both = [g for _, g in groups if (g, seeds[0]) in got or any((g, sd) in got for sd in seeds)]
        both = [g for g in both if not np.isnan(gmean[g]) and not np.isnan(rmean.get(g, np.nan))]
        wins = sum(gmean[g] > rmean[g] for g in both)
        secs = np.mean([float(r["seconds"]) for r in got.values()])
        lines.append(
            f"| {ROWS[key][0]} | " + " | ".join(cells) + f" | {a.mean():.3f} | {wins} of {len(both)} | {secs:.0f} |"
        )
        per_group.append(
            f"| {key} | " + " | ".join("" if np.isnan(gmean[g]) else f"{gmean[g]:.3f}" for _, g in groups) + " |"
        )
    text = "\n".join(lines) + "\n\nBy group (mean over seeds):\n\n" + "\n".join(per_group)
    return text + "\n\n" + paired_gains(by)


# row -> the rows it is compared with, model by model (the same group and seed)
GAINS = {
    "recipe": ("null", "ensemble", "knn1-raw"),
    "knn5-ae+raw5": ("knn1-raw", "knn5-ae", "recipe"),
    "finch+knn-ae+raw5": ("knn5-ae+raw5", "null+knn-ae+raw5"),
    "recipe+knn-ae+raw5": ("knn5-ae+raw5",),
}


def paired_gains(by: dict) -> str:
    """AUROC of a row minus another's on the same group and seed: mean +- standard deviation over the
    models both have, and how many of them it is above."""
    lines = ["| row | against | gain (mean +- sd) | above on | models |", "|---|---|---|---|---|"]
    for row, others in GAINS.items():
        for other in others:
            both = sorted(set(by.get(row, {})) & set(by.get(other, {})))
            if not both:
                continue
            d = np.array([float(by[row][m]["auroc"]) - float(by[other][m]["auroc"]) for m in both])
            lines.append(f"| {row} | {other} | {d.mean():+.3f} +- {d.std():.3f} | {(d > 0).sum()} | {len(d)} |")
    return "Paired gains (same group and seed):\n\n" + "\n".join(lines)


def parse_class(text: str) -> int | str:
    """A group member: a class number, or (own data) a folder name or text label."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def own_recipe(dataset: str) -> str | Path:
    """The recipe for ``dataset``: a built-in data set's own, else ``folder`` for images, ``table`` for vectors."""
    if dataset in RECIPES:
        return ROOT / "recipes" / RECIPES[dataset]
    from toolkit.sources import kind, open_npy, read_npz

    k = kind(dataset)
    if k in ("npy", "npz"):
        x = read_npz(dataset).x if k == "npz" else open_npy(dataset)
        return "folder" if x.ndim > 2 else "table"
    return "folder" if k == "folder" else "table"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", help=f"{', '.join(sorted(RECIPES))}, or the path of your own data")
    ap.add_argument("--recipe", default="", help="a recipe name or path (default: the dataset's, or folder/table)")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--groups", default=GROUPS, help="normal classes per group, ';' between groups")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="1.0 = the recipe's schedule (the paper's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe setting, as on the CLI")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "baselines"))
    ap.add_argument("--summary", action="store_true", help="only print the tables of what the CSV holds")
    args = ap.parse_args()
    rows_wanted = [r for r in args.rows.split(",") if r]
    if unknown := sorted(set(rows_wanted) - set(ROWS)):
        ap.error(f"unknown rows {unknown}; accepted: {', '.join(ROWS)}")
    out = Path(args.out) / (args.dataset if args.dataset in RECIPES else Path(args.dataset).stem)
    path = out / "auroc.csv"
    if args.summary:
        print(summary(read_csv(path), rows_wanted))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    over = {"data.root": args.data_root, "data.download": False}
    for kv in args.set:
        key, sep, value = kv.partition("=")
        if not sep:
            ap.error(f"--set {kv!r}: expected KEY=VALUE, e.g. --set svdd.knn_k=10")
        over[key] = parse_value(value)
    recipe = C.apply_overrides(C.load_recipe(args.recipe or own_recipe(args.dataset)), MAIN_SCORE)
    over["data.dataset"] = args.dataset
    base = scaled(
        C.apply_overrides(recipe, {k: v for k, v in over.items() if not k.endswith("epochs")}), args.epochs_scale
    )
    base = C.apply_overrides(base, {k: v for k, v in over.items() if k.endswith("epochs")})
    groups = [tuple(sorted(parse_class(c) for c in g.split(","))) for g in args.groups.split(";") if g]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print(
        f"{args.dataset}: groups {groups}, seeds {seeds}, {base.pretrain.epochs} + {base.svdd.epochs} epochs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    done = {(r["group"], int(r["seed"]), r["row"]) for r in read_csv(path)}
    out.mkdir(parents=True, exist_ok=True)
    for group in groups:
        for seed in seeds:
            todo = [r for r in rows_wanted if (str(list(group)), seed, r) not in done]
            if not todo:
                continue
            where = out / "-".join(map(str, group)) / f"s{seed}"
            split = load_split(C.apply_overrides(base, {"data.normal_classes": list(group)}).data, seed)
            needs = {m for r in todo for m in ROWS[r][2]}
            if not needs:  # no model needed: nothing is trained
                cols, secs, dets, trained = *raw_columns(split), {}, {}
            elif needs == {"pretrain"}:  # the autoencoder alone: the main run's first stage
                prep, ae, seconds = pretrain_only(
                    C.apply_overrides(base, group_over(group, seed)), where / "main", split
                )
                cols, secs, dets, trained = *autoencoder_columns(*inputs(split, prep), ae), {}, {"pretrain": seconds}
            else:  # the main run, and the control runs only when a row needs them
                controls = tuple(v for v in ("null", "seed2") if v in needs)
                results = train_group(base, group, seed, where, controls)
                cols, secs, dets = columns(where, split, controls)
                trained = {m: results["main"][m]["seconds"] for m in ("pretrain", "single", "multi")}
                trained |= {v: results[v]["multi"]["seconds"] for v in controls}
            y = split.is_anomaly_test
            with open(path, "a", newline="") as f:
                writer = csv.DictWriter(f, FIELDS)
                if f.tell() == 0:
                    writer.writeheader()
                for key in todo:
                    _, names, models = ROWS[key]
                    auroc = roc_auc_score(y, row_score(cols, names).numpy())
                    seconds = sum(trained[m] for m in models) + sum(secs[n] for n in names)
                    clusters = dets["null" if key.startswith("null") else "main"].n_clusters_ if dets else 1
                    writer.writerow(
                        {
                            "dataset": args.dataset,
                            "group_size": len(group),
                            "group": str(list(group)),
                            "seed": seed,
                            "row": key,
                            "auroc": f"{auroc:.5f}",
                            "seconds": f"{seconds:.1f}",
                            "clusters": clusters if "multi" in models or "null" in models else 1,
                        }
                    )
                    print(f"  {list(group)} seed {seed} {key}: AUROC {auroc:.4f}, {seconds:.0f} s", file=sys.stderr)
    print(summary(read_csv(path), rows_wanted))


if __name__ == "__main__":
    main()
