"""The training-cost benchmark behind scripts/bench_train.py: per (config, N, kind, precision), the whole backbone's
forward+backward and one task training step (the task's own LightningModule: embedding, backbone, head, loss,
backward, optimizer step, zero_grad), Aaren and the Transformer timed interleaved in one process
(benchmarks/interleave.py), FLOPs counted by torch against the matmul peak measured here in the same dtype.
bf16-mixed = what trainer.precision=bf16-mixed does: the step under torch.autocast(bfloat16), backward and the
optimizer outside it, parameters in fp32. `bench_eval`: the RL evaluation's model calls (window and stream).
"""
import json
from contextlib import nullcontext
from pathlib import Path

import torch

import aaren

from .common import PointStore, provenance
from .interleave import counted_flops, interleaved_medians, matmul_peak_gflops

KINDS = ("aaren", "transformer")
PRECISIONS = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}
OPTIM = {"name": "adamw", "lr": 1e-4, "weight_decay": 1e-4}


def _rl(kind, n, b):
    from tasks.rl.module import DecisionTransformerModule
    t = n // 3  # N tokens = 3 per timestep
    module = DecisionTransformerModule(backbone=dict(CONFIGS["rl"]["backbone"], kind=kind), optim=OPTIM,
                                       env="halfcheetah", max_timestep=1000, context_len=t, rtg_scale=1000.0,
                                       target_return=6000.0, eval_episodes_val=1, eval_episodes_test=1)
    batch = (torch.randn(b, t, 1), torch.randn(b, t, 17), torch.rand(b, t, 6) * 2 - 1,
             torch.randint(0, 1000, (b, t)), torch.ones(b, t, dtype=torch.bool))
    return module, batch


def _forecasting(size):
    def build(kind, n, b):
        from tasks.forecasting.module import ForecastingModule
        module = ForecastingModule(backbone=dict(CONFIGS[size]["backbone"], kind=kind), optim=OPTIM, channels=7,
                                   time_feature_freq="h", seq_len=n, horizon=96)
        return module, (torch.randn(b, n, 7), torch.randn(b, n, 4), torch.randn(b, 96, 7))
    return build


def _classification(kind, n, b):
    from tasks.classification.module import ClassificationModule
    module = ClassificationModule(backbone=dict(CONFIGS["classification"]["backbone"], kind=kind), optim=OPTIM,
                                  n_channels=3, n_classes=8, max_length=n)
    return module, (torch.randn(b, n, 3), torch.ones(b, n, dtype=torch.bool), torch.randint(0, 8, (b,)))


def _tpp(kind, n, b):
    from tasks.tpp.module import TPPModule
    module = TPPModule(backbone=dict(CONFIGS["tpp"]["backbone"], kind=kind), optim=OPTIM, num_marks=22,
                       n_components=8)
    tau = torch.rand(b, n) + 0.01
    batch = {"time": tau.cumsum(1), "tau": tau, "marks": torch.randint(0, 22, (b, n)),
             "mask": torch.ones(b, n, dtype=torch.bool), "scale": torch.ones(b)}
    return module, batch


def _backbone(d_model, n_layers, n_heads, d_ff, **extra):
    return dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_ff=d_ff, dropout=0.1, **extra)


# the four tasks' paper sizes at their sequence lengths (issue 19 §5); batch B, lengths N in tokens
CONFIGS = {
    "rl": {"backbone": _backbone(128, 3, 1, 512, activation="gelu", norm_first=True), "batch": 64,
           "lengths": [60], "build": _rl},
    "forecasting": {"backbone": _backbone(512, 2, 8, 2048), "batch": 32, "lengths": [96],
                    "build": _forecasting("forecasting")},
    "forecasting_cpu_small": {"backbone": _backbone(64, 2, 4, 128), "batch": 32, "lengths": [96],
                              "build": _forecasting("forecasting_cpu_small")},
    "classification": {"backbone": _backbone(128, 3, 8, 256), "batch": 16, "lengths": [29, 152, 315, 1751],
                       "build": _classification},
    "tpp": {"backbone": _backbone(64, 2, 1, 64), "batch": 16, "lengths": [500], "build": _tpp},
}


def _steps(module, batch, precision: str, n: int):
    """(backbone fwd+bwd, task training step) closures for one module, under the precision's autocast."""
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16-mixed" else nullcontext
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    module.train()
    b = (batch["mask"] if isinstance(batch, dict) else batch[0]).shape[0]
    x = torch.randn(b, n, module.backbone.d_model)  # (B, N, D): the backbone alone

    def backbone_step():
        with autocast():
            loss = module.backbone(x).float().pow(2).mean()
        loss.backward()
        module.zero_grad(set_to_none=True)

    def task_step():
        with autocast():
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return backbone_step, task_step


def bench(config: str, n: int, precision: str, *, repeats: int, peaks: dict) -> list[dict]:
    spec = CONFIGS[config]
    b = spec["batch"]
    steps, flops = {}, {}
    for kind in KINDS:
        torch.manual_seed(0)
        module, batch = spec["build"](kind, n, b)
        backbone_step, task_step = _steps(module, batch, precision, n)
        steps[f"{kind}/backbone"], steps[f"{kind}/step"] = backbone_step, task_step
        flops[kind] = {"backbone": counted_flops(backbone_step), "step": counted_flops(task_step)}
    times = interleaved_medians(steps, repeats=repeats, warmup=1)
    rows = []
    for kind in KINDS:
        row = {"config": config, "N": n, "batch": b, "kind": kind, "precision": precision,
               "backbone": spec["backbone"], "threads": torch.get_num_threads(), "repeats": repeats}
        for part in ("backbone", "step"):
            t = times[f"{kind}/{part}"]
            gflops = flops[kind][part] / (t["cpu_ms"] / 1e3) / 1e9
            row[part] = {"cpu_ms": round(t["cpu_ms"], 3), "wall_ms": round(t["wall_ms"], 3),
                         "cpu_ms_min": round(t["cpu_ms_min"], 3), "gflop": round(flops[kind][part] / 1e9, 4),
                         "gflops": round(gflops, 2), "of_matmul_peak": round(gflops / peaks[precision], 4)}
        row["step"]["tokens_per_s"] = round(b * n / (times[f"{kind}/step"]["cpu_ms"] / 1e3), 1)
        rows.append(row)
    ratio = {part: round(times[f"aaren/{part}"]["cpu_ms"] / times[f"transformer/{part}"]["cpu_ms"], 3)
             for part in ("backbone", "step")}
    for row in rows:
        row["aaren_over_transformer"] = ratio
    return rows


def bench_eval(*, repeats: int) -> list[dict]:
    from tasks.rl.model import DecisionTransformer
    candidates = {}
    for kind in KINDS:
        torch.manual_seed(0)
        backbone = aaren.Backbone(kind=kind, **CONFIGS["rl"]["backbone"]).eval()
        dt = DecisionTransformer(backbone=backbone, state_dim=17, act_dim=6, max_timestep=1000).eval()
        for precision in PRECISIONS:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
            for e in (100, 30, 10):
                window = (torch.randn(e, 20, 1), torch.randn(e, 20, 17), torch.randn(e, 20, 6),
                          torch.arange(20).expand(e, 20))
                candidates["window", kind, precision, e] = lambda w=window, dt=dt, a=autocast: (
                    _inference(a, lambda: dt(*w)))
            for e in (100, 10):
                x, state = torch.randn(e, 128), {"s": backbone.init_state(e)}
                for _ in range(300):  # a cache of 100 timesteps (Transformer), as mid-episode
                    state["s"] = backbone.step(x, state["s"])[1]

                def env_step(x=x, state=state, b=backbone):
                    s = state["s"]
                    for _ in range(3):
                        _, s = b.step(x, s)  # the state is not kept: every repeat measures the same step
                candidates["stream", kind, precision, e] = lambda f=env_step, a=autocast: _inference(a, f)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # one outer region: bf16 weight casts cached, as in a test
        times = interleaved_medians(candidates, repeats=repeats)
    return [{"config": f"rl_eval_{mode}", "kind": kind, "precision": precision, "episodes": e,
             "cpu_ms": round(t["cpu_ms"], 3), "wall_ms": round(t["wall_ms"], 3), "repeats": repeats,
             "threads": torch.get_num_threads()} for (mode, kind, precision, e), t in times.items()]


def _inference(autocast, fn) -> None:
    with torch.inference_mode(), autocast:
        fn()


def _points(path: Path) -> dict:
    """(config, N, kind, precision) → the latest row of that cell in a results file."""
    return {(r["config"], r["N"], r["kind"], r["precision"]): r for r in PointStore(path).read()
            if r.get("record") == "point"}


def markdown_table(path: Path, before: Path | None = None) -> str:
    rows, old = _points(path), _points(before) if before else {}
    head = "| config | N | kind | precision | backbone ms | step ms | tokens/s | GFLOP/s (of peak) | A/T backbone |"
    lines = [head + (" step speedup vs before fp32 |" if before else ""), "|---" * (9 + bool(before)) + "|"]
    for (config, n, kind, precision), r in rows.items():
        line = (f"| {config} | {n} | {kind} | {precision} | {r['backbone']['cpu_ms']:.1f} | {r['step']['cpu_ms']:.1f} "
                f"| {r['step']['tokens_per_s']:.0f} | {r['step']['gflops']:.0f} ({r['step']['of_matmul_peak']:.0%}) "
                f"| {r['aaren_over_transformer']['backbone']:.2f} |")
        if before:
            base = old.get((config, n, kind, "32-true"))
            line += f" {base['step']['cpu_ms'] / r['step']['cpu_ms']:.2f}× |" if base else " — |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def run(*, configs: list[str], precisions: list[str], threads: int, repeats: int, out: Path, force: bool) -> None:
    """Measure every (config, N, precision) not yet in `out` (resumable), printing each row as it lands."""
    torch.set_num_threads(threads)
    store = PointStore(out)
    rows = store.read()
    if not any(r.get("record") == "machine" for r in rows) or force:
        peaks = {p: round(matmul_peak_gflops(dtype), 1) for p, dtype in PRECISIONS.items()}
        store.append({"job": "machine", "record": "machine", "matmul_peak_gflops": peaks,
                      "provenance": provenance("cpu")})
    else:
        peaks = next(r for r in reversed(rows) if r.get("record") == "machine")["matmul_peak_gflops"]
    print(json.dumps({"matmul_peak_gflops": peaks}), flush=True)
    for config in configs:
        for n in CONFIGS[config]["lengths"]:
            for precision in precisions:
                job = f"config={config}-N={n}-precision={precision}-threads={threads}-repeats={repeats}"
                if job in store.finished_jobs() and not force:
                    continue
                for row in bench(config, n, precision, repeats=repeats, peaks=peaks):
                    store.append({"job": job, "record": "point"} | row)
                    print(json.dumps(row), flush=True)
                store.append({"job": job, "record": "job_end", "status": "done"})


def run_eval(*, threads: int, repeats: int, out: Path) -> None:
    torch.set_num_threads(threads)
    store = PointStore(out)
    for row in bench_eval(repeats=repeats):
        store.append({"job": "eval", "record": "point"} | row)
        print(json.dumps(row), flush=True)
