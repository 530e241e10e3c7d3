"""Fashion-MNIST with the MNIST recipe's paper setting (same 1x28x28 shape, same LeNet nets) and its
score, chosen on MNIST (not measured on Fashion-MNIST here)."""

from pathlib import Path

from toolkit.config import apply_overrides, load_recipe

config = apply_overrides(
    load_recipe(Path(__file__).with_name("mnist.py")),
    {"name": "fashion_mnist", "data.dataset": "fashion_mnist"},
)
