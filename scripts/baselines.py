"""Sanity baselines, written to results/baselines/<task>/<file>.json: model-free predictors scored on the same test
split, through the same metrics, as the models (tasks/<task>/baselines.py for tpp, forecasting, classification;
for rl the behaviour data's level, from the dataset statistics in results/rl_data/).

    python scripts/baselines.py MIMIC Wiki Hawkes Sin          # data: --data-root | $AAREN_DATA_ROOT | <repo>/data
    python scripts/baselines.py ETTh1 ETTh2 Exchange           # forecasting: one file per horizon (--horizons)
    python scripts/baselines.py JapaneseVowels halfcheetah-medium   # classification; rl (no data file needed)
    python scripts/baselines.py Hawkes --results-root /tmp/r   # somewhere else than <repo>/results

Each file: {task, dataset, split, variant, baselines: {name: {metric: value}}, provenance: {git, versions,
data_files: {path: sha256} (file datasets) | generator (generated sets), created_at}} (CONTRACT: tables show each
baseline as a row of the block of its dataset and variant). Splits are the training runs' (conf/dataset/<Name>.yaml);
TPP files are <Name>.json, forecasting files <Name>_horizon<H>.json (variant {horizon: H}, the task's seq_len).
"""
import argparse
import hashlib
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TASKS = ("tpp", "forecasting", "classification", "rl")
RL_STATISTICS = REPO / "results" / "rl_data"


def dataset_config(name: str) -> dict:
    """conf/dataset/<name>.yaml with its interpolations (${dataset.fold}) resolved."""
    from omegaconf import OmegaConf

    path = REPO / "conf" / "dataset" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"baselines: no dataset config {path}")
    config = OmegaConf.to_container(OmegaConf.create({"dataset": OmegaConf.load(path)}), resolve=True)["dataset"]
    if config.get("task") not in TASKS:
        raise SystemExit(f"baselines: {path} is a {config.get('task')!r} dataset; baselines exist for {TASKS}")
    return config


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_provenance(config: dict, data_root) -> dict:
    if "generator" in config:
        return {"generator": config["generator"]}
    if config["task"] == "rl":
        path = RL_STATISTICS / f"{config['name']}.json"
        return {"statistics": {str(path.relative_to(REPO)): _sha256(path)}}
    from tasks.datasets.registry import locate

    folder = Path(locate(config["name"], root=data_root))
    if config["task"] == "classification":
        files = [f"{config['name']}_{part}.ts" for part in ("TRAIN", "TEST")]
    else:
        files = sorted(set(config["files"].values()) if "files" in config else {config["file"]})
    return {"data_files": {f: _sha256(folder / f) for f in files}}


def tpp_payloads(config: dict, data_root, split: str, horizons) -> list[tuple[str, dict, dict]]:
    """[(file stem, variant, baselines)]: one file per TPP dataset."""
    from tasks.tpp.baselines import sanity_baselines
    from tasks.tpp.data import load_splits
    return [(config["name"], config.get("variant") or {},
             sanity_baselines(load_splits(config, data_root), split=split))]


def forecasting_payloads(config: dict, data_root, split: str, horizons) -> list[tuple[str, dict, dict]]:
    """[(file stem, variant, baselines)]: one file per horizon, on the windows the runs are tested on."""
    from omegaconf import OmegaConf
    from tasks.forecasting.baselines import sanity_baselines
    from tasks.forecasting.data import ForecastingDataModule
    seq_len = int(OmegaConf.load(REPO / "conf" / "task" / "forecasting.yaml").task.seq_len)
    out = []
    for horizon in horizons:
        datamodule = ForecastingDataModule(dataset=config, data_root=data_root, seq_len=seq_len, horizon=horizon,
                                           batch_size=512)
        datamodule.setup()
        out.append((f"{config['name']}_horizon{horizon}", {"horizon": horizon},
                    sanity_baselines(datamodule.windows[split])))
    return out


def classification_payloads(config: dict, data_root, split: str, horizons) -> list[tuple[str, dict, dict]]:
    """[(file stem, variant, baselines)]: the TRAIN file's labels against the TEST file's (the tested split)."""
    from tasks.classification.baselines import sanity_baselines
    from tasks.classification.data import UEADataModule
    if split != "test":
        raise SystemExit(f"baselines: classification is scored on TEST only, not {split!r}")
    datamodule = UEADataModule(dataset=config, data_root=data_root, validation="test")   # train = all of TRAIN
    datamodule.setup()
    labels = {name: datamodule.splits[name].labels.numpy() for name in ("train", "test")}
    return [(config["name"], {}, sanity_baselines(labels["train"], labels["test"], len(datamodule.classes)))]


def rl_payloads(config: dict, data_root, split: str, horizons) -> list[tuple[str, dict, dict]]:
    """[(file stem, variant, baselines)]: the behaviour data's level, from the file's committed statistics."""
    import json
    from tasks.rl.baselines import sanity_baselines
    path = RL_STATISTICS / f"{config['name']}.json"
    if not path.is_file():
        raise SystemExit(f"baselines: no statistics {path} (scripts/make_rl_data.py writes them with the file)")
    return [(config["name"], {}, sanity_baselines(json.loads(path.read_text())))]


def main(argv=None) -> int:
    from tasks.fileio import write_json_atomic
    from tasks.provenance import git_state, package_versions
    from tasks.datasets.paths import data_root as default_data_root

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="dataset configs of any task (conf/dataset/<Name>.yaml)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--results-root", type=Path, default=REPO / "results")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720], help="forecasting only")
    args = parser.parse_args(argv)
    data_root = args.data_root or default_data_root()
    payloads = {"tpp": tpp_payloads, "forecasting": forecasting_payloads,
                "classification": classification_payloads, "rl": rl_payloads}
    for name in args.names:
        config = dataset_config(name)
        task = config["task"]
        provenance = {"git": git_state(REPO), "versions": package_versions(), **data_provenance(config, data_root),
                      "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for stem, variant, baselines in payloads[task](config, data_root, args.split, args.horizons):
            payload = {"task": task, "dataset": config["name"], "split": args.split, "variant": variant,
                       "baselines": baselines, "provenance": provenance}
            out = write_json_atomic(args.results_root / "baselines" / task / f"{stem}.json", payload)
            print(f"{out}: {baselines}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
