"""Exact, faster forms of two layer sequences in the LeNet autoencoders.

Both compute the same function as the plain sequence, with the same parameters and state-dict keys,
so a model trained with either form loads and scores under the other. They are an opt-in speed setting
for the CPU (``fused=True``, ``--net.fused=True``), off by default: they made training 1.2-1.7x faster on
two CPU cores (``benchmarks/speed.py`` times them) but were never measured on other devices, float32
rounds differently in them (a long run drifts from the plain one as a change of seed would), and the
published models were trained with the plain sequences. Even with ``fused=True``, a tensor on any
other device runs the plain sequence.

1. ``max_pool2d(leaky_relu(batch_norm(x)), 2)`` in training (:func:`pool_norm_act`). BatchNorm without
   affine parameters has a positive scale per channel, and leaky ReLU is increasing, so both commute
   with the max (float rounding is monotone too: with the same statistics, the same values). The
   batch statistics are still those of the whole ``x``, but the normalisation, the activation and their
   gradients run on the pooled quarter of the tensor, and one hand-written backward replaces four.
   Where two inputs of a window round to the same normalised value, max-pooling's gradient may go to
   the other of the two: an equally valid subgradient. It pays on the CPU, where BatchNorm on 8
   channels in channels-last layout is slow.
2. Nearest x2 upsampling followed by a stride-1 transposed convolution (:class:`UpConvTranspose2d`):
   a sub-pixel convolution at the input's resolution, which skips the upsampled tensor and does a
   third to two thirds of the multiply-adds, by the padding (exact up to float summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

_FUSED_DTYPES = (torch.float32, torch.float64)


def _channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of ``x`` (N, C, H, W) over N, H and W, as BatchNorm takes
    them in training. Corrected two-pass algorithm (Chan, Golub and LeVeque): the deviations from a
    first mean also correct that mean's rounding, so precision holds where the mean dwarfs the spread.
    Channels-last input is reduced as an (N*H*W, C) matrix, far faster on the CPU than over (0, 2, 3)."""
    c = x.shape[1]
    if _channels_last(x):
        m, dims, shape = x.permute(0, 2, 3, 1).reshape(-1, c), (0,), (c,)
    else:
        m, dims, shape = x, (0, 2, 3), (1, c, 1, 1)
    n = m.numel() // c
    mean = m.mean(dims)
    d = m - mean.view(shape)
    s = d.sum(dims)
    return mean + s / n, (d.square_().sum(dims) - s * s / n) / n  # d is ours: squared in place


@torch.no_grad()
def _update_running_stats(bn: nn.modules.batchnorm._BatchNorm, mean: Tensor, var: Tensor, n: int) -> None:
    """What ``nn.BatchNorm2d.forward`` does to its buffers in training (momentum, or the cumulative
    average when ``momentum`` is None; the running variance is the unbiased one)."""
    if not bn.track_running_stats or bn.running_mean is None:
        return
    bn.num_batches_tracked.add_(1)
    f = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), f)
    bn.running_var.lerp_((var * (n / (n - 1))).to(bn.running_var.dtype), f)


class _PoolNormAct(torch.autograd.Function):
    """y = leaky_relu((max_pool2d(x, 2) - mean) / sqrt(var + eps)) with mean, var the batch statistics
    of x. They come in detached; their dependence on x is in the backward, which is BatchNorm's:
    dx = inv * (g - mean(g) - xhat * mean(g * xhat)), with g the gradient at the normalised values. g
    is zero outside the pooled maxima, so both means are sums over the pooled quarter, and
    dx = x * k1 + k0 + scatter(g_pooled * inv): one pass over x plus a scatter of a quarter of it."""

    @staticmethod
    def forward(ctx, x: Tensor, mean: Tensor, var: Tensor, eps: float, leak: float) -> Tensor:
        c = x.shape[1]
        inv = torch.rsqrt(var + eps)
        pooled, idx = F.max_pool2d_with_indices(x, 2)
        xhat = (pooled - mean.view(1, c, 1, 1)) * inv.view(1, c, 1, 1)
        ctx.save_for_backward(x, idx, xhat, mean, inv)
        ctx.leak = leak
        return F.leaky_relu(xhat, leak)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy: Tensor):
        x, idx, xhat, mean, inv = ctx.saved_tensors
        n_, c, h, w = x.shape
        n = n_ * h * w
        g = torch.where(xhat > 0, gy, gy * ctx.leak)  # at the pooled maxima, zero elsewhere
        a = g.sum((0, 2, 3)) / n  # mean(g) over all of x
        b = (g * xhat).sum((0, 2, 3)) / n  # mean(g * xhat)
        k1 = -inv * inv * b
        k0 = -inv * a - mean * k1
        fmt = torch.channels_last if _channels_last(x) else torch.contiguous_format
        dx = torch.empty_like(x, memory_format=fmt)
        torch.addcmul(k0.view(1, c, 1, 1), x, k1.view(1, c, 1, 1), out=dx)
        vals = g * inv.view(1, c, 1, 1)
        dx.view(n_, c, h * w).scatter_add_(2, idx.reshape(n_, c, -1), vals.reshape(n_, c, -1))
        return dx, None, None, None, None


def max_pool_2x2(x: Tensor) -> Tensor:
    """``max_pool2d(x, 2)``. Without gradients, on the CPU, as the maximum of the four strided quarters
    (the same values, about twice as fast for channels-last input there); elsewhere max_pool2d itself,
    whose gradient at ties is the one the architecture defines."""
    if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
        return F.max_pool2d(x, 2)
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    q = [x[..., i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]
    return torch.maximum(torch.maximum(q[0], q[1]), torch.maximum(q[2], q[3]))


def pool_norm_act(x: Tensor, bn: nn.modules.batchnorm._BatchNorm, leak: float, fused: bool = False) -> Tensor:
    """``max_pool2d(leaky_relu(bn(x), leak), 2)`` for a BatchNorm2d without affine parameters, with
    its running statistics updated as ``bn(x)`` would. In evaluation mode BatchNorm is a fixed
    per-channel map, pooled first (the same values bit for bit, any ``fused``). In training the fused
    form runs only with ``fused=True`` on a CPU tensor of float32/64 (where it was measured); otherwise,
    the plain sequence."""
    batch_stats = bn.training or bn.running_mean is None  # as BatchNorm decides
    if not batch_stats:
        return F.leaky_relu(bn(max_pool_2x2(x)), leak)
    if not fused or bn.affine or x.device.type != "cpu" or x.dtype not in _FUSED_DTYPES:
        return F.max_pool2d(F.leaky_relu(bn(x), leak), 2)
    n = x.numel() // x.shape[1]
    if n < 2:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    with torch.no_grad():
        mean, var = channel_stats(x)
    if bn.training:
        _update_running_stats(bn, mean, var, n)
    return _PoolNormAct.apply(x, mean, var, bn.eps, leak)


def _phase_taps(k: int, padding: int, like: Tensor) -> tuple[Tensor, int, int]:
    """A[r, d - lo, t] = 1 where tap t of the stride-1 correlation over the x2-upsampled input reads input
    offset d for output phase r (output index 2q + r reads input q + d); lo and hi bound d."""
    shift = k - 1 - padding  # the transposed convolution's padding, as a correlation's
    lo, hi = -shift // 2, (k - shift) // 2
    d = torch.div(
        torch.arange(2, device=like.device)[:, None] + torch.arange(k, device=like.device) - shift,
        2,
        rounding_mode="floor",
    )
    return F.one_hot(d - lo, hi - lo + 1).transpose(1, 2).to(like.dtype), lo, hi


def upsample_conv_transpose2d(x: Tensor, weight: Tensor, padding: int) -> Tensor:
    """``conv_transpose2d(interpolate(x, scale_factor=2), weight, padding=padding)`` (stride 1, square
    k x k kernel, nearest upsampling) computed at the resolution of ``x``: output pixel (2q + r, 2s + u)
    reads only inputs near (q, s), through a kernel fixed by the phase (r, u) that sums some of the k x k
    taps. One convolution yields all four phases as channels and ``pixel_shuffle`` interleaves them
    (sub-pixel convolution). Differentiable in ``weight``, which stays the parameter."""
    cin, cout, k, k2 = weight.shape
    if k != k2:
        raise ValueError(f"upsample_conv_transpose2d takes square kernels, got {k}x{k2}")
    a, lo, hi = _phase_taps(k, padding, weight)
    corr = weight.flip(-1, -2).transpose(0, 1)  # (out, in, k, k): a transposed convolution's correlation kernel
    kernel = torch.einsum("rdt,uev,oitv->oruide", a, a, corr).reshape(cout * 4, cin, a.shape[1], a.shape[1])
    h, w = x.shape[-2:]
    oh, ow = 2 * h + k - 1 - 2 * padding, 2 * w + k - 1 - 2 * padding
    if oh % 2 or ow % 2:
        raise ValueError(f"upsample_conv_transpose2d needs an even output size, got {oh}x{ow}")
    pad = (-lo, ow // 2 - 1 + hi - (w - 1), -lo, oh // 2 - 1 + hi - (h - 1))
    if min(pad) >= 0 and len(set(pad)) == 1:  # the LeNet decoders' case: the convolution pads, no copy
        return F.pixel_shuffle(F.conv2d(x, kernel, padding=pad[0]), 2)
    return F.pixel_shuffle(F.conv2d(F.pad(x, pad), kernel), 2)


class UpConvTranspose2d(nn.ConvTranspose2d):
    """Nearest x2 upsampling followed by this stride-1 transposed convolution: the two plain steps, or
    with ``fused=True`` and a CPU input, :func:`upsample_conv_transpose2d` (on other devices the plain
    steps still run: the sub-pixel form was only measured on the CPU). Same parameters and state-dict
    keys as the ``nn.ConvTranspose2d`` it replaces; no bias, stride 1, no dilation, one group."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, fused: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, bias=False, padding=padding)
        self.fused = fused

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if self.fused and x.device.type == "cpu":
            return upsample_conv_transpose2d(x, self.weight, self.padding[0])
        return F.conv_transpose2d(F.interpolate(x, scale_factor=2), self.weight, padding=self.padding)
