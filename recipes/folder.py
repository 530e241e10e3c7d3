"""Your own images: ``python -m toolkit folder --data.dataset=FOLDER`` (one subfolder per class, or images
that are all normal). LeNet nets at 28x28 grey or 32x32 colour; the MNIST recipe's schedule and score,
chosen on MNIST and not measured on other images (README: "Your own data")."""

from toolkit.config import ClusteringConfig, Config, DataConfig, OptimConfig, ScoreConfig, SVDDConfig

paper = OptimConfig(epochs=150, lr=1e-4, milestones=(50, 100), gamma=0.1, weight_decay=1e-6, batch_size=200)

config = Config(
    name="folder",
    data=DataConfig(dataset="data/images", normal_classes=("normal",), test_fraction=0.3, image_mode="auto"),
    pretrain=paper,
    clustering=ClusteringConfig(name="finch"),
    svdd=SVDDConfig(**vars(paper), nu=0.1, warmup_epochs=10),
    score=ScoreConfig(multi=0.0, knn=1.0, knn_space="autoencoder+raw"),
)
