"""Rebuild the results tables from the results store alone: one table per experiment.

    python scripts/make_tables.py                  # every experiment some record names; README blocks too
    python scripts/make_tables.py --experiment cpu/rl --all      # also list the older runs of the same cells
    python scripts/make_tables.py --paper-grid     # also the sweep's rows (and experiments) without runs, as —
    python scripts/make_tables.py --check          # exit 1 if a committed table or README block drifted
    python scripts/make_tables.py --wandb          # also log each table as a W&B Table (offline by default)

Writes results/tables/<experiment, / → ->.{md,tex,csv,png}, results/curves/<experiment>/<row>.png and the
README table blocks (tasks/reporting/table_build.py). Only records whose `experiment` is the table's enter it.
"""
import argparse
import logging
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tasks.reporting import table_build, table_render  # noqa: E402


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-root", type=Path,
                        default=Path(os.environ.get("AAREN_RESULTS_ROOT", REPO_ROOT / "results")))
    parser.add_argument("--conf-dir", type=Path, default=REPO_ROOT / "conf", help="for the experiments' sweeps")
    parser.add_argument("--experiment", action="append", help="only these experiments (e.g. cpu/rl)")
    parser.add_argument("--task", action="append", help="only the experiments of these tasks")
    parser.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                        help="keep records whose (dotted) field equals VALUE, e.g. config.seed=0")
    parser.add_argument("--all", action="store_true", dest="list_hidden",
                        help="list the older runs of the same cells below each table")
    parser.add_argument("--paper-grid", action="store_true", help="show the sweep's rows without runs too")
    parser.add_argument("--readme-root", type=Path, default=None,
                        help="rewrite the table blocks of README.md and tasks/*/README.md under this folder "
                             "(default: this repository, when --results-root is its results/)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the tables / README blocks that differ")
    parser.add_argument("--wandb", action="store_true", help="also log the tables as W&B tables")
    parser.add_argument("--wandb-project", default="aaren")
    parser.add_argument("--wandb-dir", type=Path,
                        default=Path(os.environ.get("AAREN_OUTPUT_ROOT", REPO_ROOT / "outputs")) / "tables",
                        help="where the W&B run files go (not the committed results/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Path]:
    args = parse(argv)
    options = table_build.Options(experiments=args.experiment, tasks=args.task,
                                  where=dict(item.split("=", 1) for item in args.where),
                                  paper_grid=args.paper_grid, list_hidden=args.list_hidden)
    default_store = args.results_root.resolve() == (REPO_ROOT / "results").resolve()
    readme_root = args.readme_root or (REPO_ROOT if default_store else None)
    everything = not (args.experiment or args.task or args.where or args.paper_grid or args.list_hidden)
    if args.check:
        drifted = table_build.check(args.results_root, args.conf_dir, readme_root)
        for path in drifted:
            print(f"out of date: {path}")
        if drifted:
            raise SystemExit("tables drifted from the records: run python scripts/make_tables.py")
        return []
    built = table_build.build_tables(args.results_root, args.conf_dir, options)
    written = table_build.write_outputs(built, args.results_root, list_hidden=args.list_hidden, prune=everything)
    for table in built:
        logging.info("%s: %d rows, %d runs shown, %d older hidden", table.experiment.name, len(table.rows),
                     len(table.records), len(table.hidden))
    if readme_root is not None:
        written += table_build.update_readmes(readme_root, args.results_root, args.conf_dir)
    if args.wandb:
        table_render.log_wandb(built, project=args.wandb_project, mode=os.environ.get("WANDB_MODE", "offline"),
                               save_dir=args.wandb_dir)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
