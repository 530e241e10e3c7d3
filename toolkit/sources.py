"""The user's own data files: folders of images, ``.npy`` / ``.npz`` arrays and ``.csv`` tables.

One reader per kind, shared by training (``toolkit.data.load_split`` reads everything) and scoring
(``toolkit.score`` reads a batch at a time). Every problem is a :class:`DataError` naming the file and
what is accepted. Arrays come out as float32, images as (N, C, H, W) in [0, 1].

- **Image folder**: one subfolder per class (the folder names are the classes), or a flat folder of
  images (no classes: all normal). Images are read grey (1x28x28) or colour (3x32x32), the sizes of the
  two LeNet nets, and resized to that size.
- **.npy**: one array, one row per item (no classes). **.npz**: ``x`` and optionally ``y`` (classes).
- **.csv**: a header row, then one row per item; the ``label`` column (``data.label_column``), when there
  is one, holds the classes, every other column must be numeric. The feature columns' names are kept:
  a detector trained on a table refuses to score one whose columns are named or ordered otherwise. When
  training, a label column asked for by another name than ``label`` must be there, and so must ``label``
  when the header has it in another case (``Label``): a table read as unlabelled would train on it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import describe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_SIZE = {"grey": (1, 28, 28), "colour": (3, 32, 32)}  # (C, H, W) of each image mode: the LeNet nets'
FILE_SUFFIXES = (".npy", ".npz", ".csv")  # the data files read besides folders of images
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P;L"}


class DataError(RuntimeError):
    """Data that cannot be loaded; the message says what was wrong and what is accepted."""


@dataclass
class Labelled:
    """Items ``x`` (float32, one row per item) and their classes ``y`` (None: unlabelled, all normal)."""

    x: np.ndarray
    y: np.ndarray | None = None
    columns: list[str] | None = None  # a table's feature columns, by name


def kind(path: str | Path) -> str:
    """ "folder", "npy", "npz" or "csv"; a DataError for anything else."""
    p = Path(path).expanduser()
    if p.is_dir():
        return "folder"
    if p.suffix.lower() in FILE_SUFFIXES:
        if not p.is_file():
            raise DataError(f"{str(path)!r} does not exist")
        return p.suffix.lower()[1:]
    if not p.exists():
        raise DataError(f"{str(path)!r} does not exist")
    raise DataError(f"{str(path)!r} is none of: a folder of images, a .npy or .npz array, a .csv table")


def _numbers(x: object, path: Path, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{path}: {what} holds {getattr(x, 'dtype', type(x).__name__)} values; numbers are needed")
    if np.issubdtype(x.dtype, np.complexfloating):  # float32 would keep the real parts alone, silently
        raise DataError(f"{path}: {what} holds complex numbers ({x.dtype}); real numbers are needed")
    if x.ndim == 0:
        raise DataError(f"{path}: {what} holds a single number; give an array with one row per item")
    return x


def open_npy(path: str | Path) -> np.ndarray:
    """The array in ``path``, memory-mapped; pickled objects are refused, never loaded."""
    path = Path(path)
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise DataError(
            f"{path} is not a .npy array of numbers (a text file, pickled Python objects, which are refused, or "
            "a damaged file); save the data with numpy.save(PATH, array) of a number array"
        ) from None
    return _numbers(x, path, "the array")


def read_npz(path: str | Path) -> Labelled:
    """``x`` and, if present, ``y`` of a ``numpy.savez`` file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError) as e:
        raise DataError(
            f"{path} is not a readable .npz of number arrays ({describe(e, 120)}); save it with "
            "numpy.savez(PATH, x=items, y=classes)"
        ) from None
    if "x" not in arrays:
        raise DataError(f"{path} holds arrays {sorted(arrays)}; an array named x (the items) is needed, y optional")
    x = _numbers(arrays["x"], path, "x")
    y = arrays.get("y")
    if y is not None:
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y has shape {y.shape}; one class per item of x ({len(x)}) is needed")
        if y.dtype.kind not in "iub" and not (y.dtype.kind == "U" or (y.dtype.kind == "f" and np.all(y == y.round()))):
            raise DataError(f"{path}: y holds {y.dtype} values; classes are integers or strings")
        y = y.astype(np.int64) if y.dtype.kind in "fb" else y
    return Labelled(x, y)


def read_table(path: str | Path, label_column: str = "label", training: bool = False) -> Labelled:
    """A .csv table with a header row: ``label_column`` (if present) as the classes, the rest as features
    (their names kept). ``training``: a label column that is surely meant but absent is refused (see the
    module's description), where a table to score may well have none."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not a readable text table ({describe(e, 120)})") from None
    rows = [r for r in rows if r]
    if len(rows) < 2:
        raise DataError(f"{path} holds no data rows; a header row, then one row per item, is needed")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if bad := [i + 2 for i, r in enumerate(body) if len(r) != len(header)][:5]:
        raise DataError(f"{path}: rows {bad} do not have the header's {len(header)} columns")
    cols = list(zip(*body, strict=True))
    y = None
    if training and label_column and label_column not in header:
        cased = [h for h in header if h.lower() == label_column.lower()]
        if cased or label_column != "label":
            shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
            fix = f"--data.label_column={cased[0]}" if cased else "the name of the column holding the classes"
            raise DataError(
                f"{path} has no column {label_column!r} (data.label_column); its columns are {shown}: pass {fix}, "
                "or --data.label_column='' for a table without classes"
            )
    if label_column and label_column in header:
        i = header.index(label_column)
        labels = np.array([v.strip() for v in cols.pop(i)])
        header.pop(i)
        try:
            y = labels.astype(np.int64)
        except ValueError:
            y = labels
    if not header:
        raise DataError(f"{path} has no feature columns besides {label_column!r}")
    cells = np.char.strip(np.array(cols, dtype=str).T)  # (rows, features); empty cells are missing values
    cells[cells == ""] = "nan"
    try:
        return Labelled(cells.astype(np.float32), y, header)
    except ValueError:
        j, example = next((j, str(v)) for j, col in enumerate(cells.T) for v in col if not _is_number(v))
        raise DataError(
            f"{path}: column {header[j]!r} holds {example!r}, not a number; every column but the classes "
            f"({label_column!r}, see data.label_column) must be numeric"
        ) from None


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------- images


def image_files(folder: str | Path) -> tuple[list[Path], np.ndarray | None]:
    """The images of ``folder`` and their classes: with one subfolder per class, the subfolder names;
    with images directly in the folder, None (all normal)."""
    folder = Path(folder).expanduser()
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

    flat = images(folder)
    if flat and subs:
        raise DataError(
            f"{folder} holds both images and subfolders ({', '.join(s.name for s in subs[:3])}); put every image in "
            "a class subfolder, or all images directly in the folder (then all are normal)"
        )
    if flat:
        return flat, None
    files, labels = [], []
    for s in subs:
        found = images(s)
        files += found
        labels += [s.name] * len(found)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), directly or in class subfolders")
    return files, np.array(labels)


def image_mode(files: list[Path], setting: str = "auto") -> str:
    """ "grey" or "colour": the setting, or with "auto" colour as soon as one image is in colour."""
    if setting != "auto":
        return setting
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as img:
                if img.mode not in GREY_MODES:
                    return "colour"
        except (OSError, SyntaxError, ValueError):
            continue  # reported by read_images
    return "grey"


def read_images(files: list[Path], shape: tuple[int, ...], resize: bool = True) -> np.ndarray:
    """``files`` as float32 in [0, 1] of ``shape`` per image ((C, H, W), or (D,) for square grey images
    flattened); images of another size are resized (bilinear) or, with ``resize=False``, refused."""
    from PIL import Image

    if len(shape) == 1:  # a detector of flat vectors takes square grey images (the 8x8 digits)
        side = int(round(shape[0] ** 0.5))
        if side * side != shape[0]:
            raise DataError(f"this detector takes vectors of {shape[0]} values, not images")
        mode, size = "L", (side, side)
    else:
        mode, size = ("L" if shape[0] == 1 else "RGB"), (shape[2], shape[1])
    out = np.empty((len(files), *shape), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img = img.convert(mode)
        except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
            raise DataError(f"{f} is not a readable image ({describe(e)}); remove it or replace it") from None
        if img.size != size:
            if not resize:
                raise DataError(f"{f.name} is {img.size[0]}x{img.size[1]}; this detector takes {size[0]}x{size[1]}")
            img = img.resize(size, Image.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.float32) / 255.0
        out[i] = a.reshape(shape) if len(shape) == 1 else (a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return out


def read_folder(folder: str | Path, setting: str = "auto") -> Labelled:
    """Every image of ``folder`` (see :func:`image_files`), at the size of its image mode."""
    files, y = image_files(folder)
    return Labelled(read_images(files, IMAGE_SIZE[image_mode(files, setting)]), y)


def read(
    path: str | Path, label_column: str = "label", image_setting: str = "auto", training: bool = False
) -> Labelled:
    """All of the user's data at ``path``, whichever kind it is (``training``: see :func:`read_table`)."""
    k = kind(path)
    if k == "folder":
        return read_folder(path, image_setting)
    if k == "npy":
        return Labelled(np.asarray(open_npy(path), dtype=np.float32))
    if k == "npz":
        d = read_npz(path)
        return Labelled(np.asarray(d.x, dtype=np.float32), d.y)
    return read_table(path, label_column, training)


def compare_columns(names: list[str], fitted: list[str], what: str, fix: str) -> None:
    """One ValueError when the columns ``names`` of ``what`` are not the detector's ``fitted`` ones, in name
    or in order, saying which and how to ``fix`` it."""
    if names == fitted:
        return

    def shown(cols: list[str]) -> str:
        return ", ".join(map(str, cols[:5])) + (", ..." if len(cols) > 5 else "")

    if sorted(names) == sorted(fitted):
        raise ValueError(
            f"{what} has the columns the detector was fitted on in another order (fit: {shown(fitted)}; "
            f"{what}: {shown(names)}); pass them in the order of fit: {fix}"
        )
    unseen = [n for n in names if n not in set(fitted)]
    missing = [n for n in fitted if n not in set(names)]
    found = "; ".join(f"{kind}: {shown(c)}" for kind, c in (("unseen at fit", unseen), ("missing", missing)) if c)
    raise ValueError(
        f"{what}'s column names do not match those the detector was fitted on ({found or 'repeated names'}); "
        f"pass the columns of fit, in their order: {fix}"
    )


def batches(
    path: str | Path,
    shape: tuple[int, ...],
    batch: int,
    label_column: str = "label",
    resize: bool = False,
    columns: list[str] | None = None,
) -> tuple[Iterator[tuple[list[str], np.ndarray]], int]:
    """``(ids, x)`` batches of the data at ``path`` for a detector taking ``shape``, and their count:
    .npy read memory-mapped, images ``batch`` files at a time. Ids are row numbers, or file names.
    ``columns``: the feature columns the detector was trained on, which a .csv table must have, in order."""
    k = kind(path)
    if k == "folder":
        files, _ = image_files(path)
        root = Path(path).expanduser()
        it = (
            ([str(f.relative_to(root)) for f in files[s : s + batch]], read_images(files[s : s + batch], shape, resize))
            for s in range(0, len(files), batch)
        )
        return it, len(files)
    if k == "csv":
        table = read_table(path, label_column)
        if columns is not None and table.columns is not None:
            try:
                compare_columns(table.columns, columns, str(path), "the columns of the table it was trained on")
            except ValueError as e:
                raise DataError(str(e)) from None
        x = table.x
    else:
        x = open_npy(path) if k == "npy" else read_npz(path).x
    return array_batches(x, batch), len(x)


def array_batches(x: np.ndarray, batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(ids, rows)`` of the array ``x``, ``batch`` rows at a time as float32; ids are row numbers."""
    return (
        ([str(i) for i in range(s, min(s + batch, len(x)))], np.asarray(x[s : s + batch], dtype=np.float32))
        for s in range(0, len(x), batch)
    )
