"""Where a training step's time goes: torch.profiler over LeNet-28 steps, operators by self CPU time.

    python benchmarks/profile_step.py                      # pretraining step, plain layers (the default)
    python benchmarks/profile_step.py --fused              # the fused layer forms (--net.fused=True)
    python benchmarks/profile_step.py --nchw               # plain layers in the default memory layout
    python benchmarks/profile_step.py --stage svdd --batch 200 --steps 20

Random 1x28x28 batches (a step costs what a real one does), channels-last as the pipeline keeps them
on the CPU, Adam. Prints images/s of the step and a table of the operators, grouped by input shape,
with their milliseconds per step. Not part of CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.engines import reconstruction_error  # noqa: E402
from toolkit.nets import build_autoencoder, fast_layout  # noqa: E402
from toolkit.svdd import own_sq_distances, soft_boundary_loss  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("pretrain", "svdd"), default="pretrain")
    ap.add_argument("--fused", action="store_true", help="toolkit/layers.py's fused forms (net.fused=True, CPU only)")
    ap.add_argument("--nchw", action="store_true", help="the default memory layout instead of channels-last")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rows", type=int, default=20, help="operators to list")
    a = ap.parse_args()

    torch.manual_seed(0)
    layout = (lambda t: t) if a.nchw else (lambda t: fast_layout(t, "cpu"))
    ae = layout(build_autoencoder("lenet28", (1, 28, 28), fused=a.fused)).train()
    net = ae if a.stage == "pretrain" else ae.encoder
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-6)
    x = layout(torch.rand(a.batch, 1, 28, 28))
    labels, centres, radii = torch.randint(0, 3, (a.batch,)), torch.randn(3, ae.encoder.rep_dim), torch.ones(3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        if a.stage == "pretrain":
            loss = reconstruction_error(ae, x).mean()
        else:
            loss = soft_boundary_loss(own_sq_distances(net(x), centres, labels), labels, radii, 0.1)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    rate = a.steps * a.batch / (time.perf_counter() - t0)
    with profile(record_shapes=True) as prof:
        for _ in range(a.steps):
            step()
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) / a.steps / 1e3
    layers = ("fused" if a.fused else "plain") + (" layers, NCHW" if a.nchw else " layers, channels-last")
    print(f"{a.stage} step, {layers}, batch {a.batch}: {rate:,.0f} img/s unprofiled; ", end="")
    print(f"{total:.1f} ms per step profiled\n")
    print("| operator | input shapes | ms per step | calls per step |\n|---|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: a.rows]:
        shapes = str(e.input_shapes)[:70].replace("|", "/")
        print(f"| {e.key} | {shapes} | {e.self_cpu_time_total / a.steps / 1e3:.2f} | {e.count / a.steps:g} |")


if __name__ == "__main__":
    main()
