"""Write a tables.Table as Markdown, LaTeX, CSV and a PNG bar chart per metric; optionally as W&B tables."""
import csv
import io
from pathlib import Path

from .tables import MODEL_TITLES, MODELS, Table, fmt_cell, fmt_number

ROW_HEADER = "Dataset"


def _row_label(table: Table, row: tuple) -> str:
    variant = ", ".join(f"{key}={value}" for key, value in zip(table.spec.variant_keys, row[1:]))
    return f"{row[0]} ({variant})" if variant else str(row[0])


def _header(table: Table) -> list[str]:
    return [ROW_HEADER] + [f"{metric} {MODEL_TITLES[m]}" for metric in table.spec.metrics for m in MODELS]


def _grid(table: Table, bold) -> list[list[str]]:
    """Body rows + the average row; `bold(text)` marks the better model of each (row, metric)."""
    lines = []
    for row in table.rows:
        line = [_row_label(table, row)]
        for metric in table.spec.metrics:
            better = table.better(row, metric)
            for model in MODELS:
                text = fmt_cell(table.cells.get((row, metric, model)))
                line.append(bold(text) if model == better else text)
        lines.append(line)
    line = ["Average"]
    for metric in table.spec.metrics:
        means, n_rows = table.average(metric)
        better = table.better_average(metric)
        for model in MODELS:
            text = f"{fmt_number(means[model])} ({n_rows} rows)" if means else "—"
            line.append(bold(text) if model == better else text)
    lines.append(line)
    return lines


def to_markdown(table: Table) -> str:
    header = _header(table)
    lines = [f"## {table.spec.title}", ""] + [f"- {line}" for line in table.provenance] + ["",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in _grid(table, lambda t: f"**{t}**")]
    lines += ["", "mean ± std over seeds (n = seeds run); bold = better model; Average = mean over rows where "
              "both models have runs; — = no run."]
    lines += [f"- note: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text.replace("±", r"$\pm$").replace("—", "---")


def to_latex(table: Table) -> str:
    metrics, n_models = table.spec.metrics, len(MODELS)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(table.spec.title)}}}",
             r"\begin{tabular}{l" + "c" * (len(metrics) * n_models) + "}", r"\toprule",
             "& " + " & ".join(rf"\multicolumn{{{n_models}}}{{c}}{{{_latex_escape(m)}}}" for m in metrics) + r" \\",
             ROW_HEADER + " & " + " & ".join(MODEL_TITLES[m] for _ in metrics for m in MODELS) + r" \\",
             r"\midrule"]
    body = _grid(table, lambda t: f"<<B>>{t}")
    for index, line in enumerate(body):
        if index == len(body) - 1:
            lines.append(r"\midrule")
        cells = [_latex_escape(text) for text in line]
        cells = [rf"\textbf{{{c[len('<<B>>'):]}}}" if c.startswith("<<B>>") else c for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def csv_rows(table: Table) -> list[dict]:
    """Machine-readable: one line per (row, metric, model) with mean, std, n; empty when missing."""
    out = []
    for row in table.rows:
        for metric in table.spec.metrics:
            better = table.better(row, metric)
            for model in MODELS:
                cell = table.cells.get((row, metric, model))
                out.append({"task": table.task, "dataset": row[0],
                            **{key: value for key, value in zip(table.spec.variant_keys, row[1:])},
                            "metric": metric, "model": model,
                            "mean": "" if cell is None else cell.mean,
                            "std": "" if cell is None or cell.std is None else cell.std,
                            "n": 0 if cell is None else cell.n, "better": model == better})
    return out


def to_csv(table: Table) -> str:
    rows = csv_rows(table)
    fields = ["task", "dataset", *table.spec.variant_keys, "metric", "model", "mean", "std", "n", "better"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_png(table: Table, metric: str, path: Path) -> Path | None:
    """Grouped bars (rows × models) with std error bars; None when the metric has no run at all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(metric == key[1] for key in table.cells):
        return None
    labels = [_row_label(table, row) for row in table.rows]
    width = 0.8 / len(MODELS)
    figure, axis = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 2), 3.5))
    for index, model in enumerate(MODELS):
        cells = [table.cells.get((row, metric, model)) for row in table.rows]
        means = [c.mean if c else float("nan") for c in cells]
        stds = [c.std or 0.0 if c else 0.0 for c in cells]
        axis.bar([i + (index - (len(MODELS) - 1) / 2) * width for i in range(len(labels))], means, width,
                 yerr=stds, capsize=2, label=MODEL_TITLES[model])
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    axis.set_ylabel(metric)
    axis.set_title(f"{table.spec.title}: {metric}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_all(table: Table, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, render in ((".md", to_markdown), (".tex", to_latex), (".csv", to_csv)):
        path = out_dir / f"{table.task}{suffix}"
        path.write_text(render(table))
        written.append(path)
    for metric in table.spec.metrics:
        path = to_png(table, metric, out_dir / f"{table.task}_{metric}.png")
        if path is not None:
            written.append(path)
    return written


def log_wandb(tables: list[Table], *, project: str, mode: str, save_dir: Path) -> None:
    import wandb

    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, job_type="tables", name="paper-tables", mode=mode, dir=str(save_dir))
    try:
        for table in tables:
            header = _header(table)
            run.log({f"tables/{table.task}": wandb.Table(columns=header, data=_grid(table, lambda t: t))})
    finally:
        run.finish()
