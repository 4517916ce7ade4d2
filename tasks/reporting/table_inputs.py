"""What a results table is built from, besides the records: the experiment's own sweep and the sanity baselines.

An experiment (conf/experiment/<name>.yaml) is composed with Hydra's compose API, so its expected rows, models
and seeds are exactly what `python train.py -m experiment=<name>` would run; its `report:` node (left out of the
run identity) says what it is and how it differs from the paper's protocol.
"""
import functools
import json
import math
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

Row = tuple  # (dataset, ((variant key, value), ...)) — the variant as sorted items, so rows compare and hash

NOT_RESULTS = ("smoke/", "test/")   # experiments whose runs never enter a table (nor does "adhoc")
ADHOC = "adhoc"


class TableInputError(ValueError):
    """An experiment or baseline file a table needs is missing or malformed (the message names it)."""


def row_of(record: dict) -> Row:
    return record["dataset"], tuple(sorted((record.get("variant") or {}).items()))


def row_label(row: Row) -> str:
    variant = ", ".join(f"{key}={value}" for key, value in row[1])
    return f"{row[0]} ({variant})" if variant else str(row[0])


def row_file(row: Row) -> str:
    """File name of a row: ('ETTh1', (('horizon', 96),)) → ETTh1_horizon96."""
    return "_".join([str(row[0]), *(f"{key}{value}" for key, value in row[1])]).replace("/", "-")


def slug(experiment: str) -> str:
    """File name of an experiment's table: cpu/rl → cpu-rl."""
    return experiment.replace("/", "-")


def is_result_experiment(name: str | None) -> bool:
    """True for an experiment whose runs may enter a committed table (not smoke/test runs, not ad-hoc ones)."""
    return bool(name) and name != ADHOC and not name.startswith(NOT_RESULTS)


@dataclass(frozen=True)
class Experiment:
    name: str                           # Hydra's `experiment` option, e.g. "cpu/rl"
    task: str
    rows: tuple[Row, ...] = ()          # the sweep's (dataset, variant) cells, in sweep order
    models: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    report: dict = field(default_factory=dict)  # title, differs_from_paper, paper_seeds, ... (free prose)

    @property
    def file(self) -> str:
        return f"conf/experiment/{self.name}.yaml"


def list_experiments(conf_dir: Path) -> list[str]:
    base = Path(conf_dir) / "experiment"
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


def _sweep_values(key: str, value) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_overrides([f"{key}={value}"])[0]
    return list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]


def load_experiment(conf_dir: Path, name: str) -> Experiment:
    """Compose conf/experiment/<name>.yaml and read its sweep: datasets × variant values, models, seeds."""
    conf_dir = Path(conf_dir).resolve()
    if not (conf_dir / "experiment" / f"{name}.yaml").is_file():
        raise TableInputError(f"records name experiment {name!r} but {conf_dir}/experiment/{name}.yaml does not "
                              "exist (renamed? pass --experiment to choose the tables to build)")
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in sorted(conf_dir.rglob("*.yaml")))
    return _compose_experiment(conf_dir, name, stamp)


@functools.lru_cache(maxsize=64)
def _compose_experiment(conf_dir: Path, name: str, stamp: tuple) -> Experiment:
    """load_experiment's work, cached per state of the config files (`stamp`): composing is the slow part."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        base = compose("train", overrides=[f"experiment={name}"], return_hydra_config=True)
        params = OmegaConf.select(base, "hydra.sweeper.params")
        params = {} if params is None else OmegaConf.to_container(params)
        swept = {key.lstrip("+"): _sweep_values(key, value) for key, value in params.items()}
        groups = set(base.hydra.runtime.choices)
        group_keys = [k for k in swept if k in groups and k != "model"]
        value_keys = [k for k in swept if k not in groups and k != "seed"]
        rows = []
        for choice in product(*(swept[k] for k in group_keys)):
            cfg = compose("train", overrides=[f"experiment={name}", *(f"{k}={v}" for k, v in zip(group_keys, choice))])
            for values in product(*(swept[k] for k in value_keys)):
                for key, value in zip(value_keys, values):
                    OmegaConf.update(cfg, key, value, force_add=True)
                variant = OmegaConf.select(cfg, "task.variant")
                variant = {} if variant is None else OmegaConf.to_container(variant, resolve=True)
                row = (str(cfg.dataset.name), tuple(sorted(variant.items())))
                if row not in rows:
                    rows.append(row)
        report = OmegaConf.to_container(base.report, resolve=True) if "report" in base else {}
        return Experiment(name, str(base.task.name), tuple(rows),
                          tuple(str(m) for m in swept.get("model", [base.model.kind])),
                          tuple(int(s) for s in swept.get("seed", [base.seed])), report or {})


def load_baselines(results_root: Path, task: str) -> dict:
    """{dataset: [payload, ...]} from results/baselines/<task>/*.json, one payload per file: a dataset has one file,
    or one per variant (forecasting: <dataset>_horizon<H>.json) (format: docs in tasks/README.md)."""
    found = {}
    for path in sorted((Path(results_root) / "baselines" / task).glob("*.json")):
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TableInputError(f"{path}: not a readable baseline file ({error})") from error
        if not isinstance(payload, dict) or not isinstance(payload.get("baselines"), dict):
            raise TableInputError(f"{path}: a baseline file needs a 'baselines' mapping {{name: {{metric: value}}}}")
        for name, values in payload["baselines"].items():
            bad = [m for m, v in (values or {}).items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
            if not isinstance(values, dict) or bad:
                raise TableInputError(f"{path}: baseline {name!r} needs finite numbers {{metric: value}} "
                                      f"(bad: {bad or values!r})")
        found.setdefault(str(payload.get("dataset") or path.stem), []).append(payload)
    return found
