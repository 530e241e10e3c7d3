"""Deep SVDD trained again on a finished run's pretrained network and partition, at other learning rates:
the test AUROC of the spheres (and of the scores given by ``--rows``) after each, nothing else retrained
(``python -m toolkit`` would pretrain again).

    python benchmarks/svdd_again.py runs/cifar10/deer-dog-s0 --recipe cifar10 \\
        --data.dataset=../shared/data/cifar10-jpeg/train --data.test=../shared/data/cifar10-jpeg/test \\
        --lrs 0,1e-4,1e-5

``--lrs``: SVDD's learning rates, 0 for the spheres before SVDD (the clusters' means in the pretrained
embedding); every other setting is the run's (its config.json), with the recipe's SVDD schedule
(``svdd.epochs``, ``svdd.warmup_epochs``: the run's own may be 0 when it was made for other rows), or
``--svdd.NAME=VALUE`` given here.
``--null``: the same on a random partition of the same sizes (the null control).
``--single``: the one sphere too (the baseline, a column of its own), trained from the same pretrained net
at the same schedule, at ``svdd.single_lr`` where the run sets one; its SVDD at learning rate 0 is the
distance to the embeddings' mean.
``--rows``: the scores measured after each, names of ``bench.py``'s rescored rows (default ``multi``, the
spheres alone: the distance to the nearest centre; ``multi+pretext``: the spheres beside the pretraining
method's own score). SVDD is trained once per setting; each row is a detector assembled from its stages.
Prints one Markdown row per setting, one column per score.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench import FromRun, auroc, check_rows, score_of, settings_in, split_of

from toolkit import MultiRadiusDeepSVDD, apply_overrides, load_recipe
from toolkit.stages import Harness


class Kept(FromRun):
    """A run's finished stages, and the stages a fit trains kept in memory, so that the next fit of the
    same settings takes them instead of training them again."""

    def __init__(self, folder: Path, stages: tuple[str, ...]) -> None:
        super().__init__(folder, stages)
        self.kept: dict[str, dict] = {}

    def finished(self, stage: str):
        return self.kept.get(stage) or super().finished(stage)

    def record(self, stage: str, payload: dict) -> None:
        self.kept[stage] = payload


def spheres_again(
    folder: Path,
    recipe: str,
    extra: list[str],
    lr: float,
    null: bool = False,
    rows: tuple[str, ...] = ("multi",),
    single: bool = False,
) -> dict[str, float]:
    """Test AUROC of each of ``rows`` (bench.py's rescored rows; the spheres alone by default) after SVDD at
    ``lr`` (0: none) on the run's pretrained net and partition (``null``: a random partition of its
    clusters' sizes), by row; ``single``: and of the one sphere trained beside them (key "single")."""
    results = json.loads((folder / "results.json").read_text())
    seed = json.loads((folder / "config.json").read_text())["seed"]
    split = split_of(recipe, results["normal_classes"], seed, extra)
    svdd = load_recipe(recipe).svdd
    over = {"svdd.epochs": svdd.epochs, "svdd.warmup_epochs": svdd.warmup_epochs, "svdd.lr": lr}
    over |= settings_in(extra, "svdd.")
    if lr == 0:
        over |= {"svdd.epochs": 0, "svdd.warmup_epochs": 0, "svdd.lr": svdd.lr}
    stages = ("pretrain", "clustering")
    if null:
        over |= {"clustering.name": "random", "clustering.options": {"sizes": results["clustering"]["sizes"]}}
        stages = ("pretrain",)
    run_cfg = MultiRadiusDeepSVDD.load(folder / "detector_multi.pt").resolved_config()
    store, found = Kept(folder, stages), {}
    for i, row in enumerate(rows):
        cfg = apply_overrides(run_cfg, over | score_of(row))
        baseline = single and i == 0
        det = MultiRadiusDeepSVDD(cfg).fit(split.x_train, harness=Harness(store=store, baseline=baseline))
        found[row] = auroc(split.is_anomaly_test, det.decision_function(split.x_test))
        if baseline:
            found["single"] = auroc(split.is_anomaly_test, det.baseline_.decision_function(split.x_test))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a finished run folder (results.json, detector_multi.pt, stages/)")
    ap.add_argument("--recipe", default="cifar10")
    ap.add_argument("--lrs", default="0,1e-4,1e-5", help="SVDD learning rates, comma-separated; 0: before SVDD")
    ap.add_argument("--null", action="store_true", help="also the null control (a random partition) at each")
    ap.add_argument("--single", action="store_true", help="also the one sphere, at the same schedule")
    ap.add_argument("--rows", default="multi", help="bench.py's rescored rows, comma-separated (default: multi)")
    ap.add_argument("--threads", type=int, default=1)
    args, extra = ap.parse_known_args()  # extra: where the data are, e.g. --data.dataset=DIR --data.test=DIR
    rows = tuple(args.rows.split(","))
    check_rows(rows)
    if any(score_of(r) is None for r in rows):
        raise SystemExit(f"--rows takes rescored rows only (the detector's score settings): not {rows}")
    torch.set_num_threads(args.threads)
    cols = (*rows, "single") if args.single else rows
    print(f"| run | partition | svdd.lr | {' | '.join(cols)} | seconds |\n|{'---|' * (len(cols) + 4)}")
    for lr in map(float, args.lrs.split(",")):
        for null in (False, True) if args.null else (False,):
            t = time.perf_counter()
            found = spheres_again(Path(args.run), args.recipe, extra, lr, null, rows, args.single and not null)
            name = "before SVDD" if lr == 0 else f"{lr:g}"
            part = "random" if null else "the run's"
            cells = " | ".join(f"{found[r]:.4f}" if r in found else "" for r in cols)
            print(f"| {Path(args.run).name} | {part} | {name} | {cells} | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
