"""One-off migration of schema-1 run records to schema 2 (run once; committed so the change can be audited).

    python scripts/migrate_records.py [--results-root results] [--dry-run]

Per record: `experiment` from the old hand-written profile label (`experiment_of` below), the stored config
rewritten as today's code computes a run's identity (no `task.profile` / `protocol.profile`; protocol prose
moved to the record's `report`; `threads` from the thread count the run recorded; constructor defaults dropped),
then `config_hash` and `run_id` recomputed and the file renamed. Metrics, and every other field, are never
changed: the script compares every record's metrics before and after and stops on any difference. A run that
two experiments share (ETTh1 horizon 192: cpu/forecasting and cpu/forecasting_horizons) gets a copy for the
second one, marked `copied_from`, as the runner does for a finished run another experiment asks for.
It also recomposes each record's launch and reports whether a relaunch of that experiment finds the record.
"""
import argparse
import copy
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks import fileio  # noqa: E402
from tasks.harness import identity, store  # noqa: E402

OLD_SCHEMA, NEW_SCHEMA = 1, 2


def experiment_of(record: dict) -> str:
    """The experiment that produced a schema-1 record, read off its profile label and config."""
    task, profile = record["task"], record["protocol"].get("profile")
    if task == "classification" and profile is None:
        return "paper/classification"  # the three sets on disk, `-m experiment=paper/classification dataset=...`
    if task == "forecasting" and profile == "cpu_small":
        return "cpu/forecasting" if record["variant"]["horizon"] == 192 else "cpu/forecasting_horizons"
    if task == "rl":
        return {"cpu_2k_updates": "cpu/rl_test10", "cpu_2k_updates_test100": "cpu/rl",
                "cpu_reduced_updates": identity.ADHOC}[profile]  # one early 1,000-update trial
    if task == "tpp" and profile == "budget":
        return "cpu/tpp"
    raise ValueError(f"record {record['run_id']}: no experiment known for task {task!r}, profile {profile!r}")


def shared_with(record: dict, experiment: str) -> list[str]:
    """Further experiments whose grid holds the same config values (they get a marked copy)."""
    if experiment == "cpu/forecasting" and record["dataset"] == "ETTh1":
        return ["cpu/forecasting_horizons"]
    return []


def launch_overrides(record: dict, experiment: str) -> list[str]:
    overrides = [f"task={record['task']}", f"dataset={record['dataset']}", f"model={record['model']}",
                 f"seed={record['seed']}"]
    if experiment != identity.ADHOC:
        overrides.insert(0, f"experiment={experiment}")
    if record["task"] == "forecasting":
        overrides.append(f"task.horizon={record['variant']['horizon']}")
    return overrides


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def migrate(record: dict, experiment: str, protocol_keys: set[str]) -> dict:
    """The schema-2 record of a schema-1 one (a new dict; metrics untouched)."""
    config = copy.deepcopy(record["config"])
    task = config["task"]
    task.pop("profile", None)
    old_protocol = dict(task["protocol"])
    old_protocol.pop("profile", None)
    protocol = {k: v for k, v in old_protocol.items() if k in protocol_keys}
    prose = {k: v for k, v in old_protocol.items() if k not in protocol_keys}
    task["protocol"] = protocol
    config["threads"] = record["machine"]["torch_threads"]
    identity.drop_constructor_defaults(config)
    config_hash = identity.values_hash(config)
    rid = identity.run_id_of(model=record["model"], seed=record["seed"], experiment=experiment,
                             config_hash=config_hash)
    report = {"protocol": {k: v for k, v in prose.items() if k != "metrics"}}
    if "metrics" in prose:
        report["metrics"] = prose["metrics"]
    return {**record, "schema_version": NEW_SCHEMA, "experiment": experiment, "run_id": rid,
            "config_hash": config_hash, "config": config, "protocol": protocol, "report": report,
            "migrated_from": {"schema_version": record.get("schema_version", OLD_SCHEMA),
                              "run_id": record["run_id"], "config_hash": record["config_hash"]}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-root", default=str(REPO / "results"))
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args(argv)
    paths = sorted((Path(args.results_root) / store.RECORDS).rglob("*.json"))
    before = {}
    plan = []  # (old path, new record)
    protocol_keys = {}
    found = 0
    for path in paths:
        record = store.read_record(path)
        if record.get("schema_version", OLD_SCHEMA) != OLD_SCHEMA:
            continue
        before[record["run_id"]] = record["metrics"]
        experiment = experiment_of(record)
        if record["task"] not in protocol_keys:
            protocol_keys[record["task"]] = set(compose([f"task={record['task']}"]).task.protocol)
        for exp in [experiment, *shared_with(record, experiment)]:
            new = migrate(record, exp, protocol_keys[record["task"]])
            plan.append((path, new))
            relaunch = identity.identity_config(compose(launch_overrides(record, exp)))
            found += relaunch == new["config"]
    # copies point at the record of the first experiment of the same old run
    first = {}
    for path, new in plan:
        old = new["migrated_from"]["run_id"]
        if old in first:
            new["copied_from"] = first[old]
        else:
            first[old] = new["run_id"]
    changed = [new["migrated_from"]["run_id"] for _, new in plan
               if new["metrics"] != before[new["migrated_from"]["run_id"]]]
    if changed:
        raise SystemExit(f"metrics would change for {changed}; nothing written")
    print(f"{len(before)} schema-{OLD_SCHEMA} records -> {len(plan)} schema-{NEW_SCHEMA} records "
          f"({len(plan) - len(before)} copies for shared cells); a relaunch of its experiment finds "
          f"{found}/{len(plan)} of them (the others were produced by older code or options)")
    if args.dry_run:
        return 0
    for path, new in plan:
        fileio.write_json_atomic(store.record_path(args.results_root, new["task"], new["dataset"], new["run_id"]), new)
    for path in {path for path, _ in plan}:
        if path not in {store.record_path(args.results_root, n["task"], n["dataset"], n["run_id"]) for _, n in plan}:
            path.unlink()
    after = {}
    for path in sorted((Path(args.results_root) / store.RECORDS).rglob("*.json")):
        record = store.read_record(path)
        if "migrated_from" in record:
            after.setdefault(record["migrated_from"]["run_id"], []).append(record["metrics"])
    bad = [rid for rid, metrics in before.items() if not after.get(rid) or any(m != metrics for m in after[rid])]
    if bad:
        raise SystemExit(f"metrics differ after the migration for {bad}")
    print(f"metrics of all {len(before)} old runs identical after the migration (checked from the written files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
