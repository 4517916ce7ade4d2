"""Rebuild D4RL-format datasets for one environment by D4RL's recipe (tasks/rl/regen/recipe.yaml).

Stages, each skipped when its output exists (outputs are written atomically; `force` redoes them):
  sac            train SAC until the medium target (resumable; `from_shared` first imports an earlier run)
  medium-replay  every transition that SAC saw up to its stop (with `fallback`, of a run stopped short: labelled)
  medium         `sizes.medium` transitions sampled from the stopped SAC actor (or, when SAC did not reach its
                 target and `fallback` is set, from the zoo stand-in — labelled in the file and the statistics)
  expert         `sizes.expert` transitions sampled from the expert zoo agent
  medium-expert  the medium file up to its last finished trajectory, then the expert file, capped
Every file is checked (shapes, D4RL flags, next-observation consistency, simulator replay), read back with the
data layer's reader, and summarised in `<results>/<env>-<level>.json`.
"""
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import yaml

from tasks.fileio import write_json_atomic
from tasks.provenance import machine, package_versions

from ..d4rl_format import KEYS, PROVENANCE, check_d4rl_arrays, dataset_statistics, episode_ends, write_d4rl_hdf5
from ..envs import env_spec
from .rollout import rollout
from .sac_medium import MediumRun, import_shared_run, train_to_medium

# what the simulation and the behaviour agents depend on, recorded in every file beside the suite's own packages
SIMULATION_PACKAGES = ("gymnasium", "mujoco", "stable-baselines3", "h5py")

RECIPE_FILE = Path(__file__).with_name("recipe.yaml")
LEVELS = ("medium", "medium-replay", "expert", "medium-expert")


def load_recipe(path=RECIPE_FILE) -> dict:
    return yaml.safe_load(Path(path).read_text())


def dataset_dir_name(env_name: str, level: str) -> str:
    """The dataset's name and folder under <data root>/rl/, e.g. halfcheetah-medium-replay."""
    return f"{env_name}-{level}"


def dataset_file(data_root, env_name: str, level: str) -> Path:
    """D4RL's own file name, so a downloaded D4RL file and a regenerated one sit in the same place."""
    return Path(data_root) / "rl" / dataset_dir_name(env_name, level) / f"{env_name}_{level.replace('-', '_')}-v2.hdf5"


def read_full(path) -> dict:
    """Every array of a D4RL-format file, including next_observations and infos/* (for checks and stitching)."""
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in KEYS if key in f}


class Regenerator:
    def __init__(self, *, env_name: str, recipe: dict, data_root, policies_dir, results_dir, log=print):
        env_spec(env_name)
        self.env_name, self.recipe, self.log = env_name, recipe, log
        self.data_root, self.policies_dir = Path(data_root), Path(policies_dir)
        self.results_dir = Path(results_dir)
        self.env_recipe = recipe["envs"][env_name]
        self.run = MediumRun(self.data_root / "rl" / "_regen" / env_name / "sac", env_name=env_name)

    # --- stages -------------------------------------------------------------------------------------------
    def sac(self, *, from_shared: bool, max_minutes: float | None, train: bool = True) -> dict:
        """train=False: take the (imported) run as it is, even below its target (then only --fallback builds)."""
        sac = self.recipe["sac"]
        if from_shared and not self.run.state["num_timesteps"] and not self.run.chunks():
            source = self.policies_dir / self.env_recipe["shared_sac_run"]
            self.log(f"[{self.env_name}] importing the SAC run in {source}")
            import_shared_run(self.run, source, target_normalized=self.env_recipe["medium_target"])
        if not train:
            self._publish_sac_artefacts(self.run.state)
            return self.run.state
        state = train_to_medium(self.run, target_normalized=self.env_recipe["medium_target"],
                                max_steps=sac["max_steps"], eval_every=sac["eval_every"],
                                eval_episodes=sac["eval_episodes"], learning_starts=sac["learning_starts"],
                                seed=sac["seed"], max_minutes=max_minutes, log=self.log)
        self._publish_sac_artefacts(state)
        return state

    def medium_replay(self, *, fallback=False, force=False):
        state = self.run.state
        if state["stopped"] and state["reached"]:
            label = f"SAC replay buffer up to its stop at step {state['num_timesteps']}"
        elif fallback and self.run.chunks():
            label = (f"FALLBACK: replay buffer of a SAC run stopped BELOW the medium target "
                     f"{self.env_recipe['medium_target']}, at step {state['num_timesteps']}")
        else:
            return self.log(f"[{self.env_name}] medium-replay waits for SAC to reach its target (or pass --fallback)")
        attrs = {"behaviour_policy": f"{label} ({state.get('source', 'trained here')})",
                 "sac_reached_medium_target": bool(state["reached"]),
                 "dropped_steps_at_restarts": int(state.get("dropped_steps", 0))}
        self._produce("medium-replay", lambda: (self.run.replay_arrays(), attrs), force=force)

    def medium(self, *, fallback=False, force=False):
        from .policies import load_sac_actor, load_zoo_agent
        state = self.run.state
        if state["stopped"] and state["reached"]:
            make_policy = lambda: load_sac_actor(self.run.medium_actor(), env_name=self.env_name)  # noqa: E731
            label = f"SAC actor {state['medium_actor']} (reached the medium target {state['target_normalized']})"
        elif fallback:
            agent = self.env_recipe["medium_fallback"]
            make_policy = lambda: load_zoo_agent(self.policies_dir / agent["agent"], env_name=self.env_name,  # noqa
                                                 algo=agent["algo"], time_feature=agent.get("time_feature", False))
            label = f"FALLBACK: zoo {agent['algo']} {agent['agent']} (SAC did not reach the medium target here)"
        else:
            return self.log(f"[{self.env_name}] medium waits for SAC to reach its target (or pass --fallback)")
        self._produce("medium", lambda: self._sample(make_policy(), "medium", label), force=force)

    def expert(self, *, force=False):
        from .policies import load_zoo_agent
        agent = self.env_recipe["expert"]
        label = f"zoo {agent['algo']} {agent['agent']}"
        self._produce("expert", lambda: self._sample(load_zoo_agent(
            self.policies_dir / agent["agent"], env_name=self.env_name, algo=agent["algo"],
            time_feature=agent.get("time_feature", False)), "expert", label), force=force)

    def medium_expert(self, *, force=False):
        paths = {lv: dataset_file(self.data_root, self.env_name, lv) for lv in ("medium", "expert")}
        if not all(p.exists() for p in paths.values()):
            return self.log(f"[{self.env_name}] medium-expert waits for the medium and expert files")

        def build():
            medium, expert = read_full(paths["medium"]), read_full(paths["expert"])
            ends = episode_ends(medium["terminals"], medium["timeouts"])
            cut = ends[-1] + 1 if len(ends) else 0
            cap = self.recipe["sizes"]["medium_expert_cap"]
            keys = [k for k in KEYS if k in medium and k in expert]
            arrays = {k: np.concatenate([medium[k][:cut], expert[k]])[:cap] for k in keys}
            with h5py.File(paths["medium"], "r") as f:
                medium_policy = f.attrs["behaviour_policy"]
            return arrays, {"behaviour_policy": f"medium file ({medium_policy}) up to its last finished trajectory "
                                                f"({cut} transitions), then the expert file; capped at {cap}"}
        self._produce("medium-expert", build, force=force)

    # --- helpers ------------------------------------------------------------------------------------------
    def _sample(self, policy, level: str, label: str):
        size, ro = self.recipe["sizes"][level], self.recipe["rollout"]
        seed = ro[f"seed_{level}"]
        arrays, _ = rollout(policy, env_name=self.env_name, n_transitions=size, seed=seed, n_envs=ro["n_envs"],
                            deterministic=False)
        return arrays, {"behaviour_policy": label, "actions": "sampled (stochastic policy)", "reset_seed": seed,
                        "n_envs": ro["n_envs"]}

    def _produce(self, level: str, build, *, force: bool):
        path = dataset_file(self.data_root, self.env_name, level)
        if path.exists() and not force:
            return self.log(f"[{self.env_name}] {level}: {path} exists, skipped")
        started = time.time()
        arrays, attrs = build()
        check_d4rl_arrays(arrays, env_name=self.env_name, source=f"{path} (before writing)",
                          sim_checks=self.recipe["checks"]["sim_replays"])
        attrs = {"env": self.env_name, "gym_id": env_spec(self.env_name).gym_id, "level": level,
                 "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "versions": package_versions(extra=SIMULATION_PACKAGES), "machine": machine(), **attrs}
        write_d4rl_hdf5(path, arrays, attrs)
        from tasks.datasets.readers import read_d4rl_hdf5
        read_d4rl_hdf5(path)  # the file loads with the data layer's reader
        stats = {"dataset": dataset_dir_name(self.env_name, level), "file": path.name,
                 **dataset_statistics(arrays, env_name=self.env_name), "attrs": attrs,
                 "build_wall_s": round(time.time() - started, 1), "checks": "passed"}
        write_json_atomic(self.results_dir / f"{stats['dataset']}.json", stats)
        self.log(f"[{self.env_name}] {level} ({PROVENANCE}): {stats['n_transitions']} transitions, "
                 f"{stats['n_trajectories']} trajectories, mean normalised return "
                 f"{stats['normalized_return_mean']:.1f} -> {path}")

    def _publish_sac_artefacts(self, state: dict) -> None:
        """Copy the small SAC artefacts (learning curve, state, the medium actor) to the results folder."""
        out = self.results_dir / f"{self.env_name}-sac"
        out.mkdir(parents=True, exist_ok=True)
        for name in ("curve.json", "state.json"):
            if (self.run.dir / name).exists():
                shutil.copyfile(self.run.dir / name, out / name)
        if state["stopped"]:
            shutil.copyfile(self.run.medium_actor(), out / state["medium_actor"])


def write_summary(results_dir) -> Path:
    """results_dir/README.md: one table row per dataset statistics file (what the closing notes quote)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)  # a run that built nothing still writes its (empty) summary
    lines = [f"# Regenerated D4RL-format datasets ({PROVENANCE})", "",
             "Written by `scripts/make_rl_data.py` (recipe: `tasks/rl/regen/recipe.yaml`); one JSON per dataset here "
             "has the full statistics and file attributes. Normalised = D4RL's score of the mean trajectory return.",
             "", "| dataset | transitions | trajectories | mean return | normalised | behaviour policy | build s |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for path in sorted(results_dir.glob("*.json")):
        st = json.loads(path.read_text())
        lines.append(f"| {st['dataset']} | {st['n_transitions']:,} | {st['n_trajectories']:,} | "
                     f"{st['return_mean']:.0f} | {st['normalized_return_mean']:.1f} | "
                     f"{st['attrs']['behaviour_policy']} | {st['build_wall_s']:.0f} |")
    out = results_dir / "README.md"
    out.write_text("\n".join(lines) + "\n")
    return out
