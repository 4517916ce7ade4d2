"""The paper's efficiency analysis, reproduced: streaming inference (memory and time vs tokens, Aaren's constant
state vs the Transformer's KV cache) and training (forward+backward time and memory vs sequence length).

    python scripts/bench_efficiency.py                       # everything, defaults sized for the device
    python scripts/bench_efficiency.py --sections stream --configs rl --max-tokens 65536
    python scripts/bench_efficiency.py --plots-only          # rebuild summary.json, tables.md and the PNGs
    python scripts/bench_efficiency.py --device cuda         # on a GPU: names the card, CUDA-synchronised timing

Each job (a config × kind × path × batch stream, or a scope × op × dtype training sweep) runs in its own process
(isolated peak memory) and appends its points to <out>/points.jsonl as they are measured; rerunning skips finished
jobs and resumes interrupted Aaren streams (--force redoes the selected jobs). Outputs, in --out (default
results/efficiency/<cpu|cuda>/): points.jsonl, summary.json (provenance: machine, card, torch, git sha, settings;
checked targets; all points), tables.md, and streaming_*.png / training_*.png. Method: docs/efficiency.md.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for `tasks` when not installed

import torch  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.common import PointStore, job_id, provenance  # noqa: E402
from benchmarks.exported_kv import run_exported_pair_job  # noqa: E402
from benchmarks.plots import streaming_figures, training_figures  # noqa: E402
from benchmarks.streaming import resume_path, run_stream_job  # noqa: E402
from benchmarks.training import run_train_job  # noqa: E402
from tasks.fileio import write_json_atomic  # noqa: E402

DEFAULTS = {  # device type → defaults sized for it (CPU: 2 shared cores here; GPU: an H100/H200-class card)
    "cpu": {"train_config": "rl", "train_lengths": [2 ** k for k in range(8, 15)], "train_batch": 1,
            "batches": [1, 64], "threads": 1},
    "cuda": {"train_config": "forecasting", "train_lengths": [2 ** k for k in range(10, 17)], "train_batch": 4,
             "batches": [1, 256], "threads": None},
}


def _ints(text):
    return [int(x) for x in text.split(",") if x]


def _names(text):
    return [x for x in text.split(",") if x]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sections", type=_names, default=["stream", "train"])
    p.add_argument("--configs", type=_names, default=["rl", "forecasting", "tpp", "classification"],
                   help="streaming configs (paper sizes read from conf/; 'toy' for smoke tests)")
    p.add_argument("--batches", type=_ints, default=None, help="streams per step (default: 1 and a large batch)")
    p.add_argument("--fast-paths", type=_names, default=["torchscript", "onnxruntime"],
                   help="exported Aaren steps also streamed, at batch 1 (onnxruntime on CPU only; with it, the "
                        "Transformer's step is exported too and timed against Aaren's on filled caches)")
    p.add_argument("--max-tokens", type=int, default=2 ** 20)
    p.add_argument("--kv-real-max", type=int, default=2 ** 13, help="KV cache: real streaming up to here")
    p.add_argument("--window", type=int, default=32, help="single steps per timing window")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing windows per checkpoint")
    p.add_argument("--ref-tokens", type=int, default=1024, help="the reference stream length of the ratio")
    p.add_argument("--stream-budget-s", type=float, default=900.0, help="time budget of one eager streaming job")
    p.add_argument("--fast-path-budget-s", type=float, default=300.0, help="... of one exported-step job")
    p.add_argument("--max-state-gib", type=float, default=3.0, help="largest KV cache allocated")
    p.add_argument("--train-config", default=None)
    p.add_argument("--train-lengths", type=_ints, default=None)
    p.add_argument("--train-batch", type=int, default=None)
    p.add_argument("--train-ops", type=_names, default=["naive", "hillis_steele", "chunked", "sdpa"])
    p.add_argument("--scopes", type=_names, default=["layer", "backbone"])
    p.add_argument("--dtypes", type=_names, default=["float32", "bfloat16"])
    p.add_argument("--naive-max-n", type=int, default=1024, help="the sequential reference is a Python loop")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--point-budget-s", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--in-process", action="store_true", help="run jobs here instead of one process each")
    p.add_argument("--force", action="store_true", help="redo the selected jobs even if finished")
    p.add_argument("--plots-only", action="store_true")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = DEFAULTS["cuda" if args.device.startswith("cuda") else "cpu"]
    for name in ("train_config", "train_lengths", "train_batch", "batches", "threads"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.max_tokens < 1 or args.max_tokens & (args.max_tokens - 1):
        p.error("--max-tokens must be a power of two (checkpoints are 1, 2, 4, ...)")
    args.out = args.out or Path(__file__).resolve().parents[1] / "results" / "efficiency" / args.device.split(":")[0]
    return args


def jobs_and_settings(args):
    settings = {k: getattr(args, k) for k in (
        "max_tokens", "kv_real_max", "window", "rounds", "ref_tokens", "seed", "train_lengths", "naive_max_n",
        "repeats", "point_budget_s", "threads")}
    settings |= {"budget_s": args.stream_budget_s, "fast_path_budget_s": args.fast_path_budget_s,
                 "max_state_bytes": int(args.max_state_gib * 2 ** 30),
                 "measured_with": {k: v for k, v in provenance(args.device).items() if k in ("git", "versions")}}
    jobs = []
    if "stream" in args.sections:
        for config in args.configs:
            for batch in args.batches:
                for kind in ("aaren", "transformer"):
                    jobs.append({"bench": "stream", "config": config, "kind": kind, "path": "eager", "batch": batch})
                if batch == 1:
                    jobs += [{"bench": "stream", "config": config, "kind": "aaren", "path": path, "batch": 1}
                             for path in args.fast_paths if path != "onnxruntime" or args.device == "cpu"]
                    if "onnxruntime" in args.fast_paths and args.device == "cpu":  # both exported: a fair pair
                        jobs.append({"bench": "stream", "config": config, "kind": "transformer",
                                     "path": "onnxruntime", "batch": 1})
    if "train" in args.sections:
        jobs += [{"bench": "train", "config": args.train_config, "scope": scope, "op": op, "dtype": dtype,
                  "batch": args.train_batch} for scope in args.scopes for dtype in args.dtypes for op in args.train_ops]
    return [job | {"device": args.device} for job in jobs], settings


def run_job(job, settings, out_dir):
    """Measure one job here (the worker's body)."""
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    store = PointStore(out_dir / "points.jsonl")
    with torch.inference_mode(job["bench"] == "stream"):
        if job["bench"] == "stream" and job["kind"] == "transformer" and job["path"] != "eager":
            run_exported_pair_job(job, settings, store)
        elif job["bench"] == "stream":
            run_stream_job(job, settings, store, out_dir)
        else:
            run_train_job(job, settings, store)


def summarise(args, settings):
    store = PointStore(args.out / "points.jsonl")
    rows = store.read()
    points = [r for r in rows if r["record"] == "point"]
    summary = {"provenance": provenance(args.device), "settings_of_this_invocation": settings,
               "jobs": [r for r in rows if r["record"] == "job_end"], "points": points}
    summary["targets"] = report.targets(points)
    write_json_atomic(args.out / "summary.json", summary)
    (args.out / "tables.md").write_text(report.markdown(summary))
    figures = streaming_figures(points, args.out) + training_figures(points, args.out)
    return summary, figures


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        payload = json.loads(args.worker)
        return run_job(payload["job"], payload["settings"], args.out)
    jobs, settings = jobs_and_settings(args)
    args.out.mkdir(parents=True, exist_ok=True)
    store = PointStore(args.out / "points.jsonl")
    failed = []
    for job in [] if args.plots_only else jobs:
        jid = job_id(job)
        if args.force:
            store.forget(jid)
            resume_path(args.out, jid).unlink(missing_ok=True)
        elif jid in store.finished_jobs():
            continue
        print(f"[bench_efficiency] {jid}", flush=True)
        if args.in_process:
            run_job(job, settings, args.out)
            continue
        env = os.environ | ({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})
        done = subprocess.run([sys.executable, __file__, "--device", args.device, "--out", str(args.out),
                               "--worker", json.dumps({"job": job, "settings": settings})], env=env)
        if done.returncode:
            failed.append(jid)
            print(f"[bench_efficiency] FAILED (exit {done.returncode}): {jid}", file=sys.stderr, flush=True)
    summary, figures = summarise(args, settings)
    print((args.out / "tables.md").read_text())
    print("wrote", args.out / "summary.json", *figures, sep="\n  ")
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed: {failed}")


if __name__ == "__main__":
    main()
