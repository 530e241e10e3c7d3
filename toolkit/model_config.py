"""The model's settings: what ``MultiRadiusDeepSVDD.fit`` trains by (the nets, pretraining, clustering,
Deep SVDD and the score), each a frozen dataclass whose fields carry their default, help text and
checks. :mod:`toolkit.config` adds the run's settings around them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .registry import PRETRAINER_BUILTINS, PRETRAINERS
from .settings import check as _check
from .settings import setting as _setting

ARCHS = ("auto", "mlp", "lenet28", "lenet32")
OBJECTIVES = ("soft-boundary", "one-class")
SCORE_RULES = ("margin", "ratio", "distance")  # toolkit.svdd scores by these (see sphere_scores)
RADIUS_UPDATES = ("epoch", "batch")
KNN_SPACES = ("embedding", "autoencoder", "input", "raw", "pooled")  # where the k-NN score term measures distances
OPTIMIZERS = ("adam", "sgd")  # what toolkit.stages builds for each stage (OptimConfig.optimizer)
STORAGES = ("float32", "float16")  # the precision a detector keeps its k-NN rows and centres in
PRETRAIN_METHODS = tuple(PRETRAINER_BUILTINS)  # the built-in pretraining methods (toolkit.pretext)


@dataclass(frozen=True)
class NetConfig:
    arch: str = _setting("auto", "auto picks lenet28 for 1x28x28, lenet32 for 3x32x32, mlp for flat vectors")
    rep_dim: int = _setting(0, "embedding size; 0 = the architecture's default (32 lenet28, 128 lenet32, 16 mlp)")
    hidden: tuple[int, ...] = _setting((32,), "mlp only: hidden widths of the encoder (mirrored in the decoder)")
    leak: float = _setting(0.1, "leaky-ReLU slope")
    fused: bool = _setting(
        False, "lenet nets, CPU only: exact, faster layer forms (toolkit/layers.py), rounding differently"
    )

    width: float = _setting(1.0, "lenet nets: a multiple of every layer's filters (1 = the paper's; 2 = twice as many)")

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, f"net.arch={self.arch!r} is unknown; accepted: {ARCHS}")
        _check(
            math.isfinite(self.width) and self.width > 0,
            f"net.width={self.width} must be a positive multiple of the filters",
        )
        _check(self.rep_dim >= 0, f"net.rep_dim={self.rep_dim} must be >= 0 (0 = the default)")
        _check(all(h > 0 for h in self.hidden), f"net.hidden={list(self.hidden)} must be positive widths")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = _setting(150, "passes over the training data")
    optimizer: str = _setting("adam", 'or "sgd" (stochastic gradient descent with Nesterov momentum)')
    lr: float = _setting(1e-4, "the optimizer's learning rate")
    momentum: float = _setting(0.9, "sgd only: its Nesterov momentum (0 = plain SGD)")
    milestones: tuple[int, ...] = _setting((50, 100), "epochs at which the learning rate is multiplied by gamma")
    gamma: float = _setting(0.1, "the learning rate is multiplied by this at each milestone")
    weight_decay: float = _setting(1e-6, "the optimizer's L2 penalty on the weights")
    batch_size: int = _setting(200, "training points per step")
    refresh_bn: bool = _setting(False, "at the end, recompute BatchNorm statistics over all training data (precise BN)")

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, f"epochs={self.epochs} must be >= 0")
        _check(self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r} is unknown; accepted: {OPTIMIZERS}")
        _check(0 <= self.momentum < 1, f"momentum={self.momentum} must be in [0, 1)")
        _check(self.lr > 0, f"lr={self.lr} must be > 0")
        _check(
            self.batch_size >= 2,
            f"batch_size={self.batch_size} must be >= 2: the nets' batch normalisation needs two or more rows per "
            "training step",
        )
        _check(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")


@dataclass(frozen=True)
class PretrainConfig(OptimConfig):
    method: str = _setting(
        "autoencoder", '"autoencoder" (reconstruct) or "rotation" (predict the turn; images), or registered'
    )
    options: dict = _setting(
        factory=dict, text="the method's keyword arguments (`python -m toolkit plugins` lists each method's)"
    )

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
    objective: str = _setting("soft-boundary", 'or "one-class" (mean distance to the own centre)')
    nu: float = _setting(0.1, "share of training points allowed outside their sphere; radius = (1-nu) quantile")
    warmup_epochs: int = _setting(10, "radii stay fixed (at 0) until this many epochs have completed")
    eps: float = _setting(
        0.1, "centre coordinates with |c| < eps pushed to +-eps (against trivial solutions; not unit-length embeddings)"
    )
    radius_update: str = _setting(
        "epoch", 'R_k from the whole epoch\'s distances, or "batch" (each step, as Ruff et al.)'
    )
    single_lr: float = _setting(
        0.0, "> 0: the one sphere (the baseline, score.single) trains at this learning rate instead of lr"
    )
    shared_radius: bool = _setting(False, "one radius for all spheres (quantile over every point's own distance)")
    reassign: bool = _setting(False, "after each epoch move every training point to its nearest sphere (by score.rule)")
    recentre: bool = _setting(False, "at the end, each centre moves to its cluster's mean in the trained embedding")
    recon_weight: float = _setting(0.0, "> 0 keeps the autoencoder's reconstruction loss during SVDD, with this weight")
    holdout_fraction: float = _setting(0.0, "> 0: hold out this share of the normal data; stop when its loss stalls")
    patience: int = _setting(10, "with holdout_fraction: epochs without a better held-out loss before stopping")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            self.radius_update in RADIUS_UPDATES,
            f"svdd.radius_update={self.radius_update!r} is unknown; accepted: {RADIUS_UPDATES}",
        )
        _check(self.single_lr >= 0, f"svdd.single_lr={self.single_lr} must be >= 0 (0 = svdd.lr)")
        _check(self.recon_weight >= 0, f"svdd.recon_weight={self.recon_weight} must be >= 0")
        _check(
            0.0 <= self.holdout_fraction < 0.5,
            f"svdd.holdout_fraction={self.holdout_fraction} must be in [0, 0.5) (0 = no early stopping)",
        )
        _check(self.patience >= 1, f"svdd.patience={self.patience} must be >= 1")
        _check(self.objective in OBJECTIVES, f"svdd.objective={self.objective!r} is unknown; accepted: {OBJECTIVES}")
        _check(0.0 < self.nu <= 1.0, f"svdd.nu={self.nu} must be in (0, 1]")
        _check(self.warmup_epochs >= 0, f"svdd.warmup_epochs={self.warmup_epochs} must be >= 0")
        _check(self.eps >= 0, f"svdd.eps={self.eps} must be >= 0")

    def for_model(self, name: str) -> SVDDConfig:
        """The settings the ``name`` model ("multi" or "single") trains with: the one sphere at ``single_lr``
        when that is set, every other setting shared."""
        if name == "single" and self.single_lr > 0:
            return dataclasses.replace(self, lr=self.single_lr)
        return self


@dataclass(frozen=True)
class ScoreConfig:
    rule: str = _setting(
        "ratio",
        "the spheres' score, the min over the spheres of: ratio d_k / R_k^2, margin d_k - R_k^2, or distance d_k "
        "(d_k: the squared distance to centre k, R_k its radius)",
    )
    multi: float = _setting(1.0, "the multi-sphere score's weight in a combined score (0: the other terms alone)")
    single: float = _setting(
        0.0, "> 0: + this x the standardised score of one sphere trained from the same pretrained encoder"
    )
    pretext: float = _setting(
        0.0,
        "> 0: + this x the standardised score of the pretrained network itself, by its method's `score`: the "
        "autoencoder's reconstruction error, rotation's cross-entropy over the four rotations",
    )
    knn: float = _setting(0.0, "> 0: + this x the standardised mean distance to the knn_k nearest training points")
    knn_k: int = _setting(5, "with score.knn: neighbours of the k-NN term")
    knn_space: str = _setting(
        "embedding",
        'with score.knn: "embedding" (the multi-sphere encoder\'s), "autoencoder" (the pretrained '
        'network\'s encoder), "input" (the preprocessed input), "raw" (the data as given), "pooled" (images '
        "as given, each channel averaged over a 4x4 grid of patches: their colour layout), or several joined by "
        '"+" ("autoencoder+raw"): one k-NN column per space, each weighted by score.knn',
    )
    centres: float = _setting(
        0.0,
        "> 0: + this x the standardised distance to the nearest centre in centres_space: the means of the "
        "clusterer's partition (clustering.*) of the training points in that space, spheres that are not trained",
    )
    centres_space: str = _setting(
        "raw",
        'with score.centres: the space of the centres, as score.knn_space ("raw": the data as given); several '
        'joined by "+": one column per space, each partitioned on its own, each weighted by score.centres',
    )
    storage: str = _setting(
        "float32",
        "the precision of the rows the k-NN and nearest-centre terms keep (training rows, centres): float32, or "
        "float16 (half the file; the rows are rounded when fitted, so the fitted and the loaded detector score "
        "alike, in float32)",
    )
    calibration: float = _setting(
        0.0,
        "> 0: this share of the normal training data is held out of training, and the threshold is set on their "
        "scores (the conformal (1 - nu) quantile, or of contamination), so that new normal data are flagged at "
        "about that rate; 0: on the training data's own scores",
    )

    def __post_init__(self) -> None:
        _check(
            0.0 <= self.calibration < 0.5,
            f"score.calibration={self.calibration} must be in [0, 0.5) (0 = the threshold from the training scores)",
        )
        _check(self.rule in SCORE_RULES, f"score.rule={self.rule!r} is unknown; accepted: {SCORE_RULES}")
        _check(self.storage in STORAGES, f"score.storage={self.storage!r} is unknown; accepted: {STORAGES}")
        _check(self.multi >= 0, f"score.multi={self.multi} must be >= 0 (0 = not in the score)")
        _check(self.single >= 0, f"score.single={self.single} must be >= 0 (0 = no one-sphere term)")
        _check(self.pretext >= 0, f"score.pretext={self.pretext} must be >= 0 (0 = no pretext term)")
        _check(self.knn >= 0, f"score.knn={self.knn} must be >= 0 (0 = no k-NN term)")
        _check(self.knn_k >= 1, f"score.knn_k={self.knn_k} must be >= 1")
        _check(self.centres >= 0, f"score.centres={self.centres} must be >= 0 (0 = no centres term)")
        for setting, spaces in (("knn_space", self.knn_spaces), ("centres_space", self.centres_spaces)):
            _check(
                all(s in KNN_SPACES for s in spaces) and len(set(spaces)) == len(spaces),
                f"score.{setting}={'+'.join(spaces)!r} is unknown; accepted: one of {KNN_SPACES}, or several of "
                "them joined by '+' (each once), e.g. 'autoencoder+raw'",
            )

    def terms(self, pretext: str = "pretext score") -> str:
        """What the detector's score adds up, in words (weights other than 1 shown), for summaries;
        ``pretext`` names the pretrained network's own score (``toolkit.pretext.score_terms`` names it by
        the run's pretraining method)."""
        knn_in = {"embedding": "sphere embedding", "autoencoder": "autoencoder embedding"}
        knn_in |= {"input": "preprocessed input", "raw": "raw input", "pooled": "pooled raw images"}
        terms = [
            (self.multi, "sphere score"),
            (self.single, "one-sphere score"),
            (self.pretext, pretext),
            *[(self.knn, f"{self.knn_k}-NN distance ({knn_in[s]})") for s in self.knn_spaces],
            *[(self.centres, f"nearest-centre distance ({knn_in[s]})") for s in self.centres_spaces],
        ]
        return " + ".join(name if w == 1 else f"{w:g} x {name}" for w, name in terms if w > 0)

    def check(self) -> None:
        """Refuse a score with no term. Checked on the whole configuration (by ``fit`` and the run), not
        here per setting, so that overrides may come in any order."""
        _check(
            self.multi > 0 or max(self.single, self.pretext, self.knn, self.centres) > 0,
            "score.multi=0 leaves no score: set score.single, score.pretext, score.knn or score.centres > 0, "
            "or score.multi > 0",
        )

    @property
    def knn_spaces(self) -> tuple[str, ...]:
        """The spaces of ``knn_space`` ("autoencoder+raw" -> ("autoencoder", "raw")), one k-NN column each."""
        return tuple(self.knn_space.split("+"))

    @property
    def centres_spaces(self) -> tuple[str, ...]:
        """The spaces of ``centres_space``, one nearest-centre column each."""
        return tuple(self.centres_space.split("+"))

    @property
    def keeps_autoencoder(self) -> bool:
        """Whether the score needs the pretrained network: its own score (``score.pretext``), or its
        encoder's embedding for the k-NN or nearest-centre term."""
        uses = (self.knn > 0 and "autoencoder" in self.knn_spaces) or (
            self.centres > 0 and "autoencoder" in self.centres_spaces
        )
        return self.pretext > 0 or uses


@dataclass(frozen=True)
class ClusteringConfig:
    name: str = _setting("finch", "a registered clusterer: `python -m toolkit plugins` lists them")
    options: dict = _setting(factory=dict, text="keyword arguments for the clusterer's constructor")
    min_cluster_size: int = _setting(10, "smaller clusters merge into the nearest one (a stable radius quantile)")
    min_cluster_fraction: float = _setting(0.0, "the same as a share of the training points; the larger bound wins")
    max_singleton_fraction: float = _setting(0.5, "more points than this alone in their cluster is an error")

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
class ModelConfig:
    """The model's settings: all that ``MultiRadiusDeepSVDD.fit`` trains by. Everything else in
    :class:`Config` is the run's (data, device, run folder, resume, baseline, evaluation, monitoring,
    processes): it changes where and how a run happens and what it reports, not the model."""

    seed: int = 0
    preprocess: str = "auto"
    net: NetConfig = field(default_factory=NetConfig)
    pretrain: PretrainConfig = _setting(factory=PretrainConfig, text="a plain OptimConfig is taken as one")
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    svdd: SVDDConfig = field(default_factory=SVDDConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pretrain", PretrainConfig.of(self.pretrain))


MODEL_SETTINGS = tuple(f.name for f in dataclasses.fields(ModelConfig))
