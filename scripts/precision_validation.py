"""fp32 vs bf16-mixed validation: a table of records of the same cells at both precisions, and the Decision
Transformer's training loss over the same updates at both precisions.

    python scripts/precision_validation.py table <results root of the runs> [--out results/bench/precision_validation]
    python scripts/precision_validation.py dt-loss --data-root <root with rl/<dataset>/<file>> [--updates 200]
`table` copies every record found (task/dataset/run.json, unchanged: config, seed, git sha, metrics, wall time) under
<out>/records/ and writes <out>/table.md: per (task, dataset, model, precision) the mean ± sample std over seeds
of each metric and of the wall time, and the bf16 − fp32 difference of the means in units of the fp32 seed std.
`dt-loss` trains conf/task/rl.yaml's DT (Aaren and Transformer) for `updates` updates on the same pre-drawn batches
with the same seed (so the same dropout masks) in fp32 and under bf16 autocast — backward, gradient clipping and
AdamW outside autocast, as Lightning does — and writes the per-update losses and their relative differences.
`scripts/retest.py` tests a finished run's checkpoint again at both precisions (results/.../retest/).
"""
import argparse
import json
import shutil
import statistics
import sys
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.harness.store import read_record  # noqa: E402

# the metrics shown per task (the record holds them all)
SHOWN = {"forecasting": ["mse", "mae"], "classification": ["accuracy", "loss"],
         "tpp": ["nll", "nll_time", "nll_mark", "accuracy", "rmse"],
         "rl": ["last_window_normalized_score", "last_stream_normalized_score", "last_window_step_latency_ms",
                "last_stream_step_latency_ms"]}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def build_table(records: list[dict]) -> str:
    cells = defaultdict(list)  # (task, dataset, model, precision) → records
    for r in records:
        cells[r["task"], r["dataset"], r["model"], r["config"]["trainer"]["precision"]].append(r)
    lines = ["| task / dataset | model | metric | fp32 (32-true) | bf16-mixed | Δ / fp32 seed std | seeds |",
             "|---|---|---|---|---|---|---|"]
    for task, dataset, model in sorted({key[:3] for key in cells}):
        fp32, bf16 = (cells.get((task, dataset, model, precision), []) for precision in ("32-true", "bf16-mixed"))
        for metric in [*SHOWN.get(task, []), "wall_time_s"]:
            row = []
            for group in (fp32, bf16):
                values = [r["wall_time_s"] if metric == "wall_time_s" else r["metrics"].get(metric) for r in group]
                values = [v for v in values if v is not None]
                row.append(_mean_std(values) if values else None)
            text = [f"{stat[0]:.4g} ± {stat[1]:.2g}" if stat else "—" for stat in row]
            delta = "—"
            if all(row) and row[0][1] > 0 and metric != "wall_time_s":
                delta = f"{(row[1][0] - row[0][0]) / row[0][1]:+.2f}"
            elif all(row) and metric == "wall_time_s":
                delta = f"bf16/fp32 = {row[1][0] / row[0][0]:.2f}"
            seeds = f"{sorted(r['seed'] for r in fp32)} / {sorted(r['seed'] for r in bf16)}"
            lines.append(f"| {task} / {dataset} | {model} | {metric} | {text[0]} | {text[1]} | {delta} | {seeds} |")
    return "\n".join(lines) + "\n"


def dt_losses(*, dataset: str, kind: str, seed: int, updates: int, bf16: bool, batches, warmup: int | None) -> list:
    from tasks.rl.module import DecisionTransformerModule
    task = yaml.safe_load((REPO / "conf" / "task" / "rl.yaml").read_text())["task"]
    backbone = {k: v for k, v in task["backbone"].items() if k != "kind"}
    env = yaml.safe_load((REPO / "conf" / "dataset" / f"{dataset}.yaml").read_text())["env"]
    optim = task["module"]["optim"]
    if warmup is not None:  # rl.yaml warms up over 10k updates: 200 updates would run at ≤ 2 % of the lr
        optim = dict(optim, schedule=dict(optim["schedule"], warmup_steps=warmup))
    torch.manual_seed(seed)
    module = DecisionTransformerModule(backbone=dict(backbone, kind=kind), optim=optim, env=env,
                                       max_timestep=1000, context_len=20, rtg_scale=1000.0, target_return=1.0,
                                       eval_episodes_val=1, eval_episodes_test=1).train()
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    losses = []
    for batch in batches[:updates]:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = module._action_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), task["trainer"]["gradient_clip_val"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


def dt_loss_check(args) -> dict:
    from tasks.rl.data import D4RLDataModule
    torch.set_num_threads(1)
    node = yaml.safe_load((REPO / "conf" / "dataset" / f"{args.dataset}.yaml").read_text())
    out = {"dataset": args.dataset, "data_root": str(args.data_root), "updates": args.updates,
           "warmup_steps": args.warmup_steps or "conf/task/rl.yaml", "runs": []}
    for seed in args.seeds:
        torch.manual_seed(seed)
        dm = D4RLDataModule(dataset=node, data_root=str(args.data_root), batch_size=64,
                            updates_per_epoch=args.updates, seed=seed)
        dm.setup("fit")
        batches = list(dm.train_dataloader())
        for kind in args.kinds:
            fp32, bf16 = (dt_losses(dataset=args.dataset, kind=kind, seed=seed, updates=args.updates, bf16=b,
                                    batches=batches, warmup=args.warmup_steps) for b in (False, True))
            rel = [abs(b - f) / f for f, b in zip(fp32, bf16)]
            tail = slice(-50, None)
            run = {"kind": kind, "seed": seed, "fp32": fp32, "bf16": bf16, "max_rel_diff": max(rel),
                   "mean_rel_diff": statistics.mean(rel), "fp32_last50_mean": statistics.mean(fp32[tail]),
                   "bf16_last50_mean": statistics.mean(bf16[tail])}
            out["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k not in ("fp32", "bf16")}), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table")
    table.add_argument("results_root", type=Path)
    table.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "precision_validation")
    loss = sub.add_parser("dt-loss")
    loss.add_argument("--data-root", type=Path, required=True)
    loss.add_argument("--dataset", default="halfcheetah-medium")
    loss.add_argument("--updates", type=int, default=200)
    loss.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    loss.add_argument("--kinds", nargs="+", default=["aaren", "transformer"])
    loss.add_argument("--warmup-steps", type=int, help="override rl.yaml's linear warm-up (10k updates)")
    loss.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "precision_validation" / "dt_loss.json")
    args = parser.parse_args(argv)
    if args.command == "dt-loss":
        from benchmarks.common import provenance
        from tasks.fileio import write_json_atomic
        write_json_atomic(args.out, dt_loss_check(args) | {"provenance": provenance("cpu")})
        return 0
    paths = sorted((args.results_root / "records").rglob("*.json"))
    if not paths:
        raise SystemExit(f"{args.results_root / 'records'}: no records")
    records = []
    for path in paths:
        records.append(read_record(path))
        target = args.out / "records" / path.relative_to(args.results_root / "records")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (args.out / "table.md").write_text(build_table(records))
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
