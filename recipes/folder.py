"""Your own folder of images: ``python -m toolkit folder --data.dataset=PATH/TO/FOLDER``.

The folder holds either one subfolder per class (``normal/``, ``scratched/``, ...: the folder names are
the classes; ``--normal_classes=[normal]`` says which are normal, the rest are anomalies, and a
stratified ``data.test_fraction`` of all images is held out to measure the AUROC), or the images directly
(all normal, no labels: the detector is trained on all of them and the run scores them, with no AUROC).
Images are read grey at 28x28 or in colour at 32x32 (``data.image_mode``: colour as soon as one image
is), the sizes of the two LeNet nets, and preprocessed per image as in the paper (GCN + min-max).
The training settings and the score are the MNIST recipe's (the paper's schedule; the 5-NN distances in
the pretrained autoencoder's embedding and on the raw pixels, the best label-free score measured on
MNIST, not measured on other images here); ``python -m toolkit
score RUN_DIR NEW_FOLDER`` scores new images, resized the same way.
"""

from toolkit.config import ClusteringConfig, Config, DataConfig, OptimConfig, SVDDConfig

paper = OptimConfig(epochs=150, lr=1e-4, milestones=(50, 100), gamma=0.1, weight_decay=1e-6, batch_size=200)

config = Config(
    name="folder",
    data=DataConfig(dataset="data/images", normal_classes=("normal",), test_fraction=0.3, image_mode="auto"),
    pretrain=paper,
    clustering=ClusteringConfig(name="finch"),
    svdd=SVDDConfig(
        **vars(paper), nu=0.1, warmup_epochs=10, score_multi=0.0, score_knn=1.0, knn_space="autoencoder+raw"
    ),
)
