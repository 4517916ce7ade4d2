"""make_tables.py end to end: the experiment's sweep composed with Hydra, one table per experiment, learning
curves, W&B tables, and no smoke / ad-hoc run ever changing a committed table."""
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts import make_tables  # noqa: E402
from tasks import fileio  # noqa: E402
from tasks.harness import store  # noqa: E402
from tasks.reporting import table_build, table_inputs  # noqa: E402

CONF = REPO / "conf"


def record(experiment, dataset, model, seed, mse, horizon=96, finished="2026-01-01T00:00:00+00:00", **extra):
    return {"run_id": f"{model}_s{seed}_{experiment.replace('/', '')}{dataset}{horizon}{finished[:10]}",
            "task": "forecasting", "dataset": dataset, "model": model, "seed": seed, "variant": {"horizon": horizon},
            "metrics": {"mse": mse, "mae": mse + 0.1}, "finished_at": finished, "experiment": experiment,
            "n_parameters": 1234, **extra}


def write(root, records):
    for r in records:
        fileio.write_json_atomic(store.record_path(root, r["task"], r["dataset"], r["run_id"]), r)


def test_the_expected_rows_and_seeds_come_from_the_experiments_own_sweep():
    horizons = table_inputs.load_experiment(CONF, "cpu/forecasting_horizons")
    assert horizons.task == "forecasting" and horizons.seeds == (0, 1, 2)
    assert horizons.rows == tuple(("ETTh1", (("horizon", h),)) for h in (96, 192, 336, 720))  # dataset not swept
    paper = table_inputs.load_experiment(CONF, "paper/tpp")
    assert ("MIMIC", (("fold", 1),)) in paper.rows and ("Wiki", ()) in paper.rows and len(paper.seeds) == 5
    with pytest.raises(table_inputs.TableInputError, match="experiment/no/such.yaml does not exist"):
        table_inputs.load_experiment(CONF, "no/such")


def test_make_tables_writes_one_table_per_experiment_curves_and_wandb_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    curve = [{"epoch": e, "step": 100 * (e + 1), "val/loss": 1.0 / (e + 1)} for e in range(3)]
    write(tmp_path, [record("cpu/forecasting_horizons", "ETTh1", m, s, 0.4 + 0.01 * s, learning_curve=curve)
                     for m in ("aaren", "transformer") for s in range(3)]
          + [record("cpu/forecasting", "ETTh2", "aaren", 0, 0.5, horizon=192)])
    stale = tmp_path / "tables" / "forecasting.md"                      # a per-task file of the old layout
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    written = make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF), "--wandb",
                                "--wandb-dir", str(tmp_path / "wandb_runs")])
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"tables/cpu-forecasting_horizons.md", "tables/cpu-forecasting_horizons.tex",
            "tables/cpu-forecasting_horizons.csv", "tables/cpu-forecasting_horizons.png",
            "tables/cpu-forecasting.md", "curves/cpu-forecasting_horizons/ETTh1_horizon96.png"} <= names
    assert not stale.exists()                                          # the full build prunes what it did not write
    assert list((tmp_path / "wandb_runs").rglob("tables/cpu-forecasting_horizons_*.table.json"))
    text = (tmp_path / "tables" / "cpu-forecasting_horizons.md").read_text()
    assert "0.410 ± 0.010 (n=3)" in text and "(horizon=192)" not in text   # no all-empty row by default
    assert "0.500 (n=1/3)" in (tmp_path / "tables" / "cpu-forecasting.md").read_text()

    names = ["cpu/forecasting_horizons", "paper/forecasting", "smoke/forecasting"]   # composing all is slow
    monkeypatch.setattr(table_build, "list_experiments", lambda conf_dir: names)
    make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF), "--paper-grid"])
    assert "| ETTh1 (horizon=720) | — | — | — | — |" in (tmp_path / "tables" / "cpu-forecasting_horizons.md").read_text()
    assert (tmp_path / "tables" / "paper-forecasting.md").is_file()    # experiments without runs too
    assert not (tmp_path / "tables" / "smoke-forecasting.md").exists()


def test_all_lists_the_older_runs_that_the_default_table_only_counts(tmp_path):
    old, new = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"
    write(tmp_path, [record("cpu/forecasting_horizons", "ETTh1", "aaren", 0, v, finished=f) for v, f in
                     ((0.9, old), (0.4, new))])
    make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF)])
    text = (tmp_path / "tables" / "cpu-forecasting_horizons.md").read_text()
    assert "1 older runs of the same cells hidden; `--all` lists them" in text and "0.900" not in text
    assert "aaren_s0_cpuforecasting_horizonsETTh1962026-01-01" not in text
    make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF), "--all"])
    assert "aaren_s0_cpuforecasting_horizonsETTh1962026-01-01" in \
        (tmp_path / "tables" / "cpu-forecasting_horizons.md").read_text()


def _committed_sample() -> list[dict]:
    """Copies of committed ETTh1 horizon-96 records (labelled as the migration labels them, if it has not run)."""
    runs = [r for r in store.load_records(REPO / "results", "forecasting")
            if r["dataset"] == "ETTh1" and r["variant"] == {"horizon": 96}]
    assert runs, "the repository commits ETTh1 horizon-96 forecasting records"
    return [dict(r, experiment=r.get("experiment") or "cpu/forecasting_horizons") for r in runs]


def test_a_smoke_or_adhoc_run_into_the_store_changes_no_table(tmp_path):
    sample = _committed_sample()
    write(tmp_path, sample)
    make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF)])
    before = {p.name: p.read_text() for p in (tmp_path / "tables").glob("*.md")}
    assert before
    newest = "2099-01-01T00:00:00+00:00"
    intruders = [dict(sample[0], run_id=f"{name.replace('/', '_')}_{i}", experiment=name, finished_at=newest,
                      metrics={"mse": 0.703, "mae": 0.9})
                 for i, name in enumerate(("smoke/forecasting", "adhoc", "test/forecasting"))]
    intruders.append({k: v for k, v in intruders[0].items() if k != "experiment"} | {"run_id": "unlabelled"})
    write(tmp_path, intruders)
    make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF)])
    assert {p.name: p.read_text() for p in (tmp_path / "tables").glob("*.md")} == before
    with pytest.raises(table_inputs.TableInputError, match="never enter a table"):
        make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(CONF), "--experiment",
                          "smoke/forecasting"])


def test_baselines_are_read_and_bad_files_are_named(tmp_path):
    folder = tmp_path / "baselines" / "tpp"
    folder.mkdir(parents=True)
    good = {"task": "tpp", "dataset": "MIMIC", "split": "test", "variant": {"fold": 1},
            "baselines": {"repeat_previous_mark": {"accuracy": 0.86}}, "provenance": {}}
    (folder / "MIMIC.json").write_text(json.dumps(good))
    assert table_inputs.load_baselines(tmp_path, "tpp") == {"MIMIC": [good]}
    (folder / "MIMIC_fold2.json").write_text(json.dumps(dict(good, variant={"fold": 2})))   # one file per variant
    assert table_inputs.load_baselines(tmp_path, "tpp") == {"MIMIC": [good, dict(good, variant={"fold": 2})]}
    (folder / "Wiki.json").write_text("{not json")
    with pytest.raises(table_inputs.TableInputError, match="Wiki.json: not a readable baseline file"):
        table_inputs.load_baselines(tmp_path, "tpp")
    (folder / "Wiki.json").write_text(json.dumps({"baselines": {"x": {"accuracy": "high"}}}))
    with pytest.raises(table_inputs.TableInputError, match="Wiki.json: baseline 'x' needs finite numbers"):
        table_inputs.load_baselines(tmp_path, "tpp")


def test_readme_blocks_are_written_between_markers_and_check_reports_drift(tmp_path):
    root, results = tmp_path / "repo", tmp_path / "results"
    write(results, [record("cpu/forecasting_horizons", "ETTh1", "aaren", 0, 0.4)])
    readme = root / "tasks" / "forecasting" / "README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text("# Forecasting\nprose kept\n<!-- tables:begin cpu/forecasting_horizons -->\n"
                      "| hand | kept |\n<!-- tables:end -->\nmore prose\n")
    args = ["--results-root", str(results), "--conf-dir", str(CONF), "--readme-root", str(root)]
    with pytest.raises(SystemExit, match="drifted"):
        make_tables.main([*args, "--check"])
    make_tables.main(args)
    text = readme.read_text()
    assert text.startswith("# Forecasting\nprose kept\n<!-- tables:begin cpu/forecasting_horizons -->\n")
    assert text.endswith("<!-- tables:end -->\nmore prose\n") and "| hand | kept |" not in text
    assert "| ETTh1 (horizon=96) | — | 0.400 (n=1/3) |" in text and "do not edit by hand" in text
    assert make_tables.main([*args, "--check"]) == []                   # in sync now
    write(results, [record("cpu/forecasting_horizons", "ETTh1", "aaren", 1, 0.5)])
    table = results / "tables" / "cpu-forecasting_horizons.md"
    assert table_build.check(results, CONF, root) == [table, readme]    # a new record: both drifted


def test_a_block_can_filter_the_records_it_shows(tmp_path):
    write(tmp_path, [record("cpu/forecasting_horizons", "ETTh1", "aaren", s, 0.4 + s) for s in range(2)])
    readme = tmp_path / "README.md"
    readme.write_text("<!-- tables:begin cpu/forecasting_horizons where=seed=1 -->\n<!-- tables:end -->\n")
    table_build.update_readmes(tmp_path, tmp_path, CONF)
    assert "| 1.400 (n=1/3) |" in readme.read_text() and "0.400" not in readme.read_text()


def test_a_block_with_a_malformed_argument_is_named(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- tables:begin cpu/rl seed=0 -->\n<!-- tables:end -->\n")
    with pytest.raises(table_inputs.TableInputError, match="README.md: table block argument 'seed=0'"):
        table_build.update_readmes(tmp_path, tmp_path, CONF)


def test_the_committed_tables_and_readme_blocks_match_the_records():
    """Regenerate with `python scripts/make_tables.py` after adding records or editing an experiment's report."""
    if not any(r.get("experiment") for r in store.load_records(REPO / "results")):
        pytest.skip("the committed records predate the `experiment` field (scripts/migrate_records.py)")
    assert table_build.check(REPO / "results", CONF, REPO) == []


def test_copying_records_elsewhere_keeps_the_readmes_of_this_repository_untouched(tmp_path):
    before = {p: p.read_text() for p in table_build.readme_files(REPO)}
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    write(tmp_path, [record("cpu/forecasting_horizons", "ETTh1", "aaren", 0, 0.123)])
    make_tables.main(["--results-root", str(tmp_path), "--conf-dir", str(tmp_path / "conf")])
    assert {p: p.read_text() for p in table_build.readme_files(REPO)} == before
