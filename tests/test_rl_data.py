"""RL data: D4RL-format checks and writing, trajectories, DT windows, the datamodule's errors, stitching."""
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tasks.datasets.errors import DatasetFormatError
from tests.fixtures import make_d4rl_hdf5
from tasks.rl.d4rl_format import (PROVENANCE, D4RLConsistencyError, check_d4rl_arrays, dataset_statistics,
                                  write_d4rl_hdf5)
from tasks.rl.data import D4RLDataModule, TrajectoryWindows, returns_to_go, split_trajectories
from tasks.rl.envs import ENVS, normalized_score

SHARED_REF = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "rl" / "d4rl_ref_scores.json"
HOPPER = ENVS["hopper"]


def synthetic_arrays(lengths=(5, 1000, 7), *, tail=3, seed=0, env="hopper") -> dict:
    """D4RL arrays shaped for `env` with consistent next observations: finished episodes of `lengths` (a 1000-step
    one ends by timeout, the others by termination), then an unfinished tail of `tail` steps (no flag)."""
    rng, spec = np.random.default_rng(seed), ENVS[env]
    cols = {k: [] for k in ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts")}
    segments = [(n, "timeouts" if n == 1000 else "terminals") for n in lengths] + ([(tail, None)] if tail else [])
    for length, end in segments:
        states = rng.standard_normal((length + 1, spec.obs_dim)).astype(np.float32)
        flags = {"terminals": np.zeros(length, dtype=bool), "timeouts": np.zeros(length, dtype=bool)}
        if end is not None:
            flags[end][-1] = True
        for key, value in (("observations", states[:-1]), ("next_observations", states[1:]),
                           ("actions", rng.uniform(-1, 1, (length, spec.act_dim)).astype(np.float32)),
                           ("rewards", rng.standard_normal(length).astype(np.float32)), *flags.items()):
            cols[key].append(value)
    return {k: np.concatenate(v) for k, v in cols.items()}


def test_synthetic_arrays_pass_the_checks():
    arrays = synthetic_arrays()
    check_d4rl_arrays(arrays, env_name="hopper", source="mem")
    stats = dataset_statistics(arrays, env_name="hopper")
    assert stats["n_trajectories"] == 3 and stats["unfinished_tail_steps"] == 3
    assert stats["n_timeouts"] == 1 and stats["n_terminals"] == 2


@pytest.mark.parametrize("break_it, message", [
    (lambda a: a["next_observations"].__setitem__(2, a["next_observations"][2] + 1), "next-observation"),
    (lambda a: a["timeouts"].__setitem__(1, True), "timeout flag falls before step 1000"),
    (lambda a: a["terminals"].__setitem__(4, False) or a["timeouts"].__setitem__(4, True), "before step"),
    (lambda a: a["terminals"].__setitem__(1004, True) or a["timeouts"].__setitem__(1004, True), "both"),
    (lambda a: a.__setitem__("observations", a["observations"][:, :5]), "do not fit Hopper-v4"),
    (lambda a: a.__setitem__("actions", np.zeros((len(a["rewards"]), 6), np.float32)), "actions of shape"),
    (lambda a: a.__setitem__("rewards", a["rewards"][:-1]), "rows but 'rewards'"),
    (lambda a: a["rewards"].__setitem__(0, np.nan), "NaN"),
])
def test_consistency_checks_name_the_source_and_the_problem(break_it, message):
    arrays = synthetic_arrays()
    break_it(arrays)
    with pytest.raises(D4RLConsistencyError, match=message) as error:
        check_d4rl_arrays(arrays, env_name="hopper", source="some/file.hdf5")
    assert str(error.value).startswith("some/file.hdf5: ")


def test_a_trajectory_longer_than_the_time_limit_is_rejected():
    arrays = synthetic_arrays(lengths=(1001,))
    with pytest.raises(D4RLConsistencyError, match="1001 steps"):
        check_d4rl_arrays(arrays, env_name="hopper", source="mem")


def test_written_file_is_labelled_and_reads_back(tmp_path):
    from tasks.datasets.readers import read_d4rl_hdf5

    arrays = synthetic_arrays()
    path = write_d4rl_hdf5(tmp_path / "x" / "hopper_medium-v2.hdf5", arrays, {"level": "medium", "seeds": [1, 2]})
    assert not list(path.parent.glob("*.tmp"))
    with h5py.File(path) as f:
        assert f.attrs["provenance"] == PROVENANCE and json.loads(f.attrs["seeds"]) == [1, 2]
    back = read_d4rl_hdf5(path)
    np.testing.assert_array_equal(back["observations"], arrays["observations"])
    np.testing.assert_array_equal(back["timeouts"], arrays["timeouts"])


def test_split_drops_the_unfinished_tail_and_keeps_trajectories_whole():
    arrays = synthetic_arrays(lengths=(5, 1000, 7), tail=3)
    trajectories = split_trajectories(arrays, source="f.hdf5", env_name="hopper")
    assert [len(t.rewards) for t in trajectories] == [5, 1000, 7]
    np.testing.assert_array_equal(trajectories[1].observations, arrays["observations"][5:1005])


def test_returns_to_go():
    np.testing.assert_allclose(returns_to_go(np.array([1.0, 2.0, 3.0], np.float32)), [6.0, 5.0, 3.0])


def test_windows_slice_scale_and_pad():
    arrays = synthetic_arrays(lengths=(5, 30), tail=0)
    trajectories = split_trajectories(arrays, source="f", env_name="hopper")
    mean, std = np.full(HOPPER.obs_dim, 0.5, np.float32), np.full(HOPPER.obs_dim, 2.0, np.float32)
    windows = TrajectoryWindows(trajectories, context_len=8, rtg_scale=10.0, state_mean=mean, state_std=std,
                                n_items=4)
    rtg, states, actions, timesteps, mask = windows.window(1, 3)
    assert rtg.shape == (8, 1) and states.shape == (8, HOPPER.obs_dim) and actions.shape == (8, HOPPER.act_dim)
    assert mask.all() and timesteps.tolist() == list(range(3, 11))
    np.testing.assert_allclose(states.numpy(), (trajectories[1].observations[3:11] - 0.5) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(rtg[:, 0].numpy(), returns_to_go(trajectories[1].rewards)[3:11] / 10.0, rtol=1e-5)
    rtg, states, actions, timesteps, mask = windows.window(0, 0)  # 5 steps < K = 8: right-padded and masked
    assert mask.tolist() == [True] * 5 + [False] * 3
    assert (states[5:] == 0).all() and (actions[5:] == 0).all() and (timesteps[5:] == 0).all()
    torch.manual_seed(0)
    items = [windows[i] for i in range(len(windows))]
    assert all(item[4].sum() in (5, 8) for item in items)


def _datamodule(tmp_path, **dataset):
    cfg = {"name": "hopper-medium", "env": "hopper", "file": "hopper_medium-v2.hdf5",
           "provenance": "D4RL v2", **dataset}
    return D4RLDataModule(dataset=cfg, data_root=str(tmp_path), context_len=4, batch_size=2, updates_per_epoch=2,
                          val_windows=3)


def test_datamodule_loads_a_d4rl_file(tmp_path):
    make_d4rl_hdf5(tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5", obs_dim=11, act_dim=3)
    dm = _datamodule(tmp_path)
    dm.setup("fit")
    assert len(dm.trajectories) == 3 and dm.state_mean.shape == (11,)
    rtg, states, actions, timesteps, mask = next(iter(dm.train_dataloader()))
    assert states.shape == (2, 4, 11) and mask.dtype == torch.bool
    assert len(list(dm.val_dataloader())) == 2
    path = tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5"
    fingerprint = dm.data_fingerprint()  # recorded with the run: which file it read
    assert fingerprint["file"] == "hopper-medium/hopper_medium-v2.hdf5" and fingerprint["trajectories"] == 3
    assert fingerprint["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fingerprint["transitions"] == sum(len(t.rewards) for t in dm.trajectories)


@pytest.mark.parametrize("make, message", [
    (lambda p: make_d4rl_hdf5(p, obs_dim=4, act_dim=3), "observations have 4 dims but hopper"),
    (lambda p: make_d4rl_hdf5(p, obs_dim=11, act_dim=2), "actions have 2 dims"),
])
def test_datamodule_rejects_a_file_that_does_not_fit_the_env(tmp_path, make, message):
    path = make(tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5")
    with pytest.raises(DatasetFormatError, match=message) as error:
        _datamodule(tmp_path).setup("fit")
    assert str(path) in str(error.value)


@pytest.mark.parametrize("corrupt, message", [
    (lambda f: f.__delitem__("timeouts"), "missing"),
    (lambda f: (f.__delitem__("rewards"), f.create_dataset("rewards", data=np.zeros(7, np.float32))), "mismatched"),
])
def test_datamodule_reports_bad_hdf5_naming_the_file(tmp_path, corrupt, message):
    path = make_d4rl_hdf5(tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5", obs_dim=11, act_dim=3)
    with h5py.File(path, "a") as f:
        corrupt(f)
    with pytest.raises(DatasetFormatError, match=message) as error:
        _datamodule(tmp_path).setup("fit")
    assert str(path) in str(error.value)


@pytest.mark.parametrize("damage", [lambda data: b"<html>404 not found</html>", lambda data: data[: len(data) // 2],
                                    lambda data: b""])
def test_datamodule_names_a_non_hdf5_or_truncated_file(tmp_path, damage):
    """The provenance check opens the file first: it must fail as clearly as the reader would."""
    path = make_d4rl_hdf5(tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5", obs_dim=11, act_dim=3)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetFormatError, match="not a readable HDF5 file") as error:
        _datamodule(tmp_path).setup("fit")
    assert str(error.value).startswith(f"{path}: ")


def test_datamodule_checks_the_provenance_label(tmp_path):
    path = tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5"
    write_d4rl_hdf5(path, synthetic_arrays(), {})
    with pytest.raises(DatasetFormatError, match="labels it 'D4RL v2' but the file is regenerated"):
        _datamodule(tmp_path).setup("fit")
    _datamodule(tmp_path, provenance=PROVENANCE).setup("fit")


def test_normalized_score_reference_points():
    for name, spec in ENVS.items():
        assert normalized_score(name, spec.ref_min_score) == pytest.approx(0.0)
        assert normalized_score(name, spec.ref_max_score) == pytest.approx(100.0)


@pytest.mark.skipif(not SHARED_REF.exists(), reason="../shared/datasets/rl/d4rl_ref_scores.json is absent")
def test_reference_scores_match_d4rl():
    refs = json.loads(SHARED_REF.read_text())
    for name, spec in ENVS.items():
        assert (spec.ref_min_score, spec.ref_max_score) == (refs[name]["ref_min_score"], refs[name]["ref_max_score"])


def test_dataset_configs_agree_with_the_registry_and_the_generator():
    import yaml

    from tasks.datasets import registry
    from tasks.rl.regen.regenerate import dataset_file

    targets = {"halfcheetah": 6000, "hopper": 3600, "walker2d": 5000, "ant": 4300}
    names = registry.names("rl")
    assert len(names) == 12
    for name in names:
        cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "dataset" / f"{name}.yaml").read_text())
        assert cfg["name"] == name and cfg["task"] == "rl" and cfg["target_return"] == targets[cfg["env"]]
        assert [f.path for f in registry.get(name).files] == [cfg["file"]]
        assert dataset_file("root", cfg["env"], cfg["level"]) == Path("root", "rl", name, cfg["file"])
        assert cfg["provenance"] == PROVENANCE


def test_make_rl_data_stitches_medium_expert_and_summarises(tmp_path):
    import yaml

    from scripts.make_rl_data import main
    from tasks.rl.regen.regenerate import dataset_file, load_recipe

    root = tmp_path / "data"
    write_d4rl_hdf5(dataset_file(root, "halfcheetah", "medium"), synthetic_arrays(env="halfcheetah"),
                    {"behaviour_policy": "toy medium"})
    write_d4rl_hdf5(dataset_file(root, "halfcheetah", "expert"),
                    synthetic_arrays((1000, 4), tail=0, seed=1, env="halfcheetah"), {"behaviour_policy": "toy"})
    recipe = load_recipe()
    recipe["sizes"]["medium_expert_cap"] = 1500
    recipe["checks"]["sim_replays"] = 0
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["halfcheetah", "--stages", "medium-expert", "--data-root", str(root), "--results",
                 str(tmp_path / "results"), "--recipe", str(tmp_path / "recipe.yaml")]) == 0
    with h5py.File(dataset_file(root, "halfcheetah", "medium-expert")) as f:
        assert f.attrs["provenance"] == PROVENANCE and "toy medium" in f.attrs["behaviour_policy"]
        assert len(f["rewards"]) == 1500
        # the same provenance helper as every run record, plus the simulation's own packages
        versions = json.loads(f.attrs["versions"])
        assert versions["torch"] and versions["mujoco"] and versions["gymnasium"] and versions["stable-baselines3"]
        assert json.loads(f.attrs["machine"])["cpu_count"] >= 1
        # medium up to its last finished trajectory (1012 steps), then the expert's 1000-step one, cut by the cap
        np.testing.assert_array_equal(np.flatnonzero(f["terminals"][()]), [4, 1011])
        np.testing.assert_array_equal(np.flatnonzero(f["timeouts"][()]), [1004])
    stats = json.loads((tmp_path / "results" / "halfcheetah-medium-expert.json").read_text())
    assert stats["n_trajectories"] == 3 and stats["unfinished_tail_steps"] == 1500 - 1012
    assert "halfcheetah-medium-expert" in (tmp_path / "results" / "README.md").read_text()


def test_make_rl_data_no_train_never_trains_sac(tmp_path):
    from scripts.make_rl_data import main

    root = tmp_path / "data"
    assert main(["hopper", "--stages", "sac", "medium", "--no-train", "--data-root", str(root), "--results",
                 str(tmp_path / "results")]) == 0
    run_dir = root / "rl" / "_regen" / "hopper" / "sac"
    assert not (run_dir / "checkpoint.zip").exists() and not list(run_dir.glob("actor_*.pt"))
    assert not (root / "rl" / "hopper-medium").exists()  # medium waits for a SAC run that reached its target


def test_make_rl_data_writes_its_summary_into_a_new_results_folder_when_nothing_was_built(tmp_path):
    from scripts.make_rl_data import main

    results = tmp_path / "not" / "yet"
    assert main(["walker2d", "--stages", "medium-replay", "--fallback", "--data-root", str(tmp_path / "data"),
                 "--results", str(results)]) == 0  # no SAC run: medium-replay waits and nothing is built
    assert not (tmp_path / "data" / "rl" / "walker2d-medium-replay").exists()
    assert "| dataset |" in (results / "README.md").read_text()


@pytest.mark.parametrize("sampling, share_of_long, last_start", [("uniform", 0.5, 30 - 8),
                                                                 ("length_proportional", 0.75, 30 - 1)])
def test_trajectory_sampling_switch(sampling, share_of_long, last_start):
    # trajectories of 10 and 30 steps, K = 8: uniform picks each half the time and starts where a full window
    # fits; length-proportional (kzl's DT) picks the long one 30/40 of the time and starts at any of its steps
    trajectories = split_trajectories(synthetic_arrays(lengths=(10, 30), tail=0), source="f", env_name="hopper")
    windows = TrajectoryWindows(trajectories, context_len=8, rtg_scale=1.0, state_mean=np.zeros(HOPPER.obs_dim),
                                state_std=np.ones(HOPPER.obs_dim), n_items=4000, sampling=sampling)
    picks = []
    windows.window = lambda index, start: picks.append((index, start))
    torch.manual_seed(0)
    for i in range(len(windows)):
        windows[i]
    long_starts = {start for index, start in picks if index == 1}
    assert np.mean([index == 1 for index, _ in picks]) == pytest.approx(share_of_long, abs=0.03)
    assert long_starts == set(range(last_start + 1))


def test_unknown_trajectory_sampling_is_named(tmp_path):
    from tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="task.datamodule.trajectory_sampling"):
        D4RLDataModule(dataset={"name": "hopper-medium", "env": "hopper", "file": "x.hdf5"},
                       trajectory_sampling="proportional")
