"""One table per experiment from records alone: mean ± std over seeds with n, bold on the better side, "—" when
missing, older runs of a cell counted in one line, convergence from `training`, sanity baselines flagged."""
import csv
import io
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.reporting import table_render, tables  # noqa: E402
from tasks.reporting.table_inputs import Experiment  # noqa: E402

EXP = "cpu/forecasting"


def record(dataset, model, seed, metrics, horizon=96, finished="2026-01-01T00:00:00+00:00", task="forecasting",
           experiment=EXP, **extra):
    variant = {"horizon": horizon} if task == "forecasting" else {}
    return {"run_id": f"{model}_s{seed}_{dataset}{horizon}{finished}{experiment}", "task": task, "dataset": dataset,
            "model": model, "seed": seed, "variant": variant, "metrics": metrics, "finished_at": finished,
            "experiment": experiment, "n_parameters": 1000 if model == "aaren" else 1100, **extra}


def row(dataset, horizon=None):
    return dataset, ((("horizon", horizon),) if horizon is not None else ())


GRID = Experiment(EXP, "forecasting", rows=tuple(row(d, h) for d in ("ETTh1", "ETTm1") for h in (96, 192)),
                  models=("aaren", "transformer"), seeds=(0, 1, 2))
RECORDS = [record("ETTh1", "aaren", s, {"mse": 0.40 + 0.01 * s, "mae": 0.42}) for s in range(3)] + \
          [record("ETTh1", "transformer", s, {"mse": 0.50 + 0.02 * s, "mae": 0.41}) for s in range(2)] + \
          [record("ETTm1", "aaren", 0, {"mse": 0.3, "mae": 0.35}, horizon=192)]


def test_cells_are_mean_std_n_over_seeds_and_n_counts_against_the_experiments_own_seeds():
    table = tables.build_table(GRID, RECORDS)
    cell = table.cells[(row("ETTh1", 96), "mse", "aaren")]
    assert cell.mean == pytest.approx(0.41) and cell.std == pytest.approx(statistics.stdev([0.40, 0.41, 0.42]))
    assert tables.fmt_cell(cell) == "0.410 ± 0.010 (n=3)"         # the experiment asked for 3: not "3/5"
    assert tables.fmt_cell(table.cells[(row("ETTh1", 96), "mse", "transformer")]) == "0.510 ± 0.014 (n=2/3)"
    assert tables.fmt_cell(table.cells[(row("ETTm1", 192), "mse", "aaren")]) == "0.300 (n=1/3)"


def test_numbers_keep_the_precision_a_reader_needs():
    assert [tables.fmt_number(v) for v in (0.41234, 6.4743, 35.399, 12595.2, 0.0, 2e-5)] == \
        ["0.412", "6.474", "35.4", "12,595", "0.000", "2.0e-05"]
    # mean ± std to the std's second significant figure (at most 4 decimals)
    assert tables.fmt_cell(tables.Cell((35.0, 38.0, 32.0))) == "35.0 ± 3.0 (n=3)"
    assert tables.fmt_cell(tables.Cell((1.2, 1.2002, 1.1998))) == "1.2000 ± 0.0002 (n=3)"
    assert tables.fmt_cell(tables.Cell((60000.0, 90000.0))) == "75,000 ± 21,213 (n=2)"
    assert tables.fmt_cell(tables.Cell((40.0, 60.0))) == "50.0 ± 14.1 (n=2)"       # not "50 ± 14"


def test_only_rows_with_runs_by_default_and_the_whole_sweep_with_paper_grid():
    table = tables.build_table(GRID, RECORDS)
    assert table.rows == [row("ETTh1", 96), row("ETTm1", 192)]
    markdown = table_render.to_markdown(table)
    assert "| ETTh1 (horizon=192) |" not in markdown and "nan" not in markdown.lower()
    assert "| ETTm1 (horizon=192) | — | **" not in markdown  # one side missing: nobody is bold
    full = tables.build_table(GRID, RECORDS, paper_grid=True)
    assert full.rows == list(GRID.rows)
    assert "| ETTh1 (horizon=192) | — | — | — | — |" in table_render.to_markdown(full)


def test_only_records_of_the_tables_experiment_enter_it():
    others = [record("ETTh1", "aaren", 0, {"mse": 9.0, "mae": 9.0}, finished="2027-01-01", experiment=name)
              for name in ("smoke/forecasting", "adhoc", "cpu/forecasting_horizons", None)]
    table = tables.build_table(GRID, RECORDS + others)
    assert table.cells[(row("ETTh1", 96), "mse", "aaren")].mean == pytest.approx(0.41) and not table.hidden


def test_better_side_is_bold_in_the_right_direction():
    table = tables.build_table(GRID, RECORDS)
    assert table.better(row("ETTh1", 96), "mse") == "aaren"        # lower mse
    assert table.better(row("ETTh1", 96), "mae") == "transformer"  # lower mae
    acc = [record("X", "aaren", 0, {"accuracy": 0.7}, task="classification", experiment="e"),
           record("X", "transformer", 0, {"accuracy": 0.8}, task="classification", experiment="e")]
    assert tables.build_table(Experiment("e", "classification"), acc).better(row("X"), "accuracy") == "transformer"
    markdown = table_render.to_markdown(table)
    assert "**0.410 ± 0.010 (n=3)**" in markdown and "**0.410 ± 0.000 (n=2/3)**" in markdown
    assert r"\textbf{0.410 $\pm$ 0.010 (n=3)}" in table_render.to_latex(table)


def test_average_row_uses_rows_where_both_models_ran():
    table = tables.build_table(GRID, RECORDS)
    means, n_rows = table.average("mse")
    assert n_rows == 1 and means == {"aaren": pytest.approx(0.41), "transformer": pytest.approx(0.51)}
    assert "| Average | 0.510 (1 row) | **0.410 (1 row)** |" in table_render.to_markdown(table)


def test_older_runs_of_a_cell_are_hidden_and_counted_in_one_line():
    newer = [record("ETTh1", "aaren", s, {"mse": 0.9, "mae": 0.9}, finished="2026-02-01T00:00:00+00:00")
             for s in (0, 1, 2)]
    table = tables.build_table(GRID, RECORDS + newer)
    assert table.cells[(row("ETTh1", 96), "mse", "aaren")].values == pytest.approx((0.9, 0.9, 0.9))
    markdown = table_render.to_markdown(table)
    assert markdown.count("older runs") == 1 and "3 older runs of the same cells hidden; `--all` lists them" in markdown
    assert "superseded" not in markdown and RECORDS[0]["run_id"] not in markdown
    listed = table_render.to_markdown(table, list_hidden=True)
    assert all(r["run_id"] in listed for r in RECORDS[:3])


def test_the_table_says_what_its_numbers_are():
    experiment = Experiment(EXP, "forecasting", GRID.rows, GRID.models, (0, 1, 2, 3, 4),
                            {"title": "CPU profile", "differs_from_paper": "d_model 64, not 512", "paper_seeds": 5})
    runs = [dict(r, data_label="ETT (regenerated)") for r in RECORDS]
    markdown = table_render.to_markdown(tables.build_table(experiment, runs))
    assert "## cpu/forecasting: Time series forecasting\n\nCPU profile\n" in markdown
    for line in ("- experiment: `cpu/forecasting` (conf/experiment/cpu/forecasting.yaml;",
                 "- differs from the paper's protocol: d_model 64, not 512",
                 "- model size (parameters): Transformer 1,100; Aaren 1,000",
                 "- data: ETT (regenerated) (6 runs)",
                 "- seeds: 0, 1, 2 run; the experiment asks for 0, 1, 2, 3, 4; the paper used 5",
                 "- runs: 6 shown (the newest per dataset × model × seed)\n"):
        assert line in markdown
    bare = table_render.to_markdown(tables.build_table(GRID, RECORDS))
    assert "differs from the paper's protocol: not stated (no `report.differs_from_paper`" in bare


def test_convergence_column_from_the_training_block():
    done = {"epochs": 5, "steps": 500, "stopped_early": False, "reached_limit": True, "converged": True}
    early = {"epochs": 3, "steps": 300, "stopped_early": True, "reached_limit": False, "converged": True}
    runs = [dict(r, training=early if r["seed"] == 0 else done) for r in RECORDS]
    table = tables.build_table(GRID, runs)
    assert table.convergence(row("ETTh1", 96), "aaren") == "3–5 ep (stopped early: 1/3, limit reached: 2/3)"
    assert table.convergence(row("ETTh1", 96), "transformer") == "3–5 ep (stopped early: 1/2, limit reached: 1/2)"
    assert table.convergence(row("ETTm1", 192), "aaren") == "3 ep (stopped early: yes)"   # seed 0 only
    assert tables.convergence([runs[1]], "epochs") == "5 ep (limit reached)"
    cut = dict(runs[1], training=dict(done, epochs=4, reached_limit=False, converged=False))  # neither: not converged
    assert tables.convergence([cut], "epochs") == "4 ep (stopped early: no)"
    assert tables.convergence([cut, runs[1]], "epochs") == "4–5 ep (stopped early: no, limit reached: 1/2)"
    assert tables.convergence([runs[1]], "updates") == "500 updates (limit reached)"
    assert tables.convergence(RECORDS[:1], "epochs") == "unknown"                  # old record: no training block
    assert tables.convergence([], "epochs") == "—"
    assert tables.convergence([dict(RECORDS[0], training={"epochs": None})], "epochs") == "unknown"
    assert "| both: unknown |" in table_render.to_markdown(tables.build_table(GRID, RECORDS))


TPP = Experiment("cpu/tpp", "tpp", rows=(("MIMIC", ()),), models=("aaren", "transformer"), seeds=(0,))
TPP_RUNS = [record("MIMIC", m, 0, {"nll": 1.2, "nll_metatpp": 1.0, "rmse": 0.87, "rmse_metatpp": 1.1,
                                   "accuracy": acc}, task="tpp", experiment="cpu/tpp")
            for m, acc in (("aaren", 0.844), ("transformer", 0.870))]
BASELINES = {"MIMIC": [{"task": "tpp", "dataset": "MIMIC", "variant": {},
                        "baselines": {"repeat_previous_mark": {"accuracy": 0.86},
                                      "train_mean_interevent": {"rmse": 1.0, "rmse_metatpp": 3.0},
                                      "true_process": {"nll": 1.0}, "uniform_marks": {"nll_mark": 4.3}}}]}


def test_tpp_shows_paper_comparable_columns_labelled_and_baseline_rows_that_flag_worse_models():
    table = tables.build_table(TPP, TPP_RUNS, BASELINES)
    assert table.metrics == ("nll", "nll_metatpp", "rmse", "rmse_metatpp", "accuracy")  # recorded ones only
    header = table_render.header(table)
    assert {"NLL/event (ours) Aaren", "NLL (Meta-TPP) Aaren", "RMSE (Meta-TPP MaskedRMSE) Transformer"} <= set(header)
    assert table.beaten_by(("MIMIC", ()), "accuracy", "aaren") == ["repeat_previous_mark"]   # 0.844 < 0.86
    assert table.beaten_by(("MIMIC", ()), "accuracy", "transformer") == []
    assert table.beaten_by(("MIMIC", ()), "rmse", "aaren") == []                             # 0.87 < 1.0 is better
    assert table.beaten_by(("MIMIC", ()), "nll", "aaren") == []          # 1.2 > the true 1.0: a bound, not a bar
    markdown = table_render.to_markdown(table)
    assert "| 0.844 (n=1) ⚠ |" in markdown and "| **0.870 (n=1)** |" in markdown
    assert "| ↳ baseline: repeat previous mark |" in markdown and "| ↳ baseline: true process | 1.000 |" in markdown
    assert "uniform marks" not in markdown                        # its metric (nll_mark) is not in this table
    lines = markdown.splitlines()
    mimic = next(i for i, line in enumerate(lines) if line.startswith("| MIMIC"))
    assert lines[mimic + 1].startswith("| ↳ baseline: repeat previous mark")      # in the dataset's block
    rows = list(csv.DictReader(io.StringIO(table_render.to_csv(table))))
    assert {(r["model"], r["metric"], r["mean"]) for r in rows if r["model"].startswith("baseline:")} == \
        {("baseline:repeat_previous_mark", "accuracy", "0.86"), ("baseline:train_mean_interevent", "rmse", "1.0"),
         ("baseline:true_process", "nll", "1.0"),
         ("baseline:train_mean_interevent", "rmse_metatpp", "3.0")}
    assert next(r for r in rows if (r["model"], r["metric"]) == ("aaren", "accuracy"))["worse_than_baseline"] == \
        "repeat_previous_mark"
    assert r"$^\dagger$" in table_render.to_latex(table)


def test_a_baseline_of_another_variant_does_not_apply():
    other_fold = {"MIMIC": [dict(BASELINES["MIMIC"][0], variant={"fold": 2})]}
    runs = [dict(r, variant={"fold": 1}) for r in TPP_RUNS]
    table = tables.build_table(TPP, runs, other_fold)
    assert table.baselines[("MIMIC", (("fold", 1),))] == [] and "⚠" not in table_render.to_markdown(table)


def test_each_horizon_row_gets_the_baselines_of_its_own_horizon():
    """Forecasting: one baseline file per (dataset, horizon); a row shows only its horizon's, and a model worse
    than repeating the last value is flagged."""
    grid = Experiment("cpu/f", "forecasting", rows=tuple(("ETTh1", (("horizon", h),)) for h in (96, 192)),
                      models=("aaren", "transformer"), seeds=(0,))
    runs = [dict(record("ETTh1", m, 0, {"mse": mse, "mae": 0.5}, experiment="cpu/f"), variant={"horizon": h})
            for h, m, mse in ((96, "aaren", 0.40), (96, "transformer", 0.41), (192, "aaren", 0.50),
                              (192, "transformer", 0.44))]
    files = {"ETTh1": [{"dataset": "ETTh1", "variant": {"horizon": h},
                        "baselines": {"repeat_last_value": {"mse": mse, "mae": 0.9}}}
                       for h, mse in ((96, 1.2), (192, 0.45))]}
    table = tables.build_table(grid, runs, files)
    assert [b.values["mse"] for b in table.baselines[("ETTh1", (("horizon", 96),))]] == [1.2]
    assert [b.values["mse"] for b in table.baselines[("ETTh1", (("horizon", 192),))]] == [0.45]
    assert table.beaten_by(("ETTh1", (("horizon", 192),)), "mse", "aaren") == ["repeat_last_value"]  # 0.50 > 0.45
    assert table.beaten_by(("ETTh1", (("horizon", 192),)), "mse", "transformer") == []
    assert table.beaten_by(("ETTh1", (("horizon", 96),)), "mse", "aaren") == []


def test_costs_are_shown_as_transformer_over_aaren():
    runs = [dict(r, wall_time_s=60.0 if r["model"] == "aaren" else 120.0) for r in RECORDS]
    markdown = table_render.to_markdown(tables.build_table(GRID, runs))
    assert "wall min/run T / A" in markdown and "| 2.00 / 1.00 |" in markdown


def test_csv_is_machine_readable():
    rows = list(csv.DictReader(io.StringIO(table_render.to_csv(tables.build_table(GRID, RECORDS)))))
    key = ("ETTh1", "horizon=96", "mse", "aaren")
    [aaren] = [r for r in rows if (r["dataset"], r["variant"], r["metric"], r["model"]) == key]
    assert float(aaren["mean"]) == pytest.approx(0.41) and aaren["n"] == "3" and aaren["better"] == "True"
    assert aaren["experiment"] == EXP and len(rows) == 2 * 2 * 2


def test_select_filters_on_dotted_fields():
    runs = [dict(r, config={"seed": r["seed"]}) for r in RECORDS]
    assert len(tables.select(runs, {"config.seed": "0"})) == 3


def test_learning_curves_are_the_mean_and_range_over_seeds_at_each_step_never_filled_in():
    from tasks.reporting import table_plots

    runs = [{"learning_curve": [{"epoch": 0, "step": 100, "val/score": 10.0, "val/action_mse": 0.5},
                                {"epoch": 1, "step": 200, "val/score": 30.0}]},
            {"learning_curve": [{"epoch": 0, "step": 100, "val/score": 20.0, "val/action_mse": float("nan")}]},
            {"metrics": {}}]                                                   # an old record: no curve
    assert table_plots.seed_curve(runs, "val/score") == ([100, 200], [15.0, 30.0], [10.0, 30.0], [20.0, 30.0])
    assert table_plots.seed_curve(runs, "val/action_mse") == ([100], [0.5], [0.5], [0.5])  # non-finite left out
    assert table_plots.curve_metrics(runs) == ["val/action_mse", "val/score"]
    aliased = [{"learning_curve": [dict(e, **{"val/loss": e.get("val/action_mse")}) for e in r.get("learning_curve", [])]}
               for r in runs]                                                 # val/loss = val/action_mse everywhere
    assert table_plots.curve_metrics(aliased) == ["val/action_mse", "val/score"]
    aliased[0]["learning_curve"][1]["val/loss"] = 0.4                          # differs once: its own panel
    assert table_plots.curve_metrics(aliased) == ["val/action_mse", "val/loss", "val/score"]
