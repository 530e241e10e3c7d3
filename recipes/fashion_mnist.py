"""Fashion-MNIST with the MNIST recipe's nets, schedule, spheres and score (chosen on MNIST, not measured on
Fashion-MNIST)."""

from pathlib import Path

from toolkit import apply_overrides, load_recipe

config = apply_overrides(
    load_recipe(Path(__file__).with_name("mnist.py")),
    {"name": "fashion_mnist", "data.dataset": "fashion_mnist"},
)
