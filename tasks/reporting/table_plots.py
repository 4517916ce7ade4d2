"""Figures of an experiment's table: grouped bars per metric, and learning curves per dataset.

Learning curves come from each record's `learning_curve` (one dict per validation round: epoch, step and every
logged val/* scalar); a model's curve is the mean over its seeds at each step (seeds missing a step are left out
of that point, never filled in).
"""
import math
import statistics
from pathlib import Path

from .table_inputs import row_file, row_label, slug
from .tables import MODEL_TITLES, MODELS, Table

MAX_CURVE_PANELS = 4


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def to_png(table: Table, path: Path) -> Path | None:
    """One panel per metric: bars (rows × models) with std error bars; None when nothing ran."""
    metrics = [m for m in table.metrics if any(key[1] == m for key in table.cells)]
    if not metrics:
        return None
    plt = _pyplot()
    labels = [row_label(row) for row in table.rows]
    width = 0.8 / len(MODELS)
    figure, axes = plt.subplots(len(metrics), 1, figsize=(max(4.0, 0.6 * len(labels) + 2), 2.8 * len(metrics)),
                                squeeze=False)
    for axis, metric in zip(axes[:, 0], metrics):
        for index, model in enumerate(MODELS):
            cells = [table.cells.get((row, metric, model)) for row in table.rows]
            means = [c.mean if c else float("nan") for c in cells]
            stds = [(c.std or 0.0) if c else 0.0 for c in cells]
            axis.bar([i + (index - (len(MODELS) - 1) / 2) * width for i in range(len(labels))], means, width,
                     yerr=stds, capsize=2, label=MODEL_TITLES[model])
        axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        axis.set_ylabel(table.spec.label(metric), fontsize=8)
        axis.legend(fontsize=7)
    axes[0, 0].set_title(f"{table.experiment.name}: {table.spec.title}", fontsize=9)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
    return path


def seed_curve(runs: list[dict], metric: str, x: str = "step") -> tuple[list, list, list, list]:
    """(x values, mean, min, max over seeds) of one val metric; points no seed logged are absent."""
    points = {}
    for record in runs:
        for entry in record.get("learning_curve") or []:
            value = entry.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value) and entry.get(x) is not None:
                points.setdefault(entry[x], []).append(value)
    steps = sorted(points)
    return (steps, [statistics.fmean(points[s]) for s in steps], [min(points[s]) for s in steps],
            [max(points[s]) for s in steps])


def curve_metrics(runs: list[dict]) -> list[str]:
    """The val/* metrics of the runs' curves, one panel each; an alias (a metric logged under a second name with
    the same value at every validation, e.g. RL's val/loss = val/action_mse) gets no panel of its own."""
    entries = [entry for r in runs for entry in r.get("learning_curve") or []]
    panels, seen = [], set()
    for key in sorted({key for entry in entries for key in entry if key.startswith("val/")}):
        values = tuple(repr(entry.get(key)) for entry in entries)
        if values not in seen:
            seen.add(values)
            panels.append(key)
    return panels[:MAX_CURVE_PANELS]


def _save(figure, path: Path) -> None:
    figure.savefig(path, dpi=110)


def write_curves(table: Table, out_dir: Path, *, write=lambda path, save: save(path) or path) -> list[Path]:
    """<out_dir>/<experiment>/<row>.png: each val metric vs step, both models (mean over seeds, min-max band).

    write(path, save): how a file is written (make_tables passes an atomic writer); save(p) draws into p."""
    written = []
    for row in table.rows:
        runs = {model: table.runs(row, model) for model in MODELS}
        metrics = curve_metrics([r for rs in runs.values() for r in rs])
        if not metrics:
            continue
        plt = _pyplot()
        figure, axes = plt.subplots(1, len(metrics), figsize=(max(6.0, 4 * len(metrics)), 3.2), squeeze=False)
        x_label = "update" if table.spec.progress == "updates" else "step"
        for axis, metric in zip(axes[0], metrics):
            for model in MODELS:
                steps, means, lows, highs = seed_curve(runs[model], metric)
                if steps:
                    line, = axis.plot(steps, means, marker=".", label=f"{MODEL_TITLES[model]} (n={len(runs[model])})")
                    if len(runs[model]) > 1:
                        axis.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
            axis.set_xlabel(x_label)
            axis.set_ylabel(metric)
            axis.legend(fontsize=7)
        figure.suptitle(f"{table.experiment.name}: {row_label(row)}\nline: mean over seeds; band: min to max",
                         fontsize=8)
        figure.tight_layout()
        path = Path(out_dir) / slug(table.experiment.name) / f"{row_file(row)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(write(path, lambda p, f=figure: _save(f, p)))
        plt.close(figure)
    return written
