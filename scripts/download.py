"""Download datasets of the registry into the data root, checked against their sha256.

    python scripts/download.py ETTh1              one dataset
    python scripts/download.py classification     every dataset of a task (forecasting, classification, tpp, rl)
    python scripts/download.py all
    python scripts/download.py --list             status of every dataset, and what to place where

The data root is --root, else $AAREN_DATA_ROOT, else <repo>/data. Re-running resumes interrupted transfers and
skips files already present and valid.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.datasets.download import DownloadError, dataset_status, download_dataset, summary  # noqa: E402
from tasks.datasets.paths import data_root  # noqa: E402
from tasks.datasets.registry import TASKS, load_registry, select  # noqa: E402


def list_datasets(root: Path, *, hash_files: bool) -> None:
    print(f"data root: {root}")
    for info in load_registry().values():
        statuses = dataset_status(info, root, hash_files=hash_files)
        state = summary(info, statuses)
        tag = "" if info.paper else "  [not a paper dataset]"
        print(f"{info.task:14s} {info.name:28s} {state}{tag}")
        if state.startswith(("present", "unverified", "embedded")):
            continue
        for s in statuses:
            if s.state in ("missing", "corrupt"):
                check = f"sha256 {s.file.sha256}" if s.file.sha256 else "sha256 unknown"
                why = f" [{s.state}: {s.detail}]" if s.detail else ""
                print(f"    place {s.file.path} at {s.path} ({check}){why}")
        links = [src.url or src.page for src in info.sources]
        print(f"    from: {links[0]}" + (f" (+{len(links) - 1} more)" if len(links) > 1 else ""))
        print(f"    or:   python scripts/download.py {info.name}" if any(not s.manual for s in info.sources) else
              "    (no direct link: download by hand)")
        if info.generator:
            print(f"    stand-in: {info.generator}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"dataset names, task names {TASKS}, or 'all'")
    parser.add_argument("--list", action="store_true", help="show every dataset's status")
    parser.add_argument("--root", type=Path, default=None, help="data root (default: $AAREN_DATA_ROOT or data/)")
    parser.add_argument("--size-only", action="store_true", help="with --list: check sizes, skip sha256 (fast)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")
    parser.add_argument("--retries", type=int, default=3, help="resumed retries after a cut connection")
    args = parser.parse_args(argv)
    root = args.root or data_root()
    if args.list:
        list_datasets(root, hash_files=not args.size_only)
        return 0
    if not args.targets:
        parser.error("name a dataset, a task or 'all' (or use --list)")
    try:
        infos = [info for target in args.targets for info in select(target)]
    except KeyError as error:
        parser.error(str(error.args[0]))
    failed = []
    for info in infos:
        print(f"{info.name} -> {info.folder(root)}")
        try:
            download_dataset(info, root, timeout=args.timeout, retries=args.retries)
        except DownloadError as error:
            print(f"ERROR {error}", file=sys.stderr)
            failed.append(info.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
