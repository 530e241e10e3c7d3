"""Speed benchmark: the toolkit's in-memory training feed against the naive feed of the reference
implementations, on MNIST with normal classes {0, 1, 3} (18,796 training images).

    python benchmarks/speed.py --data-root ../shared/data [--epochs 2] [--repeats 3]

Rows: images/s of pretraining and SVDD epochs (toolkit: preprocessed tensors sliced in memory; naive: a
torchvision dataset with a per-image transform through a DataLoader, same nets and optimiser; the reference
way: the naive feed with the plain layer sequences in the default memory layout, as the reference
implementations run; the toolkit's rows use its default, plain layers too; fused layers: toolkit/layers.py's
opt-in CPU forms, --net.fused=True), the CIFAR-10 nets on random batches, FINCH clustering seconds,
the MNIST recipe's k-NN column (images/s, its pick of the k nearest against a topk over each whole row),
and the pretraining step's achieved GFLOP/s against a large fp32 matrix product timed in the same run.
--compile and --bf16 add rows for torch.compile and for CPU bfloat16 autocast (probes of what would
help; neither is a toolkit setting). Prints a markdown table. Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torchvision
from bench import DATA_ROOT, markdown_table  # noqa: E402  (the benchmark's own helpers)
from torch import Tensor

from toolkit.data import TensorBatches
from toolkit.engines import reconstruction_error
from toolkit.knn import knn_block, nearest_sq_distances, sq_distances_less_query
from toolkit.layers import UpConvTranspose2d
from toolkit.nets import EVAL_BATCH, build_autoencoder, embed, fast_layout
from toolkit.plugins.finch import FinchClusterer
from toolkit.preprocessing import Preprocessor, global_contrast_normalization
from toolkit.svdd import own_sq_distances, soft_boundary_loss

NORMAL = (0, 1, 3)
Rows = list[tuple[str, str, str]]  # what, speed, note


# --------------------------------------------------------------------------------------------- data and feeds


@dataclass
class Data:
    """The MNIST training images of the classes ``NORMAL``, in the forms the timings start from."""

    raw_u8: np.ndarray  # (N, 28, 28) bytes, as torchvision holds them
    x_raw: Tensor  # (N, 1, 28, 28) in [0, 1]
    prep: Preprocessor
    x: Tensor  # preprocessed once, in the layout the fit keeps it
    labels: Tensor  # the true classes as 0..2: three clusters, just for timing

    @property
    def n(self) -> int:
        return len(self.x)


def load_data(root: str) -> Data:
    ds = torchvision.datasets.MNIST(root, train=True, download=False)
    keep = np.isin(ds.targets.numpy(), NORMAL)
    raw_u8 = ds.data.numpy()[keep]
    x_raw = torch.from_numpy(raw_u8[:, None].astype(np.float32) / 255.0)
    prep = Preprocessor().fit(x_raw)
    labels = torch.from_numpy(np.searchsorted(NORMAL, ds.targets.numpy()[keep]))
    return Data(raw_u8, x_raw, prep, fast_layout(prep(x_raw), "cpu"), labels)


class NaiveImages(torch.utils.data.Dataset):
    """The reference implementations' feed: each image transformed on its own in ``__getitem__``,
    batched by a DataLoader's collate."""

    def __init__(self, d: Data) -> None:
        self.raw_u8, self.lo, self.hi = d.raw_u8, float(d.prep.lo), float(d.prep.hi)

    def __len__(self) -> int:
        return len(self.raw_u8)

    def __getitem__(self, i):
        img = torchvision.transforms.functional.to_tensor(self.raw_u8[i])
        img = global_contrast_normalization(img[None])[0]
        return (img - self.lo) / (self.hi - self.lo)


class NaiveLabelled(NaiveImages):
    def __init__(self, d: Data) -> None:
        super().__init__(d)
        self.labels = d.labels

    def __getitem__(self, i):
        return super().__getitem__(i), self.labels[i]


def toolkit_feed(d: Data, labelled: bool = False):
    """A callable giving one epoch of the toolkit's batches: preprocessed tensors sliced in memory."""
    batches = TensorBatches(d.x, *([d.labels] if labelled else []), batch_size=200, shuffle=True)
    return (lambda: ((b[1], b[2]) for b in batches)) if labelled else (lambda: (b[1] for b in batches))


def naive_feed(dataset: torch.utils.data.Dataset, workers: int):
    loader = torch.utils.data.DataLoader(dataset, batch_size=200, shuffle=True, num_workers=workers)
    return lambda: iter(loader)


# --------------------------------------------------------------------------------------------- timings


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def amp(on: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()


def pretrain_rate(
    batches, n: int, epochs: int, rows: Rows, compiled=False, bf16=False, fused=False, layout=True
) -> float:
    """Images/s of ``epochs`` autoencoder epochs over ``batches()`` (a fresh LeNet-28 autoencoder, Adam);
    with ``compiled``, the first step's compilation time is added to ``rows``."""
    torch.manual_seed(0)
    ae = build_autoencoder("lenet28", (1, 28, 28), fused=fused)
    ae = fast_layout(ae, "cpu") if layout else ae
    opt = torch.optim.Adam(ae.parameters(), lr=1e-4, weight_decay=1e-6)
    ae.train()
    if compiled:
        ae = torch.compile(ae)
        t = timed(lambda: reconstruction_error(ae, next(iter(batches()))).mean().backward())
        rows.append(("torch.compile, first step (compilation)", f"{t:.1f} s", ""))

    def run():
        for _ in range(epochs):
            for xb in batches():
                opt.zero_grad(set_to_none=True)
                with amp(bf16):
                    loss = reconstruction_error(ae, xb).float().mean()
                loss.backward()
                opt.step()

    return epochs * n / timed(run)


def time_pretraining(a, d: Data) -> tuple[Rows, float]:
    """Pretraining through the toolkit's feed, the naive feed, the reference way and the opt-in forms;
    also the toolkit feed's images/s, which the GFLOP/s row needs."""
    rows: Rows = []
    toolkit, naive = toolkit_feed(d), naive_feed(NaiveImages(d), a.workers)
    toolkit_pre = pretrain_rate(toolkit, d.n, a.epochs, rows)
    naive_pre = pretrain_rate(naive, d.n, a.epochs, rows)
    reference_pre = pretrain_rate(naive, d.n, a.epochs, rows, fused=False, layout=False)
    rows += [
        ("pretraining, toolkit feed", f"{toolkit_pre:,.0f} img/s", ""),
        ("pretraining, naive DataLoader feed", f"{naive_pre:,.0f} img/s", f"toolkit {toolkit_pre / naive_pre:.2f}x"),
        (
            "pretraining, naive feed, plain layers, default layout (the reference way)",
            f"{reference_pre:,.0f} img/s",
            f"toolkit {toolkit_pre / reference_pre:.2f}x",
        ),
    ]
    fused_pre = pretrain_rate(toolkit, d.n, a.epochs, rows, fused=True)
    rows.append(
        ("pretraining, toolkit feed, fused layers", f"{fused_pre:,.0f} img/s", f"{fused_pre / toolkit_pre:.2f}x plain")
    )
    if a.compile:
        compiled = pretrain_rate(toolkit, d.n, a.epochs, rows, compiled=True)
        note = f"{compiled / toolkit_pre:.2f}x eager"
        rows.append(("pretraining, toolkit feed, torch.compile", f"{compiled:,.0f} img/s", note))
    if a.bf16:
        half = pretrain_rate(toolkit, d.n, a.epochs, rows, bf16=True)
        note = f"{half / toolkit_pre:.2f}x fp32"
        rows.append(("pretraining, toolkit feed, bf16 autocast", f"{half:,.0f} img/s", note))
    return rows, toolkit_pre


def lenet32_rate(fused: bool, steps: int = 4) -> float:
    """Images/s of LeNet-32 autoencoder steps on a random 3x32x32 batch of 200 (no CIFAR-10 here;
    random batches cost what real ones do)."""
    torch.manual_seed(0)
    ae = fast_layout(build_autoencoder("lenet32", (3, 32, 32), fused=fused), "cpu")
    opt = torch.optim.Adam(ae.parameters(), lr=1e-4)
    xb = fast_layout(torch.rand(200, 3, 32, 32), "cpu")

    def step():
        opt.zero_grad(set_to_none=True)
        reconstruction_error(ae, xb).mean().backward()
        opt.step()

    step()  # warm-up
    return steps * 200 / timed(lambda: [step() for _ in range(steps)])


def time_lenet32() -> Rows:
    l32, l32_fused = lenet32_rate(False), lenet32_rate(True)
    return [
        ("pretraining, LeNet-32 nets (CIFAR-10 shape)", f"{l32:,.0f} img/s", "random batches of 200"),
        ("pretraining, LeNet-32 nets, fused layers", f"{l32_fused:,.0f} img/s", f"{l32_fused / l32:.2f}x plain"),
    ]


def svdd_rate(net: torch.nn.Module, batches, n: int, epochs: int, centres, radii, bf16: bool = False) -> float:
    """Images/s of ``epochs`` soft-boundary SVDD epochs of ``net`` (trained in place) towards fixed spheres."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-6)
    net.train()

    def run():
        for _ in range(epochs):
            for xb, lb in batches():
                opt.zero_grad(set_to_none=True)
                with amp(bf16):
                    z = net(xb).float()
                soft_boundary_loss(own_sq_distances(z, centres, lb), lb, radii, 0.1).backward()
                opt.step()

    return epochs * n / timed(run)


def time_svdd(a, d: Data) -> tuple[Rows, tuple[torch.nn.Module, Tensor, Tensor]]:
    """SVDD epochs (three random spheres, points by true class) through each feed; also the encoder the
    toolkit's and the naive feed trained and the spheres, which FINCH and the scoring timings use."""
    enc = fast_layout(build_autoencoder("lenet28", (1, 28, 28)).encoder, "cpu")
    plain_enc = build_autoencoder("lenet28", (1, 28, 28)).encoder  # the reference way's net
    fused_enc = fast_layout(build_autoencoder("lenet28", (1, 28, 28), fused=True).encoder, "cpu")
    centres, radii = torch.randn(3, 32), torch.ones(3)
    toolkit, naive = toolkit_feed(d, labelled=True), naive_feed(NaiveLabelled(d), a.workers)

    def rate(net, batches, bf16=False):
        return svdd_rate(net, batches, d.n, a.epochs, centres, radii, bf16)

    svdd_tk, svdd_naive, svdd_reference = rate(enc, toolkit), rate(enc, naive), rate(plain_enc, naive)
    svdd_fused = rate(fused_enc, toolkit)
    rows = [
        ("SVDD, toolkit feed", f"{svdd_tk:,.0f} img/s", ""),
        ("SVDD, naive DataLoader feed", f"{svdd_naive:,.0f} img/s", f"toolkit {svdd_tk / svdd_naive:.2f}x"),
        (
            "SVDD, naive feed, plain layers, default layout (the reference way)",
            f"{svdd_reference:,.0f} img/s",
            f"toolkit {svdd_tk / svdd_reference:.2f}x",
        ),
        ("SVDD, toolkit feed, fused layers", f"{svdd_fused:,.0f} img/s", f"{svdd_fused / svdd_tk:.2f}x plain"),
    ]
    if a.bf16:
        half = rate(enc, toolkit, bf16=True)
        rows.append(("SVDD, toolkit feed, bf16 autocast", f"{half:,.0f} img/s", f"{half / svdd_tk:.2f}x fp32"))
    return rows, (enc, centres, radii)


def time_finch(d: Data, enc: torch.nn.Module) -> Rows:
    z = embed(enc, d.x).numpy()  # evaluation mode, inference_mode
    return [("FINCH on the 18,796 embeddings", f"{timed(lambda: FinchClusterer().fit_predict(z)):.2f} s", "")]


def time_knn(d: Data, enc: torch.nn.Module, k: int = 5, queries: int = 2048, rounds: int = 5) -> Rows:
    """The MNIST recipe's k-NN column: the mean distance of ``queries`` embeddings to their ``k`` nearest of
    the 18,796 training embeddings (32-d), in the detector's blocks of ``EVAL_BATCH``, as the toolkit picks
    them (``toolkit.knn.smallest``) and by a ``topk`` over each whole row; the two in turns, best pass."""
    ref = embed(enc, d.x)
    q = ref[torch.randperm(d.n, generator=torch.Generator().manual_seed(0))[:queries]]

    def whole_row(b: Tensor) -> Tensor:
        picked = sq_distances_less_query(b, ref).topk(k, dim=1, largest=False).values
        return nearest_sq_distances(picked, b).sqrt().mean(dim=1)

    ways = {"toolkit": lambda b: knn_block(b, ref, k), "topk": whole_row}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for name, column in ways.items():
            best[name] = min(best[name], timed(lambda column=column: [column(b) for b in q.split(EVAL_BATCH)]))
    what = f"k-NN column, {k} nearest of the {d.n:,} embeddings (32-d)"
    return [
        (what, f"{queries / best['toolkit']:,.0f} img/s", f"{best['topk'] / best['toolkit']:.2f}x a whole-row topk"),
        (f"{what}, a whole-row topk", f"{queries / best['topk']:,.0f} img/s", ""),
    ]


def time_pyod(a, d: Data) -> Rows:
    try:
        from pyod.models.deep_svdd import DeepSVDD
    except ImportError:
        return [("PyOD DeepSVDD fit", "not installed", "pip install pyod")]
    flat = d.x.flatten(1).numpy()
    model = DeepSVDD(n_features=flat.shape[1], epochs=a.epochs, batch_size=200, verbose=0, random_state=0)
    pyod = a.epochs * d.n / timed(lambda: model.fit(flat))
    return [("PyOD DeepSVDD fit (its MLP on the pixels)", f"{pyod:,.0f} img/s", f"{a.epochs} epochs, batch 200")]


def matmul_gflops(n: int = 2048, reps: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = timed(lambda: [a @ b for _ in range(reps)])
    return 2 * n**3 * reps / t / 1e9


def ae_flops_per_image(ae: torch.nn.Module) -> float:
    """Forward multiply-adds of conv/linear layers x 2, times 3 for forward + backward: the nominal count
    of the architecture's plain layers (the fused decoder layers do about a third of theirs)."""
    flops = 0

    def hook(m, inp, out):
        nonlocal flops
        if isinstance(m, UpConvTranspose2d):  # counted at the upsampled size, as the plain layers compute
            inp = (inp[0].repeat_interleave(2, -1).repeat_interleave(2, -2),)
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            k = (
                m.kernel_size[0]
                * m.kernel_size[1]
                * (m.in_channels if isinstance(m, torch.nn.Conv2d) else m.out_channels)
            )
            flops += 2 * out.numel() * k if isinstance(m, torch.nn.Conv2d) else 2 * inp[0].numel() * k
        elif isinstance(m, torch.nn.Linear):
            flops += 2 * m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in ae.modules()]
    ae.eval()
    with torch.no_grad():
        ae(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return 3.0 * flops


def time_flops(a, toolkit_pre: float) -> Rows:
    """The pretraining step's achieved GFLOP/s against a large fp32 matrix product timed now."""
    ceiling = matmul_gflops()
    achieved = ae_flops_per_image(build_autoencoder("lenet28", (1, 28, 28))) * toolkit_pre / 1e9
    share = f"{100 * achieved / ceiling:.1f}% of the 2048^3 fp32 matmul's {ceiling:.0f} GFLOP/s"
    rows = [("pretraining step, achieved", f"{achieved:.1f} GFLOP/s", share)]
    if a.bf16:
        rows.append(("2048^3 matmul, bf16", f"{matmul_gflops(dtype=torch.bfloat16):.0f} GFLOP/s", "fp32 above"))
    return rows


def measure(a) -> tuple[int, Rows]:
    """One run of every timing: (training images, rows of what, speed, note)."""
    d = load_data(a.data_root)
    rows, toolkit_pre = time_pretraining(a, d)
    rows += time_lenet32()
    svdd_rows, (enc, centres, radii) = time_svdd(a, d)
    rows += svdd_rows + time_finch(d, enc) + time_knn(d, enc)
    rows += [] if a.no_pyod else time_pyod(a, d)
    return d.n, rows + time_flops(a, toolkit_pre)


# --------------------------------------------------------------------------------------------- command line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=DATA_ROOT)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive feed")
    ap.add_argument("--compile", action="store_true", help="also time pretraining with torch.compile")
    ap.add_argument("--no-pyod", action="store_true", help="skip PyOD's DeepSVDD (an optional dependency)")
    ap.add_argument(
        "--bf16", action="store_true", help="also time both stages under CPU bfloat16 autocast (a probe, not a setting)"
    )
    ap.add_argument(
        "--repeats", type=int, default=1, help="run every timing this many times, one column each (the spread)"
    )
    a = ap.parse_args()
    runs = [measure(a) for _ in range(max(1, a.repeats))]
    n, rows = runs[0]
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{n} MNIST training images of classes {NORMAL}; {a.epochs} epoch(s) per timing, batch 200\n"
    )
    if len(runs) == 1:
        print(markdown_table(["what", "speed", "note"], rows))
        return
    cells = [[f"{run[i][1]} ({run[i][2]})" if run[i][2] else run[i][1] for _, run in runs] for i in range(len(rows))]
    head = ["what", *(f"run {i + 1}" for i in range(len(runs)))]
    print(markdown_table(head, [[r[0], *c] for r, c in zip(rows, cells, strict=True)]))


if __name__ == "__main__":
    main()
