"""Your own images: ``python -m toolkit folder --data.dataset=FOLDER`` (one subfolder per class, or images
that are all normal). LeNet nets at 28x28 grey or 32x32 colour, with the CIFAR-10 recipe's pretraining,
spheres and score: rotation prediction, and the spheres' score, rotation's cross-entropy and the
distance to the nearest training image's colour layout, the best measured on natural colour images
(docs/results.md, "The colour layout beside the rotation net"); where colour does not tell your normal
classes from the rest the colour layout costs (3.0 points on CIFAR-10's {automobile, truck}), and
``--score.knn=0`` leaves it out. For grey digit- or
sketch-like images the MNIST recipe's choices were measured best on MNIST: ``python -m toolkit mnist
--data.dataset=FOLDER`` (README: "Your own data")."""

from dataclasses import replace
from pathlib import Path

from toolkit import load_recipe
from toolkit.config import DataConfig, NetConfig

natural = load_recipe(Path(__file__).with_name("cifar10.py"))

config = replace(
    natural,
    name="folder",
    data=DataConfig(dataset="data/images", normal_classes=("normal",), test_fraction=0.3, image_mode="auto"),
    net=NetConfig(fused=True),  # the architecture and embedding size follow the images (net.arch=auto)
)
