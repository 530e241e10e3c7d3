"""Deep SVDD trained again on a finished run's pretrained network and partition, at other learning rates:
the spheres' test AUROC after each, nothing else retrained (``python -m toolkit`` would pretrain again).

    python benchmarks/svdd_again.py runs/cifar10/deer-dog-s0 --recipe cifar10 \\
        --data.dataset=../shared/data/cifar10-jpeg/train --data.test=../shared/data/cifar10-jpeg/test \\
        --lrs 0,1e-4,1e-5

``--lrs``: SVDD's learning rates, 0 for the spheres before SVDD (the clusters' means in the pretrained
embedding); every other setting is the run's (its config.json), with the recipe's SVDD schedule
(``svdd.epochs``, ``svdd.warmup_epochs``: the run's own may be 0 when it was made for other rows), or
``--svdd.NAME=VALUE`` given here.
``--null``: the same on a random partition of the same sizes (the null control). The spheres score by
the distance to the nearest centre alone. Prints one Markdown row per setting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench import auroc, fit_from_run, settings_in, split_of

from toolkit import MultiRadiusDeepSVDD, apply_overrides, load_recipe

ALONE = {"score.multi": 1.0, "score.single": 0.0, "score.pretext": 0.0, "score.knn": 0.0, "score.centres": 0.0}


def spheres_again(folder: Path, recipe: str, extra: list[str], lr: float, null: bool = False) -> float:
    """Test AUROC of the spheres alone after SVDD at ``lr`` (0: none) on the run's pretrained net and
    partition (``null``: a random partition of its clusters' sizes)."""
    results = json.loads((folder / "results.json").read_text())
    seed = json.loads((folder / "config.json").read_text())["seed"]
    split = split_of(recipe, results["normal_classes"], seed, extra)
    svdd = load_recipe(recipe).svdd
    over = ALONE | {"svdd.epochs": svdd.epochs, "svdd.warmup_epochs": svdd.warmup_epochs, "svdd.lr": lr}
    over |= settings_in(extra, "svdd.")
    if lr == 0:
        over |= {"svdd.epochs": 0, "svdd.warmup_epochs": 0, "svdd.lr": svdd.lr}
    stages = ("pretrain", "clustering")
    if null:
        over |= {"clustering.name": "random", "clustering.options": {"sizes": results["clustering"]["sizes"]}}
        stages = ("pretrain",)
    cfg = apply_overrides(MultiRadiusDeepSVDD.load(folder / "detector_multi.pt").resolved_config(), over)
    det = fit_from_run(cfg, folder, stages, split.x_train, "cpu")
    return auroc(split.is_anomaly_test, det.decision_function(split.x_test))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a finished run folder (results.json, detector_multi.pt, stages/)")
    ap.add_argument("--recipe", default="cifar10")
    ap.add_argument("--lrs", default="0,1e-4,1e-5", help="SVDD learning rates, comma-separated; 0: before SVDD")
    ap.add_argument("--null", action="store_true", help="also the null control (a random partition) at each")
    ap.add_argument("--threads", type=int, default=1)
    args, extra = ap.parse_known_args()  # extra: where the data are, e.g. --data.dataset=DIR --data.test=DIR
    torch.set_num_threads(args.threads)
    print("| run | partition | svdd.lr | spheres alone | seconds |\n|---|---|---|---|---|")
    for lr in map(float, args.lrs.split(",")):
        for null in (False, True) if args.null else (False,):
            t = time.perf_counter()
            a = spheres_again(Path(args.run), args.recipe, extra, lr, null)
            name = "before SVDD" if lr == 0 else f"{lr:g}"
            part = "random" if null else "the run's"
            print(f"| {Path(args.run).name} | {part} | {name} | {a:.4f} | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
