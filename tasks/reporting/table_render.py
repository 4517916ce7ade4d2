"""Write a tables.Table as Markdown (with what the numbers are), LaTeX and CSV; optionally as W&B tables.

Layout of every table: one row per dataset (× variant), each followed by its sanity-baseline rows ("↳ ..."),
then an Average row; columns = metric × model, then convergence and cost columns as "Transformer / Aaren".
"""
import csv
import io

from .table_inputs import row_label
from .tables import MODEL_SHORT, MODEL_TITLES, MODELS, Table, fmt_cell, fmt_number

ROW_HEADER = "Dataset"
FLAG = "⚠"
BASELINE_PREFIX = "↳ baseline: "
PAIR = " / ".join(MODEL_SHORT[m] for m in MODELS)


def header(table: Table, *, extras: bool = True) -> list[str]:
    columns = [ROW_HEADER] + [f"{table.spec.label(metric)} {MODEL_TITLES[m]}" for metric in table.metrics
                              for m in MODELS]
    if extras:
        columns += [f"convergence {PAIR}"] + [f"{cost.label} {PAIR}" for cost in table.spec.costs]
    return columns


def _pair(texts: list[str]) -> str:
    return " / ".join(texts)


def grid(table: Table, bold=lambda text: text, *, extras: bool = True) -> list[list[str]]:
    """Body rows (with baseline rows) + the Average row; `bold(text)` marks the better model of a metric."""
    lines = []
    for row in table.rows:
        line = [row_label(row)]
        for metric in table.metrics:
            better = table.better(row, metric)
            for model in MODELS:
                text = fmt_cell(table.cells.get((row, metric, model)))
                text = bold(text) if model == better else text
                line.append(f"{text} {FLAG}" if table.beaten_by(row, metric, model) else text)
        if extras:
            progress = [table.convergence(row, m) for m in MODELS]
            line.append(f"both: {progress[0]}" if len(set(progress)) == 1 else _pair(progress))
            for cost in table.spec.costs:
                values = [table.cost(row, cost, m) for m in MODELS]
                line.append("—" if all(v is None for v in values) else
                            _pair(["—" if v is None else _fmt_cost(v) for v in values]))
        lines.append(line)
        for baseline in table.baselines.get(row, []):
            line = [BASELINE_PREFIX + baseline.name.replace("_", " ")]
            for metric in table.metrics:
                value = baseline.values.get(metric)
                line += ["" if value is None else fmt_number(value), ""]
            lines.append(line + ([""] * (1 + len(table.spec.costs)) if extras else []))
    line = ["Average"]
    for metric in table.metrics:
        means, n_rows = table.average(metric)
        better = table.better_average(metric)
        for model in MODELS:
            text = f"{fmt_number(means[model])} ({n_rows} row{'s' if n_rows != 1 else ''})" if means else "—"
            line.append(bold(text) if model == better else text)
    lines.append(line + ([""] * (1 + len(table.spec.costs)) if extras else []))
    return lines


def _fmt_cost(value: float) -> str:
    """Costs to three significant figures or so: 157, 12.8, 1.52, 12,300."""
    return f"{value:,.{0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2}f}"


def _span(values: list[int]) -> str:
    return f"{min(values):,}" if min(values) == max(values) else f"{min(values):,}–{max(values):,}"


def facts(table: Table, *, details: bool = True) -> list[str]:
    """What the numbers are: experiment, protocol differences, model size, data, seeds, runs shown and hidden;
    details: also the report node's further prose (left out of README blocks, whose prose says it)."""
    exp, report = table.experiment, dict(table.experiment.report)
    lines = [f"experiment: `{exp.name}` ({exp.file}; rerun: `python train.py -m experiment={exp.name}`), "
             f"task {exp.task}"]
    differs = report.pop("differs_from_paper", None)
    lines.append(f"differs from the paper's protocol: {differs}" if differs else
                 f"differs from the paper's protocol: not stated (no `report.differs_from_paper` in {exp.file})")
    sizes = []
    for model in MODELS:
        counts = [r["n_parameters"] for r in table.records if r["model"] == model and r.get("n_parameters")]
        if counts:
            sizes.append(f"{MODEL_TITLES[model]} {_span(counts)}")
    lines.append("model size (parameters): " + ("; ".join(sizes) if sizes else "no runs"))
    labels = {}
    for record in table.records:
        label = record.get("data_label") or "the named dataset files (no data label recorded)"
        labels[label] = labels.get(label, 0) + 1
    lines.append("data: " + ("; ".join(f"{label} ({n} runs)" for label, n in sorted(labels.items()))
                             if labels else "no runs"))
    ran = sorted({r["seed"] for r in table.records})
    paper_seeds = report.pop("paper_seeds", None)
    lines.append(f"seeds: {', '.join(map(str, ran)) or 'none'} run; the experiment asks for "
                 f"{', '.join(map(str, exp.seeds))}" + (f"; the paper used {paper_seeds}" if paper_seeds else ""))
    shown = f"runs: {len(table.records)} shown (the newest per dataset × model × seed)"
    if table.hidden:
        shown += f"; {len(table.hidden)} older runs of the same cells hidden; `--all` lists them"
    lines.append(shown)
    report.pop("title", None)
    for key, value in sorted(report.items()) if details else ():  # any further prose of the report node, nested maps as sub-items
        lines.append(f"{key.replace('_', ' ')}: {_prose(value)}" if not isinstance(value, dict) else
                     f"{key.replace('_', ' ')}:" + "".join(f"\n  - {k}: {_prose(v)}" for k, v in value.items()))
    return lines


def _prose(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def legend(table: Table) -> str:
    text = ("mean ± std over seeds (n = seeds run; n=a/b when fewer than the experiment's b seeds ran); bold = "
            "better model; Average = mean over rows where both models have runs; — = no run; convergence = "
            "training length per run and how it ended: early stopping triggered, or the experiment's epoch / update "
            "limit reached (convergence by the protocol's rule only where that limit is the protocol's own, not a "
            "budget cut: see the experiment's notes; * inferred, for records that predate "
            "that field, from their epochs and config limits: scripts/infer_training.py; unknown: not inferable)")
    if any(table.baselines.values()):
        text += (f"; {BASELINE_PREFIX.strip()} rows = sanity baselines on the same test split, one value per "
                 "metric in its first column "
                 f"(results/baselines/{table.experiment.task}/), {FLAG} = worse than one of them on that metric "
                 "(true process: the generating process of a known-truth set, a bound, never flagged)")
    return text + "."


def to_markdown(table: Table, *, heading: bool = True, list_hidden: bool = False, details: bool = True) -> str:
    columns = header(table)
    lines = [f"## {table.experiment.name}: {table.spec.title}", ""] if heading else []
    if table.experiment.report.get("title"):
        lines += [str(table.experiment.report["title"]), ""]
    lines += [f"- {line}" for line in facts(table, details=details)] + ["", "| " + " | ".join(columns) + " |",
                                                        "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(line) + " |" for line in grid(table, lambda t: f"**{t}**")]
    lines += ["", legend(table)]
    lines += [f"- note: {note}" for note in table.notes]
    if list_hidden and table.hidden:
        lines += ["", "Older runs of the same cells (not in the table):", "",
                  "| run | dataset | model | seed | finished |", "|---|---|---|---|---|"]
        lines += [f"| {r['run_id']} | {row_label((r['dataset'], tuple(sorted(r['variant'].items()))))} | "
                  f"{r['model']} | {r['seed']} | {r.get('finished_at', '?')} |" for r in table.hidden]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return (text.replace("±", r"$\pm$").replace("—", "---").replace(FLAG, r"$^\dagger$")
            .replace(BASELINE_PREFIX, r"\quad baseline: ").replace("–", "--"))


def to_latex(table: Table) -> str:
    metrics, n_models = table.metrics, len(MODELS)
    caption = f"{table.spec.title} (experiment {table.experiment.name})"
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}",
             r"\begin{tabular}{l" + "c" * (len(metrics) * n_models) + "}", r"\toprule",
             "& " + " & ".join(rf"\multicolumn{{{n_models}}}{{c}}{{{_latex_escape(table.spec.label(m))}}}"
                               for m in metrics) + r" \\",
             ROW_HEADER + " & " + " & ".join(MODEL_TITLES[m] for _ in metrics for m in MODELS) + r" \\",
             r"\midrule"]
    body = grid(table, lambda t: f"<<B>>{t}", extras=False)
    for index, line in enumerate(body):
        if index == len(body) - 1:
            lines.append(r"\midrule")
        cells = [_latex_escape(text) for text in line]
        cells = [rf"\textbf{{{c[len('<<B>>'):]}}}" if c.startswith("<<B>>") else c for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["experiment", "dataset", "variant", "metric", "model", "mean", "std", "n", "better",
              "worse_than_baseline", "convergence"]


def csv_rows(table: Table) -> list[dict]:
    """Machine-readable: one line per (row, metric, model or baseline) with mean, std, n; empty when missing."""
    out = []
    for row in table.rows:
        common = {"experiment": table.experiment.name, "dataset": row[0],
                  "variant": ";".join(f"{key}={value}" for key, value in row[1])}
        for metric in table.metrics:
            better = table.better(row, metric)
            for model in MODELS:
                cell = table.cells.get((row, metric, model))
                out.append({**common, "metric": metric, "model": model,
                            "mean": "" if cell is None else cell.mean,
                            "std": "" if cell is None or cell.std is None else cell.std,
                            "n": 0 if cell is None else cell.n, "better": model == better,
                            "worse_than_baseline": ";".join(table.beaten_by(row, metric, model)),
                            "convergence": table.convergence(row, model)})
            for baseline in table.baselines.get(row, []):
                if metric in baseline.values:
                    out.append({**common, "metric": metric, "model": f"baseline:{baseline.name}",
                                "mean": baseline.values[metric], "std": "", "n": "", "better": "",
                                "worse_than_baseline": "", "convergence": ""})
    return out


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(table))
    return buffer.getvalue()


def log_wandb(tables: list[Table], *, project: str, mode: str, save_dir) -> None:
    """One W&B Table per experiment table (key tables/<experiment with / → ->), same columns and cells."""
    import wandb

    from .table_inputs import slug

    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, job_type="tables", name="paper-tables", mode=mode, dir=str(save_dir))
    try:
        for table in tables:
            run.log({f"tables/{slug(table.experiment.name)}": wandb.Table(columns=header(table), data=grid(table))})
    finally:
        run.finish()
