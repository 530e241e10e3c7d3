"""Your own table: ``python -m toolkit table --data.dataset=TABLE.csv`` (or .npz / .npy rows; column
``label``, if any, holds the classes). Features standardised; a small MLP, 60 + 60 epochs; the score is
the spheres + one sphere + reconstruction error (README: "Your own data")."""

from toolkit.config import ClusteringConfig, Config, DataConfig, NetConfig, OptimConfig, SVDDConfig

small = OptimConfig(epochs=60, lr=1e-3, milestones=(40,), batch_size=32, weight_decay=1e-6)

config = Config(
    name="table",
    data=DataConfig(dataset="data/table.csv", normal_classes=(0,), test_fraction=0.5, label_column="label"),
    net=NetConfig(arch="mlp", hidden=(32,), rep_dim=16),
    pretrain=small,
    clustering=ClusteringConfig(name="finch", min_cluster_size=10),
    svdd=SVDDConfig(**vars(small), nu=0.1, warmup_epochs=10, score_single=1.0, score_recon=1.0),
)
