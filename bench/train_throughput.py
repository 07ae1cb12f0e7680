"""DeepSDF training throughput: SDF samples per second through a full training step.

A step is what ``DeepSDF.training_step`` + the optimiser do: code lookup, decoder forward, clamped L1
+ code prior, backward, Adam step over decoder and codes. Measured for the paper preset
(conf/model/deepsdf_paper.yaml) and the CPU preset (conf/model/deepsdf.yaml), each as configured
and with weight norm and/or dropout switched off (to see what they cost), and compared with this
machine's matmul rate measured in the same run (a large float32 torch matmul).

FLOPs are counted analytically: 2·in·out per linear layer per sample forward, ×3 for
forward + backward (weight norm, activations, dropout, loss and optimiser not counted), so
``flop_fraction`` = achieved linear-layer FLOP rate / measured matmul FLOP rate. The decoder applies
the code columns of its first and skip layers once per shape, so the FLOPs it executes are fewer
than the model's nominal 2·in·out: ``flop_fraction`` counts the executed ones (the honest hardware
share), ``model_flop_fraction`` the nominal ones.

    python bench/train_throughput.py [--quick] [--scenes 8] [--samples 2048] [--threads N]

Last line: ``train_throughput samples_per_s=<paper preset as configured> flop_fraction=<same> ...``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


from shapelab.config import instantiate_group

VARIANTS = {  # name: decoder overrides
    "as configured": {},
    "no weight norm": {"weight_norm": False},
    "no dropout": {"dropout": 0.0},
    "plain MLP (neither)": {"weight_norm": False, "dropout": 0.0},
}


def matmul_flop_rate(size: int, repeats: int) -> float:
    """Best FLOP/s of ``size``×``size`` float32 matmuls (2·size³ FLOPs each)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def decoder_config(preset: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={preset}", "model.num_shapes=1"])
    return cfg.model.decoder


def step_rate(decoder_cfg, overrides: dict, scenes: int, samples: int, steps: int) -> tuple[float, int, int]:
    """(seconds per training step, executed and nominal linear FLOPs per step) for one decoder variant."""
    torch.manual_seed(0)
    decoder = instantiate(decoder_cfg, **overrides)
    codes = torch.nn.Embedding(max(64, scenes), decoder.latent_size)
    loss_fn = instantiate_group("loss/sdf_clamped_l1")
    optimiser = torch.optim.Adam([{"params": decoder.parameters()}, {"params": codes.parameters()}], lr=1e-4)
    index = torch.arange(scenes)
    xyz, sdf = torch.rand(scenes, samples, 3) * 2 - 1, torch.randn(scenes, samples) * 0.05

    def step():
        latents = codes(index)
        terms = loss_fn(decoder(latents, xyz), sdf, latents, epoch=0)
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()

    step()  # warm-up (allocator, oneDNN primitives)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    executed = 3 * scenes * samples * decoder.executed_flops_per_sample()
    nominal = 3 * scenes * samples * sum(2 * i * o for i, o in decoder.linear_layer_shapes())
    return times[len(times) // 2], executed, nominal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller steps (< 1 min)")
    parser.add_argument("--scenes", type=int, default=None, help="scenes per batch (default 8, quick 4)")
    parser.add_argument("--samples", type=int, default=2048, help="samples per scene")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scenes = args.scenes or (4 if args.quick else 8)
    steps = args.steps or (2 if args.quick else 5)
    print(f"batch: {scenes} scenes x {args.samples} samples = {scenes * args.samples} samples/step; "
          f"cpu, {torch.get_num_threads()} torch threads")

    peak = matmul_flop_rate(2048 if args.quick else 4096, 3 if args.quick else 5)
    print(f"matmul reference: {peak / 1e9:.1f} GFLOP/s")
    variants = {"as configured": {}} if args.quick else VARIANTS
    summary = {}
    for preset in ("deepsdf_paper", "deepsdf"):
        cfg = decoder_config(preset)
        for name, overrides in variants.items():
            seconds, executed, nominal = step_rate(cfg, overrides, scenes, args.samples, steps)
            rate, fraction = scenes * args.samples / seconds, executed / seconds / peak
            print(f"{preset:14s} {name:20s} {seconds * 1e3:8.1f} ms/step {rate:10.0f} samples/s "
                  f"{executed / seconds / 1e9:7.1f} GFLOP/s  fraction {fraction:.2f} "
                  f"(model FLOPs: {nominal / seconds / peak:.2f})")
            summary.setdefault(preset, (rate, fraction, nominal / seconds / peak))
    rate, fraction, model_fraction = summary["deepsdf_paper"]
    print(f"train_throughput samples_per_s={rate:.0f} flop_fraction={fraction:.3f} "
          f"model_flop_fraction={model_fraction:.3f} cpu_preset_samples_per_s={summary['deepsdf'][0]:.0f} "
          f"cpu_preset_flop_fraction={summary['deepsdf'][1]:.3f}")


if __name__ == "__main__":
    main()
