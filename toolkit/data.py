"""Data sets by name or path, the normal/anomaly split, in-memory batches (the preprocessing:
``toolkit.preprocessing``).

Everything that fits is turned into preprocessed tensors once and batched by slicing: no per-sample
transform or collate in the training loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .config import DATASETS, DataConfig
from .files import describe
from .sources import DataError, read

TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
EXPECTED_FILES = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashion_mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
}


@dataclass
class Split:
    """Raw (unpreprocessed) arrays: ``x_*`` as float32 (N, C, H, W) or (N, D); labels are true classes
    (integers; for classes named by strings, the index into ``class_names``). Unlabelled data are all
    normal training data, and the test set is the training data itself (scored, with no AUROC)."""

    x_train: np.ndarray  # normal training data only
    y_train: np.ndarray  # true classes of x_train (for diagnostics; never used for training)
    x_test: np.ndarray
    y_test: np.ndarray  # true classes of x_test
    is_anomaly_test: np.ndarray  # 1 for anomalies (classes not in normal_classes), else 0
    class_names: list[str] | None = None  # own data with classes named by strings (folder names)
    labelled: bool = True  # False: no classes, so no anomalies to test against
    train_labelled: bool = True  # False: the training items have no classes (a separate labelled test set)
    feature_names: list[str] | None = None  # a table's feature columns, by name (.csv)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def named(self, y: np.ndarray) -> np.ndarray:
        """Classes ``y`` by their names where the data name them (folder names), else as they are."""
        return y if self.class_names is None else np.array(self.class_names)[y]


def image_layout(x: np.ndarray) -> np.ndarray:
    """Images as (N, C, H, W): grey (N, H, W) gains a channel axis, channels-last (N, H, W, C) with 1 or 3
    channels is transposed; tables (N, D) and (N, C, H, W) with 1 or 3 channels are returned as they are.
    Anything else is refused with a ValueError saying what is accepted."""
    if x.ndim <= 2:
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    raise ValueError(
        f"X has samples of shape {tuple(x.shape[1:])}; accepted: tables (N, D), grey images (N, H, W), and "
        "images (N, C, H, W) or channels-last (N, H, W, C) with C = 1 or 3 channels"
    )


# --------------------------------------------------------------------------------------------- loading


def _digits(cfg: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float32)  # (1797, 64), values 0..16
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, d.target, test_size=cfg.test_fraction, stratify=d.target, random_state=seed
    )
    return x_tr, y_tr, x_te, y_te


def _torchvision(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[cfg.dataset])
    root = Path(cfg.root).expanduser()
    where = f"{root}/{EXPECTED_FILES[cfg.dataset]}"
    out = []
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=False)
        except RuntimeError:
            if not cfg.download:
                raise DataError(
                    f"{cfg.dataset} is not under data.root={str(root)!r} and data.download=False. "
                    f"Put the files at {where}, or set --data.download=True."
                ) from None
            try:
                ds = cls(root=str(root), train=train, download=True)
            except Exception as e:
                raise DataError(
                    f"{cfg.dataset} is not under data.root={str(root)!r} and downloading it failed "
                    f"({type(e).__name__}: {describe(e)}). Offline? Put the files at {where} "
                    "(torchvision's layout), or point --data.root at the folder that holds them."
                ) from None
        data = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
        targets = np.asarray(ds.targets.numpy() if isinstance(ds.targets, Tensor) else ds.targets)
        x = data.astype(np.float32) / 255.0
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (N,H,W) or (N,H,W,C) -> (N,C,H,W)
        out += [np.ascontiguousarray(x), targets.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


def _read_own(path: str, cfg: DataConfig, setting: str) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The items at ``path`` as float32 (N, C, H, W) or (N, D), their labels if the data hold them, and a
    table's feature column names."""
    try:
        d = read(path, cfg.label_column, cfg.image_mode, training=True)
    except DataError as e:
        import difflib

        near = difflib.get_close_matches(path, DATASETS, n=1) if setting == "data.dataset" else []
        hint = f" (a built-in data set: {DATASETS}; did you mean {near[0]!r}?)" if near else ""
        raise DataError(f"{setting}: {e}{hint}") from None
    try:
        x = np.ascontiguousarray(image_layout(d.x), dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None
    return x, d.y, d.columns


def _classes(labels: list[np.ndarray]) -> tuple[list[np.ndarray], list[str] | None]:
    """Labels as class integers: as they are when they are all integers, else indices into the sorted
    names of every label (the returned ``class_names``)."""
    if all(y.dtype.kind in "iu" for y in labels):
        return [y.astype(np.int64) for y in labels], None
    names = sorted(set().union(*(y.astype(str).tolist() for y in labels)))
    return [np.searchsorted(np.array(names), y.astype(str)) for y in labels], names


def _check_normal_classes(cfg: DataConfig, path: str, labels: np.ndarray) -> list[str]:
    """The normal classes as text, each one found among ``labels``."""
    names = sorted(set(labels.astype(str).tolist()))
    wanted = [str(c) for c in cfg.normal_classes]
    if missing := [c for c in wanted if c not in names]:
        raise DataError(f"normal class(es) {missing} are not in {path}; its classes are {names} (data.normal_classes)")
    if set(wanted) == set(names):
        raise DataError(
            f"data.normal_classes names every class of {path} ({names}): none is left as anomaly (class folders "
            "holding no image are not classes). To train on normal data alone, give a labelled test set with "
            "--data.test, or data without classes (images directly in the folder, a table without its label column)"
        )
    return wanted


def _own(cfg: DataConfig, seed: int) -> Split:
    """The user's data at ``cfg.dataset`` (``toolkit.sources``). With ``cfg.test`` (a labelled test set):
    every normal item of the data trains (all of them when the data have no classes). Else labelled: a
    stratified test share (``test_fraction``), normal classes by label value or folder name; unlabelled:
    all normal, all for training, and the test set is the training data."""
    from sklearn.model_selection import train_test_split

    x, labels, columns = _read_own(cfg.dataset, cfg, "data.dataset")
    if len(x) < 2:
        raise DataError(f"{cfg.dataset} holds {len(x)} item(s); training needs at least 2")
    if cfg.test:
        return _own_with_test(cfg, x, labels, columns)
    if labels is None:
        y = np.zeros(len(x), dtype=np.int64)
        return Split(x, y, x, y, np.zeros(len(x), dtype=np.int64), labelled=False, feature_names=columns)
    wanted = _check_normal_classes(cfg, cfg.dataset, labels)
    (y,), class_names = _classes([labels])
    normal = np.isin(labels.astype(str), wanted)
    try:
        idx_tr, idx_te = train_test_split(np.arange(len(x)), test_size=cfg.test_fraction, stratify=y, random_state=seed)
    except ValueError as e:
        raise DataError(f"{cfg.dataset}: cannot hold out a stratified test share ({e})") from None
    idx_tr = idx_tr[normal[idx_tr]]
    is_anomaly = (~normal[idx_te]).astype(np.int64)
    return Split(x[idx_tr], y[idx_tr], x[idx_te], y[idx_te], is_anomaly, class_names, feature_names=columns)


def _own_with_test(cfg: DataConfig, x: np.ndarray, labels: np.ndarray | None, columns: list[str] | None) -> Split:
    """Training items from ``cfg.dataset`` (its normal classes, or all of it unlabelled); the labelled
    test set from ``cfg.test``, whose items of the normal classes are normal and the others anomalies."""
    xt, lt, test_columns = _read_own(cfg.test, cfg, "data.test")
    if columns is not None and test_columns is not None and test_columns != columns:
        raise DataError(
            f"data.test={cfg.test!r} has the columns {test_columns}, data.dataset={cfg.dataset!r} {columns}; give "
            "the test table the training table's columns, in their order"
        )
    if lt is None:
        raise DataError(
            f"data.test={cfg.test!r} has no classes: a test set needs them to tell anomalies from normal items "
            "(a folder with one subfolder per class, a .npz with y, or a .csv with the data.label_column column)"
        )
    if xt.shape[1:] != x.shape[1:]:
        raise DataError(
            f"the test items ({cfg.test}) are {xt.shape[1:]} each, the training items ({cfg.dataset}) "
            f"{x.shape[1:]}; give both the same shape (image folders: --data.image_mode=grey or colour reads "
            "both alike)"
        )
    wanted = [str(c) for c in cfg.normal_classes]
    normal_t = np.isin(lt.astype(str), wanted)
    if normal_t.all() or not normal_t.any():
        what = "anomalies (items of other classes)" if normal_t.all() else f"items of the normal classes {wanted}"
        raise DataError(f"data.test={cfg.test!r} holds no {what}; the AUROC needs both")
    if labels is None:  # all normal; the classes of the training items are unknown
        (yt,), class_names = _classes([lt])
        y = np.zeros(len(x), dtype=np.int64)
        is_anomaly = (~normal_t).astype(np.int64)
        return Split(x, y, xt, yt, is_anomaly, class_names, train_labelled=False, feature_names=columns)
    _check_normal_classes(cfg, cfg.dataset, labels)
    normal = np.isin(labels.astype(str), wanted)
    (y, yt), class_names = _classes([labels, lt])
    return Split(x[normal], y[normal], xt, yt, (~normal_t).astype(np.int64), class_names, feature_names=columns)


def load_split(cfg: DataConfig, seed: int = 0) -> Split:
    """Load ``cfg.dataset``; keep only normal classes for training, every class for testing."""
    if cfg.own:
        return _own(cfg, seed)
    x_tr, y_tr, x_te, y_te = _digits(cfg, seed) if cfg.dataset == "digits" else _torchvision(cfg)
    classes = set(np.unique(y_tr).tolist())
    missing = sorted(set(cfg.normal_classes) - classes)
    if missing:
        raise DataError(f"normal class(es) {missing} are not in {cfg.dataset}; its classes are {sorted(classes)}")
    normal = np.isin(y_tr, cfg.normal_classes)
    return Split(
        x_train=x_tr[normal],
        y_train=y_tr[normal],
        x_test=x_te,
        y_test=y_te,
        is_anomaly_test=(~np.isin(y_te, cfg.normal_classes)).astype(np.int64),
    )


def as_tensor(x: np.ndarray | Tensor) -> Tensor:
    return x if isinstance(x, Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# --------------------------------------------------------------------------------------------- batching


class TensorBatches:
    """Mini-batches of in-memory tensors by slicing; one shuffle (a single gather) per epoch.

    Yields ``(index, x, *extra)`` per batch, so a training step knows which rows it saw. With several
    processes (``world`` > 1) every rank draws the same global permutation and takes its share
    (``rank::world``) of each global batch: together the ranks see exactly the single-process batches.
    The shuffling generator's state is checkpointed (``state_dict``), so a resumed run draws the same
    batches as an uninterrupted one.
    """

    def __init__(
        self,
        x: Tensor,
        *extra: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if world > 1 and batch_size < world:
            raise ValueError(f"batch_size={batch_size} is smaller than the number of processes ({world})")
        self.tensors = (x, *extra)
        self.batch_size, self.shuffle, self.rank, self.world = batch_size, shuffle, rank, world
        self.generator = torch.Generator().manual_seed(seed)

    def _bounds(self) -> list[int]:
        """Batch boundaries; a last batch too small for batch norm (under 2 rows a rank) joins the one before."""
        n = self.tensors[0].shape[0]
        bounds = [*range(0, n, self.batch_size), n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2 * self.world:
            del bounds[-2]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds()) - 1

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n = self.tensors[0].shape[0]
        device = self.tensors[0].device
        if self.shuffle:
            index = torch.randperm(n, generator=self.generator).to(device)
            tensors = tuple(t[index] for t in self.tensors)
        else:
            index = torch.arange(n, device=device)
            tensors = self.tensors
        bounds = self._bounds()
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            part = slice(start + self.rank, stop, self.world)
            yield (index[part], *(t[part] for t in tensors))
