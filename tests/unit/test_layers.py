"""The fast layer forms compute what the plain layer sequences compute: outputs, gradients and
BatchNorm state, checked in float64 (where float summation order cannot hide a wrong formula)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.layers import UpConvTranspose2d, channel_stats, pool_norm_act, upsample_conv_transpose2d
from toolkit.nets import build_autoencoder

CL = torch.channels_last


def _plain(x, bn, leak):
    return F.max_pool2d(F.leaky_relu(bn(x), leak), 2)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
@pytest.mark.parametrize("momentum", [0.1, None])  # None: the cumulative average refresh_batchnorm uses
@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])  # odd sizes: pooling drops the last row / column
def test_pool_norm_act_matches_the_plain_sequence(layout, momentum, hw):
    torch.manual_seed(0)
    bns = [nn.BatchNorm2d(5, eps=1e-4, affine=False, momentum=momentum).double() for _ in range(2)]
    outs, grads = [], []
    for fused, bn in zip((True, False), bns, strict=True):
        torch.manual_seed(1)
        for _ in range(3):  # several steps, so the running statistics are compared after updates
            x = (torch.randn(6, 5, *hw, dtype=torch.float64) * 2 + 3).contiguous(memory_format=layout)
            x.requires_grad_()
            y = pool_norm_act(x, bn, 0.1, fused=True) if fused else _plain(x, bn, 0.1)
            g = torch.randn_like(y)
            y.backward(g)
        outs.append(y.detach())
        grads.append(x.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-10)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bns[0], name), getattr(bns[1], name), rtol=1e-12, atol=0)
    assert grads[0].is_contiguous(memory_format=layout)


def test_pool_norm_act_float32_and_evaluation_mode():
    torch.manual_seed(0)
    bn_a, bn_b = (nn.BatchNorm2d(8, eps=1e-4, affine=False) for _ in range(2))
    x = torch.randn(16, 8, 12, 12).contiguous(memory_format=CL)
    torch.testing.assert_close(pool_norm_act(x, bn_a, 0.1, fused=True), _plain(x, bn_b, 0.1), rtol=1e-5, atol=1e-5)
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(bn_a, name), getattr(bn_b, name), rtol=1e-6, atol=1e-7)
    bn_b.load_state_dict(bn_a.state_dict())
    bn_a.eval(), bn_b.eval()
    assert torch.equal(pool_norm_act(x, bn_a, 0.1, fused=True), _plain(x, bn_b, 0.1))  # pooling first is exact
    # the plain sequence where the fused form does not apply: fused=False, affine BatchNorm
    bn_c, bn_d = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
    assert torch.equal(pool_norm_act(x, bn_c, 0.1, fused=True), _plain(x, bn_d, 0.1))
    bn_e, bn_f = (nn.BatchNorm2d(8, affine=False) for _ in range(2))
    assert torch.equal(pool_norm_act(x, bn_e, 0.1, fused=False), _plain(x, bn_f, 0.1))


def test_channel_stats_are_batchnorms_and_keep_precision_far_from_zero():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 1e-3 + 1e3  # mean >> std: one-pass formulas fail
    for t in (x, x.contiguous(memory_format=CL)):
        mean, var = channel_stats(t)
        torch.testing.assert_close(mean, t.mean((0, 2, 3)))
        torch.testing.assert_close(var, t.var((0, 2, 3), correction=0), rtol=1e-9, atol=0)
    xf = x.float()  # float32: compared with the exact variance of the float32 values
    mean, var = channel_stats(xf)
    torch.testing.assert_close(var.double(), xf.double().var((0, 2, 3), correction=0), rtol=1e-5, atol=0)


def test_pool_norm_act_refuses_a_single_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        pool_norm_act(torch.randn(1, 2, 1, 1), nn.BatchNorm2d(2, affine=False), 0.1, fused=True)


@pytest.mark.parametrize(
    "cin, cout, hw, k, padding",
    [(2, 4, (4, 4), 5, 2), (4, 8, (8, 8), 5, 3), (8, 1, (14, 14), 5, 2), (3, 2, (5, 7), 5, 1), (3, 2, (6, 6), 3, 0)],
)
def test_upsample_conv_transpose2d_is_upsample_then_transposed_conv(cin, cout, hw, k, padding):
    torch.manual_seed(0)
    x = torch.randn(3, cin, *hw, dtype=torch.float64, requires_grad=True)
    w = torch.randn(cin, cout, k, k, dtype=torch.float64, requires_grad=True)
    g = None
    results = []
    for fast in (True, False):
        y = (
            upsample_conv_transpose2d(x, w, padding)
            if fast
            else F.conv_transpose2d(F.interpolate(x, scale_factor=2), w, padding=padding)
        )
        g = torch.randn_like(y) if g is None else g
        gx, gw = torch.autograd.grad(y, (x, w), g)
        results.append((y, gx, gw))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_upsample_conv_transpose2d_refuses_an_odd_output():
    with pytest.raises(ValueError, match="even output size"):
        upsample_conv_transpose2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4), 1)


def test_up_conv_transpose_loads_a_plain_transposed_convs_weights():
    plain = nn.ConvTranspose2d(4, 8, 5, bias=False, padding=3)
    up = UpConvTranspose2d(4, 8, 5, padding=3, fused=True)
    up.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(up(x), plain(F.interpolate(x, scale_factor=2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "arch, shape", [("lenet28", (1, 28, 28)), pytest.param("lenet32", (3, 32, 32), marks=pytest.mark.slow)]
)
def test_fused_nets_train_as_the_plain_nets(arch, shape):
    """Same weights, same batch: equal reconstructions, gradients and BatchNorm state after a step."""
    torch.manual_seed(0)
    fast = build_autoencoder(arch, shape, fused=True).double()
    plain = build_autoencoder(arch, shape, fused=False).double()
    assert fast.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(6, *shape, dtype=torch.float64).contiguous(memory_format=CL)
    fast, plain = fast.to(memory_format=CL), plain.to(memory_format=CL)
    for net in (fast, plain):
        net.train()
        ((net(x) - x) ** 2).sum().backward()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-10, atol=1e-10)
    for (name, p), q in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-10, msg=name)
    for (name, b), c in zip(fast.named_buffers(), plain.buffers(), strict=True):
        torch.testing.assert_close(b, c, rtol=1e-10, atol=0, msg=name)
    fast.eval(), plain.eval()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
@pytest.mark.parametrize("hw", [(28, 28), (7, 7), (6, 9)])
def test_max_pool_2x2_is_max_pool2d(layout, hw):
    from toolkit.layers import max_pool_2x2

    x = torch.randn(3, 4, *hw).contiguous(memory_format=layout)
    x[0, 0, :2, :2] = 1.0  # a tie
    with torch.inference_mode():
        assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))
    xg = x.clone().requires_grad_()
    max_pool_2x2(xg).sum().backward()  # with gradients: max_pool2d's (a tie's gradient goes to one input)
    assert xg.grad[0, 0, :2, :2].sum() == 1.0


def test_pool_norm_act_without_running_statistics_uses_the_batch_in_evaluation_too():
    torch.manual_seed(0)
    bn_a, bn_b = (nn.BatchNorm2d(3, affine=False, track_running_stats=False).double() for _ in range(2))
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    for train in (True, False):
        bn_a.train(train), bn_b.train(train)
        torch.testing.assert_close(
            pool_norm_act(x, bn_a, 0.1, fused=True), _plain(x, bn_b, 0.1), rtol=1e-12, atol=1e-12
        )


@pytest.mark.slow  # a whole fit
def test_net_fused_setting_reaches_the_trained_and_the_loaded_nets(tmp_path):
    """--net.fused=True (not the default) trains the fused forms and a saved detector comes back with them."""
    from toolkit import MultiRadiusDeepSVDD
    from toolkit.recipes_loader import default_recipe, load_recipe

    torch.manual_seed(0)
    x = torch.rand(60, 1, 28, 28)
    settings = {
        "net.arch": "lenet28",
        "net.rep_dim": 0,
        "net.fused": True,
        "pretrain.epochs": 1,
        "svdd.epochs": 1,
        "svdd.warmup_epochs": 1,
    }
    settings |= {"score.single": 0.0, "score.pretext": 1.0, "clustering.name": "single"}
    det = MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **settings).fit(x)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    for d in (det, loaded):
        assert d.encoder_.fused is True
        assert all(m.fused is True for m in d.recon_.modules() if isinstance(m, UpConvTranspose2d))
    np.testing.assert_allclose(loaded.decision_function(x), det.decision_function(x), rtol=1e-5)


@pytest.mark.slow  # twenty float64 training steps
def test_fused_and_plain_nets_stay_together_over_training_steps():
    """Twenty Adam steps on MNIST-shaped batches in float64: the two forms end at the same weights,
    so any difference between runs in float32 is rounding, not a different computation."""
    torch.manual_seed(0)
    nets = [build_autoencoder("lenet28", (1, 28, 28), fused=f).double().to(memory_format=CL) for f in (True, False)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in nets]
    for _ in range(20):
        x = torch.rand(16, 1, 28, 28, dtype=torch.float64).contiguous(memory_format=CL)
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad()
            ((net(x) - x) ** 2).sum((1, 2, 3)).mean().backward()
            opt.step()
    for (name, p), q in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9, msg=name)


@pytest.mark.parametrize(
    "arch, shape, fused", [("mlp", (64,), False), ("lenet28", (1, 28, 28), False), ("lenet28", (1, 28, 28), True)]
)
def test_evaluation_outputs_do_not_depend_on_the_batch_size(arch, shape, fused):
    """Why nets.EVAL_BATCH may be chosen for speed alone: embeddings and reconstructions come out the
    same bit for bit in batches of 256 and 4096."""
    from toolkit.nets import embed, fast_layout

    torch.manual_seed(0)
    ae = fast_layout(build_autoencoder(arch, shape, fused=fused), "cpu").train()
    for _ in range(3):  # non-trivial BatchNorm running statistics
        ae(fast_layout(torch.rand(64, *shape), "cpu"))
    x = fast_layout(torch.rand(1000, *shape), "cpu")
    assert torch.equal(embed(ae.encoder, x, 4096), embed(ae.encoder, x, 256))
    with torch.inference_mode():
        ae.eval()
        assert torch.equal(ae(x), torch.cat([ae(b) for b in x.split(256)]))


def _count_fused_calls(monkeypatch) -> dict:
    """Counts the calls of the two fused forms, which still run as before."""
    from toolkit import layers

    calls = {"pool": 0, "up": 0}
    pool_fn, up_fn = layers._PoolNormAct, layers.upsample_conv_transpose2d

    class Pool:
        @staticmethod
        def apply(*args):
            calls["pool"] += 1
            return pool_fn.apply(*args)

    def up(*args):
        calls["up"] += 1
        return up_fn(*args)

    monkeypatch.setattr(layers, "_PoolNormAct", Pool)
    monkeypatch.setattr(layers, "upsample_conv_transpose2d", up)
    return calls


@pytest.mark.parametrize("arch, shape", [("lenet28", (1, 28, 28)), ("lenet32", (3, 32, 32))])
def test_default_nets_are_the_plain_sequences(arch, shape, monkeypatch):
    """The fused forms are opt-in: the default config and build run neither of them, in training or
    evaluation, and compute what the plain nets compute bit for bit."""
    from toolkit.config import NetConfig
    from toolkit.nets import net_options

    assert NetConfig().fused is False
    calls = _count_fused_calls(monkeypatch)
    torch.manual_seed(0)
    nets = [build_autoencoder(arch, shape), build_autoencoder(arch, shape, *net_options(NetConfig()))]
    nets.append(build_autoencoder(arch, shape, fused=False))
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())
    x = torch.rand(4, *shape)
    for train in (True, False):
        outs = [net.train(train)(x) for net in nets]
        assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[2])
    assert calls == {"pool": 0, "up": 0}
    assert all(getattr(m, "fused", False) is False for net in nets for m in net.modules())
    fused = build_autoencoder(arch, shape, fused=True).train()
    fused(x)
    assert calls["pool"] > 0 and calls["up"] > 0  # the counting sees the fused forms where they run


@pytest.mark.parametrize("arch, shape", [("lenet28", (1, 28, 28)), ("lenet32", (3, 32, 32))])
def test_fused_nets_run_the_plain_sequences_off_the_cpu(arch, shape, monkeypatch):
    """fused=True is a CPU setting: on any other device (here "meta", which needs no GPU) both layer
    sequences run plain, the sub-pixel convolution too."""
    calls = _count_fused_calls(monkeypatch)
    net = build_autoencoder(arch, shape, fused=True).to("meta").train()
    y = net(torch.rand(4, *shape, device="meta"))
    assert y.device.type == "meta" and y.shape == (4, *shape)
    assert calls == {"pool": 0, "up": 0}
    bn = nn.BatchNorm2d(3, affine=False).to("meta")
    x = torch.rand(4, 3, 8, 8, device="meta")
    assert pool_norm_act(x, bn, 0.1, fused=True).shape == (4, 3, 4, 4)
    up = UpConvTranspose2d(3, 2, 5, padding=2, fused=True).to("meta")
    assert up(x).shape == (4, 2, 16, 16)
    assert calls == {"pool": 0, "up": 0}
