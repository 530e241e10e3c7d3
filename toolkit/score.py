"""``python -m toolkit score RUN_DIR INPUT --out scores.csv``: score new data with a run's detector.

INPUT is what training takes (``toolkit.sources``): a ``.npy`` array (read memory-mapped), a ``.npz``
(its ``x``), a ``.csv`` table (its label column, if any, left out), a folder of images (read one batch
at a time; resized when the detector was trained on a folder of images, which are read at the nets'
sizes), a torchvision dataset as ``NAME:SPLIT`` (mnist, fashion_mnist, cifar10; train or test), or a
digits run's own split as ``digits:train`` or ``digits:test``. One
CSV row per item: id, score, is_anomaly (score > threshold), nearest cluster. Rows are written batch by
batch. An item holding NaN or inf is refused, naming its row (``non_finite="raise"``), or scored ``inf``,
anomalous, in cluster -1 (``non_finite="anomaly"``).
"""

from __future__ import annotations

import csv
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .data import TORCHVISION, DataConfig, DataError, load_split
from .detector import MultiRadiusDeepSVDD
from .files import atomic_write, describe
from .runfolder import detector_file
from .sources import FILE_SUFFIXES, array_batches
from .sources import batches as read_batches

log = logging.getLogger("toolkit")


def _digits(spec: str, data: DataConfig, seed: int, batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """``digits:train`` / ``digits:test``: a digits run's own split (its seed and test_fraction), ids the
    rows' positions in it; the digits are drawn into that split at random, so another run's would differ."""
    if data.dataset != "digits":
        raise DataError(
            f"dataset {spec!r} is the split of a run trained on digits; this run was trained on {data.dataset!r}"
        )
    split = load_split(data, seed)
    return array_batches(split.x_train if spec.endswith(":train") else split.x_test, batch)


def _dataset(spec: str, root: str, batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    import torch
    import torchvision

    name, _, split = spec.partition(":")
    if name not in TORCHVISION or split not in ("train", "test"):
        names = sorted([*TORCHVISION, "digits"])
        raise DataError(f"dataset {spec!r}: use NAME:SPLIT with NAME in {names} and SPLIT train or test")
    try:
        ds = getattr(torchvision.datasets, TORCHVISION[name])(root=root, train=split == "train", download=False)
    except RuntimeError:
        raise DataError(f"{name} is not under {root!r}; pass --data_root=FOLDER") from None
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    for s in range(0, len(data), batch):
        x = data[s : s + batch].astype(np.float32) / 255.0
        yield [str(i) for i in range(s, s + len(x))], (x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2))


NON_FINITE = ("raise", "anomaly")


def _refuse_non_finite(source: str, ids: list[str], x: np.ndarray) -> None:
    """Refuse a batch holding NaN or inf, naming the items by their ids (row numbers in the whole input, not
    in the batch)."""
    if x.dtype.kind not in "fc":
        return
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if len(bad):
        shown = ", ".join(ids[i] for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise DataError(
            f"{source} holds NaN or infinite values (first in row{'s' if len(bad) > 1 else ''} {shown}); clean "
            "them, or pass --non_finite=anomaly to score such rows as anomalies (score inf, cluster -1)"
        )


def score_to_csv(
    run_dir: str | Path,
    source: str,
    out: str | Path,
    model: str = "multi",
    batch_size: int = 4096,
    data_root: str | None = None,
    progress: bool = True,
    non_finite: str = "raise",
) -> int:
    """Score ``source`` with ``RUN_DIR/detector_MODEL.pt``; write ``out``; return the number of rows.
    ``batch_size`` rows are read and written at a time; the detector scores them in its own smaller
    passes (``nets.EVAL_BATCH``). ``non_finite``: what an item holding NaN or inf gets ("raise": refused,
    naming its row; "anomaly": scored inf)."""
    from tqdm import tqdm

    if non_finite not in NON_FINITE:
        raise DataError(f"--non_finite={non_finite!r} is unknown; accepted: {', '.join(NON_FINITE)}")
    run_dir = Path(run_dir)
    folder = Path(out).parent
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out={str(out)!r}: {str(folder)!r} is a file, not a folder; pick another --out")
    if not folder.is_dir():
        raise DataError(f"--out={str(out)!r}: folder {str(folder)!r} does not exist; create it or pick another --out")
    if Path(out).is_dir():
        raise DataError(f"--out={str(out)!r} is a folder; pass the path of the CSV file to write")
    det = MultiRadiusDeepSVDD.load(detector_file(run_dir, model))
    det.non_finite = non_finite
    data = det.resolved_config().data
    src = Path(source)
    if src.is_dir() or (src.suffix.lower() in FILE_SUFFIXES and src.is_file()):
        trained_on_folder = data.own and Path(data.dataset).suffix.lower() not in FILE_SUFFIXES
        columns = getattr(det, "feature_names_in_", None)
        columns = None if columns is None else list(columns)
        batches, total = read_batches(src, det.input_shape_, batch_size, data.label_column, trained_on_folder, columns)
    elif src.suffix.lower() in FILE_SUFFIXES:
        raise DataError(f"INPUT {source!r}: no such file")
    elif source in ("digits:train", "digits:test"):
        batches, total = _digits(source, data, det.resolved_config().seed, batch_size), None
    elif ":" in source:
        try:
            root = data_root or json.loads((run_dir / "config.json").read_text())["data"]["root"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"{run_dir}/config.json does not say where the data are; pass --data_root=FOLDER") from None
        batches, total = _dataset(source, root, batch_size), None
    else:
        raise DataError(
            f"INPUT {source!r} is none of: a .npy, .npz or .csv file, a folder of images, NAME:SPLIT (e.g. mnist:test)"
        )
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", newline="") as f, tqdm(total=total, unit="item", disable=not progress) as bar:
            w = csv.writer(f)
            w.writerow(["id", "score", "is_anomaly", "cluster"])
            for ids, x in batches:
                if non_finite == "raise":
                    _refuse_non_finite(source, ids, x)
                try:
                    with warnings.catch_warnings():  # a table's columns are checked above, by name
                        warnings.filterwarnings("ignore", message="X does not have valid feature names")
                        s, k = det.score_with_clusters(x)
                except ValueError as e:  # data the detector cannot take (shape, NaN): say so in one line
                    raise DataError(f"{source}: {describe(e, 400)}") from None
                w.writerows(
                    zip(ids, (f"{v:.6g}" for v in s), (int(v > det.threshold_) for v in s), k.tolist(), strict=True)
                )
                n += len(ids)
                bar.update(len(ids))
                if not progress:  # no bar (output to a file): one line per batch says how far it is
                    log.info("score: %d%s rows scored", n, "" if total is None else f" of {total}")

    atomic_write(out, write)  # a failed score leaves no partial output behind
    return n
