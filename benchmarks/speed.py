"""Speed benchmark: the toolkit's in-memory training feed against the naive feed of the reference
implementations, on MNIST with normal classes {0, 1, 3} (18,796 training images).

    python benchmarks/speed.py --data-root ../shared/data [--epochs 2] [--repeats 3]

Rows: images/s of pretraining and SVDD epochs (toolkit: preprocessed tensors sliced in memory; naive: a
torchvision dataset with a per-image transform through a DataLoader, same nets and optimiser; the reference
way: the naive feed with the plain layer sequences in the default memory layout, as the reference
implementations run; the toolkit's rows use its default, plain layers too; fused layers: toolkit/layers.py's
opt-in CPU forms, --net.fused=True), the CIFAR-10 nets on random batches, FINCH
clustering seconds, scoring images/s, and the pretraining step's achieved GFLOP/s against a large fp32
matrix product timed in the same run. --compile and --bf16 add rows for torch.compile and for CPU
bfloat16 autocast (probes of what would help; neither is a toolkit setting). Prints a markdown table. Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.data import Preprocessor, TensorBatches, global_contrast_normalization  # noqa: E402
from toolkit.engines import reconstruction_error  # noqa: E402
from toolkit.layers import UpConvTranspose2d  # noqa: E402
from toolkit.nets import EVAL_BATCH, build_autoencoder, embed, fast_layout  # noqa: E402
from toolkit.svdd import own_sq_distances, soft_boundary_loss  # noqa: E402

NORMAL = (0, 1, 3)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
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
        print("| what | speed | note |\n|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} |")
        return
    print("| what | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for i, r in enumerate(rows):
        cells = [f"{run[1][i][1]} ({run[1][i][2]})" if run[1][i][2] else run[1][i][1] for run in runs]
        print(f"| {r[0]} | " + " | ".join(cells) + " |")


def measure(a) -> tuple[int, list[tuple[str, str, str]]]:
    """One run of every timing: (training images, rows of what, speed, note)."""
    import torchvision

    ds = torchvision.datasets.MNIST(a.data_root, train=True, download=False)
    keep = np.isin(ds.targets.numpy(), NORMAL)
    raw = ds.data.numpy()[keep][:, None].astype(np.float32) / 255.0
    n = len(raw)
    x_raw = torch.from_numpy(raw)
    prep = Preprocessor().fit(x_raw)
    lo, hi = float(prep.lo), float(prep.hi)
    rows: list[tuple[str, str, str]] = []

    def amp(on: bool):
        return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()

    def pretrain_epochs(
        batches_fn, compiled: bool = False, bf16: bool = False, fused: bool = False, layout: bool = True
    ) -> float:
        torch.manual_seed(0)
        ae = build_autoencoder("lenet28", (1, 28, 28), fused=fused)
        ae = fast_layout(ae, "cpu") if layout else ae
        opt = torch.optim.Adam(ae.parameters(), lr=1e-4, weight_decay=1e-6)
        ae.train()
        if compiled:
            ae = torch.compile(ae)
            t = timed(lambda: reconstruction_error(ae, next(iter(batches_fn()))).mean().backward())
            rows.append(("torch.compile, first step (compilation)", f"{t:.1f} s", ""))

        def run():
            for _ in range(a.epochs):
                for xb in batches_fn():
                    opt.zero_grad(set_to_none=True)
                    with amp(bf16):
                        loss = reconstruction_error(ae, xb).float().mean()
                    loss.backward()
                    opt.step()

        return a.epochs * n / timed(run)

    # toolkit feed: preprocessed once, sliced in memory
    x = fast_layout(prep(x_raw), "cpu")  # as the pipeline keeps it
    tk = TensorBatches(x, batch_size=200, shuffle=True)
    toolkit_pre = pretrain_epochs(lambda: (b[1] for b in tk))

    # naive feed: the reference implementations' way (per-image transform in a Dataset, DataLoader collate)
    class Naive(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            img = torchvision.transforms.functional.to_tensor(raw_u8[i])
            img = global_contrast_normalization(img[None])[0]
            return (img - lo) / (hi - lo)

    raw_u8 = ds.data.numpy()[keep]
    loader = torch.utils.data.DataLoader(Naive(), batch_size=200, shuffle=True, num_workers=a.workers)
    naive_pre = pretrain_epochs(lambda: iter(loader))
    reference_pre = pretrain_epochs(lambda: iter(loader), fused=False, layout=False)
    rows += [
        ("pretraining, toolkit feed", f"{toolkit_pre:,.0f} img/s", ""),
        ("pretraining, naive DataLoader feed", f"{naive_pre:,.0f} img/s", f"toolkit {toolkit_pre / naive_pre:.2f}x"),
        (
            "pretraining, naive feed, plain layers, default layout (the reference way)",
            f"{reference_pre:,.0f} img/s",
            f"toolkit {toolkit_pre / reference_pre:.2f}x",
        ),
    ]
    fused_pre = pretrain_epochs(lambda: (b[1] for b in tk), fused=True)
    rows.append(
        ("pretraining, toolkit feed, fused layers", f"{fused_pre:,.0f} img/s", f"{fused_pre / toolkit_pre:.2f}x plain")
    )
    if a.compile:
        compiled = pretrain_epochs(lambda: (b[1] for b in tk), compiled=True)
        rows.append(
            (
                "pretraining, toolkit feed, torch.compile",
                f"{compiled:,.0f} img/s",
                f"{compiled / toolkit_pre:.2f}x eager",
            )
        )
    if a.bf16:
        half = pretrain_epochs(lambda: (b[1] for b in tk), bf16=True)
        note = f"{half / toolkit_pre:.2f}x fp32"
        rows.append(("pretraining, toolkit feed, bf16 autocast", f"{half:,.0f} img/s", note))

    # the CIFAR-10 nets (no CIFAR here: random 3x32x32 batches, which cost what real ones do)
    def lenet32_steps(fused: bool, steps: int = 4) -> float:
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

    l32, l32_fused = lenet32_steps(False), lenet32_steps(True)
    rows += [
        ("pretraining, LeNet-32 nets (CIFAR-10 shape)", f"{l32:,.0f} img/s", "random batches of 200"),
        ("pretraining, LeNet-32 nets, fused layers", f"{l32_fused:,.0f} img/s", f"{l32_fused / l32:.2f}x plain"),
    ]

    # SVDD epochs (soft-boundary, 3 clusters by true class just for timing)
    labels = torch.from_numpy(np.searchsorted(NORMAL, ds.targets.numpy()[keep]))
    enc = fast_layout(build_autoencoder("lenet28", (1, 28, 28)).encoder, "cpu")
    plain_enc = build_autoencoder("lenet28", (1, 28, 28)).encoder  # the reference way's net
    fused_enc = fast_layout(build_autoencoder("lenet28", (1, 28, 28), fused=True).encoder, "cpu")
    centres = torch.randn(3, 32)
    radii = torch.ones(3)

    def svdd_run(batches, bf16: bool = False, fused: bool = False, layout: bool = True):
        net = fused_enc if fused else (enc if layout else plain_enc)
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-6)
        net.train()
        for _ in range(a.epochs):
            for xb, lb in batches():
                opt.zero_grad(set_to_none=True)
                with amp(bf16):
                    z = net(xb).float()
                soft_boundary_loss(own_sq_distances(z, centres, lb), lb, radii, 0.1).backward()
                opt.step()

    tks = TensorBatches(x, labels, batch_size=200, shuffle=True)
    svdd_tk = a.epochs * n / timed(lambda: svdd_run(lambda: ((b[1], b[2]) for b in tks)))

    class NaiveL(Naive):
        def __getitem__(self, i):
            return super().__getitem__(i), labels[i]

    loader_l = torch.utils.data.DataLoader(NaiveL(), batch_size=200, shuffle=True, num_workers=a.workers)
    svdd_naive = a.epochs * n / timed(lambda: svdd_run(lambda: iter(loader_l)))
    svdd_reference = a.epochs * n / timed(lambda: svdd_run(lambda: iter(loader_l), layout=False))
    svdd_fused = a.epochs * n / timed(lambda: svdd_run(lambda: ((b[1], b[2]) for b in tks), fused=True))
    rows += [
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
        half = a.epochs * n / timed(lambda: svdd_run(lambda: ((b[1], b[2]) for b in tks), bf16=True))
        rows.append(("SVDD, toolkit feed, bf16 autocast", f"{half:,.0f} img/s", f"{half / svdd_tk:.2f}x fp32"))

    # clustering and scoring
    from toolkit.plugins.finch import FinchClusterer

    z = embed(enc, x).numpy()  # evaluation mode, inference_mode
    rows.append(("FINCH on the 18,796 embeddings", f"{timed(lambda: FinchClusterer().fit_predict(z)):.2f} s", ""))

    # scoring through the detector itself (raw images in: preprocessing, encoders, combination)
    from toolkit.config import Config, apply_overrides
    from toolkit.detector import MultiRadiusDeepSVDD
    from toolkit.svdd import SphereHead

    recon = build_autoencoder("lenet28", (1, 28, 28))
    single = (build_autoencoder("lenet28", (1, 28, 28)).encoder, SphereHead(torch.randn(1, 32), torch.ones(1), "ratio"))
    for name, extra in (
        ("scoring (preprocess + encode + min over spheres)", {}),
        ("scoring + reconstruction error (svdd.score_recon)", {"svdd.score_recon": 1.0}),
        (
            "scoring + one sphere + reconstruction error (the MNIST recipe)",
            {"svdd.score_single": 1.0, "svdd.score_recon": 1.0},
        ),
    ):
        cfg = apply_overrides(Config(), extra)
        det = MultiRadiusDeepSVDD._from_parts(
            cfg,
            "lenet28",
            (1, 28, 28),
            prep,
            enc,
            SphereHead(centres, radii, "ratio"),
            labels,
            recon=recon if "svdd.score_recon" in extra else None,
            single=single if "svdd.score_single" in extra else None,
        )._calibrate(x[:4096])
        rate = n / timed(lambda det=det: det.decision_function(x_raw))
        rows.append((name, f"{rate:,.0f} img/s", f"batches of {EVAL_BATCH}"))
    old = n / timed(lambda: det.score_with_clusters(x_raw, batch_size=4096))  # det: the recipe's
    rows.append(
        ("the same, in batches of 4096", f"{old:,.0f} img/s", f"{EVAL_BATCH}: {rate / old:.2f}x")
    )

    if not a.no_pyod:
        try:
            from pyod.models.deep_svdd import DeepSVDD

            flat = x.flatten(1).numpy()
            model = DeepSVDD(n_features=flat.shape[1], epochs=a.epochs, batch_size=200, verbose=0, random_state=0)
            pyod = a.epochs * n / timed(lambda: model.fit(flat))
            rows.append(
                ("PyOD DeepSVDD fit (its MLP on the pixels)", f"{pyod:,.0f} img/s", f"{a.epochs} epochs, batch 200")
            )
        except ImportError:
            rows.append(("PyOD DeepSVDD fit", "not installed", "pip install pyod"))

    ceiling = matmul_gflops()
    achieved = ae_flops_per_image(build_autoencoder("lenet28", (1, 28, 28))) * toolkit_pre / 1e9
    rows.append(
        (
            "pretraining step, achieved",
            f"{achieved:.1f} GFLOP/s",
            f"{100 * achieved / ceiling:.1f}% of the 2048^3 fp32 matmul's {ceiling:.0f} GFLOP/s",
        )
    )
    if a.bf16:
        rows.append(("2048^3 matmul, bf16", f"{matmul_gflops(dtype=torch.bfloat16):.0f} GFLOP/s", "fp32 above"))

    return n, rows


if __name__ == "__main__":
    main()
