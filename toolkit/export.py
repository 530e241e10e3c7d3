"""The fitted detector's scoring path as one TorchScript module, to score without this package:
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
from torch import Tensor, nn

from .detector import MultiRadiusDeepSVDD
from .svdd import combined_scores, scores


class Scorer(nn.Module):
    """The detector's score for a batch of raw samples, in plain tensor operations (no chunked loops,
    no configuration lookups), so that tracing records all of it."""

    def __init__(self, det: MultiRadiusDeepSVDD) -> None:
        super().__init__()
        det._check_fitted()
        svdd = det.resolved_config().svdd
        nets = copy.deepcopy(
            [det.preprocessor_, det.encoder_, det.head_, det.single_encoder_, det.single_head_, det.recon_]
        )
        self.prep, self.encoder, self.head, self.single_encoder, self.single_head, self.recon = nets
        self.recon_term = svdd.score_recon > 0  # the autoencoder may be kept for the k-NN term alone
        self.knn_k = svdd.knn_k
        refs = det.knn_reference_ or {}
        self.knn_spaces = list(refs)  # one buffer each, knn_<space>, in the order of the score's columns
        for space, ref in refs.items():
            self.register_buffer(f"knn_{space}", ref)
        self.register_buffer("stats", det.score_stats_)
        self.register_buffer("weights", det._weights().float())
        self.register_buffer("threshold", torch.tensor(float(det.threshold_)))

    def forward(self, x: Tensor) -> Tensor:
        xb = self.prep(x)
        z = self.encoder(xb)
        parts = [scores(z, self.head.centres, self.head.radii, self.head.rule)[0]]
        if self.single_head is not None:
            parts.append(self.single_head(self.single_encoder(xb)))
        if self.recon_term:
            parts.append((self.recon(xb) - xb).pow(2).flatten(1).sum(dim=1))
        for space in self.knn_spaces:
            q = z
            if space == "raw":
                q = x.reshape(x.shape[0], -1).float()
            elif space == "input":
                q = xb.reshape(xb.shape[0], -1)
            elif space == "autoencoder":
                q = self.recon.encoder(xb)
            ref = getattr(self, f"knn_{space}")
            d2 = q.pow(2).sum(1, keepdim=True) + ref.pow(2).sum(1) - 2.0 * (q @ ref.T)
            parts.append(d2.topk(self.knn_k, dim=1, largest=False).values.clamp(min=0).sqrt().mean(dim=1))
        if self.stats is None:
            return parts[0]
        return combined_scores(torch.stack(parts, dim=1), self.stats, self.weights)


def export(det: MultiRadiusDeepSVDD, path: str | Path, example: Tensor | None = None) -> Path:
    """Trace ``det``'s scoring path (on ``example``, or a batch of zeros of its sample shape) and save it
    as TorchScript at ``path``, on the CPU. The file is serialised in memory and written atomically: a full
    disk raises ``OSError`` (ENOSPC) and leaves nothing behind (torch's own file writer aborts the process
    when the disk fills, leaving its partial file)."""
    from .files import atomic_write

    det._eval()
    scorer = Scorer(det).cpu().eval().requires_grad_(False)
    x = torch.zeros(4, *det.input_shape_) if example is None else example[:4].float().cpu()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        traced = torch.jit.trace(scorer, x, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    data = buf.getvalue()
    return atomic_write(path, lambda p: p.write_bytes(data))
