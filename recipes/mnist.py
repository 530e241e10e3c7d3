"""MNIST in the paper's setting (Ruff et al. 2018): LeNet nets, 150 + 150 epochs, Adam, batch 200.
Trains one sphere and many small ones: FINCH's finest partition (clusters of 3 or more, about 1,800 to
4,000 spheres), each scored by the distance to its centre, centres moved to their clusters' means once
SVDD ends. The spheres train at a tenth of the paper's learning rate (1e-5), the one sphere at the
paper's 1e-4, each the rate measured best for it on MNIST; the spheres are then above one sphere and
above spheres on a random partition on every model measured (docs/results.md). Scores by the 5-NN
distances in the pretrained autoencoder's embedding and on the raw pixels, the best label-free score
measured on MNIST: the spheres alone are 1.2 to 4.2 points below it (in a detector of 0.4 to 0.8 MB
instead of 37 to 78 MB that scores 9.7 to 21.0 times as fast as the k-NN terms' earlier, slower form
did), so they are trained and reported, not scored: `--score.multi=1 --score.knn=0` scores by them alone."""

from toolkit.config import ClusteringConfig, Config, DataConfig, NetConfig, OptimConfig, ScoreConfig, SVDDConfig

paper = OptimConfig(epochs=150, lr=1e-4, milestones=(50, 100), gamma=0.1, weight_decay=1e-6, batch_size=200)

config = Config(
    name="mnist",
    data=DataConfig(dataset="mnist", root="data", normal_classes=(0, 1, 3)),
    net=NetConfig(arch="lenet28", rep_dim=32, leak=0.1, fused=True),
    pretrain=paper,
    clustering=ClusteringConfig(name="finch", options={"level": 0}, min_cluster_size=3),
    svdd=SVDDConfig(
        **vars(paper) | {"lr": 1e-5},
        single_lr=paper.lr,
        objective="soft-boundary",
        nu=0.1,
        warmup_epochs=10,
        recentre=True,
    ),
    score=ScoreConfig(rule="distance", multi=0.0, knn=1.0, knn_space="autoencoder+raw"),
)
