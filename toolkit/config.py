"""Typed, frozen run configuration; recipe loading; checked command-line overrides.

A recipe is a Python file that defines ``config = Config(...)`` (values only). Overrides use dotted
names (``svdd.epochs``) or, where unambiguous, the bare field name (``normal_classes``). Every override
is checked against the field's type; unknown keys are refused with the list of valid ones, because
python-fire alone accepts typos silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import json
import math
import re
import runpy
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import PRETRAINER_BUILTINS, PRETRAINERS

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
ARCHS = ("auto", "mlp", "lenet28", "lenet32")
OBJECTIVES = ("soft-boundary", "one-class")
BACKENDS = ("", "gloo", "nccl")
SCORE_RULES = ("margin", "ratio", "distance")  # toolkit.svdd scores by these (see sphere_scores)
RADIUS_UPDATES = ("epoch", "batch")
PROGRESS = ("auto", "bar", "lines", "none")  # how a run shows its progress
KNN_SPACES = ("embedding", "autoencoder", "input", "raw")  # where the k-NN score term measures distances
PREPROCESS = ("auto", "gcn-minmax", "standardize", "none")  # toolkit.data.build_preprocessor
IMAGE_MODES = ("auto", "grey", "colour")  # how an image folder is read (toolkit.sources)
PRETRAIN_METHODS = tuple(PRETRAINER_BUILTINS)  # the built-in pretraining methods (toolkit.pretext)


class ConfigError(ValueError):
    """A recipe or an override that cannot be used; the message says what is accepted."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # a built-in data set, or your own: a folder of images, a .npy/.npz array, a .csv table
    root: str = "data"  # folder holding the torchvision datasets (MNIST/, FashionMNIST/, cifar-10-batches-py/)
    download: bool = True  # fetch missing files with torchvision (needs network)
    normal_classes: tuple[int | str, ...] = (0, 1, 3)  # normal classes (others: anomalies); own data: labels, folders
    test_fraction: float = 0.5  # digits and own labelled data: stratified share of the data held out for testing
    label_column: str = "label"  # .csv tables: the column holding each row's class, if the table has it
    image_mode: str = "auto"  # image folders: "grey" (read as 1x28x28), "colour" (3x32x32), "auto" (colour if any is)
    test: str = ""  # own data: a separate labelled test set (same kinds); then every normal item of dataset trains

    @property
    def own(self) -> bool:
        """The data are the user's own files (a path), not a built-in data set."""
        return self.dataset not in DATASETS

    def __post_init__(self) -> None:
        _check(
            isinstance(self.dataset, str) and self.dataset != "",
            f"data.dataset={self.dataset!r}: give a built-in data set {DATASETS} or the path of your data",
        )
        _check(
            len(self.normal_classes) > 0,
            "data.normal_classes is empty; give at least one class, e.g. [0,1,3]",
        )
        _check(
            len(set(self.normal_classes)) == len(self.normal_classes),
            f"data.normal_classes={list(self.normal_classes)} has duplicates",
        )
        if not self.own:
            _check(
                all(isinstance(c, int) and 0 <= c <= 9 for c in self.normal_classes),
                f"data.normal_classes={list(self.normal_classes)}: {self.dataset} has classes 0..9",
            )
            _check(
                len(self.normal_classes) < 10,
                "data.normal_classes holds all ten classes: nothing would be left to be an anomaly",
            )
        _check(0.0 < self.test_fraction < 1.0, f"data.test_fraction={self.test_fraction} must be in (0, 1)")
        _check(
            not self.test or self.own,
            f"data.test={self.test!r}: a separate test set is for your own data; {self.dataset} has its own test split",
        )
        _check(
            self.image_mode in IMAGE_MODES, f"data.image_mode={self.image_mode!r} is unknown; accepted: {IMAGE_MODES}"
        )


@dataclass(frozen=True)
class NetConfig:
    arch: str = "auto"  # auto picks lenet28 for 1x28x28, lenet32 for 3x32x32, mlp for flat vectors
    rep_dim: int = 0  # embedding size; 0 = the architecture's default (32 lenet28, 128 lenet32, 16 mlp)
    hidden: tuple[int, ...] = (32,)  # mlp only: hidden widths of the encoder (mirrored in the decoder)
    leak: float = 0.1  # leaky-ReLU slope
    fused: bool = False  # lenet nets, CPU only: exact, faster layer forms (toolkit/layers.py), rounding differently

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, f"net.arch={self.arch!r} is unknown; accepted: {ARCHS}")
        _check(self.rep_dim >= 0, f"net.rep_dim={self.rep_dim} must be >= 0 (0 = the default)")
        _check(all(h > 0 for h in self.hidden), f"net.hidden={list(self.hidden)} must be positive widths")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 150  # passes over the training data
    lr: float = 1e-4  # Adam's learning rate
    milestones: tuple[int, ...] = (50, 100)  # epochs at which the learning rate is multiplied by gamma
    gamma: float = 0.1  # the learning rate is multiplied by this at each milestone
    weight_decay: float = 1e-6  # Adam's L2 penalty on the weights
    batch_size: int = 200  # training points per step
    refresh_bn: bool = False  # at the end, recompute BatchNorm statistics over all training data (precise BN)

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, f"epochs={self.epochs} must be >= 0")
        _check(self.lr > 0, f"lr={self.lr} must be > 0")
        _check(
            self.batch_size >= 2,
            f"batch_size={self.batch_size} must be >= 2: the nets' batch normalisation needs two or more rows per "
            "training step",
        )
        _check(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")


@dataclass(frozen=True)
class PretrainConfig(OptimConfig):
    method: str = "autoencoder"  # "autoencoder" (reconstruct) or "rotation" (predict the turn; images), or registered
    options: dict = field(default_factory=dict)  # the method's keyword arguments (rotation: flip, on by default)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            isinstance(self.method, str) and self.method != "", "pretrain.method must be a pretraining method's name"
        )
        _check(
            PRETRAINERS.known(self.method),
            f"pretrain.method={self.method!r} is unknown{PRETRAINERS.near(self.method)}; accepted: "
            f"{', '.join(PRETRAINERS.available())} (your own: @register_pretrainer, docs/plugins.md)",
        )

    @classmethod
    def of(cls, opt: OptimConfig) -> PretrainConfig:
        """``opt`` as pretraining settings: a plain :class:`OptimConfig` (a recipe's schedule) pretrains by
        the default method."""
        if isinstance(opt, cls):
            return opt
        _check(isinstance(opt, OptimConfig), f"pretrain={opt!r}: give a PretrainConfig (or an OptimConfig)")
        return cls(**{f.name: getattr(opt, f.name) for f in dataclasses.fields(OptimConfig)})


@dataclass(frozen=True)
class SVDDConfig(OptimConfig):
    objective: str = "soft-boundary"  # or "one-class" (mean distance to the own centre)
    nu: float = 0.1  # share of training points allowed outside their sphere; radius = (1-nu) quantile
    warmup_epochs: int = 10  # radii stay fixed (at 0) until this many epochs have completed
    eps: float = 0.1  # centre coordinates with |c| < eps are pushed to +-eps (avoids trivial solutions)
    score: str = "ratio"  # min over spheres of: ratio d_k / R_k^2, margin d_k - R_k^2, distance d_k
    radius_update: str = "epoch"  # R_k from the whole epoch's distances, or "batch" (each step, as Ruff et al.)
    shared_radius: bool = False  # one radius for all spheres (quantile over every point's own distance)
    reassign: bool = False  # after each epoch move every training point to its nearest sphere (by `score`)
    recentre: bool = False  # at the end, each centre moves to its cluster's mean in the trained embedding
    recon_weight: float = 0.0  # > 0 keeps the autoencoder's reconstruction loss during SVDD, with this weight
    score_multi: float = 1.0  # the multi-sphere score's weight in a combined score (0: the other terms alone)
    score_single: float = 0.0  # > 0: + this x the standardised score of one sphere trained from the same AE
    score_recon: float = 0.0  # > 0: score = standardised sphere score + this x standardised AE reconstruction error
    score_knn: float = 0.0  # > 0: + this x the standardised mean distance to the knn_k nearest training points
    knn_k: int = 5  # with score_knn: neighbours of the k-NN term
    knn_space: str = "embedding"  # with score_knn: "embedding" (the multi-sphere encoder's), "autoencoder"
    # (the pretrained autoencoder's encoder), "input" (the preprocessed input), "raw" (the data as given), or
    # several joined by "+" ("autoencoder+raw"): one k-NN column per space, each weighted by score_knn
    holdout_fraction: float = 0.0  # > 0: hold out this share of the normal data; stop when its loss stalls
    patience: int = 10  # with holdout_fraction: epochs without a better held-out loss before stopping

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.score in SCORE_RULES, f"svdd.score={self.score!r} is unknown; accepted: {SCORE_RULES}")
        _check(
            self.radius_update in RADIUS_UPDATES,
            f"svdd.radius_update={self.radius_update!r} is unknown; accepted: {RADIUS_UPDATES}",
        )
        _check(self.recon_weight >= 0, f"svdd.recon_weight={self.recon_weight} must be >= 0")
        _check(self.score_multi >= 0, f"svdd.score_multi={self.score_multi} must be >= 0 (0 = not in the score)")
        _check(self.score_single >= 0, f"svdd.score_single={self.score_single} must be >= 0 (0 = no one-sphere term)")
        _check(self.score_recon >= 0, f"svdd.score_recon={self.score_recon} must be >= 0 (0 = sphere score alone)")
        _check(self.score_knn >= 0, f"svdd.score_knn={self.score_knn} must be >= 0 (0 = no k-NN term)")
        _check(self.knn_k >= 1, f"svdd.knn_k={self.knn_k} must be >= 1")
        spaces = self.knn_spaces
        _check(
            all(s in KNN_SPACES for s in spaces) and len(set(spaces)) == len(spaces),
            f"svdd.knn_space={self.knn_space!r} is unknown; accepted: one of {KNN_SPACES}, or several of them "
            "joined by '+' (each once), e.g. 'autoencoder+raw'",
        )
        _check(
            0.0 <= self.holdout_fraction < 0.5,
            f"svdd.holdout_fraction={self.holdout_fraction} must be in [0, 0.5) (0 = no early stopping)",
        )
        _check(self.patience >= 1, f"svdd.patience={self.patience} must be >= 1")
        _check(
            self.objective in OBJECTIVES,
            f"svdd.objective={self.objective!r} is unknown; accepted: {OBJECTIVES}",
        )
        _check(0.0 < self.nu <= 1.0, f"svdd.nu={self.nu} must be in (0, 1]")
        _check(self.warmup_epochs >= 0, f"svdd.warmup_epochs={self.warmup_epochs} must be >= 0")
        _check(self.eps >= 0, f"svdd.eps={self.eps} must be >= 0")

    def score_terms(self) -> str:
        """What the detector's score adds up, in words (weights other than 1 shown), for summaries."""
        knn_in = {
            "embedding": "sphere embedding",
            "autoencoder": "autoencoder embedding",
            "input": "preprocessed input",
            "raw": "raw input",
        }
        terms = [
            (self.score_multi, "sphere score"),
            (self.score_single, "one-sphere score"),
            (self.score_recon, "reconstruction error"),
            *[(self.score_knn, f"{self.knn_k}-NN distance ({knn_in[s]})") for s in self.knn_spaces],
        ]
        return " + ".join(name if w == 1 else f"{w:g} x {name}" for w, name in terms if w > 0)

    def check_score(self) -> None:
        """Refuse a score with no term. Checked on the whole configuration (by ``fit`` and the run), not
        here per setting, so that overrides may come in any order."""
        _check(
            self.score_multi > 0 or max(self.score_single, self.score_recon, self.score_knn) > 0,
            "svdd.score_multi=0 leaves no score: set svdd.score_single, svdd.score_recon or svdd.score_knn > 0, "
            "or svdd.score_multi > 0",
        )

    @property
    def knn_spaces(self) -> tuple[str, ...]:
        """The spaces of ``knn_space`` ("autoencoder+raw" -> ("autoencoder", "raw")), one k-NN column each."""
        return tuple(self.knn_space.split("+"))

    @property
    def keeps_autoencoder(self) -> bool:
        """Whether the score needs the pretrained autoencoder: its reconstruction error, or its embedding
        for the k-NN term."""
        return self.score_recon > 0 or (self.score_knn > 0 and "autoencoder" in self.knn_spaces)


@dataclass(frozen=True)
class ClusteringConfig:
    name: str = "finch"  # a registered clusterer: `python -m toolkit plugins` lists them
    options: dict = field(default_factory=dict)  # keyword arguments for the clusterer's constructor
    min_cluster_size: int = 10  # smaller clusters merge into the nearest one (a stable radius quantile)
    min_cluster_fraction: float = 0.0  # the same as a share of the training points; the larger bound wins
    max_singleton_fraction: float = 0.5  # more points than this alone in their cluster is an error

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name != "", "clustering.name must be a clusterer name")
        _check(self.min_cluster_size >= 1, f"clustering.min_cluster_size={self.min_cluster_size} must be >= 1")
        _check(
            0.0 <= self.min_cluster_fraction < 1.0,
            f"clustering.min_cluster_fraction={self.min_cluster_fraction} must be in [0, 1)",
        )
        _check(
            0.0 < self.max_singleton_fraction <= 1.0,
            f"clustering.max_singleton_fraction={self.max_singleton_fraction} must be in (0, 1]",
        )

    def min_size(self, n_points: int) -> int:
        """The effective minimum cluster size for ``n_points`` training points."""
        return max(self.min_cluster_size, math.ceil(self.min_cluster_fraction * n_points))


@dataclass(frozen=True)
class MonitorConfig:
    projector_samples: int = 2000  # test points shown in TensorBoard's projector (and saved for the report)
    extremes: int = 32  # most normal / most anomalous test images shown at the end

    def __post_init__(self) -> None:
        _check(self.projector_samples >= 1, f"monitor.projector_samples={self.projector_samples} must be >= 1")
        _check(self.extremes >= 0, f"monitor.extremes={self.extremes} must be >= 0")


@dataclass(frozen=True)
class DistConfig:
    backend: str = ""  # "" = one process; "gloo" (CPU) or "nccl" (GPUs) for several (idist.Parallel, torchrun)
    nproc_per_node: int = 1  # processes to spawn on this machine (under torchrun leave it at 1)

    def __post_init__(self) -> None:
        _check(self.backend in BACKENDS, f"dist.backend={self.backend!r} is unknown; accepted: {BACKENDS}")
        _check(self.nproc_per_node >= 1, f"dist.nproc_per_node={self.nproc_per_node} must be >= 1")
        _check(
            self.nproc_per_node == 1 or self.backend != "",
            f"dist.nproc_per_node={self.nproc_per_node} needs a backend: --backend=gloo (CPU) or nccl (GPUs)",
        )


@dataclass(frozen=True)
class ModelConfig:
    """The model's settings: all that ``MultiRadiusDeepSVDD.fit`` trains by. Everything else in
    :class:`Config` is the run's (data, device, run folder, resume, baseline, evaluation, monitoring,
    processes): it changes where and how a run happens and what it reports, not the model."""

    seed: int = 0
    preprocess: str = "auto"
    net: NetConfig = field(default_factory=NetConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # a plain OptimConfig is taken as one
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    svdd: SVDDConfig = field(default_factory=SVDDConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pretrain", PretrainConfig.of(self.pretrain))


MODEL_SETTINGS = tuple(f.name for f in dataclasses.fields(ModelConfig))


@dataclass(frozen=True)
class Config:
    """A recipe: the model's settings (``seed``, ``net``, ``pretrain``, ``clustering``, ``svdd``; see
    :attr:`model`) and the run's, flat, so the command line names each by one dotted key."""

    name: str = "digits"  # run name; used in the default run folder
    seed: int = 0  # model: every random draw of the fit (weights, batches, clusterer)
    preprocess: str = "auto"  # model: "gcn-minmax" (per image), "standardize" (per feature), "none"; auto: by data
    device: str = "auto"  # auto (cuda when available), cpu, cuda, cuda:1, ...
    run_dir: str = ""  # empty: runs/<name>-<timestamp>
    resume: bool = False  # continue the run in run_dir (or the newest runs/<name>-*) from its checkpoints
    baseline: bool = True  # also train single-sphere Deep SVDD from the same autoencoder
    eval_every: int = 1  # test AUROC every this many epochs (0 = only at the end)
    progress: str = "auto"  # "auto": bars on a terminal, one line per epoch otherwise; "bar", "lines" or "none"
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # a plain OptimConfig is taken as one
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    svdd: SVDDConfig = field(default_factory=SVDDConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    dist: DistConfig = field(default_factory=DistConfig)

    @property
    def model(self) -> ModelConfig:
        """The model's settings alone."""
        return ModelConfig(**{k: getattr(self, k) for k in MODEL_SETTINGS})

    def __post_init__(self) -> None:
        object.__setattr__(self, "pretrain", PretrainConfig.of(self.pretrain))  # recipes give an OptimConfig
        _check(self.preprocess in PREPROCESS, f"preprocess={self.preprocess!r} is unknown; accepted: {PREPROCESS}")
        _check(self.eval_every >= 0, f"eval_every={self.eval_every} must be >= 0")
        _check(self.progress in PROGRESS, f"progress={self.progress!r} is unknown; accepted: {PROGRESS}")
        _check(
            self.svdd.radius_update == "epoch" or self.dist.nproc_per_node == 1,
            "svdd.radius_update='batch' takes each batch's quantile, which differs between processes; "
            "use radius_update='epoch' with several processes",
        )


# --------------------------------------------------------------------------------------------- fields


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_table(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Every leaf setting as ``dotted name -> (type, current value)``."""
    out: dict[str, tuple[Any, Any]] = {}
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(field_table(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (hints[f.name], value)
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    if isinstance(tp, types.UnionType):
        return " | ".join(_type_name(t) for t in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


@functools.cache
def field_help() -> dict[str, str]:
    """Each setting's help text: the comment beside its field in this file (the one place it is written),
    by dotted name."""
    comments: dict[str, dict[str, str]] = {}
    cls_name = None
    for line in Path(__file__).read_text().splitlines():
        if m := re.match(r"^class (\w+)", line):
            cls_name = m.group(1)
        elif cls_name and (m := re.match(r"^    (\w+): [^=]+=[^#]*#\s*(.+)$", line)):
            comments.setdefault(cls_name, {})[m.group(1)] = m.group(2).strip()

    def walk(cls: type, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                out.update(walk(hints[f.name], f"{prefix}{f.name}."))
                continue
            own = [c for klass in cls.__mro__ if (c := comments.get(klass.__name__, {}).get(f.name))]
            out[f"{prefix}{f.name}"] = own[0] if own else ""
        return out

    return walk(Config, "")


# the settings with a closed set of values, shown with their help
CHOICES = {
    "preprocess": PREPROCESS,
    "data.image_mode": IMAGE_MODES,
    "net.arch": ARCHS,
    "pretrain.method": PRETRAIN_METHODS,
    "svdd.objective": OBJECTIVES,
    "svdd.score": SCORE_RULES,
    "svdd.radius_update": RADIUS_UPDATES,
    "svdd.knn_space": KNN_SPACES,
    "dist.backend": BACKENDS,
    "progress": PROGRESS,
}


def describe(cfg: Config) -> str:
    """Human-readable list of every setting: its type, its value in ``cfg``, what it does and, where the
    values are a closed set, which are accepted."""
    helps = {k: h + (f" [{', '.join(map(repr, CHOICES[k]))}]" if k in CHOICES else "") for k, h in field_help().items()}
    rows = [(k, _type_name(t), repr(list(v) if isinstance(v, tuple) else v)) for k, (t, v) in field_table(cfg).items()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows if len(r[2]) <= 24)
    return "\n".join(f"  --{k:<{w0}}  {t:<{w1}}  {v:<{w2}}  {helps.get(k, '')}".rstrip() for k, t, v in rows)


def _coerce(key: str, tp: Any, value: Any, *, strict: bool = False, name: str | None = None) -> Any:
    """Check ``value`` against the field type ``tp``; return it in the field's own type. ``strict`` (a saved
    configuration, whose values have their own types) takes no text for a boolean and no number for a
    string, as the command line does; ``name`` is how the message names the setting (``--KEY``)."""
    origin = typing.get_origin(tp)

    def bad(accepted: str) -> ConfigError:
        return ConfigError(f"{name or '--' + key}={value!r} has the wrong type: expected {accepted}")

    if tp is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad("a boolean (True or False)" if not strict else "a boolean (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if not strict and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # the command line reads --run_dir=2024 as an int
        raise bad("a string")
    if origin is tuple:
        (elem,) = typing.get_args(tp)[:1]
        single = isinstance(value, elem) and not isinstance(value, bool) and "," not in str(value)
        items = [value] if single else value
        if not isinstance(items, (list, tuple)) or not all(
            isinstance(v, elem) and not isinstance(v, bool) for v in items
        ):
            raise bad(f"a list of {_type_name(elem)}, e.g. [0,1,3]")
        return tuple(items)
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise bad("a mapping, e.g. '{\"level\": 2}'")
    raise bad(_type_name(tp))  # pragma: no cover - every field type is handled above


def resolve_key(cfg: Config, key: str) -> str:
    """Map a dotted or bare key to its dotted field name; refuse unknown or ambiguous keys."""
    table = field_table(cfg)
    key = key.replace("-", "_")
    if key in table:
        return key
    head, _, tail = key.rpartition(".")
    if head in table and table[head][0] is dict and tail:
        return key  # an entry inside a dict setting, e.g. clustering.options.level
    matches = [k for k in table if k.split(".")[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"--{key} is ambiguous; use one of: {', '.join('--' + m for m in matches)}")
    near = difflib.get_close_matches(key, list(table), n=3, cutoff=0.6)
    near += [k for k in table if k.split(".")[-1] == key.split(".")[-1] and k not in near][:1]
    hint = f"; did you mean {' or '.join('--' + k for k in near)}?" if near else ""
    raise ConfigError(f"unknown setting --{key}{hint} (--help lists every setting with its type, value and meaning)")


def _replace_path(obj: Any, path: list[str], value: Any) -> Any:
    name = path[0]
    if len(path) == 1:
        return dataclasses.replace(obj, **{name: value})
    child = getattr(obj, name)
    if isinstance(child, dict):  # dotted entry inside a dict setting
        return dataclasses.replace(obj, **{name: {**child, ".".join(path[1:]): value}})
    return dataclasses.replace(obj, **{name: _replace_path(child, path[1:], value)})


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return ``cfg`` with ``overrides`` applied; every key and value is checked first."""
    table = field_table(cfg)
    for raw_key, value in overrides.items():
        key = resolve_key(cfg, raw_key)
        if key in table:
            value = _coerce(key, table[key][0], value)
        try:
            cfg = _replace_path(cfg, key.split("."), value)
        except ConfigError as e:
            raise ConfigError(f"--{key}={value!r}: {e}") from None
    return cfg


# --------------------------------------------------------------------------------------------- recipes


def packaged_recipes() -> dict[str, Path]:
    """The recipes installed with the toolkit (``toolkit.recipes``, ``recipes/`` in the repository), by name:
    found through the package, so ``python -m toolkit mnist`` works from a wheel as from a checkout."""
    try:
        root = Path(str(importlib.resources.files("toolkit.recipes")))
    except ModuleNotFoundError:
        raise ConfigError(
            "the packaged recipes (toolkit.recipes) are not installed; install the project (pip install -e .) "
            "or pass a path to a recipe .py file"
        ) from None
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.name.startswith("_")}


def default_recipe() -> Path:
    """The packaged ``digits`` recipe (``recipes/digits.py``): it runs on data shipped with scikit-learn."""
    return packaged_recipes()["digits"]


def load_recipe(path: str | Path) -> Config:
    """Run a recipe and return the ``config`` it defines. ``path`` is a packaged recipe's name (a string
    such as ``"mnist"``, no ``/`` and no suffix), the path of any recipe file, or a run's config.json (its
    settings replayed, each checked by :func:`replay`). A bare name ending in ``.py`` or ``.json``, or naming
    a file in the current folder and no packaged recipe, is a path."""
    if isinstance(path, str) and Path(path).name == path and Path(path).suffix not in (".py", ".json"):
        recipes = packaged_recipes()
        if path in recipes:
            path = recipes[path]
        elif not Path(path).is_file():  # a file of that name in the current folder is taken as its path
            raise ConfigError(
                f"unknown recipe {path!r}; packaged recipes: {', '.join(recipes)}; "
                "or pass the path of a .py file that defines `config = Config(...)`"
            )
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"recipe {str(path)!r} does not exist; pass a packaged recipe name ({', '.join(packaged_recipes())}), "
            "the path of a .py file such as recipes/mnist.py, or a run's config.json"
        )
    if p.suffix == ".json":  # a run's config.json: replay its settings, into a new run folder
        from .files import describe

        try:
            saved = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{str(path)!r} is not a run's config.json ({describe(e)})") from None
        cfg = replay(saved, str(path))
        return dataclasses.replace(cfg, run_dir="", resume=False)
    if p.suffix != ".py":
        raise ConfigError(
            f"recipe {str(path)!r} is not a Python file (.py) defining `config = Config(...)`, nor a run's config.json"
        )
    ns = runpy.run_path(str(p), run_name=f"recipe_{p.stem}")
    cfg = ns.get("config")
    if not isinstance(cfg, Config):
        raise ConfigError(f"recipe {str(path)!r} defines no `config = Config(...)` (found {type(cfg).__name__})")
    return cfg


def replay(saved: Any, source: str) -> Config:
    """The configuration a saved run's settings (a config.json's content) describe, every key and value
    checked as the command line's are: an unknown key is refused (with the nearest valid ones and the
    keys its section takes), and so is a value of the wrong type (2.7 for an integer, "3" for a number).
    A key the file leaves out keeps its default."""
    values: dict[str, Any] = {}

    def walk(obj: Any, cls: type, prefix: str) -> None:
        where = prefix.rstrip(".") or "the file"
        if not isinstance(obj, dict):
            raise ConfigError(f"{source}: {where} is {obj!r}; a JSON object of settings is expected")
        hints = _hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        for key, value in obj.items():
            dotted = f"{prefix}{key}"
            if key not in names:
                near = difflib.get_close_matches(str(key), names, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(prefix + n) for n in near)}?" if near else ""
                raise ConfigError(
                    f"{source}: unknown setting {dotted!r}{hint} ({'the top level' if not prefix else where} takes: "
                    f"{', '.join(names)})"
                )
            if dataclasses.is_dataclass(hints[key]):
                walk(value, hints[key], f"{dotted}.")
            else:
                values[dotted] = _coerce(dotted, hints[key], value, strict=True, name=f"{source}: {dotted}")

    walk(saved, Config, "")
    nested: dict[str, Any] = {}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return from_dict(nested)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> Config:
    """Inverse of :func:`to_dict` (lists become tuples again)."""

    def build(cls: type, values: dict[str, Any]) -> Any:
        hints = _hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            v, tp = values[f.name], hints[f.name]
            if dataclasses.is_dataclass(tp):
                v = build(tp, v)
            elif typing.get_origin(tp) is tuple:
                v = tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return build(Config, d)


def dumps(cfg: Config) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
