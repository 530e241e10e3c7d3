"""Pretraining methods: how the encoder is trained before its embeddings are clustered and Deep SVDD
starts from it (``--pretrain.method=NAME``, its settings ``--pretrain.options.NAME=VALUE``).

A method is what a factory in the pretraining registry builds (``toolkit.registry``: the built-ins below by
name, ``@register_pretrainer("name")`` in your code, or the ``multi_radius_deep_svdd.pretrainers``
entry-point group); the factory's keyword arguments are its settings. The object has:

- ``build(arch, in_shape, rep_dim, hidden, leak, fused) -> nn.Module``: the pretraining net for the resolved
  architecture ``arch`` ("lenet28", "lenet32" or "mlp"), the sample shape and the ``net`` settings
  (``nets.net_options``), and ``width=`` (``net.width``) where it is not 1, which a method that builds
  LeNet nets takes to ``nets.build_encoder``. Its ``encoder`` is the bias-free encoder that clustering
  embeds with and that Deep SVDD trains a copy of; ``nets.build_encoder`` builds the architecture's own.
  The same call rebuilds the net when a detector file is loaded, so it must depend on its arguments and
  the method's settings only;
- ``loss(net, x, generator) -> Tensor``: the mean loss of one training batch ``x`` (preprocessed samples),
  the net in training mode. It calls ``net`` itself, which is wrapped for data-parallel training when
  there are several processes, and draws anything random from ``generator``, a ``torch.Generator`` on the
  batch's device seeded from the run's seed and the step, so that a run repeats exactly and a resumed one
  goes on as an uninterrupted one would;

and may have:

- ``reconstructs = True``: the net is ``encoder`` then ``decoder`` and ``net(x)`` reconstructs ``x``. Only
  then can Deep SVDD keep training the decoder (``svdd.recon_weight``); otherwise that setting is refused
  before any training;
- ``score(net, x) -> Tensor``: a per-sample anomaly score of the pretrained net in evaluation mode
  (higher = more anomalous) of preprocessed samples ``x``: the test AUROC during pretraining, and the
  detector's ``pretext`` score term (``score.pretext``). Without it, pretraining is not evaluated and
  ``score.pretext`` > 0 is refused before any training. The detector records it in its exported scorer,
  so it should call only ``net`` and tensor operations whose shapes follow the batch's;
- ``score_name``: what ``score`` measures, in words, for the run's summary (default: "NAME score").

The pretrained net is kept whole by the detector when the score uses it (its own score, or its encoder's
embedding for the k-NN term ``score.knn_space=autoencoder``), saved with it and exported with it.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigError, NetConfig
from .engines import reconstruction_error
from .nets import UnitEmbedding, build_autoencoder, build_encoder, net_keywords, net_options
from .registry import RegistryError, build_pretrainer

ROTATIONS = 4  # 0, 90, 180 and 270 degrees


class Autoencoding:
    """The paper's pretraining (Ruff et al., 2018): the bias-free autoencoder of the architecture, trained
    to reconstruct its input (the mean per-sample squared error); its reconstruction error scores."""

    reconstructs = True
    score_name = "reconstruction error"

    def build(
        self,
        arch: str,
        in_shape: tuple[int, ...],
        rep_dim: int = 0,
        hidden: tuple[int, ...] = (32,),
        leak: float = 0.1,
        fused: bool = False,
        width: float = 1.0,
    ) -> nn.Module:
        return build_autoencoder(arch, in_shape, rep_dim, hidden, leak, fused, width)

    def loss(self, net: nn.Module, x: Tensor, generator: torch.Generator) -> Tensor:
        return reconstruction_error(net, x).mean()

    def score(self, net: nn.Module, x: Tensor) -> Tensor:
        return reconstruction_error(net, x)


class RotationNet(nn.Module):
    """The architecture's bias-free encoder and a linear head on its embedding, with one output per
    rotation: ``net(x)`` gives the logits of which rotation ``x`` shows. With ``normalize`` the encoder
    that the rest of the toolkit takes (``net.encoder``) gives unit-length embeddings
    (:class:`~toolkit.nets.UnitEmbedding`, with ``mirrored`` the same for an image and its mirror image);
    the head is trained on the raw ones either way."""

    def __init__(self, encoder: nn.Module, rep_dim: int, normalize: bool = False, mirrored: bool = False) -> None:
        super().__init__()
        self.encoder = UnitEmbedding(encoder, mirrored) if normalize else encoder
        self.head = nn.Linear(rep_dim, ROTATIONS)

    def forward(self, x: Tensor) -> Tensor:
        raw = self.encoder.net if isinstance(self.encoder, UnitEmbedding) else self.encoder
        return self.head(raw(x))


def rotated(x: Tensor) -> tuple[Tensor, Tensor]:
    """Images ``x`` (N, C, H, W) in their four rotations (4N, C, H, W: all turned by 0 degrees, then by 90,
    180 and 270, ``torch.rot90``) and which rotation each is (4N,); both follow the batch's size in a
    recorded scoring path (``torch.jit.trace``, ONNX export)."""
    turns = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(ROTATIONS)])
    which = torch.arange(ROTATIONS, device=x.device).view(ROTATIONS, 1).expand(ROTATIONS, x.shape[0]).reshape(-1)
    return turns, which


def translated(x: Tensor, shift: int, generator: torch.Generator | None) -> Tensor:
    """Images ``x`` (N, C, H, W), each moved by a whole number of pixels drawn from ``generator``, uniform in
    [-shift, shift] along each axis, the border it uncovers filled by reflection (``shift`` < H and W)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
    dy, dx = (torch.randint(0, 2 * shift + 1, (n,), generator=generator, device=x.device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[images, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


class Rotation:
    """Self-supervised rotation prediction (Gidaris et al., 2018; for anomaly detection Golan and El-Yaniv,
    2018): each training batch is shown in its four rotations and the net learns which one it sees (the
    cross-entropy), which takes features of the objects' shapes, learnt from scratch. The net is the
    architecture's encoder with a 4-way linear head (:class:`RotationNet`); there is no decoder, so no
    reconstruction error. ``flip``: before the rotations, each image is mirrored left to right with
    probability 1/2 (augmentation; the draw is the engine's seeded generator's). ``translate``: then moved
    by up to that many pixels along each axis (:func:`translated`; 0: not moved). ``normalize``: the
    embedding that clustering, the spheres and the k-NN term work in is scaled to unit length (directions
    compared, as cosine similarity does), which on CIFAR-10 lifts the k-NN distance and the spheres in it
    well above those of the raw embedding (docs/results.md). Its score: the cross-entropy summed over the
    four rotations of an image (a rotation the net cannot tell is unusual); with ``score_mirrored``, over
    the four rotations of the image and the four of its mirror image (eight views of it, each of which a
    net trained with ``flip`` has seen normal images in: a second reading of the same question).
    ``embed_mirrored`` (with ``normalize``): the embedding the toolkit takes is the unit-length sum of the
    image's and its mirror image's raw embeddings, so an image and its mirror image embed alike; it
    changes what clustering, the spheres and the k-NN term see, not the pretraining, and doubles the
    encoder's work after it."""

    reconstructs = False
    score_name = "rotation cross-entropy"

    def __init__(
        self,
        flip: bool = True,
        translate: int = 0,
        normalize: bool = True,
        score_mirrored: bool = False,
        embed_mirrored: bool = False,
    ) -> None:
        settings = {
            "flip": flip,
            "normalize": normalize,
            "score_mirrored": score_mirrored,
            "embed_mirrored": embed_mirrored,
        }
        for name, value in settings.items():
            if not isinstance(value, bool):
                raise ValueError(f"rotation {name}={value!r} must be True or False")
        if isinstance(translate, bool) or not isinstance(translate, int) or translate < 0:
            raise ValueError(f"rotation translate={translate!r} must be a whole number of pixels, 0 or more")
        if embed_mirrored and not normalize:
            raise ValueError(
                "rotation embed_mirrored=True sums an image's and its mirror image's embeddings and scales the "
                "sum to unit length: it needs normalize=True"
            )
        self.flip, self.translate, self.normalize, self.score_mirrored = flip, translate, normalize, score_mirrored
        self.embed_mirrored = embed_mirrored

    def build(
        self,
        arch: str,
        in_shape: tuple[int, ...],
        rep_dim: int = 0,
        hidden: tuple[int, ...] = (32,),
        leak: float = 0.1,
        fused: bool = False,
        width: float = 1.0,
    ) -> nn.Module:
        shape = tuple(in_shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            what = f"vectors of shape {shape}" if len(shape) != 3 else f"images of shape {shape}, not square"
            raise ConfigError(
                f"pretrain.method=rotation turns images by 90 degrees, but these data are {what}: it needs square "
                "images (C, H, W), with net.arch lenet28 (1x28x28), lenet32 (3x32x32) or mlp on the pixels; "
                "pretrain these data with pretrain.method=autoencoder"
            )
        if self.translate >= shape[1]:
            raise ConfigError(
                f"pretrain.options.translate={self.translate} moves {shape[1]}x{shape[2]} images by as many pixels "
                f"or more: it must be under {shape[1]}"
            )
        encoder = build_encoder(arch, shape, rep_dim, hidden, leak, fused, width)
        return RotationNet(encoder, encoder.rep_dim, self.normalize, self.embed_mirrored)

    def loss(self, net: nn.Module, x: Tensor, generator: torch.Generator) -> Tensor:
        if self.flip:
            mirrored = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
            x = torch.where(mirrored.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.translate:
            x = translated(x, self.translate, generator)
        turns, which = rotated(x)
        return F.cross_entropy(net(turns), which)

    def score(self, net: nn.Module, x: Tensor) -> Tensor:
        # the per-image cross-entropy, written out (-log_softmax at the true rotation: the same numbers) so
        # that ONNX export records it
        views = torch.cat([x, x.flip(-1)]) if self.score_mirrored else x
        turns, which = rotated(views)
        losses = -F.log_softmax(net(turns), dim=1).gather(1, which[:, None]).squeeze(1)
        return losses.view(ROTATIONS * (1 + self.score_mirrored), -1).sum(0)  # row: rotation, then mirrored


# ----------------------------------------------------------------------------------- the run's method


def method_of(pretrain: Any) -> Any:
    """The pretraining method that the settings ``pretrain`` name (``pretrain.method``, built with
    ``pretrain.options``; a plain ``OptimConfig``, without them, names the autoencoder). A bad option is a
    :class:`ConfigError`, in one line."""
    name = getattr(pretrain, "method", "autoencoder")
    try:
        return build_pretrainer(name, **getattr(pretrain, "options", {}))
    except (ValueError, TypeError, RegistryError) as e:
        raise ConfigError(f"pretrain: {e}") from None


def check_pretraining(cfg: Any) -> Any:
    """The method of ``cfg.pretrain`` (a ``Config`` or ``ModelConfig``), built once before any long work, so
    that a bad option fails at once; and refuse what it cannot give: its own score in the detector's score
    (``score.pretext``) from a method without ``score``, or a decoder to keep training
    (``svdd.recon_weight``) from a method without reconstruction. Returns the method."""
    method = method_of(cfg.pretrain)
    if cfg.score.pretext > 0 and not callable(getattr(method, "score", None)):
        raise ConfigError(
            f"score.pretext={cfg.score.pretext:g} adds the pretrained network's own score, but pretrain.method="
            f"{cfg.pretrain.method!r} has no `score`: set score.pretext=0, or pretrain with a method that scores "
            "(autoencoder, rotation)"
        )
    if not getattr(method, "reconstructs", False) and cfg.svdd.recon_weight > 0:
        raise ConfigError(
            f"svdd.recon_weight={cfg.svdd.recon_weight:g} needs the reconstruction error, but pretrain.method="
            f"{cfg.pretrain.method!r} has no decoder: set svdd.recon_weight=0, or pretrain with a method that "
            "reconstructs (autoencoder)"
        )
    return method


def score_name(pretrain: Any) -> str:
    """What the pretraining method of the settings ``pretrain`` scores by, in words: its ``score_name``, or
    "NAME score"."""
    name = getattr(pretrain, "method", "autoencoder")
    return getattr(method_of(pretrain), "score_name", f"{name} score")


def score_terms(cfg: Any) -> str:
    """What the score of ``cfg`` (a ``Config`` or ``ModelConfig``) adds up, in words, its pretext term named
    by the run's pretraining method (:meth:`toolkit.config.ScoreConfig.terms`)."""
    return cfg.score.terms(score_name(cfg.pretrain))


def _takes(function: Any, *names: str) -> bool:
    """Whether ``function`` accepts each of the keyword arguments ``names`` (by name or by ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return True
    accepted = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return all(n in accepted for n in names)


def pretraining_net(method: Any, arch: str, in_shape: tuple[int, ...], net: NetConfig) -> nn.Module:
    """``method``'s pretraining net for the resolved architecture ``arch``, samples of ``in_shape`` and the
    ``net`` settings; refuse a net without an ``encoder``."""
    keywords = net_keywords(net)
    if keywords and not _takes(method.build, *keywords):
        raise ConfigError(
            f"net.width={net.width:g}: the pretraining method {type(method).__name__}'s build() takes no `width`; "
            "leave net.width at 1 with it, or give its build() a width argument (docs/plugins.md)"
        )
    built = method.build(arch, tuple(in_shape), *net_options(net), **keywords)
    if not isinstance(built, nn.Module) or not isinstance(getattr(built, "encoder", None), nn.Module):
        raise TypeError(
            f"the pretraining method {type(method).__name__} built a {type(built).__name__} without an `encoder` "
            "module: the net's encoder is what clustering and Deep SVDD start from"
        )
    return built
