"""The fitted detector's scorer (``toolkit.scoring.Scorer``) as one file, to score without this package:
raw samples -> preprocessing -> every encoder of the score -> each term -> the standardised, weighted
sum (the same numbers as ``decision_function``). Two formats:

- ONNX (a ``.onnx`` file, or ``format="onnx"``; needs ``pip install "multi-radius-deep-svdd[export]"``):
  input ``x``, output ``score``; the threshold is the model's metadata entry ``threshold``::

    python -m toolkit export RUN_DIR --format=onnx    # RUN_DIR/detector_multi.onnx
    s = onnxruntime.InferenceSession("detector_multi.onnx"); scores = s.run(None, {"x": x})[0]
    threshold = float(s.get_modelmeta().custom_metadata_map["threshold"])

- TorchScript (any other name; the default), with the threshold as the attribute ``threshold``::

    python -m toolkit export RUN_DIR                  # RUN_DIR/detector_multi.torchscript.pt
    scorer = torch.jit.load("detector_multi.torchscript.pt"); scores = scorer(x)

``x`` is float32 (N, *input_shape), any batch size, in the units ``fit`` received: the preprocessing is
inside the file, so the exported scorer takes what ``decision_function`` takes. The command line's
built-in data sets are fitted as ``load_split`` returns them: digits as (N, 64) pixel counts 0..16,
MNIST, Fashion-MNIST and CIFAR-10 as (N, C, H, W) in [0, 1] (bytes / 255), as are folders of images;
``.npy``, ``.npz`` and ``.csv`` data as the file holds them.

Both are recorded at evaluation (BatchNorm with its running statistics) and take finite input of the
detector's sample shape; checking the input is the caller's part.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import warnings
from pathlib import Path

import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from .config import ConfigError
from .detector import MultiRadiusDeepSVDD

FORMATS = ("torchscript", "onnx")
ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch.onnx.export(dynamo=True) imports
ONNX_INSTALL = 'pip install "multi-radius-deep-svdd[export]"'
ONNX_OPSET = 18  # run by ONNX Runtime 1.14 and later


def export_format(path: str | Path, format: str | None = None) -> str:
    """The format written at ``path``: ``format`` when given, else "onnx" for a ``.onnx`` file and
    "torchscript" for any other. A ``.onnx`` file always holds ONNX."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"export format {format!r} is unknown; accepted: {', '.join(FORMATS)}")
    onnx_name = Path(path).suffix.lower() == ".onnx"
    if format == "torchscript" and onnx_name:
        raise ValueError(f"{Path(path).name} is named .onnx but the format is torchscript; name it otherwise")
    return format or ("onnx" if onnx_name else "torchscript")


def onnx_missing() -> str | None:
    """What to install for ONNX export, in one line, or None when its packages are there."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    needs = " and ".join(ONNX_PACKAGES)
    return f"ONNX export needs {needs} ({', '.join(missing)} not installed): {ONNX_INSTALL}"


def export_target(run_dir: str | Path, model: str, out: str | None, format: str | None) -> tuple[Path, str]:
    """The file ``python -m toolkit export`` writes and its format, from its options: ``--out`` (default:
    RUN_DIR/detector_MODEL.torchscript.pt, or .onnx with ``--format=onnx``) and ``--format``. An unknown
    format, a .onnx name for TorchScript or ONNX without its packages is refused (:class:`ConfigError`)."""
    if format is not None and format not in FORMATS:
        raise ConfigError(f"--format={format!r} is unknown; accepted: {', '.join(FORMATS)}")
    suffix = ".onnx" if format == "onnx" else ".torchscript.pt"
    path = Path(out) if out else Path(run_dir) / f"detector_{model}{suffix}"
    try:
        fmt = export_format(path, format)
    except ValueError as e:
        raise ConfigError(f"--out={out}: {e}, or pass --format=onnx") from None
    if fmt == "onnx" and (why := onnx_missing()):
        raise ConfigError(why)
    return path, fmt


def export(
    det: MultiRadiusDeepSVDD, path: str | Path, example: Tensor | None = None, format: str | None = None
) -> Path:
    """Record ``det``'s scoring path (on ``example``, or a batch of zeros of its sample shape) on the CPU
    and save it at ``path`` as ``format`` (:func:`export_format`: by default ONNX for a ``.onnx`` file,
    else TorchScript). The file is serialised in memory and written atomically: a full disk raises
    ``OSError`` (ENOSPC) and leaves nothing behind (torch's own file writer aborts the process when the
    disk fills, leaving its partial file)."""
    from .files import atomic_write

    fmt = export_format(path, format)
    if fmt == "onnx" and (why := onnx_missing()):
        raise ModuleNotFoundError(why)
    check_is_fitted(det, msg="this detector is not fitted yet: call fit(X) or MultiRadiusDeepSVDD.load(path)")
    scorer = copy.deepcopy(det.scorer_).cpu().eval().requires_grad_(False)
    x = torch.zeros(4, *det.input_shape_) if example is None else example[:4].float().cpu()
    with torch.inference_mode(False), torch.no_grad():
        data = _onnx_bytes(scorer, x, det) if fmt == "onnx" else _torchscript_bytes(scorer, x)
    return atomic_write(path, lambda p: p.write_bytes(data))


def _torchscript_bytes(scorer: nn.Module, x: Tensor) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        traced = torch.jit.trace(scorer, x, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    return buf.getvalue()


def _onnx_bytes(scorer: nn.Module, x: Tensor, det: MultiRadiusDeepSVDD) -> bytes:
    program = torch.onnx.export(
        scorer,
        (x,),
        dynamo=True,
        opset_version=ONNX_OPSET,
        input_names=["x"],
        output_names=["score"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        custom_translation_table={torch.ops.aten.amin.default: _amin},
        verbose=False,
    )
    model = program.model
    model.metadata_props["threshold"] = repr(float(det.threshold_))  # repr: the float read back is the same
    shape = ", ".join(map(str, det.input_shape_))
    model.doc_string = (
        f"Multi-Radius Deep SVDD anomaly scores: x float32 (N, {shape}), in the units the detector was fitted "
        "on -> score (N,), higher = more anomalous; anomalous above the metadata entry 'threshold'"
    )
    return program.model_proto.SerializeToString()


def _amin(self, dim=(), keepdim=False):
    """``aten.amin`` in ONNX, with ``dim`` optional: onnxscript's own (up to 0.7.2) requires it, which the
    ratio rule's ``amin()`` over every element leaves out (ReduceMin without axes reduces them all)."""
    from onnxscript import opset18 as op  # ONNX_OPSET's

    axes = op.Constant(value_ints=list(dim)) if dim else None
    return op.ReduceMin(self, axes, keepdims=int(keepdim))
