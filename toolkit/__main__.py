"""Command line: ``python -m toolkit [run] [RECIPE] [--key=value ...]`` and ``python -m toolkit plugins``.

RECIPE is a packaged recipe's name (``mnist``) or the path of a recipe file (``recipes/mnist.py``).

Overrides take dotted names (``--svdd.epochs=3``) or unambiguous bare names (``--normal_classes=[0,1,3]``);
each is checked against the recipe's field types. ``--help`` lists every setting with its value.
"""

from __future__ import annotations

import errno
import inspect
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import fire

from . import config as C
from .registry import RegistryError, available_clusterers, clusterer_options

# torch, Ignite and scikit-learn are imported by the verbs that use them: --help and --version stay light

USAGE = """usage: python -m toolkit [run] [RECIPE] [--setting=value ...]
       python -m toolkit score RUN_DIR INPUT [--out=scores.csv] [--model=multi|single]
       python -m toolkit report RUN_DIR [--projection=tsne|pca]
       python -m toolkit export RUN_DIR [--model=multi|single] [--out=FILE]
       python -m toolkit plugins
       python -m toolkit --version

Runs RECIPE: pretrain the autoencoder, cluster its embeddings, train Multi-Radius Deep SVDD (and the
one-sphere baseline), and write config, TensorBoard events, detectors and results.json into the run folder.
RECIPE is a packaged recipe's name: {recipes};
or the path of a .py file that defines `config = Config(...)`, such as recipes/mnist.py.
The default is digits (data shipped with scikit-learn). Your own data: --data.dataset=PATH, a folder of
images (recipe folder), a .csv table, a .npz (x, y) or .npy array (recipe table, or folder for images).
"""


def run(recipe: str | None = None, **overrides: Any) -> None:
    cfg = C.apply_overrides(C.load_recipe(recipe or C.default_recipe()), overrides)  # checked before torch loads
    from .run import run as run_pipeline
    from .run import summary

    if cfg.resume:
        cfg = resume_config(cfg, overrides)
    results = run_pipeline(cfg)
    if results:  # empty on the other ranks under torchrun
        print(summary(results))


def resume_config(cfg: C.Config, overrides: dict[str, Any]) -> C.Config:
    """With ``--resume=True`` the run folder's config.json is the base and the given overrides go on top,
    so a run resumes without retyping its original overrides; one that changes the model's settings or
    data is refused by the run folder's check."""
    from .run import resolve_run_dir
    from .runfolder import RunFolder, RunFolderError

    folder = RunFolder(resolve_run_dir(cfg))
    folder.check_path()
    if not folder.has_run():
        raise RunFolderError(f"--resume: {folder.path} holds no run to resume (no config.json)")
    return C.apply_overrides(folder.saved_config(), {**overrides, "resume": True, "run_dir": str(folder.path)})


def report(run_dir: str, projection: str = "tsne") -> None:
    """Write PNG figures and report.md into RUN_DIR, from the finished run folder alone."""
    from .report import write_report

    print(f"wrote {write_report(run_dir, projection)}")


def score(
    run_dir: str,
    source: str,
    out: str = "scores.csv",
    model: str = "multi",
    batch_size: int = 4096,
    data_root: str | None = None,
) -> None:
    """Score SOURCE (a .npy, .npz or .csv file, a folder of images, or NAME:SPLIT) with RUN_DIR's detector
    into OUT (a progress bar on a terminal)."""
    from .score import score_to_csv

    n = score_to_csv(
        run_dir, source, out, model=model, batch_size=batch_size, data_root=data_root, progress=sys.stderr.isatty()
    )
    print(f"wrote {n} rows to {out}")


def export(run_dir: str, model: str = "multi", out: str | None = None) -> None:
    """Write RUN_DIR's scoring path (preprocessing -> encoders -> score) as one TorchScript file (default:
    RUN_DIR/detector_MODEL.torchscript.pt); torch.jit.load(FILE)(x) gives decision_function's scores."""
    from .detector import MultiRadiusDeepSVDD
    from .export import export as export_scorer

    if model not in ("multi", "single"):
        raise C.ConfigError(f"--model={model!r} is unknown; accepted: multi, single")
    det = MultiRadiusDeepSVDD.load(Path(run_dir) / f"detector_{model}.pt")
    path = export_scorer(det, out or Path(run_dir) / f"detector_{model}.torchscript.pt")
    shape = " x ".join(map(str, det.input_shape_))
    print(f"wrote {path} (input: N x {shape} raw samples; threshold {det.threshold_:.6g})")


def plugins() -> None:
    """List every available clusterer and the settings it takes (--clustering.options.NAME=VALUE)."""
    for name in available_clusterers():
        try:
            opts = clusterer_options(name)
        except RegistryError as e:
            print(f"{name}: unavailable ({e})")
            continue
        shown = ", ".join(f"{k}" if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in opts.items())
        print(f"{name}({shown})")


def _help(argv: list[str]) -> None:
    recipe = next((a for a in argv if not a.startswith("-")), None)
    cfg = C.load_recipe(recipe or C.default_recipe())
    print(USAGE.format(recipes=", ".join(C.packaged_recipes())))
    print(f"Settings of {recipe or 'digits, the default recipe'} (type, value):")
    print(C.describe(cfg))


def _log_to_stderr() -> None:
    """The toolkit's own INFO messages (not Ignite's per-engine chatter) go to stderr."""
    log = logging.getLogger("toolkit")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


DISK_FULL = {
    "run": "the finished stages and checkpoints already in the run folder are kept; free space, then rerun "
    "the same command with --resume=True to continue",
    "score": "no output file was left behind; free space and score again",
    "report": "the figures written before are kept; free space and run report again",
    "export": "no file was left behind; free space and export again",
}


def _disk_full(e: OSError, verb: str) -> str:
    where = f" writing {e.filename}" if e.filename else ""
    return f"the disk is full{where} ({e.strerror or 'no space left on device'}): {DISK_FULL[verb]}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _log_to_stderr()
    verb = argv[0] if argv[:1] in (["score"], ["report"], ["export"]) else "run"
    try:
        if argv[:1] == ["--version"]:
            from importlib.metadata import version

            from . import __version__

            print(f"multi-radius-deep-svdd {__version__} (torch {version('torch')})")
            return 0
        if argv[:1] == ["plugins"]:
            fire.Fire(plugins, argv[1:], name="toolkit plugins")
            return 0
        if argv[:1] == ["score"]:
            fire.Fire(score, argv[1:], name="toolkit score")
            return 0
        if argv[:1] == ["report"]:
            fire.Fire(report, argv[1:], name="toolkit report")
            return 0
        if argv[:1] == ["export"]:
            fire.Fire(export, argv[1:], name="toolkit export")
            return 0
        if argv[:1] == ["run"]:
            argv = argv[1:]
        if any(a in ("-h", "--help") for a in argv):
            _help([a for a in argv if a not in ("-h", "--help")])
            return 0
        fire.Fire(run, argv, name="python -m toolkit")
    except Exception as e:
        code = _exit_status(e, verb)
        if code is None:
            raise
        return code
    return 0


def _exit_status(e: Exception, verb: str) -> int | None:
    """Print what went wrong and return the exit status, for errors the user can act on: 2 for a
    setting, the data, a file or the disk, 1 for training that diverged, 130 for a stop asked for;
    None for anything else (a bug: its traceback is shown)."""
    if isinstance(e, (C.ConfigError, RegistryError)):  # before importing what the other errors live in
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .clustering import ClusteringError
    from .data import DataError
    from .detector import DetectorFileError
    from .handlers import TrainingDiverged
    from .report import ReportError
    from .run import Interrupted
    from .runfolder import RunFolderError

    if isinstance(e, (DataError, DetectorFileError, ClusteringError, ReportError, RunFolderError)):
        print(f"error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        print(f"error: {_disk_full(e, verb)}", file=sys.stderr)
        return 2
    if isinstance(e, TrainingDiverged):
        print(f"error: {e}", file=sys.stderr)
        return 1
    if isinstance(e, Interrupted):
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    return None


if __name__ == "__main__":
    sys.exit(main())
