"""``python -m toolkit score RUN_DIR INPUT --out scores.csv``: score new data with a run's detector.

INPUT is a ``.npy`` array (read memory-mapped), a folder of images (read one batch at a time), or a
torchvision dataset as ``NAME:SPLIT`` (mnist, fashion_mnist, cifar10; train or test). One CSV row per
item: id, score, is_anomaly (score > threshold), nearest cluster. Rows are written batch by batch.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .data import TORCHVISION, DataError
from .detector import MultiRadiusDeepSVDD
from .files import atomic_write, describe

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _open_npy(path: Path) -> np.ndarray:
    """The array in ``path``, memory-mapped; a DataError for anything but a saved array of numbers."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise DataError(
            f"{path} is not a .npy array of numbers (a text file, pickled Python objects, which are refused, or "
            "a damaged file); save the data with numpy.save(PATH, array) of a number array"
        ) from None
    if not isinstance(x, np.ndarray) or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{path} holds {getattr(x, 'dtype', type(x).__name__)} values; scoring takes numbers")
    if x.ndim == 0:
        raise DataError(f"{path} holds a single number; scoring takes an array with one row per item")
    return x


def _npy(path: Path, batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    x = _open_npy(path)
    for s in range(0, len(x), batch):
        yield [str(i) for i in range(s, min(s + batch, len(x)))], np.asarray(x[s : s + batch], dtype=np.float32)


def _images(folder: Path, shape: tuple[int, ...], batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(shape) == 1:  # a detector of flat vectors takes square grey images (the 8x8 digits)
        side = int(round(shape[0] ** 0.5))
        if side * side != shape[0]:
            raise DataError(f"this detector takes vectors of {shape[0]} values, not images")
        mode, size = "L", (side, side)
    else:
        mode, size = ("L" if shape[0] == 1 else "RGB"), (shape[2], shape[1])
    for s in range(0, len(files), batch):
        out = []
        for f in files[s : s + batch]:
            try:
                img = Image.open(f).convert(mode)
            except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
                raise DataError(f"{f} is not a readable image ({describe(e)}); remove it or replace it") from None
            if img.size != size:
                raise DataError(f"{f.name} is {img.size[0]}x{img.size[1]}; this detector takes {size[0]}x{size[1]}")
            a = np.asarray(img, dtype=np.float32) / 255.0
            out.append(a.reshape(shape) if len(shape) == 1 else (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))
        yield [f.name for f in files[s : s + batch]], np.stack(out)


def _dataset(spec: str, root: str, batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    import torch
    import torchvision

    name, _, split = spec.partition(":")
    if name not in TORCHVISION or split not in ("train", "test"):
        raise DataError(f"dataset {spec!r}: use NAME:SPLIT with NAME in {sorted(TORCHVISION)} and SPLIT train or test")
    try:
        ds = getattr(torchvision.datasets, TORCHVISION[name])(root=root, train=split == "train", download=False)
    except RuntimeError:
        raise DataError(f"{name} is not under {root!r}; pass --data_root=FOLDER") from None
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    for s in range(0, len(data), batch):
        x = data[s : s + batch].astype(np.float32) / 255.0
        yield [str(i) for i in range(s, s + len(x))], (x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2))


def score_to_csv(
    run_dir: str | Path,
    source: str,
    out: str | Path,
    model: str = "multi",
    batch_size: int = 4096,
    data_root: str | None = None,
    progress: bool = True,
) -> int:
    """Score ``source`` with ``RUN_DIR/detector_MODEL.pt``; write ``out``; return the number of rows.
    ``batch_size`` rows are read and written at a time; the detector scores them in its own smaller
    passes (``nets.EVAL_BATCH``)."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    folder = Path(out).parent
    if not folder.is_dir():
        raise DataError(f"--out={str(out)!r}: folder {str(folder)!r} does not exist; create it or pick another --out")
    if Path(out).is_dir():
        raise DataError(f"--out={str(out)!r} is a folder; pass the path of the CSV file to write")
    det = MultiRadiusDeepSVDD.load(run_dir / f"detector_{model}.pt")
    src = Path(source)
    if src.suffix == ".npy" and src.is_file():
        batches, total = _npy(src, batch_size), len(_open_npy(src))
    elif src.is_dir():
        batches, total = _images(src, det.input_shape_, batch_size), None
    elif ":" in source:
        try:
            root = data_root or json.loads((run_dir / "config.json").read_text())["data"]["root"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"{run_dir}/config.json does not say where the data are; pass --data_root=FOLDER") from None
        batches, total = _dataset(source, root, batch_size), None
    else:
        raise DataError(f"INPUT {source!r} is none of: a .npy file, a folder of images, NAME:SPLIT (e.g. mnist:test)")
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", newline="") as f, tqdm(total=total, unit="item", disable=not progress) as bar:
            w = csv.writer(f)
            w.writerow(["id", "score", "is_anomaly", "cluster"])
            for ids, x in batches:
                try:
                    s, k = det.score_with_clusters(x)
                except ValueError as e:  # data the detector cannot take (shape, NaN): say so in one line
                    raise DataError(f"{source}: {describe(e, 400)}") from None
                w.writerows(
                    zip(ids, (f"{v:.6g}" for v in s), (int(v > det.threshold_) for v in s), k.tolist(), strict=True)
                )
                n += len(ids)
                bar.update(len(ids))

    atomic_write(out, write)  # a failed score leaves no partial output behind
    return n
