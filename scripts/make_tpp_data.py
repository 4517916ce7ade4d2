"""Write a generated TPP dataset (Sin (regenerated), Hawkes) as a Meta-TPP npz, for tools outside this project.

    python scripts/make_tpp_data.py Sin Hawkes                 # → <data root>/tpp/<Name>/<name>_generated.npz
    python scripts/make_tpp_data.py Sin --out /tmp/sin.npz     # one dataset, explicit file

The process, its parameters, the number of sequences, the window and the seed come from conf/dataset/<Name>.yaml
(`generator`); training never needs these files (the datasets are drawn in memory). Data root: --data-root, else
$AAREN_DATA_ROOT, else <repo>/data. The `_generated` suffix keeps a regenerated file apart from a real one.
"""
import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    from tasks.datasets.paths import data_root
    from tasks.tpp.generate import build_process, generate, write_metatpp_npz

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="dataset configs with a `generator` (Sin, Hawkes)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="output file (one dataset only)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.names) != 1:
        parser.error("--out takes exactly one dataset")
    for name in args.names:
        config_path = REPO / "conf" / "dataset" / f"{name}.yaml"
        if not config_path.is_file():
            parser.error(f"no dataset config {config_path}")
        config = yaml.safe_load(config_path.read_text())
        if "generator" not in config:
            parser.error(f"{config_path} has no `generator`: {name} is read from files, not generated")
        root = args.data_root or data_root()
        out = args.out or root / "tpp" / name / f"{name.lower()}_generated.npz"
        if out.exists() and not args.force:
            print(f"{out} exists (use --force to overwrite)")
            continue
        spec = dict(config["generator"])
        draw = {k: spec.pop(k) for k in ("n_sequences", "end_time", "seed", "sampler")}
        sequences = generate(build_process(spec), name=name, **draw)
        write_metatpp_npz(out, sequences)
        print(f"{config.get('label', name)}: {len(sequences)} sequences, {sequences.num_events()} events "
              f"(sampler {sequences.info['sampler']}) → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
