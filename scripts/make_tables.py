"""Rebuild the paper tables from the results store alone.

    python scripts/make_tables.py [--results-root results] [--task forecasting ...] [--where FIELD=VALUE] [--wandb]

Writes results/tables/<task>.{md,tex,csv} and <task>_<metric>.png (layout: tasks/common/tables.py).
"""
import argparse
import logging
import os
from pathlib import Path

from tasks.common import store, table_render, tables

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-root", type=Path,
                        default=Path(os.environ.get("AAREN_RESULTS_ROOT", REPO_ROOT / "results")))
    parser.add_argument("--conf-dir", type=Path, default=REPO_ROOT / "conf", help="for the paper grids")
    parser.add_argument("--task", action="append", help="only these tasks (default: every task in the store "
                        "and every task with a paper grid)")
    parser.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                        help="keep records whose (dotted) field equals VALUE, e.g. protocol.profile=tslib_default")
    parser.add_argument("--wandb", action="store_true", help="also log the tables as W&B tables")
    parser.add_argument("--wandb-project", default="aaren")
    parser.add_argument("--wandb-dir", type=Path,
                        default=Path(os.environ.get("AAREN_OUTPUT_ROOT", REPO_ROOT / "outputs")) / "tables",
                        help="where the W&B run files go (not the committed results/)")
    args = parser.parse_args(argv)

    where = dict(item.split("=", 1) for item in args.where)
    records = tables.select(store.load_records(args.results_root), where)
    grids_dir = args.conf_dir / "experiment" / "paper"
    known = {r["task"] for r in records} | {p.stem for p in grids_dir.glob("*.yaml")}
    built, written = [], []
    for task in sorted(args.task or known):
        table = tables.build_table(task, records, tables.paper_grid(args.conf_dir, task))
        written += table_render.write_all(table, args.results_root / "tables")
        built.append(table)
        logging.info("%s: %d rows, %d cells with runs", task, len(table.rows), len(table.cells))
    if args.wandb:
        table_render.log_wandb(built, project=args.wandb_project, mode=os.environ.get("WANDB_MODE", "offline"),
                               save_dir=args.wandb_dir)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
