"""Your own table: ``python -m toolkit table --data.dataset=PATH/TO/TABLE.csv`` (or a ``.npz`` with
arrays ``x`` and ``y``, or a ``.npy`` of rows).

A .csv has a header row and one row per item; every column is a numeric feature except
``data.label_column`` (``label``), which, when the table has it, holds the classes: ``--normal_classes``
(here ``[0]``, PyOD's convention: 0 normal, 1 outlier) says which are normal, the rest are anomalies, and
a stratified ``data.test_fraction`` of the rows is held out to measure the AUROC. Without a label column
every row is normal training data and the run scores them, with no AUROC. Features are standardised
(``preprocess="auto"`` for tables: each column by its training mean and standard deviation). The net and
schedule are the digits recipe's (a small MLP autoencoder, 60 + 60 epochs); ``python -m toolkit score
RUN_DIR NEW.csv`` scores new rows with the same columns.
"""

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
