"""Fashion-MNIST with the MNIST recipe's nets, schedule (150 pretraining epochs, 10 of SVDD) and spheres,
scored by the two 5-NN distances (in the pretrained autoencoder's embedding and on the raw pixels), which
read the pretrained autoencoder and the pixels, not SVDD. None of it is measured on Fashion-MNIST;
the MNIST recipe's compact score (the pixels' nearest centre in place of their 5-NN distance) was chosen
on MNIST alone, so it is not carried over: ``--score.knn_space=autoencoder --score.centres=1
--score.storage=float16`` gives it."""

from pathlib import Path

from toolkit import apply_overrides, load_recipe

config = apply_overrides(
    load_recipe(Path(__file__).with_name("mnist.py")),
    {
        "name": "fashion_mnist",
        "data.dataset": "fashion_mnist",
        "score.knn_space": "autoencoder+raw",
        "score.centres": 0.0,
        "score.storage": "float32",
    },
)
