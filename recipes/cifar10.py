"""CIFAR-10 with the MNIST recipe's schedule and score on LeNet nets for 3x32x32 (128-d embedding).
Normal classes {0, 1} (airplane, automobile); the settings were chosen on MNIST, not measured on CIFAR-10."""

from pathlib import Path

from toolkit import apply_overrides, load_recipe

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
