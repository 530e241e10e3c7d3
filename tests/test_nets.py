"""Bias-free nets of the right shapes."""

import pytest
import torch
from torch import nn

from toolkit.nets import build_autoencoder, resolve_arch


@pytest.mark.parametrize(
    "arch,shape,rep",
    [("lenet28", (1, 28, 28), 32), ("lenet32", (3, 32, 32), 128), ("mlp", (64,), 16)],
)
def test_autoencoder_shapes_and_no_bias(arch, shape, rep):
    ae = build_autoencoder(arch, shape)
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
