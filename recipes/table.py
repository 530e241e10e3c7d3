"""Your own table: ``python -m toolkit table --data.dataset=TABLE.csv`` (or .npz / .npy rows; column
``label``, if any, holds the classes). Features min-max scaled; a small MLP; many small spheres plus 5 x the
5-NN distance on the raw features; threshold set on a held-out fifth (docs/results.md)."""

from toolkit.config import ClusteringConfig, Config, DataConfig, NetConfig, OptimConfig, ScoreConfig, SVDDConfig

small = OptimConfig(epochs=60, lr=1e-3, milestones=(40,), batch_size=32, weight_decay=1e-6)

config = Config(
    name="table",
    preprocess="minmax",
    data=DataConfig(dataset="data/table.csv", normal_classes=(0,), test_fraction=0.5, label_column="label"),
    net=NetConfig(arch="mlp", hidden=(32,), rep_dim=16),
    pretrain=small,
    clustering=ClusteringConfig(name="finch", options={"level": 0}, min_cluster_size=3),
    svdd=SVDDConfig(
        **vars(small),
        nu=0.1,
        warmup_epochs=10,
        recentre=True,
    ),
    score=ScoreConfig(rule="distance", knn=5.0, knn_space="raw", calibration=0.2),
)
