"""RL in MuJoCo: one tiny default smoke (rollout → checks → both evaluation modes); the rest is @slow.

Slow tests: the toy-scale regeneration pipeline (SAC train + resume, sampling, stitching; needs
../shared/rl-policies), importing the shared SAC run, and train.py end to end on a generated hopper file.
"""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import aaren
from tasks.rl.d4rl_format import PROVENANCE, D4RLConsistencyError, check_d4rl_arrays
from tasks.rl.envs import make_env
from tasks.rl.evaluate import evaluate
from tasks.rl.model import DecisionTransformer
from tasks.rl.regen.policies import UniformPolicy
from tasks.rl.regen.rollout import rollout

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO.parent / "shared" / "rl-policies"
needs_policies = pytest.mark.skipif(not POLICIES.is_dir(), reason="../shared/rl-policies (pretrained agents) absent")


def test_mujoco_smoke_rollout_checks_and_both_evaluation_modes():
    arrays, returns = rollout(UniformPolicy(3), env_name="hopper", n_transitions=300, seed=0, n_envs=2)
    assert arrays["observations"].shape == (300, 11) and len(returns) >= 2
    ends = np.flatnonzero(arrays["terminals"] | arrays["timeouts"])
    np.testing.assert_allclose(returns, [arrays["rewards"][s:e + 1].sum() for s, e in
                                         zip(np.concatenate([[0], ends[:-1] + 1]), ends)], rtol=1e-5)
    check_d4rl_arrays(arrays, env_name="hopper", source="smoke", sim_checks=10)
    shifted = dict(arrays, actions=np.roll(arrays["actions"], 1, axis=0))
    with pytest.raises(D4RLConsistencyError, match="does not replay"):
        check_d4rl_arrays(shifted, env_name="hopper", source="smoke", sim_checks=10)
    ant_obs = make_env("ant").reset(seed=0)[0]
    assert ant_obs.shape == (111,) and not ant_obs[27:].any() and ant_obs[:27].any()

    state_bytes = {}
    for kind in ("aaren", "transformer"):
        torch.manual_seed(0)
        backbone = aaren.Backbone(kind=kind, d_model=16, n_layers=1, n_heads=1, d_ff=32, dropout=0.0)
        dt = DecisionTransformer(backbone=backbone, state_dim=11, act_dim=3, max_timestep=1000)
        common = dict(env_name="hopper", n_episodes=2, target_return=3600.0, rtg_scale=1000.0, context_len=8, seed=5)
        for max_steps in (4, 8):
            window = evaluate(dt, mode="window", max_steps=max_steps, **common)
            stream = evaluate(dt, mode="stream", max_steps=max_steps, **common)
            state_bytes[kind, max_steps] = stream["state_bytes_per_episode"]
            # K = 8 ≥ episode length: the window is the whole history, so both modes act alike
            np.testing.assert_allclose(stream["returns"], window["returns"], rtol=1e-4, atol=1e-4)
            assert window["episode_length_mean"] <= max_steps and "state_bytes_per_episode" not in window
    assert state_bytes["aaren", 4] == state_bytes["aaren", 8]
    assert state_bytes["transformer", 8] > state_bytes["transformer", 4]


def test_policy_files_that_do_not_fit_are_named(tmp_path):
    from tasks.rl.regen.policies import PolicyLoadError, load_sac_actor, load_zoo_agent, new_sac

    torch.save(new_sac("hopper", seed=0, learning_starts=0).actor.state_dict(), tmp_path / "actor_0010k.pt")
    assert load_sac_actor(tmp_path / "actor_0010k.pt", env_name="hopper").act(
        np.zeros((2, 11), np.float32), np.zeros(2), deterministic=True).shape == (2, 3)
    with pytest.raises(PolicyLoadError, match="actor_0010k.pt: not a SAC actor for halfcheetah"):
        load_sac_actor(tmp_path / "actor_0010k.pt", env_name="halfcheetah")
    with pytest.raises(PolicyLoadError, match="expected exactly one agent .zip"):
        load_zoo_agent(tmp_path, env_name="hopper", algo="trpo")


@pytest.mark.slow
@needs_policies
def test_regeneration_at_toy_scale_with_resume(tmp_path):
    from tasks.rl.regen.regenerate import Regenerator, dataset_file, load_recipe

    recipe = load_recipe()
    recipe["sizes"] = {"medium": 3000, "expert": 2000, "medium_expert_cap": 4000}
    recipe["sac"] = {"seed": 0, "learning_starts": 100, "eval_every": 200, "eval_episodes": 1, "max_steps": 400}
    recipe["checks"] = {"sim_replays": 20}
    recipe["envs"]["hopper"]["medium_target"] = 1000  # unreachable here: exercises the fallback path
    regen = Regenerator(env_name="hopper", recipe=recipe, data_root=tmp_path / "data", policies_dir=POLICIES,
                        results_dir=tmp_path / "results", log=print)
    state = regen.sac(from_shared=False, max_minutes=0)          # stops at its first checkpoint
    assert state["num_timesteps"] == 200 and not state["stopped"]
    state = regen.sac(from_shared=False, max_minutes=None)       # resumes to the cap
    assert state["num_timesteps"] == 400 and state["stopped"] and not state["reached"]
    assert [row["step"] for row in regen.run.curve] == [200, 400]
    regen.medium_replay()
    regen.medium()                                               # both wait: SAC fell short and no fallback
    assert not dataset_file(tmp_path / "data", "hopper", "medium").exists()
    assert not dataset_file(tmp_path / "data", "hopper", "medium-replay").exists()
    regen.medium_replay(fallback=True)
    regen.medium(fallback=True)
    regen.expert()
    regen.medium_expert()
    files = {lv: dataset_file(tmp_path / "data", "hopper", lv) for lv in ("medium-replay", "medium", "expert",
                                                                        "medium-expert")}
    with h5py.File(files["medium-replay"]) as f:
        n_replay = len(f["rewards"])
        assert f.attrs["provenance"] == PROVENANCE and n_replay == 400 - state["dropped_steps"]
        assert "FALLBACK" in f.attrs["behaviour_policy"] and not f.attrs["sac_reached_medium_target"]
    with h5py.File(files["medium"]) as f:
        assert "FALLBACK" in f.attrs["behaviour_policy"] and len(f["rewards"]) == 3000
        ends = np.flatnonzero(f["terminals"][()] | f["timeouts"][()])
    with h5py.File(files["medium-expert"]) as f:
        assert len(f["rewards"]) == min(4000, ends[-1] + 1 + 2000)
    stats = json.loads((tmp_path / "results" / "hopper-medium-expert.json").read_text())
    assert stats["provenance"] == PROVENANCE and stats["checks"] == "passed"
    assert (tmp_path / "results" / "hopper-sac" / "curve.json").exists()


@pytest.mark.slow
@needs_policies
def test_import_of_the_shared_halfcheetah_run(tmp_path):
    from tasks.rl.regen.sac_medium import MediumRun, import_shared_run

    run = MediumRun(tmp_path / "sac", env_name="halfcheetah")
    state = import_shared_run(run, POLICIES / "halfcheetah" / "sac-medium-regen", target_normalized=45)
    assert state["stopped"] and state["reached"] and state["medium_actor"] == "actor_0150k.pt"
    replay = run.replay_arrays()
    assert len(replay["rewards"]) == 149_999 and replay["timeouts"].sum() == 149
    check_d4rl_arrays(replay, env_name="halfcheetah", source="import", sim_checks=20)
    run40 = MediumRun(tmp_path / "sac40", env_name="halfcheetah")  # a lower target stops the run earlier
    state = import_shared_run(run40, POLICIES / "halfcheetah" / "sac-medium-regen", target_normalized=40)
    assert state["medium_actor"] == "actor_0110k.pt" and len(run40.replay_arrays()["rewards"]) == 110_000


@pytest.mark.slow
@pytest.mark.parametrize("model", ["aaren", "transformer"])
def test_train_py_end_to_end_on_a_generated_hopper_file(tmp_path, model):
    from tasks.rl.d4rl_format import write_d4rl_hdf5
    from tests.harness_toy.helpers import records, run_train

    arrays, _ = rollout(UniformPolicy(3), env_name="hopper", n_transitions=400, seed=0, n_envs=4)
    write_d4rl_hdf5(tmp_path / "data" / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5", arrays, {})
    overrides = ("task=rl", f"model={model}", "dataset=hopper-medium", "logger=none", "task.n_updates=4",
                 "task.updates_per_epoch=2", "task.datamodule.batch_size=4", "task.datamodule.val_windows=4",
                 "task.module.eval_episodes_val=1", "task.module.eval_episodes_test=2", "task.backbone.d_model=16",
                 "task.backbone.d_ff=32")
    result = run_train(tmp_path, *overrides, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (record_path,) = records(tmp_path)
    record = json.loads(record_path.read_text())
    metrics = record["metrics"]
    for snapshot in ("last", "best"):
        for mode in ("window", "stream"):
            assert np.isfinite(metrics[f"{snapshot}_{mode}_normalized_score"])
    assert metrics["last_step"] == 4 and metrics["last_stream_state_bytes_per_episode"] > 0
    assert record["protocol"]["data"] == PROVENANCE and record["protocol"]["target_return"] == 3600
    assert record["data_label"] == PROVENANCE
    assert record["data"]["file"] == "hopper-medium/hopper_medium-v2.hdf5" and len(record["data"]["sha256"]) == 64
    if model == "aaren":  # test again in a fresh process: both snapshots come back from the checkpoints
        record_path.unlink()
        again = run_train(tmp_path, *overrides, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        metrics_again = json.loads(records(tmp_path)[0].read_text())["metrics"]
        for key in metrics:
            if "latency" not in key:
                assert metrics_again[key] == pytest.approx(metrics[key], rel=1e-6), key


def test_window_evaluation_calls_the_model_for_running_episodes_only():
    """Episodes end at different steps; a finished one costs no model call and the others' results are unchanged."""
    torch.manual_seed(0)
    backbone = aaren.Backbone(kind="aaren", d_model=16, n_layers=1, n_heads=1, d_ff=32, dropout=0.0)
    dt = DecisionTransformer(backbone=backbone, state_dim=17, act_dim=6, max_timestep=1000)
    rows = []
    backbone.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    common = dict(env_name="walker2d", mode="window", target_return=3600.0, rtg_scale=1000.0, context_len=4, seed=0, max_steps=200)
    together = evaluate(dt, n_episodes=4, **common)
    rows_together = sum(rows)
    alone = [evaluate(dt, n_episodes=1, **dict(common, seed=i)) for i in range(4)]
    lengths = [result["episode_length_mean"] for result in alone]
    assert len(set(lengths)) > 1  # the episodes do end at different steps
    assert rows_together == sum(lengths)  # one row per episode per step it was running (was 4 x the longest)
    np.testing.assert_allclose(together["returns"], [r["returns"][0] for r in alone], rtol=1e-4, atol=1e-4)
