"""One-off: give records that predate the `training` block one inferred from what they did record.

    python scripts/infer_training.py [--results-root results] [--dry-run]

A record written before the learning-curve change has `epochs_trained` and its resolved config, not how training
ended. Both are enough to say it, because the harness writes a record only after `fit` returned normally:
- with early stopping (`task.patience` set) and an epoch limit, fewer epochs than the limit means early stopping
  triggered, as many means the limit was reached;
- without early stopping, fit can only have ended at its limit (`max_steps` updates or `max_epochs` epochs).
The block is marked `inferred_from` (tables mark such cells with *); metrics and every other field are untouched
(checked before anything is written).
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks import fileio  # noqa: E402
from tasks.harness import store  # noqa: E402

INFERRED_FROM = "epochs_trained and the config's limits (the record predates the training block)"


def inferred_training(record: dict) -> dict:
    """The `training` block of a finished run without one (see the module docstring)."""
    task = record["config"]["task"]
    limits = task.get("trainer") or {}
    max_epochs, max_steps = limits.get("max_epochs"), limits.get("max_steps")
    epochs = int(record["epochs_trained"])
    if max_steps is not None and max_steps > 0 and (max_epochs is None or max_epochs < 0):
        stopped_early, steps = False, int(max_steps)  # an update-limited run (RL) without early stopping
    elif max_epochs is not None and max_epochs > 0:
        stopped_early, steps = task.get("patience") is not None and epochs < max_epochs, None
    else:
        raise SystemExit(f"{record['run_id']}: neither an epoch nor an update limit in its config; cannot infer")
    return {"epochs": epochs, "steps": steps, "stopped_early": stopped_early, "reached_limit": not stopped_early,
            "converged": True, "inferred_from": INFERRED_FROM}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-root", default=str(REPO / "results"))
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args(argv)
    plan = []
    for path in sorted((Path(args.results_root) / store.RECORDS).rglob("*.json")):
        record = store.read_record(path)
        if record.get("training") is None:
            plan.append((path, {**record, "training": inferred_training(record)}))
    for path, new in plan:
        old = store.read_record(path)
        if {k: v for k, v in new.items() if k != "training"} != old:
            raise SystemExit(f"{path}: more than the training block would change; nothing written")
    print(f"{len(plan)} records get an inferred training block")
    if not args.dry_run:
        for path, new in plan:
            fileio.write_json_atomic(path, new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
