"""Bias-free nets of the right shapes."""

import pytest
import torch
from torch import nn

from toolkit.nets import build_autoencoder, resolve_arch


@pytest.mark.parametrize(
    "arch,shape,rep",
    [("lenet28", (1, 28, 28), 32), ("lenet32", (3, 32, 32), 128), ("mlp", (64,), 16)],
)
@pytest.mark.parametrize("fused", [False, True])  # default: the plain layer sequences
def test_autoencoder_shapes_and_no_bias(arch, shape, rep, fused):
    ae = build_autoencoder(arch, shape, fused=fused)
    x = torch.rand(4, *shape)
    z = ae.encoder(x)
    assert z.shape == (4, rep)
    assert ae(x).shape == x.shape
    for m in ae.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            assert m.bias is None
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert not m.affine


def test_auto_arch_and_shape_mismatch():
    assert resolve_arch("auto", (1, 28, 28)) == "lenet28"
    assert resolve_arch("auto", (3, 32, 32)) == "lenet32"
    assert resolve_arch("auto", (10,)) == "mlp"
    with pytest.raises(ValueError, match=r"takes images of shape \(1, 28, 28\)"):
        resolve_arch("lenet28", (3, 32, 32))


@pytest.mark.parametrize("arch, shape", [("lenet28", (1, 28, 28)), ("lenet32", (3, 32, 32))])
@pytest.mark.parametrize("fused", [False, True])
def test_evaluation_pools_first_with_identical_results(arch, shape, fused):
    import torch.nn.functional as F

    torch.manual_seed(0)
    enc = build_autoencoder(arch, shape, fused=fused).encoder
    enc.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        enc(torch.rand(16, *shape))
    enc.eval()
    x = torch.rand(8, *shape)
    y = x
    convs = [m for n, m in enc.named_children() if n.startswith("conv")]
    bns = [m for n, m in enc.named_children() if n.startswith("bn")]
    for conv, bn in zip(convs, bns, strict=True):  # the architecture's order: bn, leaky, pool
        y = F.max_pool2d(F.leaky_relu(bn(conv(y)), enc.leak), 2)
    with torch.no_grad():
        assert torch.equal(enc(x), enc.fc1(y.flatten(1)))


def test_refresh_batchnorm_sets_the_exact_statistics_of_the_data():
    from toolkit.nets import refresh_batchnorm

    torch.manual_seed(0)
    enc = build_autoencoder("mlp", (6,), hidden=(5,), rep_dim=3).encoder
    x = torch.randn(300, 6) * 3 + 1
    enc.train()
    enc(torch.randn(50, 6))  # some unrelated moving-average state
    refresh_batchnorm(enc, x, batch_size=100)
    assert not enc.training
    bn = next(m for m in enc.modules() if isinstance(m, nn.BatchNorm1d))
    h = enc[1](x)  # the first linear layer's output, which the BatchNorm normalises
    assert torch.allclose(bn.running_mean, h.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, h.var(0), rtol=0.05)
    assert bn.momentum == 0.1  # restored


@pytest.mark.parametrize("arch,shape,first", [("lenet28", (1, 28, 28), 8), ("lenet32", (3, 32, 32), 32)])
def test_width_multiplies_every_layer_of_the_lenet_nets(arch, shape, first):
    plain, wide = build_autoencoder(arch, shape), build_autoencoder(arch, shape, width=2)
    plain_filters = [m.weight.shape[:2] for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    wide_filters = [m.weight.shape[:2] for m in wide.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert wide.encoder.conv1.out_channels == 2 * first == 2 * plain.encoder.conv1.out_channels
    for p, w in zip(plain_filters, wide_filters, strict=True):  # every hidden layer doubled, the images' channels kept
        assert all(b == a or b == 2 * a for a, b in zip(p, w, strict=True)) and w != p
    x = torch.rand(3, *shape)
    assert wide.encoder(x).shape == plain.encoder(x).shape and wide(x).shape == x.shape
    narrow = build_autoencoder(arch, shape, width=0.01)  # rounded, never below one filter
    assert narrow.encoder.conv1.out_channels == 1 and narrow(x).shape == x.shape


def test_width_is_refused_for_the_mlp_whose_widths_are_its_own_setting():
    from toolkit.config import ConfigError

    with pytest.raises(ConfigError, match=r"net.width=2 multiplies a LeNet's filters; the mlp's widths are net.hidden"):
        build_autoencoder("mlp", (64,), width=2)
    assert build_autoencoder("mlp", (64,), width=1.0).encoder(torch.rand(2, 64)).shape == (2, 16)
