"""Paper tables from the results store: per task, rows = dataset (× variant), columns = metric × model.

TABLE_SPECS is the one place that says, per task, which metrics a table shows and which variant keys split rows;
direction() says whether lower or higher is better. The expected grid (datasets, variants, seeds) is read from the
task's paper sweep, conf/experiment/paper/<task>.yaml, so rows with no run yet still appear (as "—").
"""
import json
import math
import statistics
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import yaml


MODELS = ("transformer", "aaren")                       # column order, as in the paper
MODEL_TITLES = {"transformer": "Transformer", "aaren": "Aaren"}
# Which way is better, by the words of a metric's name (nll_time, best_window_normalized_score, ...); a name
# ending in a spread/cost word (…_std, step_latency_ms, …) is never compared.
LOWER_IS_BETTER = {"mse", "mae", "nll", "rmse", "loss"}
HIGHER_IS_BETTER = {"accuracy", "score"}
NOT_COMPARED = {"std", "ms", "bytes", "step", "length"}


def direction(metric: str) -> str | None:
    """'min', 'max' or None (no better side) for a metric name."""
    words = metric.lower().split("_")
    if words[-1] in NOT_COMPARED:
        return None
    if LOWER_IS_BETTER & set(words):
        return "min"
    return "max" if HIGHER_IS_BETTER & set(words) else None


@dataclass(frozen=True)
class TableSpec:
    title: str
    metrics: tuple[str, ...]            # metric names as recorded (`test/<name>` without the prefix)
    variant_keys: tuple[str, ...] = ()  # task.variant keys that split a dataset into several rows


TABLE_SPECS = {
    "rl": TableSpec("Reinforcement learning (D4RL normalised score)",
                    ("best_window_normalized_score", "last_window_normalized_score",
                     "best_stream_normalized_score", "last_stream_normalized_score")),
    "tpp": TableSpec("Event forecasting (neural TPP)", ("nll", "rmse", "accuracy")),
    "forecasting": TableSpec("Time series forecasting", ("mse", "mae"), ("horizon",)),
    "classification": TableSpec("Time series classification (UEA)", ("accuracy",)),
}


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]           # one per seed (finite values only)
    expected: int | None = None         # seeds in the paper grid, when known

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if self.n > 1 else None


@dataclass
class Table:
    task: str
    spec: TableSpec
    rows: list[tuple]                   # (dataset, *variant values)
    cells: dict = field(default_factory=dict)   # (row, metric, model) → Cell
    notes: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)  # protocol profiles and data labels of the runs shown

    def better(self, row, metric: str) -> str | None:
        """The model with the better mean on this row (None: a side missing, a tie or no known direction)."""
        means = {m: self.cells[(row, metric, m)].mean for m in MODELS if (row, metric, m) in self.cells}
        means = {m: v for m, v in means.items() if v is not None}
        return _pick(means, metric)

    def average(self, metric: str) -> tuple[dict, int]:
        """Mean over rows where every model has a value (a fair comparison): ({model: mean}, rows used)."""
        rows = [r for r in self.rows if all(self._mean(r, metric, m) is not None for m in MODELS)]
        if not rows:
            return {}, 0
        return {m: statistics.fmean(self._mean(r, metric, m) for r in rows) for m in MODELS}, len(rows)

    def better_average(self, metric: str) -> str | None:
        return _pick(self.average(metric)[0], metric)

    def _mean(self, row, metric, model):
        cell = self.cells.get((row, metric, model))
        return None if cell is None else cell.mean


def _pick(means: dict, metric: str) -> str | None:
    if len(means) < 2 or direction(metric) is None or len(set(means.values())) < 2:
        return None
    return (min if direction(metric) == "min" else max)(means, key=means.get)


def paper_grid(conf_dir: Path, task: str) -> dict | None:
    """{dataset: [...], seed: [...], <swept key>: [...]} from conf/experiment/paper/<task>.yaml, if present.

    A swept key is stored under its last dotted part (task.variant.horizon and task.horizon both → horizon),
    which is how a table's variant keys find their values.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = Path(conf_dir) / "experiment" / "paper" / f"{task}.yaml"
    if not path.is_file():
        return None
    params = ((yaml.safe_load(path.read_text()) or {}).get("hydra") or {}).get("sweeper", {}).get("params") or {}
    parser, grid = OverridesParser.create(), {}
    for key, value in params.items():
        override = parser.parse_overrides([f"{key}={value}"])[0]
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        grid[key.rsplit(".", 1)[-1]] = values
    return grid


def derive_spec(task: str, records: list[dict]) -> TableSpec:
    """For a task without an entry in TABLE_SPECS: every recorded metric, every variant key."""
    metrics = sorted({name for r in records for name in r["metrics"]})
    variant_keys = sorted({key for r in records for key in r["variant"]})
    return TableSpec(task, tuple(metrics), tuple(variant_keys))


def latest_per_seed(records: list[dict]) -> tuple[list[dict], list[str]]:
    """One record per (dataset, variant, model, seed): the most recently finished; notes on superseded ones."""
    chosen, notes = {}, []
    for record in sorted(records, key=lambda r: r.get("finished_at", "")):
        key = (record["dataset"], tuple(sorted(record["variant"].items())), record["model"], record["seed"])
        if key in chosen:
            notes.append(f"run {chosen[key]['run_id']} superseded by {record['run_id']} (same cell and seed)")
        chosen[key] = record
    return list(chosen.values()), notes


def build_table(task: str, records: list[dict], grid: dict | None = None) -> Table:
    spec = TABLE_SPECS.get(task) or derive_spec(task, records)
    records, notes = latest_per_seed([r for r in records if r["task"] == task])

    def row_of(record):
        return (record["dataset"], *(record["variant"].get(key) for key in spec.variant_keys))

    rows = []
    if grid:  # a variant key the sweep does not vary takes the values the records have
        seen = {key: sorted({r["variant"].get(key) for r in records}, key=str) or [None] for key in spec.variant_keys}
        rows = list(product(grid.get("dataset", []), *(grid.get(key, seen[key]) for key in spec.variant_keys)))
    rows += sorted({row_of(r) for r in records} - set(rows), key=str)
    expected = len(grid["seed"]) if grid and "seed" in grid else None
    table = Table(task, spec, rows, notes=notes, provenance=_provenance(records))
    for row, metric, model in product(rows, spec.metrics, MODELS):
        runs = [r for r in records if row_of(r) == row and r["model"] == model and metric in r["metrics"]]
        values = tuple(r["metrics"][metric] for r in runs if r["metrics"][metric] is not None)
        protocols = {json.dumps(r.get("protocol"), sort_keys=True) for r in runs}
        if len(protocols) > 1 and metric == spec.metrics[0]:
            table.notes.append(f"{row} {model}: seeds ran under {len(protocols)} different protocols "
                               "(filter with make_tables.py --where protocol.<key>=<value>)")
        if len(values) < len(runs):
            table.notes.append(f"{row} {model} {metric}: {len(runs) - len(values)} non-finite value(s) left out")
        if values:
            table.cells[(row, metric, model)] = Cell(values, expected)
    return table


def _provenance(records: list[dict]) -> list[str]:
    """What the numbers are: each protocol profile and data label with its number of runs (never left implicit)."""
    def count(label, values):
        counts = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        return [f"{label} {value if value is not None else '(not recorded)'}: {n} run(s)"
                for value, n in sorted(counts.items(), key=str)]
    return (count("protocol profile", (r.get("protocol", {}).get("profile") for r in records))
            + count("data", (r.get("data_label") or r["dataset"] for r in records)))


def select(records: list[dict], where: dict[str, str]) -> list[dict]:
    """Records whose dotted fields equal the given values (compared as strings), e.g. protocol.profile."""
    def field_of(record, dotted):
        for part in dotted.split("."):
            record = record.get(part) if isinstance(record, dict) else None
        return record
    return [r for r in records if all(str(field_of(r, key)) == value for key, value in where.items())]


def fmt_number(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return f"{value:.2e}"


def fmt_cell(cell: Cell | None) -> str:
    """'0.412 ± 0.010 (n=5)'; '—' when no run exists. Never a made-up number."""
    if cell is None or cell.mean is None or math.isnan(cell.mean):
        return "—"
    spread = f" ± {fmt_number(cell.std)}" if cell.std is not None else ""
    seeds = f"{cell.n}/{cell.expected}" if cell.expected and cell.n < cell.expected else f"{cell.n}"
    return f"{fmt_number(cell.mean)}{spread} (n={seeds})"
