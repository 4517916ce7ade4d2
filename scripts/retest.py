"""Test a finished run's checkpoint again, under other test conditions: another precision, or config overrides
such as TSLib's paper-era test loader. Training is not repeated; the checkpoint is the one the harness tested.

    python scripts/retest.py <run folder>... [--precisions 32-true bf16-mixed] [--set key=value ...] [--out DIR]

For every run folder (outputs/runs/<task>/<set>/<id>, with config.yaml and fit_done.json) and every precision
(default: fp32 and bf16-mixed), the run's own config, data and thread count test the checkpoint once, with the
`--set` overrides applied (OmegaConf dotted keys, values parsed as YAML). Writes <out>/<task>_<set>_<id>.json:
{run, task, dataset, seed, trained_at, checkpoint, overrides, metrics: {precision: {name: value}}, rel_diff
(second precision against the first, where two are given), record_metrics (the run's record, when present),
provenance}. Uses: how much of a bf16-mixed run's metric is the bf16 evaluation itself
(results/bench/precision_validation/retest/), and the forecasting metric over TSLib's paper-era test loader
(`--set task.datamodule.drop_last_test=true`, results/bench/tslib_drop_last/).
"""
import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.harness.store import read_record, record_path  # noqa: E402

PRECISIONS = ("32-true", "bf16-mixed")
_ABSENT = object()


def _record_metrics(cfg, run_dir: Path) -> dict | None:
    root = Path(cfg.paths.results_root)
    path = record_path(root if root.is_absolute() else REPO / root, cfg.task.name, cfg.dataset.name, run_dir.name)
    return read_record(path)["metrics"] if path.is_file() else None


def retest(run_dir: Path, precisions=PRECISIONS, overrides: dict | None = None) -> dict:
    """{run, checkpoint, overrides, metrics: {precision: {name: value}}, rel_diff, record_metrics}."""
    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from tasks.harness.resume import read_fit_done
    from tasks.harness.runner import tested_checkpoint, trainer_kwargs
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    fit = read_fit_done(run_dir, move_aside=False)
    if fit is None:
        raise SystemExit(f"{run_dir}: no fit_done.json, the run has not finished training")
    record_metrics = _record_metrics(cfg, run_dir)
    for key, value in (overrides or {}).items():
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise SystemExit(f"{run_dir / 'config.yaml'}: --set {key}: no such key in the run's config")
        OmegaConf.update(cfg, key, value, merge=False)
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.task.datamodule, _convert_="all")
    module = instantiate(cfg.task.module, _convert_="all")
    checkpoint = tested_checkpoint(module, fit, run_dir)   # the one the harness tested
    out = {"run": run_dir.name, "task": cfg.task.name, "dataset": cfg.dataset.name, "seed": cfg.seed,
           "trained_at": cfg.trainer.precision, "checkpoint": Path(checkpoint).name, "overrides": overrides or {},
           "metrics": {}}
    for precision in precisions:
        settings = trainer_kwargs(cfg) | {"precision": precision, "enable_progress_bar": False, "devices": 1,
                                          "strategy": "auto"}   # the run's own (test batches, determinism)
        trainer = L.Trainer(**settings, logger=False)
        [metrics] = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True,
                                 verbose=False)
        out["metrics"][precision] = {k.removeprefix("test/"): float(v) for k, v in metrics.items()}
    if len(precisions) == 2:
        first, second = (out["metrics"][p] for p in precisions)
        out["rel_diff"] = {k: abs(second[k] - first[k]) / abs(first[k]) for k in first if first[k]}
    out["record_metrics"] = record_metrics
    return out


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    return key, yaml.safe_load(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="finished run folders (outputs/runs/<task>/<set>/<id>)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=["32-true", "bf16-mixed"])
    parser.add_argument("--set", dest="overrides", type=_override, action="append", default=[],
                        help="config override for the test, key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "precision_validation" / "retest")
    args = parser.parse_args(argv)
    from benchmarks.common import provenance
    from tasks.fileio import write_json_atomic
    for run_dir in args.run_dirs:
        result = retest(run_dir, tuple(args.precisions), dict(args.overrides)) | {"provenance": provenance("cpu")}
        write_json_atomic(args.out / f"{result['task']}_{result['dataset']}_{result['run']}.json", result)
        print(json.dumps({k: result.get(k) for k in ("run", "dataset", "overrides", "metrics", "record_metrics")}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
