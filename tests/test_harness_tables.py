"""Paper tables from records alone: mean ± std over seeds with n, bold on the better side, "—" when missing."""
import csv
import io
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts import make_tables  # noqa: E402
from tasks.common import store, table_render, tables  # noqa: E402


def record(dataset, model, seed, metrics, horizon=96, finished="2026-01-01T00:00:00+00:00", task="forecasting"):
    return {"run_id": f"{model}_s{seed}_{dataset}{horizon}{finished}", "task": task, "dataset": dataset,
            "model": model, "seed": seed, "variant": {"horizon": horizon}, "metrics": metrics,
            "finished_at": finished}


GRID = {"dataset": ["ETTh1", "ETTm1"], "horizon": [96, 192], "seed": [0, 1, 2]}
RECORDS = [record("ETTh1", "aaren", s, {"mse": 0.40 + 0.01 * s, "mae": 0.42}) for s in range(3)] + \
          [record("ETTh1", "transformer", s, {"mse": 0.50 + 0.02 * s, "mae": 0.41}) for s in range(2)] + \
          [record("ETTm1", "aaren", 0, {"mse": 0.3, "mae": 0.35}, horizon=192)]


def test_cells_are_mean_std_n_over_seeds():
    table = tables.build_table("forecasting", RECORDS, GRID)
    cell = table.cells[(("ETTh1", 96), "mse", "aaren")]
    assert cell.mean == pytest.approx(0.41) and cell.std == pytest.approx(statistics.stdev([0.40, 0.41, 0.42]))
    assert tables.fmt_cell(cell) == "0.410 ± 0.010 (n=3)"
    assert tables.fmt_cell(table.cells[(("ETTh1", 96), "mse", "transformer")]) == "0.510 ± 0.014 (n=2/3)"
    assert tables.fmt_cell(table.cells[(("ETTm1", 192), "mse", "aaren")]) == "0.300 (n=1/3)"


def test_rows_follow_the_paper_grid_and_missing_runs_are_dashes():
    table = tables.build_table("forecasting", RECORDS, GRID)
    assert table.rows == [("ETTh1", 96), ("ETTh1", 192), ("ETTm1", 96), ("ETTm1", 192)]
    markdown = table_render.to_markdown(table)
    assert "| ETTh1 (horizon=192) | — | — | — | — |" in markdown
    assert "| ETTm1 (horizon=192) | — | **" not in markdown  # one side missing: nobody is bold
    assert "nan" not in markdown.lower()


def test_better_side_is_bold_in_the_right_direction():
    table = tables.build_table("forecasting", RECORDS, GRID)
    assert table.better(("ETTh1", 96), "mse") == "aaren"        # lower mse
    assert table.better(("ETTh1", 96), "mae") == "transformer"  # lower mae
    acc = [record("X", "aaren", 0, {"accuracy": 0.7}, task="classification"),
           record("X", "transformer", 0, {"accuracy": 0.8}, task="classification")]
    assert tables.build_table("classification", acc).better(("X",), "accuracy") == "transformer"  # higher
    markdown = table_render.to_markdown(table)
    assert "**0.410 ± 0.010 (n=3)**" in markdown and "**0.410 ± 0.000 (n=2/3)**" in markdown
    assert r"\textbf{0.410 $\pm$ 0.010 (n=3)}" in table_render.to_latex(table)


def test_average_row_uses_rows_where_both_models_ran():
    table = tables.build_table("forecasting", RECORDS, GRID)
    means, n_rows = table.average("mse")
    assert n_rows == 1 and means == {"aaren": pytest.approx(0.41), "transformer": pytest.approx(0.51)}
    assert "| Average | 0.510 (1 rows) | **0.410 (1 rows)** |" in table_render.to_markdown(table)


def test_a_rerun_of_the_same_seed_supersedes_the_older_record():
    newer = record("ETTh1", "aaren", 0, {"mse": 0.9, "mae": 0.9}, finished="2026-02-01T00:00:00+00:00")
    table = tables.build_table("forecasting", RECORDS + [newer], GRID)
    assert table.cells[(("ETTh1", 96), "mse", "aaren")].values == pytest.approx((0.9, 0.41, 0.42))
    assert any("superseded" in note for note in table.notes)


def test_mixed_protocols_are_flagged_and_can_be_filtered():
    small = [dict(r, protocol={"profile": "cpu_small"}) for r in RECORDS]
    mixed = small[:1] + [dict(r, protocol={"profile": "paper"}) for r in RECORDS[1:]]
    assert any("different protocols" in n for n in tables.build_table("forecasting", mixed, GRID).notes)
    kept = tables.select(mixed, {"protocol.profile": "paper"})
    assert len(kept) == len(RECORDS) - 1
    assert not tables.build_table("forecasting", kept, GRID).notes
    markdown = table_render.to_markdown(tables.build_table("forecasting", mixed, GRID))
    assert "- protocol profile cpu_small: 1 run(s)" in markdown  # every table says what its numbers are
    assert f"- protocol profile paper: {len(RECORDS) - 1} run(s)" in markdown


def test_csv_is_machine_readable():
    rows = list(csv.DictReader(io.StringIO(table_render.to_csv(tables.build_table("forecasting", RECORDS, GRID)))))
    key = ("ETTh1", "96", "mse", "aaren")
    aaren = [r for r in rows if (r["dataset"], r["horizon"], r["metric"], r["model"]) == key]
    assert float(aaren[0]["mean"]) == pytest.approx(0.41) and aaren[0]["n"] == "3" and aaren[0]["better"] == "True"
    assert len(rows) == 4 * 2 * 2


def test_make_tables_rebuilds_every_task_from_the_store_and_logs_wandb_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for r in RECORDS:
        store.write_json_atomic(store.record_path(tmp_path, r["task"], r["dataset"], r["run_id"]), r)
    written = make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(REPO / "conf"), "--wandb",
                                "--wandb-dir", str(tmp_path / "wandb_runs")])
    assert list((tmp_path / "wandb_runs").rglob("tables/forecasting_*.table.json"))  # W&B offline run files
    names = {p.name for p in written}
    assert {"forecasting.md", "forecasting.tex", "forecasting.csv", "forecasting_mse.png"} <= names
    text = (tmp_path / "tables" / "forecasting.md").read_text()
    assert "0.410 ± 0.010 (n=3/5)" in text                       # the paper grid has seeds 0–4
    assert "Traffic (horizon=720)" in text                       # grid rows without runs are shown, as —
