"""The quality benchmark: a recipe on groups of normal classes and seeds, every row from one trained run.

For each group and seed it runs ``python -m toolkit RECIPE`` in its own run folder (resumed when it is
there, so a killed benchmark continues where it stopped) and then scores the test set through the public
API only (``MultiRadiusDeepSVDD.load``, the detector's ``scorer_`` and its columns, the run folder's
finished stages). The rows:

- ``default``: the recipe's own score (what ``decision_function`` gives);
- ``multi``: the multi-sphere score alone: a detector assembled from the same run's trained stages
  (nothing is trained again) with ``score.multi=1`` and no other term, so that its file size and
  throughput are measured as well;
- ``multi+raw``, ``multi+ae``: the same spheres plus the 5-NN distance on the raw pixels, or in the
  pretrained network's embedding (each term standardised, as the recipes combine them);
- ``two-distance``: the 5-NN distances in the pretrained network's embedding and on the raw pixels
  (the Fashion-MNIST recipe's score), from the same run; ``multi+two-distance``: the spheres beside them;
- ``centres-raw``, ``multi+centres-raw``: the distance to the nearest centre on the raw pixels (the
  means of the recipe's clusterer's partition of the training images, ``score.centres``) alone, and
  beside the spheres (each standardised): spheres in two spaces, no training image kept;
  ``ae+centres-raw``, ``multi+ae+centres-raw``: the two-distance score with the pixel centres in place of
  the pixels' 5-NN distance (only the embeddings of the training images kept; with ``@float16``, the MNIST
  recipe's score), without and with the spheres;
  ``centres-ae``, ``pretext+centres-ae``: the nearest centre in the pretrained network's embedding (the
  spheres before SVDD, as a detector), alone and beside the pretraining method's own score;
- any of the rows above followed by ``@float16`` (``ae+centres-raw@float16``): the same score with its
  k-NN rows and centres kept in float16 (``score.storage``), for the file size it saves;
- ``pretext``, ``pretext+ae``, ``pretext+raw``, ``multi+pretext``, ``multi+pretext+ae``: the pretraining
  method's own score (the autoencoder's reconstruction error, rotation's cross-entropy) alone, with the
  5-NN distance in its embedding or on the raw pixels, with the spheres, or with the spheres and the
  embedding's 5-NN distance; ``multi+pretext+centres-raw``: the spheres, the pretraining method's score
  and the nearest pixel centre (a detector that keeps no training image nor embedding);
  ``pretext+two-distance``, ``pretext+ae+centres-raw``: the pretraining method's score beside the two
  5-NN distances, or beside the 5-NN distance in its embedding and the nearest pixel centre (the MNIST
  recipe's score); ``pretext+centres-raw``: beside the nearest pixel centre alone; ``pretext-mirrored``,
  ``pretext-mirrored+ae``: rotation's cross-entropy over the mirror image's rotations too
  (``pretrain.options.score_mirrored``), alone, with the 5-NN distance and (``multi+pretext-mirrored``)
  with the spheres; ``knn5-ae-mirrored``,
  ``pretext-mirrored+ae-mirrored``: the 5-NN distance in rotation's mirrored embedding
  (``pretrain.options.embed_mirrored``: an image and its mirror image embed alike), alone and beside the
  mirrored cross-entropy;
- ``single``: one sphere, trained from the same autoencoder (the run's baseline), its score alone;
- ``null``: the null control: spheres on a random partition of the same sizes, trained from the same
  autoencoder (``--rows`` must name it: it trains one more model);
- ``multi-pre``: the same spheres before SVDD training: each centre the mean of its cluster in the
  pretrained network's embedding, the score the distance to the nearest centre;
- ``knn5-ae``: the mean distance to the 5 nearest training points in the pretrained network's embedding
  (whatever ``pretrain.method`` trained it), as a detector that keeps those embeddings;
- ``knn5-multi``: the same distance in the multi-sphere encoder's embedding after SVDD (every training
  point in place of the spheres' centres);
- ``knn1-raw``: the distance to the nearest training image, raw pixels (the baseline every deep
  detector must beat).

Each row records the test AUROC and, for the detectors, the file size and the scoring throughput
(images per second on ``--device``: the CPU unless a GPU is named; the run itself trains where the
recipe's ``device`` setting says, a GPU when there is one). A run's detectors are timed together, in
turns (each scores the same test images, then the next; five rounds, the best pass of each), so a drift
of the machine's speed reaches every row of the run alike and their ratios hold. ``--summary``
prints the means per group size; the table per group (each cell the mean over the seeds measured, the
columns the ``--rows`` named, in their order) with each detector's file size and images per second;
the paired comparisons (same group and seed: mean, spread, models above, range, the mean per group
size, and the ratio of the two rows' scoring rates where both were timed), the spheres' against one
sphere, the null control, the 5-NN distance and the default, or, with ``--against ROW``, every column's
against ROW; and each group's seed spread. One thread per process by default (two benchmark processes
fit on a 2-core machine).

    python benchmarks/bench.py --recipe mnist --groups "0,9;2,3" --seeds 0,1 --out bench/mnist
    python benchmarks/bench.py --out bench/mnist --summary --rows single,multi,knn5-ae,default
    python benchmarks/bench.py --out bench/mnist --summary --rows ae+centres-raw,knn5-ae --against default
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from toolkit import MultiRadiusDeepSVDD, apply_overrides, load_recipe
from toolkit.config import STORAGES
from toolkit.data import load_split
from toolkit.knn import knn_distance
from toolkit.nets import embed
from toolkit.pretext import method_of, pretraining_net
from toolkit.runfolder import RunFolder
from toolkit.stages import Harness, StageStore
from toolkit.svdd import all_sq_distances, cluster_means

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = str(ROOT.parent / "shared" / "data")
MNIST_GROUPS = "0,9;2,3;6,7;0,1,3;2,7,8;5,6,9;6,7,9;0,1,7,9;0,2,4,6;0,3,7,8"
ROWS = ("default", "multi", "multi-pre", "single", "knn5-ae", "knn1-raw")
NO_TERMS = {
    **{f"score.{term}": 0.0 for term in ("multi", "single", "pretext", "knn", "centres")},
    "score.knn_k": 5,
}
MIRRORED = {"pretrain.options.score_mirrored": True}  # rotation's score over the mirror image's rotations too
MIRRORED_EMBEDDING = {"pretrain.options.embed_mirrored": True}  # an image and its mirror image embed alike
POOLED = {"score.knn": 1.0, "score.knn_k": 1, "score.knn_space": "pooled"}  # the nearest image's colour layout
SCORES = {  # rows scored by a detector assembled from a run's trained stages with another score
    "multi": NO_TERMS | {"score.multi": 1.0},
    "knn5-ae": NO_TERMS | {"score.knn": 1.0, "score.knn_space": "autoencoder"},
    "knn5-multi": NO_TERMS | {"score.knn": 1.0, "score.knn_space": "embedding"},
    "multi+raw": NO_TERMS | {"score.multi": 1.0, "score.knn": 1.0, "score.knn_space": "raw"},
    "multi+ae": NO_TERMS | {"score.multi": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder"},
    "two-distance": NO_TERMS | {"score.knn": 1.0, "score.knn_space": "autoencoder+raw"},
    "multi+two-distance": NO_TERMS | {"score.multi": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder+raw"},
    "centres-raw": NO_TERMS | {"score.centres": 1.0, "score.centres_space": "raw"},
    "multi+centres-raw": NO_TERMS | {"score.multi": 1.0, "score.centres": 1.0, "score.centres_space": "raw"},
    "centres-ae": NO_TERMS | {"score.centres": 1.0, "score.centres_space": "autoencoder"},
    "pretext+centres-ae": NO_TERMS | {"score.pretext": 1.0, "score.centres": 1.0, "score.centres_space": "autoencoder"},
    "ae+centres-raw": NO_TERMS
    | {"score.knn": 1.0, "score.knn_space": "autoencoder", "score.centres": 1.0, "score.centres_space": "raw"},
    "multi+ae+centres-raw": NO_TERMS
    | {
        "score.multi": 1.0,
        "score.knn": 1.0,
        "score.knn_space": "autoencoder",
        "score.centres": 1.0,
        "score.centres_space": "raw",
    },
    "pretext": NO_TERMS | {"score.pretext": 1.0},
    "pretext+ae": NO_TERMS | {"score.pretext": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder"},
    "pretext+raw": NO_TERMS | {"score.pretext": 1.0, "score.knn": 1.0, "score.knn_space": "raw"},
    "pretext+two-distance": NO_TERMS | {"score.pretext": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder+raw"},
    "pretext+centres-raw": NO_TERMS | {"score.pretext": 1.0, "score.centres": 1.0, "score.centres_space": "raw"},
    "pretext+ae+centres-raw": NO_TERMS
    | {
        "score.pretext": 1.0,
        "score.knn": 1.0,
        "score.knn_space": "autoencoder",
        "score.centres": 1.0,
        "score.centres_space": "raw",
    },
    "pretext-mirrored": NO_TERMS | {"score.pretext": 1.0} | MIRRORED,
    "pretext-mirrored+ae": NO_TERMS
    | {"score.pretext": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder"}
    | MIRRORED,
    "knn5-ae-mirrored": NO_TERMS | {"score.knn": 1.0, "score.knn_space": "autoencoder"} | MIRRORED_EMBEDDING,
    "pretext-mirrored+ae-mirrored": NO_TERMS
    | {"score.pretext": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder"}
    | MIRRORED
    | MIRRORED_EMBEDDING,
    "multi+pretext": NO_TERMS | {"score.multi": 1.0, "score.pretext": 1.0},
    "multi+pretext-mirrored": NO_TERMS | {"score.multi": 1.0, "score.pretext": 1.0} | MIRRORED,
    "multi+pretext+ae": NO_TERMS
    | {"score.multi": 1.0, "score.pretext": 1.0, "score.knn": 1.0, "score.knn_space": "autoencoder"},
    "multi+pretext+centres-raw": NO_TERMS
    | {"score.multi": 1.0, "score.pretext": 1.0, "score.centres": 1.0, "score.centres_space": "raw"},
    "knn1-pooled": NO_TERMS | POOLED,
    "multi+pretext+knn1-pooled": NO_TERMS | {"score.multi": 1.0, "score.pretext": 1.0} | POOLED,
}
FIELDS = ("group", "group_size", "seed", "row", "auroc", "n_clusters", "ari", "nmi", "size_mb", "img_s", "seconds")


def parse_group(text: str) -> list[int | str]:
    return [int(c) if c.strip().lstrip("-").isdigit() else c.strip() for c in text.split(",")]


def run_recipe(recipe: str, group: list, seed: int, folder: Path, extra: list[str], threads: int) -> dict:
    """The recipe's run for one group and seed (resumed when its folder holds one); its results.json."""
    if (folder / "results.json").is_file():
        return json.loads((folder / "results.json").read_text())
    cmd = [sys.executable, "-m", "toolkit", recipe, f"--data.normal_classes={json.dumps(group)}", f"--seed={seed}"]
    cmd += [f"--run_dir={folder}", "--eval_every=10", *extra]  # progress as the run's default: bars or lines
    if (folder / "config.json").is_file():
        cmd.append("--resume=True")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(" ".join(cmd), flush=True)
    # in the caller's folder, so that --out and the paths among the extra arguments mean what they meant there
    subprocess.run(cmd, check=True, env=env)
    return json.loads((folder / "results.json").read_text())


def auroc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    s = s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s)
    return float(roc_auc_score(np.asarray(y), s))


TIMED_IMAGES, TIMED_ROUNDS = 2048, 5


def throughputs(dets: dict, x) -> dict[str, float]:
    """Images per second of each detector scoring ``x`` (its first ``TIMED_IMAGES``): the detectors take
    turns, one pass each per round, and each keeps its best pass of ``TIMED_ROUNDS``. Timed in turns, not
    one after the other, so that a change in the machine's speed meets every detector alike."""
    x = x[:TIMED_IMAGES]
    best = dict.fromkeys(dets, 0.0)
    for _ in range(TIMED_ROUNDS):
        for name, det in dets.items():
            t = time.perf_counter()
            det.decision_function(x)
            best[name] = max(best[name], len(x) / (time.perf_counter() - t))
    return best


class FromRun(StageStore):
    """A stage store for ``fit`` that gives a finished run's stages (by default its pretrained network
    alone) instead of training them again."""

    def __init__(self, folder: Path, stages: tuple[str, ...] = ("pretrain",)) -> None:
        self.folder, self.stages = folder, stages

    def finished(self, stage: str):
        return RunFolder(self.folder).load_stage(stage) if stage in self.stages else None


def fit_from_run(cfg, folder: Path, stages: tuple[str, ...], x_train: np.ndarray, device: str) -> MultiRadiusDeepSVDD:
    """A detector of ``cfg`` fitted on ``device``, taking the run's finished ``stages`` instead of training them."""
    harness = Harness(device=torch.device(device), store=FromRun(folder, stages))
    return MultiRadiusDeepSVDD(cfg, device=device).fit(x_train, harness=harness)


def rescored(
    folder: Path, multi: MultiRadiusDeepSVDD, x_train: np.ndarray, overrides: dict, device: str = "cpu"
) -> MultiRadiusDeepSVDD:
    """The run's detector with another score: its trained stages, assembled and calibrated again."""
    cfg = apply_overrides(multi.resolved_config(), overrides)
    return fit_from_run(cfg, folder, ("pretrain", "clustering", "svdd_multi", "svdd_single"), x_train, device)


def rows_of(folder: Path, results: dict, split, wanted: tuple[str, ...], device: str = "cpu") -> list[dict]:
    """Every wanted row of one finished run, scored on ``device``."""
    y = split.is_anomaly_test
    multi = MultiRadiusDeepSVDD.load(folder / "detector_multi.pt", device=device)
    cinfo = results.get("clustering", {})
    agree = cinfo.get("agreement") or {}
    base = {"n_clusters": len(cinfo.get("sizes", [])), "ari": agree.get("ari"), "nmi": agree.get("nmi")}
    out = []

    def add(row: str, s, path=None, **kw) -> None:
        size = None if path is None else path.stat().st_size / 2**20
        out.append({"row": row, "auroc": auroc(y, s), "size_mb": size, "img_s": None, **base, **kw})

    x_test = torch.from_numpy(split.x_test).to(device)
    timed = {}  # row -> detector, timed together once every row is scored
    if "default" in wanted:
        timed["default"] = multi
        add(
            "default",
            multi.decision_function(split.x_test),
            path=folder / "detector_multi.pt",
            seconds=results.get("seconds"),
        )
    for row in (r for r in wanted if score_of(r) is not None):
        det = rescored(folder, multi, split.x_train, score_of(row), device)
        path = folder.parent / f".{folder.name}-{row}.pt"  # for its size; beside the run, not in it
        det.save(path)
        timed[row] = det
        add(row, det.decision_function(split.x_test), path=path)
        path.unlink()
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    rates = throughputs(timed, split.x_test)
    for r in out:
        r["img_s"] = rates.get(r["row"])
    with torch.inference_mode():
        if "single" in wanted and (folder / "detector_single.pt").is_file():
            single = MultiRadiusDeepSVDD.load(folder / "detector_single.pt", device=device)
            add("single", single.scorer_.score_column("multi", x_test), n_clusters=1, ari=None, nmi=None)
        if "multi-pre" in wanted:
            cfg = multi.resolved_config()  # the run's pretraining method's net (autoencoder, rotation, ...)
            ae = pretraining_net(method_of(cfg.pretrain), multi.arch_, multi.input_shape_, cfg.net)
            ae.load_state_dict(load_pretrained(folder))
            ae.to(device)
            prep = multi.preprocessor_
            ref = embed(ae.encoder, prep(torch.from_numpy(split.x_train).to(device)))
            z_test = embed(ae.encoder, prep(x_test))
            labels = torch.from_numpy(multi.cluster_labels_).to(device)
            centres = cluster_means(ref, labels, int(labels.max()) + 1)
            add("multi-pre", all_sq_distances(z_test, centres).min(dim=1)[0])
        if "knn1-raw" in wanted:
            flat = lambda a: torch.from_numpy(a.reshape(len(a), -1)).to(device)  # noqa: E731
            add("knn1-raw", knn_distance(flat(split.x_test), flat(split.x_train), 1))
    if "null" in wanted:  # random spheres of the same sizes, from the same pretrained network
        cfg = apply_overrides(
            multi.resolved_config(),
            {
                "clustering.name": "random",
                "clustering.options": {"sizes": cinfo["sizes"]},
                "score.multi": 1.0,
                "score.single": 0.0,
                "score.pretext": 0.0,
                "score.knn": 0.0,
            },
        )
        null = fit_from_run(cfg, folder, ("pretrain",), split.x_train, device)
        add("null", null.decision_function(split.x_test))
    return out


def score_of(row: str) -> dict | None:
    """The score settings of a rescored row: a name of ``SCORES`` (its k-NN rows and centres kept in
    float32, whatever the recipe keeps), or one with ``@float16`` (kept in float16, ``score.storage``);
    None for the other rows."""
    name, _, storage = row.partition("@")
    if name not in SCORES or (storage and storage not in STORAGES):
        return None
    return SCORES[name] | {"score.storage": storage or "float32"}


def check_rows(rows: tuple[str, ...]) -> None:
    """Refuse a row this benchmark does not measure, naming the ones it does."""
    known = (*ROWS, *SCORES, "null")
    bad = [r for r in rows if r not in known and score_of(r) is None]
    if bad:
        raise SystemExit(
            f"unknown rows {bad}; accepted: {', '.join(known)}, and any of {', '.join(SCORES)} followed by "
            f"@float16 (its rows kept in float16)"
        )


def load_pretrained(folder: Path) -> dict:
    """The pretrained autoencoder's weights from a run folder's finished stage."""
    stage = RunFolder(folder).load_stage("pretrain")
    if stage is None:
        raise SystemExit(f"{folder} holds no finished pretraining")
    return stage["autoencoder"]


def settings_in(extra: list[str], prefix: str) -> dict:
    """The ``--NAME=VALUE`` settings of ``extra`` whose NAME starts with ``prefix``, values parsed."""
    pairs = (a[2:].split("=", 1) for a in extra if a.startswith("--" + prefix) and "=" in a)
    return {k: parse(v) for k, v in pairs}


def split_of(recipe: str, group: list, seed: int, extra: list[str]):
    cfg = apply_overrides(load_recipe(recipe), {**settings_in(extra, "data."), "data.normal_classes": group})
    return load_split(cfg.data, seed)


def parse(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def measure(args: argparse.Namespace) -> None:
    wanted = tuple((args.rows or ",".join(ROWS)).split(","))
    check_rows(wanted)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "rows.csv"
    done = {(r["group"], r["seed"], r["row"]) for r in read_rows(table)}
    for g in args.groups.split(";"):
        group = parse_group(g)
        name = "-".join(map(str, group))
        for seed in map(int, args.seeds.split(",")):
            todo = tuple(r for r in wanted if (name, str(seed), r) not in done)
            if not todo:
                continue
            folder = out / f"{name}-s{seed}"
            results = run_recipe(args.recipe, group, seed, folder, args.extra, args.threads)
            split = split_of(args.recipe, group, seed, args.extra)
            for row in rows_of(folder, results, split, todo, args.device):  # each kept as soon as it is measured
                append_row(table, {"group": name, "group_size": len(group), "seed": seed, **row})
                print(f"{name} seed {seed} {row['row']}: {row['auroc']:.4f}", flush=True)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in FIELDS})


def markdown_table(head, rows) -> str:
    """A markdown table: the header, the rule under it, one line per row of cells."""
    line = lambda cells: "| " + " | ".join(map(str, cells)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "---|" * len(head), *(line(r) for r in rows)])


PAIRS = (("multi", "single"), ("multi", "null"), ("multi", "knn5-ae"), ("multi", "default"), ("default", "knn1-raw"))


def paired(by: dict, a: str, b: str) -> list[str]:
    """Row ``a`` against row ``b`` on the models both measured (same group and seed): the AUROC difference,
    overall and per group size, and the ratio of their rates where both were timed."""
    keys = sorted(set(by[a]) & set(by[b]))
    if not keys:
        return []
    d = np.array([float(by[a][k]["auroc"]) - float(by[b][k]["auroc"]) for k in keys])
    by_size = {}
    for v, k in zip(d, keys, strict=True):
        by_size.setdefault(int(by[a][k]["group_size"]), []).append(v)
    per_size = ", ".join(f"{s} classes {np.mean(v):+.3f}" for s, v in sorted(by_size.items()))
    lines = [
        f"{a} - {b}: {d.mean():+.3f} +- {d.std():.3f} over {len(d)} models, above on {(d > 0).sum()}"
        f" ({d.min():+.3f} to {d.max():+.3f}; {per_size})"
    ]
    timed = [k for k in keys if by[a][k]["img_s"] and by[b][k]["img_s"]]
    if timed:
        ratio = np.array([float(by[a][k]["img_s"]) / float(by[b][k]["img_s"]) for k in timed])
        lines.append(
            f"{a} img/s / {b} img/s: {ratio.min():.1f} to {ratio.max():.1f}x (mean {ratio.mean():.1f}) "
            f"over {len(ratio)} models"
        )
    return lines


def summary(args: argparse.Namespace) -> str:
    """The means per group size, the per-group table (each cell the mean over the seeds measured), the
    paired comparisons (same group and seed; ``args.against``: every column's against that row) and each
    group's seed spread."""
    rows = read_rows(Path(args.out) / "rows.csv")
    by = {}
    for r in rows:
        by.setdefault(r["row"], {})[(r["group"], r["seed"])] = r
    sizes = sorted({int(r["group_size"]) for r in rows})
    known = dict.fromkeys((*ROWS, *SCORES, "null"))
    names = [n for n in known if n in by] + [n for n in by if n not in known]
    lines = ["| row | " + " | ".join(f"{s} classes" for s in sizes) + " | models | size (MB) | img/s |"]
    lines.append("|---" * (len(sizes) + 4) + "|")
    for n in names:
        cells = []
        for s in sizes:
            v = [float(r["auroc"]) for r in by[n].values() if int(r["group_size"]) == s]
            cells.append(f"{np.mean(v):.3f}" if v else "")
        mb = [float(r["size_mb"]) for r in by[n].values() if r["size_mb"]]
        rate = [float(r["img_s"]) for r in by[n].values() if r["img_s"]]
        size_cell = f"{np.mean(mb):.2f}" if mb else ""
        rate_cell = f"{np.mean(rate):,.0f}" if rate else ""
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {len(by[n])} | {size_cell} | {rate_cell} |")
    columns = [n for n in (args.rows.split(",") if args.rows else names) if n in by]
    lines += ["", group_table(rows, by, columns), ""]
    pairs = [(n, args.against) for n in columns if n != args.against] if args.against else PAIRS
    for a, b in pairs:
        if a in by and b in by:
            lines += paired(by, a, b)
    for n in ("multi", "knn5-ae", "default"):
        seeds = {}
        for (g, _), r in by.get(n, {}).items():
            seeds.setdefault(g, []).append(float(r["auroc"]))
        wide = {g: max(v) - min(v) for g, v in seeds.items() if len(v) > 1}
        if wide:
            lines.append(f"{n}: seed spread " + ", ".join(f"{label(g)} {w:.3f}" for g, w in wide.items()))
    return "\n".join(lines)


def label(group: str) -> str:
    """A group as the tables write it: {0, 9}."""
    return "{" + group.replace("-", ", ") + "}"


def group_table(rows: list[dict], by: dict, columns: list[str]) -> str:
    """One line per group (cells: the mean over its seeds) and one per group size (the mean over its
    models); the detectors' file size and images per second beside the AUROCs."""
    groups = list(dict.fromkeys((r["group"], int(r["group_size"])) for r in rows))
    timed = [n for n in columns if any(r["img_s"] for r in by[n].values())]
    head = ["group", "seeds", *columns, *(f"{n}: MB, img/s" for n in timed)]

    def cell(n: str, keys: list, field: str = "auroc") -> list[float]:
        return [float(by[n][k][field]) for k in keys if k in by[n] and by[n][k][field]]

    def speed(n: str, keys: list) -> str:
        mb, rate = cell(n, keys, "size_mb"), cell(n, keys, "img_s")
        return ", ".join([f"{np.mean(mb):.1f}"] * bool(mb) + [f"{np.mean(rate):,.0f}"] * bool(rate))

    lines = []
    for g, _ in groups:
        keys = sorted({k for n in columns for k in by[n] if k[0] == g}, key=lambda k: int(k[1]))
        aurocs = [f"{np.mean(v):.3f}" if (v := cell(n, keys)) else "" for n in columns]
        lines.append([label(g), ",".join(k[1] for k in keys), *aurocs, *(speed(n, keys) for n in timed)])
    for size in sorted({s for _, s in groups}):
        keys = sorted({k for n in columns for k, r in by[n].items() if int(r["group_size"]) == size})
        aurocs = [f"{np.mean(v):.3f}" if (v := cell(n, keys)) else "" for n in columns]
        lines.append([f"mean, {size} classes", f"{len(keys)} models", *aurocs, *([""] * len(timed))])
    return markdown_table(head, lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="mnist")
    ap.add_argument("--groups", default=MNIST_GROUPS, help="normal classes per group, ';' between groups")
    ap.add_argument("--seeds", default="0,1")
    every = (*ROWS, *(r for r in SCORES if r not in ROWS), "null")
    ap.add_argument(
        "--rows",
        default=None,
        help=f"comma-separated, of {every} (default: {','.join(ROWS)}); with --summary, the columns",
    )
    ap.add_argument("--out", default="bench/mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="where the rows are scored: cpu, cuda or cuda:N (runs: --device)")
    ap.add_argument("--summary", action="store_true", help="print the table of what --out holds")
    ap.add_argument(
        "--against",
        default=None,
        help="with --summary: every column paired with this row (AUROC difference, ratio of rates)",
    )
    args, extra = ap.parse_known_args()
    args.extra = extra  # passed to the recipe's run, e.g. --data.root=../shared/data --svdd.epochs=10
    if args.summary:
        print(summary(args))
    else:
        measure(args)


if __name__ == "__main__":
    main()
