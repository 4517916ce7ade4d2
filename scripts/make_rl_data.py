"""Regenerate D4RL-format gym-mujoco datasets by D4RL's recipe (they are labelled "regenerated, not D4RL").

    python scripts/make_rl_data.py halfcheetah hopper                  # full recipe: train SAC, then sample
    python scripts/make_rl_data.py halfcheetah --from-shared           # reuse ../shared/rl-policies/<env>/sac-*-regen
    python scripts/make_rl_data.py hopper --from-shared --max-minutes 45   # resumable: run again to continue
    python scripts/make_rl_data.py walker2d --fallback                 # SAC fell short: labelled stand-ins
    python scripts/make_rl_data.py hopper --from-shared --no-train --fallback   # rebuild the committed files only

The recipe (sizes, seeds, SAC settings, medium targets, expert agents) is tasks/rl/regen/recipe.yaml. Files go
to <data root>/rl/<env>-<level>/<env>_<level>-v2.hdf5 (data root: --data-root, else $AAREN_DATA_ROOT, else
<repo>/data); the SAC work folder (checkpoints, actors, recorded transitions) to <data root>/rl/_regen/<env>/.
Dataset statistics, learning curves and the medium actors go to results/rl_data/ (small; committed).
`--from-shared` takes an earlier run of this recipe (actors, learning curve, replay buffer) as the SAC stage's
output; if that run stopped below its target, training continues from its checkpoint. Run niced, one thread.
"""
import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("envs", nargs="+", choices=["halfcheetah", "hopper", "walker2d", "ant"])
    parser.add_argument("--stages", nargs="+", default=["sac", "medium-replay", "medium", "expert", "medium-expert"],
                        choices=["sac", "medium-replay", "medium", "expert", "medium-expert"])
    parser.add_argument("--from-shared", action="store_true",
                        help="import the earlier SAC run named in the recipe before training (see above)")
    parser.add_argument("--fallback", action="store_true",
                        help="if SAC has not reached its target: medium from the recipe's zoo stand-in, "
                             "medium-replay from the SAC run so far (both labelled FALLBACK)")
    parser.add_argument("--no-train", action="store_true",
                        help="do not train SAC (further): use the run as it is, e.g. an imported run below its "
                             "target together with --fallback")
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-time budget of SAC training per env")
    parser.add_argument("--force", action="store_true", help="rebuild files that already exist")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--policies", type=Path, default=REPO.parent / "shared" / "rl-policies",
                        help="folder of pretrained agents (shared/rl-policies layout)")
    parser.add_argument("--results", type=Path, default=REPO / "results" / "rl_data")
    parser.add_argument("--recipe", type=Path, default=None, help="a recipe YAML (default: tasks/rl/regen/recipe.yaml)")
    args = parser.parse_args(argv)

    import torch

    from tasks.rl.regen.regenerate import RECIPE_FILE, Regenerator, load_recipe, write_summary

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe or RECIPE_FILE)
    if args.data_root is None:
        from tasks.datasets.paths import data_root
    root = args.data_root or data_root()
    for env_name in args.envs:
        regen = Regenerator(env_name=env_name, recipe=recipe, data_root=root, policies_dir=args.policies,
                            results_dir=args.results, log=lambda msg: print(msg, flush=True))
        if "sac" in args.stages:
            state = regen.sac(from_shared=args.from_shared, max_minutes=args.max_minutes, train=not args.no_train)
            print(f"[{env_name}] SAC: {state['num_timesteps']} steps, stopped={state['stopped']}, "
                  f"reached target={state['reached']}", flush=True)
        if "medium-replay" in args.stages:
            regen.medium_replay(fallback=args.fallback, force=args.force)
        if "medium" in args.stages:
            regen.medium(fallback=args.fallback, force=args.force)
        if "expert" in args.stages:
            regen.expert(force=args.force)
        if "medium-expert" in args.stages:
            regen.medium_expert(force=args.force)
    print(f"dataset statistics: {write_summary(args.results)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
