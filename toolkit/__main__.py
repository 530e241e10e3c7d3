"""Command line: ``python -m toolkit [run] [RECIPE] [--key=value ...]`` and its verbs (score, report, export,
plugins).

RECIPE is a packaged recipe's name (``mnist``) or the path of a recipe file (``recipes/mnist.py``).

Overrides take dotted names (``--svdd.epochs=3``) or unambiguous bare names (``--normal_classes=[0,1,3]``);
each is checked against the recipe's field types. ``--help`` lists every setting with its value.

Every command line is parsed and checked whole (each option known, each argument in its place, each value
of its type) before a verb reads or writes anything: a misspelled option is refused in one line, with the
nearest valid names, and no file is touched. Values are read as python-fire reads them (``[0,1,3]`` a
list, ``3`` a number); a verb's text arguments (paths) are taken as typed.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import sys
import typing
import warnings
from pathlib import Path
from typing import Any

from . import config as C
from .exits import exit_status
from .overrides import apply_overrides, describe
from .recipes_loader import default_recipe, load_recipe, packaged_recipes
from .registry import CLUSTERERS, PRETRAINERS

# torch, Ignite and scikit-learn are imported by the verbs that use them: --help and --version stay light

VERB_USAGE = {
    "run": "python -m toolkit [run] [RECIPE] [--setting=value ...]",
    "score": "python -m toolkit score RUN_DIR INPUT [--out=scores.csv] [--model=multi|single] "
    "[--non_finite=raise|anomaly] [--batch_size=4096] [--data_root=FOLDER]",
    "report": "python -m toolkit report RUN_DIR [--projection=tsne|pca]",
    "export": "python -m toolkit export RUN_DIR [--model=multi|single] [--format=torchscript|onnx] [--out=FILE]",
    "plugins": "python -m toolkit plugins",
}

USAGE = (
    "usage: "
    + "\n       ".join([*VERB_USAGE.values(), "python -m toolkit --version"])
    + """

Runs RECIPE: pretrain the autoencoder, cluster its embeddings, train Multi-Radius Deep SVDD (and the
one-sphere baseline), and write config, TensorBoard events, detectors and results.json into the run folder.
RECIPE is a packaged recipe's name: {recipes};
or the path of a .py file that defines `config = Config(...)`, such as recipes/mnist.py, or a run's
config.json (its settings replayed into a new run folder).
The default is digits (data shipped with scikit-learn). Your own data: --data.dataset=PATH, a folder of
images (recipe folder), a .csv table, a .npz (x, y) or .npy array (recipe table, or folder for images).
`python -m toolkit VERB --help` describes each verb.
"""
)


def run(recipe: str | None = None, **overrides: Any) -> None:
    cfg = apply_overrides(load_recipe(recipe or default_recipe()), overrides)  # checked before torch loads
    from .report import summary
    from .run import run as run_pipeline

    if cfg.resume:
        if not cfg.run_dir and recipe and Path(recipe).suffix.lower() == ".json":  # a run's config.json: that run
            cfg = apply_overrides(cfg, {"run_dir": str(Path(recipe).expanduser().parent)})
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
    return apply_overrides(folder.saved_config(), {**overrides, "resume": True, "run_dir": str(folder.path)})


def report(run_dir: str, projection: str = "tsne") -> None:
    """Write PNG figures and report.md into RUN_DIR, from the finished run folder alone. --projection: the
    2-D map of the embeddings (t-SNE or PCA)."""
    _one_of("projection", projection, ("tsne", "pca"))
    from .report import write_report

    print(f"wrote {write_report(run_dir, projection)}")


ARGUMENT_NAMES = {"source": "INPUT"}  # as the usage lines name a verb's arguments, where the two differ
MODELS = ("multi", "single")  # the run folder's detectors: detector_multi.pt, detector_single.pt
NON_FINITE = ("raise", "anomaly")


def _one_of(option: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise C.ConfigError(f"--{option}={value!r} is unknown; accepted: {', '.join(accepted)}")


def score(
    run_dir: str,
    source: str,
    out: str = "scores.csv",
    model: str = "multi",
    batch_size: int = 4096,
    data_root: str | None = None,
    non_finite: str = "raise",
) -> None:
    """Score INPUT (a .npy, .npz or .csv file, a folder of images, NAME:SPLIT such as mnist:test, or a digits
    run's own digits:train or digits:test) with RUN_DIR's detector into the CSV file --out, one row per
    item: id, score, is_anomaly, cluster (a progress bar on a terminal). --model: the run's multi-sphere
    detector or its one-sphere baseline. --non_finite: an item holding NaN or inf is refused, naming its
    row (raise), or scored inf, anomalous, in cluster -1 (anomaly). --batch_size: items read and written
    at a time. --data_root: where NAME:SPLIT data are (default: the run's data.root)."""
    _one_of("model", model, MODELS)
    _one_of("non_finite", non_finite, NON_FINITE)
    if batch_size < 1:
        raise C.ConfigError(f"--batch_size={batch_size} must be >= 1")
    from .score import score_to_csv

    n = score_to_csv(
        run_dir,
        source,
        out,
        model=model,
        batch_size=batch_size,
        data_root=data_root,
        progress=sys.stderr.isatty(),
        non_finite=non_finite,
    )
    print(f"wrote {n} rows to {out}")


def export(run_dir: str, model: str = "multi", out: str | None = None, format: str | None = None) -> None:
    """Write RUN_DIR's scoring path (preprocessing -> encoders -> score) as one file (--out; default:
    RUN_DIR/detector_MODEL.torchscript.pt, or detector_MODEL.onnx with --format=onnx). It takes raw
    samples in the units the detector was fitted on and gives decision_function's scores. --format:
    TorchScript (torch.jit.load(FILE)(x)) or ONNX (input x, output score, the threshold in its metadata;
    needs pip install "multi-radius-deep-svdd[export]"); by default ONNX when --out ends in .onnx.
    --model: the run's multi-sphere detector or its one-sphere baseline."""
    _one_of("model", model, MODELS)
    from .detector import MultiRadiusDeepSVDD
    from .export import export as export_scorer
    from .export import export_target

    path, fmt = export_target(run_dir, model, out, format)
    from .runfolder import detector_file

    det = MultiRadiusDeepSVDD.load(detector_file(run_dir, model))
    if path.is_dir():
        raise C.ConfigError(f"--out={str(path)!r} is a folder; pass the path of the file to write")
    path = export_scorer(det, path, format=fmt)
    shape = " x ".join(map(str, det.input_shape_))
    print(f"wrote {path} ({fmt}; input: N x {shape} raw samples; threshold {det.threshold_:.6g})")


def plugins() -> None:
    """List every available clusterer (--clustering.name=NAME) and pretraining method (--pretrain.method=NAME),
    each with the settings it takes (--clustering.options.KEY=VALUE, --pretrain.options.KEY=VALUE)."""
    sections = (("clusterers", CLUSTERERS, "clustering.name"), ("pretraining methods", PRETRAINERS, "pretrain.method"))
    for i, (title, registry, setting) in enumerate(sections):
        if i:
            print()
        print(f"{title} (--{setting}=NAME, --{setting.split('.')[0]}.options.KEY=VALUE):")
        for line in registry.listing():
            print(line)


def _help(argv: list[str]) -> None:
    recipe = next((a for a in argv if not a.startswith("-")), None)
    cfg = load_recipe(recipe or default_recipe())
    print(USAGE.format(recipes=", ".join(packaged_recipes())))
    print(f"Settings of {recipe or 'digits, the default recipe'} (type, value):")
    print(describe(cfg))


def _verb_help(verb: str) -> None:
    print(f"usage: {VERB_USAGE[verb]}\n\n{inspect.getdoc(VERBS[verb])}")


# ------------------------------------------------------------------------------------- the command line


def _is_option(arg: str) -> bool:
    """``--name``, ``--name=value`` or ``-n``: an option (as python-fire tells them; ``-5`` is a value)."""
    return arg.startswith("--") or re.match(r"^-[a-zA-Z]", arg) is not None


def _value(name: str, tp: Any, text: str) -> Any:
    """A command-line value for a parameter of type ``tp``: text parameters (paths, names) as typed, others
    as python-fire reads them (``3`` an int, ``[0,1]`` a list, ``[good]`` a list of strings)."""
    from fire.parser import DefaultParseValue

    if tp is str or set(typing.get_args(tp)) == {str, type(None)}:
        return text
    value = DefaultParseValue(text)
    if tp is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise C.ConfigError(f"--{name}={text!r} has the wrong type: expected an integer")
    return value


def parse_command(verb: str, argv: list[str]) -> dict[str, Any]:
    """The arguments of ``verb``'s function, by name, from ``argv``, every one checked: an unknown
    option (with the nearest valid names), an argument too many or missing, an option given twice, or a
    value of the wrong type is refused (:class:`ConfigError`) before the verb runs. ``--name value`` is read
    as ``--name=value``, a lone ``--name`` as ``--name=True``, as python-fire does. The run's settings
    (``**overrides``) are checked by :func:`toolkit.overrides.apply_overrides`."""
    fn = VERBS[verb]
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    params = {n: p for n, p in sig.parameters.items() if p.kind is not p.VAR_KEYWORD}
    open_ended = len(params) < len(sig.parameters)  # **overrides: the run's settings
    given: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            continue
        if not _is_option(arg):
            positional.append(arg)
            continue
        key, eq, text = arg.lstrip("-").partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i < len(argv) and not _is_option(argv[i]) and argv[i] != "--":
                text, i = argv[i], i + 1
            else:
                text = "True"
        if key in given or key in extra:
            raise C.ConfigError(f"{verb}: --{key} is given twice; give it once")
        if key in params:
            given[key] = _value(key, hints.get(key), text)
        elif open_ended:
            from fire.parser import DefaultParseValue

            extra[key] = DefaultParseValue(text)
        else:
            names = list(params)
            near = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
            near = near or [n for n in names if len(key) == 1 and n.startswith(key)]
            hint = f"; did you mean {' or '.join('--' + n for n in near)}?" if near else ""
            options = ", ".join(f"--{n}" for n, p in params.items() if p.default is not p.empty)
            takes = f"its options: {options}" if options else "it takes no options"
            raise C.ConfigError(f"{verb}: unknown option {arg.partition('=')[0]}{hint} ({takes})")
    # in order, what the positional arguments fill: a verb's required arguments (RUN_DIR, INPUT; its options
    # are written --name=value), the run's RECIPE
    slots = [n for n, p in params.items() if n not in given and (p.default is p.empty or open_ended)]
    if len(positional) > len(slots):
        raise C.ConfigError(
            f"{verb}: unexpected argument {positional[len(slots)]!r}; usage: {VERB_USAGE[verb]} (options are "
            "written --name=value)"
        )
    for name, text in zip(slots[: len(positional)], positional, strict=True):
        given[name] = _value(name, hints.get(name), text)
    if missing := [n for n, p in params.items() if p.default is p.empty and n not in given]:
        shown = " and ".join(ARGUMENT_NAMES.get(n, n.upper()) for n in missing)
        raise C.ConfigError(f"{verb}: {shown} missing; usage: {VERB_USAGE[verb]}")
    return {**given, **extra}


def _log_to_stderr() -> None:
    """The toolkit's own INFO messages (not Ignite's per-engine chatter) go to stderr."""
    log = logging.getLogger("toolkit")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def _quiet_stdout() -> None:
    """Send the rest of stdout nowhere: its reader has gone (``... | head``), and the interpreter's final
    flush would otherwise fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a file (captured output)
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _log_to_stderr()
    verb = argv[0] if argv[:1] and argv[0] in VERBS else "run"
    try:
        try:
            code = _dispatch(verb, argv[1:] if argv[:1] == [verb] else argv)
            sys.stdout.flush()  # here, so that a reader gone is answered below, not at the interpreter's exit
            return code
        except BrokenPipeError:
            _quiet_stdout()
            return 1
    except KeyboardInterrupt:  # a second Ctrl-C (the first one stops a run after its epoch's checkpoint)
        resume = "; the last epoch's checkpoint is kept: rerun with --resume=True to continue" if verb == "run" else ""
        print(f"\ninterrupted at once{resume}", file=sys.stderr)
        return 130
    except Exception as e:
        code = exit_status(e, verb)
        if code is None:
            raise
        return code


def _dispatch(verb: str, argv: list[str]) -> int:
    if verb == "run" and argv[:1] == ["--version"]:
        from importlib.metadata import version

        from . import __version__

        print(f"multi-radius-deep-svdd {__version__} (torch {version('torch')})")
        return 0
    if any(a in ("-h", "--help") for a in argv):
        if verb == "run":
            _help([a for a in argv if a not in ("-h", "--help")])
        else:
            _verb_help(verb)
        return 0
    VERBS[verb](**parse_command(verb, argv))
    return 0


VERBS = {"run": run, "score": score, "report": report, "export": export, "plugins": plugins}

if __name__ == "__main__":
    sys.exit(main())
