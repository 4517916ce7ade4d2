"""Sanity baselines for the TPP datasets (tasks/tpp/baselines.py), written to results/baselines/tpp/<dataset>.json.

    python scripts/tpp_baselines.py MIMIC Wiki Hawkes Sin       # data: --data-root | $AAREN_DATA_ROOT | <repo>/data
    python scripts/tpp_baselines.py Hawkes --results-root /tmp/r  # somewhere else than <repo>/results

Each file: {task, dataset, split, variant, baselines: {name: {metric: value}}, provenance: {git, versions,
data_files: {path: sha256} (file datasets) | generator (generated sets), created_at}} (CONTRACT: tables show each
baseline as a row of the dataset's block). Splits are the training runs' (conf/dataset/<Name>.yaml).
"""
import argparse
import hashlib
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def dataset_config(name: str) -> dict:
    """conf/dataset/<name>.yaml with its interpolations (${dataset.fold}) resolved."""
    from omegaconf import OmegaConf

    path = REPO / "conf" / "dataset" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"tpp_baselines: no dataset config {path}")
    config = OmegaConf.to_container(OmegaConf.create({"dataset": OmegaConf.load(path)}), resolve=True)["dataset"]
    if config.get("task") != "tpp":
        raise SystemExit(f"tpp_baselines: {path} is a {config.get('task')!r} dataset, not tpp")
    return config


def data_provenance(config: dict, data_root) -> dict:
    if "generator" in config:
        return {"generator": config["generator"]}
    from tasks.datasets.registry import locate

    folder = Path(locate(config["name"], root=data_root))
    files = sorted({f for f in config["files"].values()})
    return {"data_files": {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in files}}


def main(argv=None) -> int:
    from tasks.fileio import write_json_atomic
    from tasks.provenance import git_state, package_versions
    from tasks.datasets.paths import data_root as default_data_root
    from tasks.tpp.baselines import sanity_baselines
    from tasks.tpp.data import load_splits

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="TPP dataset configs (conf/dataset/<Name>.yaml)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--results-root", type=Path, default=REPO / "results")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    args = parser.parse_args(argv)
    data_root = args.data_root or default_data_root()
    for name in args.names:
        config = dataset_config(name)
        splits = load_splits(config, data_root)
        payload = {"task": "tpp", "dataset": config["name"], "split": args.split,
                   "variant": config.get("variant") or {},
                   "baselines": sanity_baselines(splits, split=args.split),
                   "provenance": {"git": git_state(REPO), "versions": package_versions(),
                                  **data_provenance(config, data_root),
                                  "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
        out = write_json_atomic(args.results_root / "baselines" / "tpp" / f"{config['name']}.json", payload)
        print(f"{out}: {payload['baselines']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
