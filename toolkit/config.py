"""The run configuration: typed, frozen dataclasses, each setting with its default, its help text and
its checks (declared by :mod:`toolkit.settings`). The model's settings are in :mod:`toolkit.model_config`
(and importable from here); this module adds the run's: the data, monitoring, processes, and
:class:`Config`, the recipe itself.

A recipe is a Python file that defines ``config = Config(...)`` (values only). Each field keeps its help
text in its metadata (``field(default=..., metadata={"help": ...})``); ``--help`` shows it whole. Checked
overrides and the help table are in :mod:`toolkit.overrides`, recipe loading and saved configurations in
:mod:`toolkit.recipes_loader`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model_config import (
    ARCHS,
    KNN_SPACES,
    MODEL_SETTINGS,
    OBJECTIVES,
    OPTIMIZERS,
    PRETRAIN_METHODS,
    RADIUS_UPDATES,
    SCORE_RULES,
    STORAGES,
    ClusteringConfig,
    ModelConfig,
    NetConfig,
    OptimConfig,
    PretrainConfig,
    ScoreConfig,
    SVDDConfig,
)
from .settings import ConfigError
from .settings import check as _check
from .settings import setting as _setting

__all__ = [  # the model's settings (toolkit.model_config), importable from here too, and the run's
    "ARCHS",
    "BACKENDS",
    "DATASETS",
    "IMAGE_MODES",
    "KNN_SPACES",
    "MODEL_SETTINGS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "PREPROCESS",
    "PRETRAIN_METHODS",
    "PROGRESS",
    "RADIUS_UPDATES",
    "SCORE_RULES",
    "STORAGES",
    "ClusteringConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DistConfig",
    "ModelConfig",
    "MonitorConfig",
    "NetConfig",
    "OptimConfig",
    "PretrainConfig",
    "SVDDConfig",
    "ScoreConfig",
]

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
BACKENDS = ("", "gloo", "nccl")
PROGRESS = ("auto", "bar", "lines", "none")  # how a run shows its progress
PREPROCESS = ("auto", "gcn-minmax", "standardize", "minmax", "none")  # toolkit.preprocessing.build_preprocessor
IMAGE_MODES = ("auto", "grey", "colour")  # how an image folder is read (toolkit.sources)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _setting(
        "digits", "a built-in data set, or your own: a folder of images, a .npy/.npz array, a .csv table"
    )
    root: str = _setting(
        "data", "folder holding the torchvision datasets (MNIST/, FashionMNIST/, cifar-10-batches-py/)"
    )
    download: bool = _setting(True, "fetch missing files with torchvision (needs network)")
    normal_classes: tuple[int | str, ...] = _setting(
        (0, 1, 3), "normal classes (others: anomalies); own data: labels, folders"
    )
    test_fraction: float = _setting(
        0.5, "digits and own labelled data: stratified share of the data held out for testing"
    )
    label_column: str = _setting("label", ".csv tables: the column holding each row's class, if the table has it")
    image_mode: str = _setting(
        "auto", 'image folders: "grey" (read as 1x28x28), "colour" (3x32x32), "auto" (colour if any is)'
    )
    test: str = _setting(
        "", "own data: a separate labelled test set (same kinds); then every normal item of dataset trains"
    )

    @property
    def own(self) -> bool:
        """The data are the user's own files (a path), not a built-in data set."""
        return self.dataset not in DATASETS

    def __post_init__(self) -> None:
        _check(
            isinstance(self.dataset, str) and self.dataset != "",
            f"data.dataset={self.dataset!r}: give a built-in data set {DATASETS} or the path of your data",
        )
        _check(len(self.normal_classes) > 0, "data.normal_classes is empty; give at least one class, e.g. [0,1,3]")
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
class MonitorConfig:
    projector_samples: int = _setting(2000, "test points shown in TensorBoard's projector (and saved for the report)")
    extremes: int = _setting(32, "most normal / most anomalous test images shown at the end")

    def __post_init__(self) -> None:
        _check(self.projector_samples >= 1, f"monitor.projector_samples={self.projector_samples} must be >= 1")
        _check(self.extremes >= 0, f"monitor.extremes={self.extremes} must be >= 0")


@dataclass(frozen=True)
class DistConfig:
    backend: str = _setting(
        "", '"" = one process; "gloo" (CPU) or "nccl" (GPUs) for several (idist.Parallel, torchrun)'
    )
    nproc_per_node: int = _setting(1, "processes to spawn on this machine (under torchrun leave it at 1)")

    def __post_init__(self) -> None:
        _check(self.backend in BACKENDS, f"dist.backend={self.backend!r} is unknown; accepted: {BACKENDS}")
        _check(self.nproc_per_node >= 1, f"dist.nproc_per_node={self.nproc_per_node} must be >= 1")
        _check(
            self.nproc_per_node == 1 or self.backend != "",
            f"dist.nproc_per_node={self.nproc_per_node} needs a backend: --backend=gloo (CPU) or nccl (GPUs)",
        )


@dataclass(frozen=True)
class Config:
    """A recipe: the model's settings (``seed``, ``net``, ``pretrain``, ``clustering``, ``svdd``, ``score``; see
    :attr:`model`) and the run's, flat, so the command line names each by one dotted key."""

    name: str = _setting("digits", "run name; used in the default run folder")
    seed: int = _setting(0, "model: every random draw of the fit (weights, batches, clusterer)")
    preprocess: str = _setting(
        "auto", 'model: "gcn-minmax" (per image), "standardize" or "minmax" (per feature), "none"; auto: by data'
    )
    device: str = _setting("auto", "auto (cuda when available), cpu, cuda, cuda:1, ...")
    run_dir: str = _setting("", "empty: runs/<name>-<timestamp>")
    resume: bool = _setting(False, "continue the run in run_dir (or the newest runs/<name>-*) from its checkpoints")
    baseline: bool = _setting(True, "also train single-sphere Deep SVDD from the same autoencoder")
    eval_every: int = _setting(1, "test AUROC every this many epochs (0 = only at the end)")
    progress: str = _setting(
        "auto", '"auto": bars on a terminal, one line per epoch otherwise; "bar", "lines" or "none"'
    )
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    pretrain: PretrainConfig = _setting(factory=PretrainConfig, text="a plain OptimConfig is taken as one")
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    svdd: SVDDConfig = field(default_factory=SVDDConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    dist: DistConfig = field(default_factory=DistConfig)

    @property
    def model(self) -> ModelConfig:
        """The model's settings alone."""
        return ModelConfig(**{k: getattr(self, k) for k in MODEL_SETTINGS})

    def __post_init__(self) -> None:
        object.__setattr__(self, "pretrain", PretrainConfig.of(self.pretrain))  # recipes give an OptimConfig
        _check(self.preprocess in PREPROCESS, f"preprocess={self.preprocess!r} is unknown; accepted: {PREPROCESS}")
        _check(0 <= self.seed < 2**32, f"seed={self.seed} must be an integer in [0, 2**32 - 1] (numpy's seeds)")
        _check(self.eval_every >= 0, f"eval_every={self.eval_every} must be >= 0")
        _check(self.progress in PROGRESS, f"progress={self.progress!r} is unknown; accepted: {PROGRESS}")
        _check(
            self.svdd.radius_update == "epoch" or self.dist.nproc_per_node == 1,
            "svdd.radius_update='batch' takes each batch's quantile, which differs between processes; "
            "use radius_update='epoch' with several processes",
        )
