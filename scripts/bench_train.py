"""Training-cost benchmark (not a test): one JSON row per (config, N, kind, precision).

Each row: median CPU ms (and wall ms) of the whole backbone's forward+backward and of one task training step
(the task's own LightningModule: embedding, backbone, head, loss, backward, optimizer step, zero_grad), tokens/s
of the step, the FLOPs torch counts in it and the GFLOP/s achieved against the matmul peak measured here in the
same dtype. Aaren and the Transformer are timed interleaved in one process (timings: benchmarks/interleave.py).
bf16-mixed = what trainer.precision=bf16-mixed does: the step under torch.autocast(bfloat16), backward and the
optimizer outside it, parameters in fp32.

    python scripts/bench_train.py [--quick] [--configs rl forecasting ...] [--precisions 32-true bf16-mixed]
                                  [--threads 1] [--out results/bench/train_cpu.jsonl] [--force]
    python scripts/bench_train.py --table [--out FILE] [--before results/bench/train_cpu_before.jsonl]
    python scripts/bench_train.py --eval [--out results/bench/eval_cpu.jsonl]
--eval: the RL evaluation's model calls instead (DT at rl size, inference mode): one window-mode call (K = 20
timesteps = 60 tokens) for 100 / 30 / 10 running episodes, and one stream-mode env step (3 backbone.step calls)
for 100 / 10 episodes; fp32 vs bf16 autocast, all inside one autocast region as in an evaluation.
Rows already in --out for the same (config, N, precision, threads, repeats) are kept and skipped (resumable).
--table prints --out as markdown (no measuring); with --before, each step's speedup over that file's fp32 step.
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.train_step import CONFIGS, PRECISIONS, markdown_table, run, run_eval  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--quick", action="store_true", help="3 timed rounds instead of 9 (a few minutes)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "train_cpu.jsonl")
    parser.add_argument("--force", action="store_true", help="measure again rows already in --out")
    parser.add_argument("--table", action="store_true", help="print --out as a markdown table and stop")
    parser.add_argument("--before", type=Path, help="with --table: the file whose fp32 steps are the baseline")
    parser.add_argument("--eval", action="store_true", help="time the RL evaluation's model calls instead")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 9
    if args.table:
        print(markdown_table(args.out, args.before), end="")
    elif args.eval:
        out = args.out if args.out != parser.get_default("out") else args.out.with_name("eval_cpu.jsonl")
        run_eval(threads=args.threads, repeats=repeats, out=out)
    else:
        run(configs=args.configs, precisions=args.precisions, threads=args.threads, repeats=repeats, out=args.out,
            force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
