"""Performance benchmarks: `python -m benchmarks` runs them all and prints a table for each.

    python -m benchmarks                 # everything
    python -m benchmarks synth [--src DIR]
    python -m benchmarks votes [--device cpu|cuda] [--repeat 2]
    python -m benchmarks dcn [--device cpu|cuda] [--repeat 3] [--quick]
    python -m benchmarks harness [--frames 2]
    python -m benchmarks models [--device cpu|cuda] [--models rsdn,tga,comisr]
    python -m benchmarks build [--minutes 10] [--work runs/bench-build]
    python -m benchmarks data [--batches 20]
    python -m benchmarks reuse [--frames 7]
    python -m benchmarks gpu [--device cuda] [--quick]
    python -m benchmarks vmaf
    python -m benchmarks align-corpus [--work runs/align-corpus] [--seed 0] [--shares 64] [--only NAMES] [--jobs 2]
    python -m benchmarks demo-seeds [--work runs/demo-seeds]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.perf import (align as perf_align, all_models as perf_models, bitstream as perf_bitstream,
                             build as perf_build, data as perf_data, dcn as perf_dcn, demo_seeds as perf_demo_seeds,
                             gpu as perf_gpu,
                             harness as perf_harness, reuse as perf_reuse, synth as perf_synth, votes as perf_votes)

BENCHMARKS = {"synth": "synth-reds vs the official two-command recipe: 100- and 30-frame 720p clips, one and four settings",
              "votes": "full-size VOTES forward on one LQ window (CPU; CUDA fp32/bf16 and training when present)",
              "dcn": "the DCN's training pass with the official kernel's position gradient vs grid_sample autograd (CPU; CUDA too)",
              "models": "forward time per output frame of every full-size model at LQ 320x180 (CPU, or --device cuda)",
              "harness": "uvssm bench's overhead (PNG loading, metrics) as a fraction of full-size VOTES time",
              "build": "uvssm build on a generated long 1080p pair: time and peak memory against decoding + PNG writes",
              "gpu": "every GPU path in one table: VOTES fp32/bf16, restore_range vs bench end to end, DCN backends, metrics vs BasicSR's CPU code, training, CUDA-vs-CPU agreement",
              "reuse": "full-size VOTES over a stream with and without shared frame features (CPU speed-up)",
              "data": "training batches (16 x GT-128) per second from PNGs and from the decoded-frame store",
              "vmaf": "VMAF frames/s at 720p, and what QP-map extraction adds to a PyAV decode",
              "align-corpus": "build's alignment on a seeded corpus of shares with hash truth: accuracy per transformation class",
              "demo-seeds": "uvssm demo with training seeds 10, 11, 12: votes-tiny's margins over bicubic and over its ablation"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], help="benchmarks to run (default: all)")
    parser.add_argument("--src", type=Path, help="clips for the synth benchmark (default: the built-in sample)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="votes: only this device's cases")
    parser.add_argument("--repeat", type=int, default=2, help="votes: timed runs per case (the fastest counts)")
    parser.add_argument("--frames", type=int, default=None, help="harness: frames scored (2); reuse: stream length (7)")
    parser.add_argument("--models", help="models: only these (comma-separated registry names)")
    parser.add_argument("--batches", type=int, default=20, help="data: timed batches per case")
    parser.add_argument("--quick", action="store_true", help="gpu, dcn: tiny sizes and models (to try the script anywhere)")
    parser.add_argument("--minutes", type=float, default=10.0, help="build: length of the generated pair")
    parser.add_argument("--work", type=Path, default=None,
                        help="build: where the pair is cached (runs/bench-build); align-corpus: where the shares are "
                             "(runs/align-corpus); demo-seeds: where the demos run (runs/demo-seeds)")
    parser.add_argument("--seed", type=int, default=0, help="align-corpus: the corpus generator's seed")
    parser.add_argument("--shares", type=int, default=64, help="align-corpus: shares drawn")
    parser.add_argument("--only", help="align-corpus: only shares whose names contain one of these (comma-separated)")
    parser.add_argument("--jobs", type=int, default=1, help="align-corpus: shares aligned at once (worker processes "
                                                            "of one thread each)")
    args = parser.parse_args()
    for name in args.names or list(BENCHMARKS):
        if name == "synth":
            perf_synth.print_table(perf_synth.run(args.src))
        elif name == "votes":
            perf_votes.print_table(perf_votes.run(args.device, args.repeat))
        elif name == "dcn":
            perf_dcn.print_table(perf_dcn.run(args.device, max(args.repeat, 3), args.quick))
        elif name == "models":
            try:
                rows = perf_models.run(device=args.device or "cpu", only=args.models.split(",") if args.models else None)
            except ValueError as exc:
                parser.error(f"--models: {exc}")
            perf_models.print_table(rows)
        elif name == "build":
            perf_build.print_table(perf_build.run(args.minutes, args.work or Path("runs/bench-build")))
        elif name == "data":
            perf_data.print_table(perf_data.run(args.batches))
        elif name == "harness":
            perf_harness.print_table(perf_harness.run(args.frames or 2))
        elif name == "gpu":
            import torch

            if not args.names and not torch.cuda.is_available() and (args.device or "cuda") == "cuda":
                print("gpu: skipped, no CUDA device (python -m benchmarks gpu --device cpu --quick tries the script)")
                continue
            perf_gpu.print_table(perf_gpu.run(args.device or "cuda", args.quick))
        elif name == "reuse":
            perf_reuse.print_table(perf_reuse.run(args.frames or 7))
        elif name == "vmaf":
            perf_bitstream.print_table(perf_bitstream.run())
        elif name == "align-corpus":
            perf_align.print_table(perf_align.run(args.work or Path("runs/align-corpus"), args.seed, args.shares,
                                                  args.only, args.jobs))
        elif name == "demo-seeds":
            perf_demo_seeds.print_table(perf_demo_seeds.run(args.work or Path("runs/demo-seeds")))


if __name__ == "__main__":
    main()
