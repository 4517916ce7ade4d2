"""One results table per experiment: rows = dataset (× variant), columns = metric × model, from the records alone.

Only records whose `experiment` equals the table's experiment enter it (a smoke or ad-hoc run never does). Of
several runs of one cell (dataset, variant, model, seed) the newest is shown and the older ones are counted
(`hidden`). TABLE_SPECS says, per task, which metrics a table shows (and their paper-comparable twins, labelled),
which cost columns follow, and how training progress is counted; direction() says which side of a metric is
better. Sanity baselines (results/baselines/<task>/<dataset>.json) become rows of their dataset's block, and a
model cell worse than one of them on the same metric is flagged.
"""
import math
import statistics
from dataclasses import dataclass, field
from itertools import product

from .table_inputs import Experiment, Row, row_label, row_of

MODELS = ("transformer", "aaren")                       # column order, as in the paper
MODEL_TITLES = {"transformer": "Transformer", "aaren": "Aaren"}
MODEL_SHORT = {"transformer": "T", "aaren": "A"}
# Which way is better, by the words of a metric's name (nll_time, best_window_normalized_score, ...); a name
# ending in a spread/cost word (…_std, step_latency_ms, …) is never compared.
LOWER_IS_BETTER = {"mse", "mae", "nll", "rmse", "loss"}
HIGHER_IS_BETTER = {"accuracy", "score"}
NOT_COMPARED = {"std", "ms", "bytes", "step", "length"}
UNKNOWN = "unknown"
# Baselines that bound what a model can reach rather than a bar it must clear (the generating process of a
# known-truth set): shown as rows, never used to flag a model.
BOUNDS = {"true_process"}


def direction(metric: str) -> str | None:
    """'min', 'max' or None (no better side) for a metric name."""
    words = metric.lower().split("_")
    if words[-1] in NOT_COMPARED:
        return None
    if LOWER_IS_BETTER & set(words):
        return "min"
    return "max" if HIGHER_IS_BETTER & set(words) else None


def worse(value: float, than: float, metric: str) -> bool:
    side = direction(metric)
    return (side == "min" and value > than) or (side == "max" and value < than)


@dataclass(frozen=True)
class Cost:
    label: str                          # column header, shown as "Transformer / Aaren" means
    key: str                            # a metric name, or "wall_time_s" (top-level record field)
    scale: float = 1.0                  # shown value = recorded value × scale


@dataclass(frozen=True)
class TableSpec:
    title: str
    metrics: tuple[str, ...]            # metric names as recorded (`test/<name>` without the prefix)
    labels: dict = field(default_factory=dict)   # metric → column label (paper-comparable twins say so)
    costs: tuple[Cost, ...] = ()
    progress: str = "epochs"            # how the convergence column counts training: "epochs" or "updates"

    def label(self, metric: str) -> str:
        return self.labels.get(metric, metric)


WALL = Cost("wall min/run", "wall_time_s", 1 / 60)
TABLE_SPECS = {
    "rl": TableSpec("Reinforcement learning (D4RL normalised score)",
                    ("last_window_normalized_score", "last_stream_normalized_score",
                     "best_window_normalized_score", "best_stream_normalized_score"),
                    {"last_window_normalized_score": "last window", "last_stream_normalized_score": "last stream",
                     "best_window_normalized_score": "best window", "best_stream_normalized_score": "best stream"},
                    (Cost("stream ms/step", "last_stream_step_latency_ms"),
                     Cost("state KiB/episode", "last_stream_state_bytes_per_episode", 1 / 1024), WALL),
                    progress="updates"),
    "tpp": TableSpec("Event forecasting (neural TPP)",
                     ("nll", "nll_metatpp", "nll_mark", "rmse", "rmse_metatpp", "accuracy"),
                     {"nll": "NLL/event (ours)", "nll_metatpp": "NLL (Meta-TPP)", "nll_mark": "mark NLL",
                      "rmse": "RMSE (ours)", "rmse_metatpp": "RMSE (Meta-TPP MaskedRMSE)"}, (WALL,)),
    "forecasting": TableSpec("Time series forecasting", ("mse", "mae"), {"mse": "MSE", "mae": "MAE"}, (WALL,)),
    "classification": TableSpec("Time series classification (UEA)", ("accuracy",), {}, (WALL,)),
}


def spec_for(task: str, records: list[dict]) -> TableSpec:
    """TABLE_SPECS[task]; for a task without an entry, every recorded metric."""
    return TABLE_SPECS.get(task) or TableSpec(task, tuple(sorted({m for r in records for m in r["metrics"]})),
                                              costs=(WALL,))


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]           # one per seed (finite values only)
    expected: int | None = None         # seeds the experiment asked for

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if self.n > 1 else None


@dataclass(frozen=True)
class Baseline:
    name: str                           # "repeat_previous_mark", ...
    values: dict                        # metric → value (only metrics the table shows)


@dataclass
class Table:
    experiment: Experiment
    spec: TableSpec
    metrics: tuple[str, ...]            # the spec's metrics that some run recorded (all of them if none ran)
    rows: list[Row]
    records: list[dict]                 # the runs shown (newest per cell)
    hidden: list[dict]                  # older runs of the same cells
    cells: dict = field(default_factory=dict)      # (row, metric, model) → Cell
    baselines: dict = field(default_factory=dict)  # row → [Baseline]
    notes: list[str] = field(default_factory=list)

    def runs(self, row: Row, model: str) -> list[dict]:
        return [r for r in self.records if row_of(r) == row and r["model"] == model]

    def better(self, row: Row, metric: str) -> str | None:
        """The model with the better mean on this row (None: a side missing, a tie or no known direction)."""
        means = {m: self._mean(row, metric, m) for m in MODELS}
        return _pick({m: v for m, v in means.items() if v is not None}, metric)

    def average(self, metric: str) -> tuple[dict, int]:
        """Mean over rows where every model has a value (a fair comparison): ({model: mean}, rows used)."""
        rows = [r for r in self.rows if all(self._mean(r, metric, m) is not None for m in MODELS)]
        if not rows:
            return {}, 0
        return {m: statistics.fmean(self._mean(r, metric, m) for r in rows) for m in MODELS}, len(rows)

    def better_average(self, metric: str) -> str | None:
        return _pick(self.average(metric)[0], metric)

    def beaten_by(self, row: Row, metric: str, model: str) -> list[str]:
        """Names of the sanity baselines of this row that the model's mean is worse than, on this metric (BOUNDS
        excluded: no model is expected to beat the true process)."""
        mean = self._mean(row, metric, model)
        return [] if mean is None else [b.name for b in self.baselines.get(row, []) if b.name not in BOUNDS
                                        and metric in b.values and worse(mean, b.values[metric], metric)]

    def cost(self, row: Row, cost: Cost, model: str) -> float | None:
        values = [v for v in (_cost_value(r, cost) for r in self.runs(row, model)) if v is not None]
        return statistics.fmean(values) * cost.scale if values else None

    def convergence(self, row: Row, model: str) -> str:
        return convergence(self.runs(row, model), self.spec.progress)

    def _mean(self, row, metric, model):
        cell = self.cells.get((row, metric, model))
        return None if cell is None else cell.mean


def _pick(means: dict, metric: str) -> str | None:
    if len(means) < 2 or direction(metric) is None or len(set(means.values())) < 2:
        return None
    return (min if direction(metric) == "min" else max)(means, key=means.get)


def _cost_value(record: dict, cost: Cost) -> float | None:
    value = record.get(cost.key) if cost.key == "wall_time_s" else record["metrics"].get(cost.key)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _span(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)}–{max(values)}"


def convergence(runs: list[dict], progress: str) -> str:
    """'3 ep (stopped early: yes)', '10 ep (limit reached)', '4–10 ep (stopped early: 2/3, limit reached: 1/3)',
    '20000 updates (limit reached)': how each run ended (the limit is the experiment's: the protocol's own, or a
    budget's cut). 'unknown' when a run has no `training` block (records older than the learning-curve change);
    '—' without runs; a trailing * when a block was inferred for an older record (scripts/infer_training.py)."""
    blocks = [r.get("training") or {} for r in runs]  # a run's counts: {"epochs", "steps", "stopped_early", ...}
    unit, count = ("updates", "steps") if progress == "updates" else ("ep", "epochs")
    if not runs:
        return "—"
    if any(not isinstance(b.get(count), int) or b.get("stopped_early") is None for b in blocks):
        return UNKNOWN
    n = len(blocks)
    early = sum(bool(b["stopped_early"]) for b in blocks)
    limit = sum(not b["stopped_early"] and bool(b.get("reached_limit")) for b in blocks)
    if early == n:
        how = "stopped early: yes"
    elif limit == n:
        how = "limit reached"
    else:
        how = f"stopped early: {early}/{n}" if early else "stopped early: no"
        how += f", limit reached: {limit}/{n}" if limit else ""
    text = f"{_span([b[count] for b in blocks])} {unit} ({how})"
    return text + ("*" if any(b.get("inferred_from") for b in blocks) else "")


def newest_per_cell(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(one record per (dataset, variant, model, seed): the most recently finished, the older ones)."""
    chosen, hidden = {}, []
    for record in sorted(records, key=lambda r: r.get("finished_at") or ""):
        key = (row_of(record), record["model"], record["seed"])
        if key in chosen:
            hidden.append(chosen[key])
        chosen[key] = record
    return list(chosen.values()), hidden


def build_table(experiment: Experiment, records: list[dict], baselines: dict | None = None, *,
                paper_grid: bool = False) -> Table:
    """The table of `experiment` from the records that name it; `baselines`: {dataset: [baseline-file payload]}.

    Rows: those with a run, in the order of the experiment's sweep (then the others, sorted); with paper_grid,
    every row of the sweep too (empty ones as "—")."""
    mine = [r for r in records if r.get("experiment") == experiment.name]
    spec = spec_for(experiment.task, mine)
    shown, hidden = newest_per_cell(mine)
    recorded = {m for r in shown for m, v in r["metrics"].items() if v is not None}
    metrics = tuple(m for m in spec.metrics if m in recorded) or spec.metrics
    ran = {row_of(r) for r in shown}
    rows = [row for row in experiment.rows if paper_grid or row in ran]
    rows += sorted(ran - set(rows), key=str)
    table = Table(experiment, spec, metrics, rows, shown, hidden)
    expected = len(experiment.seeds) or None
    for row, metric, model in product(rows, metrics, MODELS):
        runs = [r for r in table.runs(row, model) if metric in r["metrics"]]
        values = tuple(v for v in (r["metrics"][metric] for r in runs) if v is not None and math.isfinite(v))
        if len(values) < len(runs):
            table.notes.append(f"{row_label(row)} {model} {metric}: {len(runs) - len(values)} non-finite "
                               "value(s) left out")
        if values:
            table.cells[(row, metric, model)] = Cell(values, expected)
    for row in rows:
        table.baselines[row] = _baselines_of(row, (baselines or {}).get(row[0]), metrics)
    if not paper_grid:  # a row of runs with no finite value at all would be all "—"
        table.rows = [row for row in rows if any(key[0] == row for key in table.cells)]
    return table


def _baselines_of(row: Row, payloads: list[dict] | None, metrics: tuple[str, ...]) -> list[Baseline]:
    """The baselines of a dataset's files that apply to this row (same variant where a file names one)."""
    variant, found = dict(row[1]), []
    for payload in payloads or []:
        if any(key in variant and variant[key] != value for key, value in (payload.get("variant") or {}).items()):
            continue
        for name, values in sorted((payload.get("baselines") or {}).items()):
            kept = {m: v for m, v in values.items()
                    if m in metrics and isinstance(v, (int, float)) and math.isfinite(v)}
            if kept:
                found.append(Baseline(name, kept))
    return found


def select(records: list[dict], where: dict[str, str]) -> list[dict]:
    """Records whose dotted fields equal the given values (compared as strings), e.g. config.seed=0."""
    def field_of(record, dotted):
        for part in dotted.split("."):
            record = record.get(part) if isinstance(record, dict) else None
        return record
    return [r for r in records if all(str(field_of(r, key)) == value for key, value in where.items())]


def _decimals(value: float) -> int:
    return 0 if abs(value) >= 1000 else 1 if abs(value) >= 10 else 3


def _spread_decimals(std: float, mean: float) -> int:
    """Decimals that show the std with two significant figures (at most 4), never fewer than a mean of that size
    gets (0 from 1000, 1 from 10, 2 from 1, else 3); a zero std: the mean's own."""
    if std == 0 or not math.isfinite(std):
        return _decimals(mean)
    least = 0 if abs(mean) >= 1000 else 1 if abs(mean) >= 10 else 2 if abs(mean) >= 1 else 3
    return min(max(1 - math.floor(math.log10(abs(std))), least), 4)


def fmt_number(value: float, decimals: int | None = None) -> str:
    """3 decimals below 10, 1 up to 1000, then whole numbers with separators; 1e-3 > |value| > 0 as 1.2e-04."""
    if decimals is None and value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:,.{_decimals(value) if decimals is None else decimals}f}"


def fmt_cell(cell: Cell | None) -> str:
    """'0.412 ± 0.010 (n=5)': mean and std to the std's second significant figure; 'n=2/3' only when fewer seeds
    ran than the experiment asked for; '—' when no run exists. Never a made-up number."""
    if cell is None or cell.mean is None:
        return "—"
    if cell.std is None:
        text = fmt_number(cell.mean)
    else:
        decimals = _spread_decimals(cell.std, cell.mean)
        text = f"{fmt_number(cell.mean, decimals)} ± {fmt_number(cell.std, decimals)}"
    seeds = f"{cell.n}/{cell.expected}" if cell.expected and cell.n < cell.expected else f"{cell.n}"
    return f"{text} (n={seeds})"
