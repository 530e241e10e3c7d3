"""CIFAR-10 in the paper's setting: LeNet for 3x32x32 (32/64/128 filters, 128-d embedding), otherwise as
recipes/mnist.py, its score included (chosen on MNIST; not measured on CIFAR-10 here: compare with
--svdd.score_multi=1 --svdd.score_single=1 --svdd.score_recon=1 --svdd.score_knn=0 on your groups).
Normal classes {0, 1} (airplane, automobile)."""

from pathlib import Path

from toolkit.config import apply_overrides, load_recipe

config = apply_overrides(
    load_recipe(Path(__file__).with_name("mnist.py")),
    {
        "name": "cifar10",
        "data.dataset": "cifar10",
        "data.normal_classes": (0, 1),
        "net.arch": "lenet32",
        "net.rep_dim": 128,
    },
)
