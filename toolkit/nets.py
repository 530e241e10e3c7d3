"""Bias-free autoencoders (Ruff et al., 2018): LeNet-type for 1x28x28 and 3x32x32, an MLP for vectors.

No bias terms, BatchNorm with ``affine=False`` and leaky ReLU: a net with biases or bounded
activations can map every input onto the centre (hypersphere collapse).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigError, NetConfig
from .layers import UpConvTranspose2d, pool_norm_act

# Rows per forward pass in evaluation. 256 scores 2x faster than 4096 on the CPU (benchmarks/speed.py):
# the large batches' temporaries (100 MB for the first LeNet map) are fresh memory every
# time. Evaluation outputs are the same bit for bit at any batch size (tested).
EVAL_BATCH = 256
REFRESH_BATCH = 4096  # refresh_batchnorm averages per-batch statistics, so its result depends on this

DEFAULT_REP_DIM = {"lenet28": 32, "lenet32": 128, "mlp": 16}


def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-4, affine=False)


def _bn1d(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=1e-4, affine=False)


def filters(widths: tuple[int, ...], width: float) -> tuple[int, ...]:
    """A LeNet's filter counts ``widths`` times ``width`` (``net.width``), rounded, at least one each."""
    return tuple(max(1, round(c * width)) for c in widths)


class LeNet28Encoder(nn.Module):
    """1x28x28 -> 8 then 4 filters of 5x5 with 2x2 max-pooling -> ``rep_dim`` (32); ``width`` multiplies
    the filters."""

    def __init__(self, rep_dim: int = 32, leak: float = 0.1, fused: bool = False, width: float = 1.0) -> None:
        super().__init__()
        self.rep_dim, self.leak, self.fused = rep_dim, leak, fused
        c1, c2 = filters((8, 4), width)
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 5, bias=False, padding=2), _bn2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 5, bias=False, padding=2), _bn2d(c2)
        self.fc1 = nn.Linear(c2 * 7 * 7, rep_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = pool_norm_act(self.conv1(x), self.bn1, self.leak, self.fused)
        x = pool_norm_act(self.conv2(x), self.bn2, self.leak, self.fused)
        return self.fc1(x.flatten(1))


class LeNet28Decoder(nn.Module):
    def __init__(self, rep_dim: int = 32, leak: float = 0.1, fused: bool = False, width: float = 1.0) -> None:
        super().__init__()
        if rep_dim % 16:
            raise ValueError(f"lenet28 needs rep_dim divisible by 16, got {rep_dim}")
        self.rep_dim, self.leak = rep_dim, leak
        c1, c2 = filters((4, 8), width)
        # each transposed convolution follows a nearest x2 upsampling, folded into it (layers.py)
        self.deconv1, self.bn3 = UpConvTranspose2d(rep_dim // 16, c1, 5, padding=2, fused=fused), _bn2d(c1)
        self.deconv2, self.bn4 = UpConvTranspose2d(c1, c2, 5, padding=3, fused=fused), _bn2d(c2)
        self.deconv3 = UpConvTranspose2d(c2, 1, 5, padding=2, fused=fused)

    def forward(self, z: Tensor) -> Tensor:
        x = F.leaky_relu(z.view(z.shape[0], self.rep_dim // 16, 4, 4), self.leak)
        x = F.leaky_relu(self.bn3(self.deconv1(x)), self.leak)  # 4x4 -> 8x8
        x = F.leaky_relu(self.bn4(self.deconv2(x)), self.leak)  # -> 14x14
        return torch.sigmoid(self.deconv3(x))  # -> 28x28


class LeNet32Encoder(nn.Module):
    """3x32x32 -> 32, 64, 128 filters of 5x5 with 2x2 max-pooling -> ``rep_dim`` (128); ``width``
    multiplies the filters."""

    def __init__(self, rep_dim: int = 128, leak: float = 0.1, fused: bool = False, width: float = 1.0) -> None:
        super().__init__()
        self.rep_dim, self.leak, self.fused = rep_dim, leak, fused
        c1, c2, c3 = filters((32, 64, 128), width)
        self.conv1, self.bn1 = nn.Conv2d(3, c1, 5, bias=False, padding=2), _bn2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 5, bias=False, padding=2), _bn2d(c2)
        self.conv3, self.bn3 = nn.Conv2d(c2, c3, 5, bias=False, padding=2), _bn2d(c3)
        self.fc1 = nn.Linear(c3 * 4 * 4, rep_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = pool_norm_act(self.conv1(x), self.bn1, self.leak, self.fused)
        x = pool_norm_act(self.conv2(x), self.bn2, self.leak, self.fused)
        x = pool_norm_act(self.conv3(x), self.bn3, self.leak, self.fused)
        return self.fc1(x.flatten(1))


class LeNet32Decoder(nn.Module):
    def __init__(self, rep_dim: int = 128, leak: float = 0.1, fused: bool = False, width: float = 1.0) -> None:
        super().__init__()
        if rep_dim % 16:
            raise ValueError(f"lenet32 needs rep_dim divisible by 16, got {rep_dim}")
        self.rep_dim, self.leak = rep_dim, leak
        c1, c2, c3 = filters((128, 64, 32), width)
        self.bn0 = _bn1d(rep_dim)
        self.deconv1, self.bn4 = nn.ConvTranspose2d(rep_dim // 16, c1, 5, bias=False, padding=2), _bn2d(c1)
        # deconv2-4 follow a nearest x2 upsampling, folded into them (layers.py)
        self.deconv2, self.bn5 = UpConvTranspose2d(c1, c2, 5, padding=2, fused=fused), _bn2d(c2)
        self.deconv3, self.bn6 = UpConvTranspose2d(c2, c3, 5, padding=2, fused=fused), _bn2d(c3)
        self.deconv4 = UpConvTranspose2d(c3, 3, 5, padding=2, fused=fused)

    def forward(self, z: Tensor) -> Tensor:
        x = F.leaky_relu(self.bn0(z).view(z.shape[0], self.rep_dim // 16, 4, 4), self.leak)
        x = F.leaky_relu(self.bn4(self.deconv1(x)), self.leak)  # 4x4
        x = F.leaky_relu(self.bn5(self.deconv2(x)), self.leak)  # -> 8x8
        x = F.leaky_relu(self.bn6(self.deconv3(x)), self.leak)  # -> 16x16
        return torch.sigmoid(self.deconv4(x))  # -> 32x32


def _mlp(sizes: list[int], leak: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b, bias=False), _bn1d(b), nn.LeakyReLU(leak)]
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
    return layers


class MLPEncoder(nn.Sequential):
    """Flat vectors -> hidden widths -> ``rep_dim``; bias-free with affine-free BatchNorm."""

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (32,), rep_dim: int = 16, leak: float = 0.1):
        super().__init__(nn.Flatten(), *_mlp([in_features, *hidden, rep_dim], leak))
        self.rep_dim = rep_dim


class MLPDecoder(nn.Module):
    def __init__(
        self, in_shape: tuple[int, ...], hidden: tuple[int, ...] = (32,), rep_dim: int = 16, leak: float = 0.1
    ):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.net = nn.Sequential(nn.LeakyReLU(leak), *_mlp([rep_dim, *reversed(hidden), math.prod(in_shape)], leak))

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.net(z)).view(z.shape[0], *self.in_shape)


class UnitEmbedding(nn.Module):
    """An encoder whose embeddings are scaled to unit length: distances between them (the spheres', the
    k-NN's) compare directions only, as cosine similarity does. Features learnt by a classification
    pretext (rotation) carry their meaning in the direction; their length mostly says how sure the net
    is (benchmarks: docs/results.md). ``net`` is the encoder itself, whose raw embedding a pretext head
    may take. With ``mirrored`` an image's embedding is that of the sum of its own raw embedding and its
    mirror image's (images (N, C, H, W) mirrored left to right): an image and its mirror image embed
    alike, as a class of natural images holds both."""

    def __init__(self, net: nn.Module, mirrored: bool = False) -> None:
        super().__init__()
        self.net, self.mirrored = net, mirrored
        self.rep_dim = net.rep_dim

    def forward(self, x: Tensor) -> Tensor:
        z = self.net(x) + self.net(x.flip(-1)) if self.mirrored else self.net(x)
        return F.normalize(z, dim=1)


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


def resolve_arch(arch: str, in_shape: tuple[int, ...]) -> str:
    """Pick the architecture for ``in_shape`` (C, H, W) or (D,): ``auto`` takes the LeNet net of the image size
    or the MLP for vectors; refuse images of other sizes and any mismatch with a clear message."""
    shape = tuple(in_shape)
    wants = {"lenet28": (1, 28, 28), "lenet32": (3, 32, 32)}
    if arch == "auto":
        for name, s in wants.items():
            if shape == s:
                return name
        if len(shape) == 3:
            raise ConfigError(
                f"images of shape {shape}: net.arch=auto has convolutional nets for 1x28x28 (lenet28) and 3x32x32 "
                "(lenet32) images; resize the images to one of these (an image folder is read at these sizes, see "
                "data.image_mode), or set net.arch=mlp for a fully connected net on the flattened pixels"
            )
        if len(shape) != 1:
            raise ConfigError(f"samples of shape {shape}: the nets take images (C, H, W) or vectors (D,)")
        return "mlp"
    if arch in wants and shape != wants[arch]:
        raise ConfigError(f"net.arch={arch} takes images of shape {wants[arch]}, but the data has shape {shape}")
    if arch not in ("mlp", *wants):
        raise ConfigError(f"net.arch={arch!r} is unknown; accepted: auto, mlp, lenet28, lenet32")
    return arch


def build_encoder(
    arch: str,
    in_shape: tuple[int, ...],
    rep_dim: int = 0,
    hidden: tuple[int, ...] = (32,),
    leak: float = 0.1,
    fused: bool = False,
    width: float = 1.0,
) -> nn.Module:
    """The bias-free encoder for ``in_shape``: the network phi that Deep SVDD trains (``build_autoencoder``'s
    arguments)."""
    arch = resolve_arch(arch, in_shape)
    rep_dim = rep_dim or DEFAULT_REP_DIM[arch]
    if arch == "lenet28":
        return LeNet28Encoder(rep_dim, leak, fused, width)
    if arch == "lenet32":
        return LeNet32Encoder(rep_dim, leak, fused, width)
    if width != 1:
        raise ConfigError(f"net.width={width:g} multiplies a LeNet's filters; the mlp's widths are net.hidden")
    return MLPEncoder(math.prod(in_shape), hidden, rep_dim, leak)


def build_autoencoder(
    arch: str,
    in_shape: tuple[int, ...],
    rep_dim: int = 0,
    hidden: tuple[int, ...] = (32,),
    leak: float = 0.1,
    fused: bool = False,
    width: float = 1.0,
) -> Autoencoder:
    """The autoencoder for ``in_shape``; its ``encoder`` is the network phi that Deep SVDD trains.
    ``fused=True`` runs two of the LeNet nets' layer sequences in layers.py's exact, faster forms on
    CPU tensors (same function and parameters, rounded differently; an opt-in CPU speed setting, off
    by default because the published models were trained without it). On other devices the plain
    sequences run either way. ``width`` multiplies the LeNet nets' filters (1: the paper's)."""
    encoder = build_encoder(arch, in_shape, rep_dim, hidden, leak, fused, width)  # first: its weights are drawn first
    arch, rep_dim = resolve_arch(arch, in_shape), encoder.rep_dim
    if arch == "lenet28":
        return Autoencoder(encoder, LeNet28Decoder(rep_dim, leak, fused, width))
    if arch == "lenet32":
        return Autoencoder(encoder, LeNet32Decoder(rep_dim, leak, fused, width))
    return Autoencoder(encoder, MLPDecoder(in_shape, hidden, rep_dim, leak))


def net_options(net: NetConfig) -> tuple:
    """``build_autoencoder``'s (and ``build_encoder``'s) arguments after ``arch`` and ``in_shape``, from a
    config's ``net``, but ``width`` (:func:`net_keywords`)."""
    return net.rep_dim, net.hidden, net.leak, net.fused


def net_keywords(net: NetConfig) -> dict:
    """The builders' keyword arguments from a config's ``net``: ``width``, given only where it is not the
    paper's 1, so that a pretraining method written before it existed builds as it did."""
    return {} if net.width == 1 else {"width": net.width}


def fast_layout(obj, device: torch.device):
    """Image tensors and nets in channels-last memory layout on the CPU, where oneDNN runs these small
    convolutions about 1.6x faster (benchmarks/speed.py); the results are the same computation. Vectors,
    vector nets and other devices are returned as they are."""
    if torch.device(device).type != "cpu":
        return obj
    if isinstance(obj, Tensor):
        return obj.contiguous(memory_format=torch.channels_last) if obj.dim() == 4 else obj
    if any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in obj.modules()):
        return obj.to(memory_format=torch.channels_last)
    return obj


@torch.inference_mode()
def embed(encoder: nn.Module, x: Tensor, batch_size: int = EVAL_BATCH) -> Tensor:
    """Embeddings of ``x`` in evaluation mode, ``batch_size`` rows at a time."""
    encoder.eval()
    return torch.cat([encoder(x[s : s + batch_size]) for s in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def refresh_batchnorm(
    model: nn.Module,
    x: Tensor,
    batch_size: int = REFRESH_BATCH,
    forward: Callable[[Tensor], Any] | None = None,
) -> nn.Module:
    """Recompute every BatchNorm's running statistics as the exact average over ``x`` of the final
    weights' batch statistics ("precise BN", Wu & Johnson 2021), replacing the moving average of the last
    few training batches, which the weights were still changing under. Evaluation-mode outputs then
    depend on the final network only. ``forward(batch)`` runs ``model`` on a batch of ``x`` the way its
    training did (a pretraining method's loss: rotation's batches hold the four rotations of each image,
    and those are the statistics its layers learnt to expect); by default ``model(batch)``. Returns
    ``model`` in evaluation mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    forward = forward or model
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    for batch in x.split(batch_size):
        forward(batch)
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
    return model.eval()
