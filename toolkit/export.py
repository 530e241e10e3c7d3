"""The fitted detector's scorer (``toolkit.scoring.Scorer``) as one TorchScript module, to score without this package:
raw samples -> preprocessing -> every encoder of the score -> each term -> the standardised, weighted
sum (the same numbers as ``decision_function``), with the threshold kept as an attribute.

    python -m toolkit export RUN_DIR            # RUN_DIR/detector_multi.torchscript.pt
    scorer = torch.jit.load("detector_multi.torchscript.pt"); scores = scorer(x)   # x: (N, *input_shape)

It is traced at evaluation (BatchNorm with its running statistics) and takes finite input of the
detector's sample shape, any batch size; checking the input is the caller's part.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from .detector import MultiRadiusDeepSVDD


def export(det: MultiRadiusDeepSVDD, path: str | Path, example: Tensor | None = None) -> Path:
    """Trace ``det``'s scoring path (on ``example``, or a batch of zeros of its sample shape) and save it
    as TorchScript at ``path``, on the CPU. The file is serialised in memory and written atomically: a full
    disk raises ``OSError`` (ENOSPC) and leaves nothing behind (torch's own file writer aborts the process
    when the disk fills, leaving its partial file)."""
    from .files import atomic_write

    check_is_fitted(det, msg="this detector is not fitted yet: call fit(X) or MultiRadiusDeepSVDD.load(path)")
    scorer = copy.deepcopy(det.scorer_).cpu().eval().requires_grad_(False)
    x = torch.zeros(4, *det.input_shape_) if example is None else example[:4].float().cpu()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        traced = torch.jit.trace(scorer, x, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    data = buf.getvalue()
    return atomic_write(path, lambda p: p.write_bytes(data))
