"""Decision Transformer: token layout, causality, padding, streaming = batch forward, training, snapshots,
validation logging, the state statistics it owns."""
import csv

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

import aaren
from tests.fixtures import make_d4rl_hdf5
from tasks.harness.runner import DataStatistics
from tasks.rl.data import D4RLDataModule
from tasks.rl.model import DecisionTransformer
from tasks.rl.module import DecisionTransformerModule

S, A, D = 5, 2, 16
KINDS = ("aaren", "transformer")


def small(kind: str, *, max_timestep: int = 50, seed: int = 0):
    torch.manual_seed(seed)
    backbone = aaren.Backbone(kind=kind, d_model=D, n_layers=2, n_heads=2, d_ff=32, dropout=0.0)
    return DecisionTransformer(backbone=backbone, state_dim=S, act_dim=A, max_timestep=max_timestep).eval()


def batch(B=3, T=6, t0=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, 1, generator=g), torch.randn(B, T, S, generator=g),
            torch.rand(B, T, A, generator=g) * 2 - 1, torch.arange(t0, t0 + T).expand(B, T))


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_tanh_range(kind):
    dt = small(kind)
    actions = dt(*batch())
    assert actions.shape == (3, 6, A) and actions.abs().max() < 1


@pytest.mark.parametrize("kind", KINDS)
def test_action_t_depends_on_rtg_and_state_up_to_t_and_actions_before_t(kind):
    dt = small(kind)
    rtg, states, actions, timesteps = batch()
    base = dt(rtg, states, actions, timesteps)
    t = 3
    changed_action = actions.clone()
    changed_action[:, t] += 0.5                       # a_t comes after s_t: the prediction of a_t ignores it
    out = dt(rtg, states, changed_action, timesteps)
    torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1])
    assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])
    changed_state = states.clone()
    changed_state[:, t] += 0.5                        # s_t feeds a_t, never a_<t
    out = dt(rtg, changed_state, actions, timesteps)
    torch.testing.assert_close(out[:, :t], base[:, :t])
    assert not torch.allclose(out[:, t], base[:, t])
    changed_rtg = rtg.clone()
    changed_rtg[:, t] += 0.5
    out = dt(changed_rtg, states, actions, timesteps)
    torch.testing.assert_close(out[:, :t], base[:, :t])
    assert not torch.allclose(out[:, t], base[:, t])


@pytest.mark.parametrize("kind", KINDS)
def test_padded_timesteps_change_nothing_valid(kind):
    dt = small(kind)
    rtg, states, actions, timesteps = batch()
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    base = dt(rtg, states, actions, timesteps, mask)
    states2, actions2 = states.clone(), actions.clone()
    states2[0, 4:], actions2[0, 4:] = 9.0, 0.9
    out = dt(rtg, states2, actions2, timesteps, mask)
    torch.testing.assert_close(out[0, :4], base[0, :4])
    torch.testing.assert_close(out[1:], base[1:])


@pytest.mark.parametrize("kind", KINDS)
def test_stream_equals_window_forward(kind):
    """Token by token through backbone.step gives the batch forward's actions (the whole history is the window)."""
    dt = small(kind)
    rtg, states, actions, timesteps = batch(T=7, t0=2)
    expected = dt(rtg, states, actions, timesteps)
    with torch.no_grad():
        state = dt.start_stream(3)
        got = []
        for t in range(7):
            action, state = dt.stream_action(state, rtg[:, t], states[:, t], timesteps[:, t])
            state = dt.stream_feed_action(state, actions[:, t], timesteps[:, t])
            got.append(action)
    torch.testing.assert_close(torch.stack(got, dim=1), expected, atol=1e-5, rtol=1e-4)


def test_stream_state_is_constant_for_aaren_and_grows_for_the_transformer():
    sizes = {}
    for kind in KINDS:
        dt = small(kind)
        rtg, states, actions, timesteps = batch(B=1, T=40)
        with torch.no_grad():
            state, sizes[kind] = dt.start_stream(1), []
            for t in range(40):
                _, state = dt.stream_action(state, rtg[:, t], states[:, t], timesteps[:, t])
                state = dt.stream_feed_action(state, actions[:, t], timesteps[:, t])
                sizes[kind].append(aaren.state_nbytes(state))
    assert len(set(sizes["aaren"][1:])) == 1
    assert sizes["transformer"][-1] > 4 * sizes["transformer"][4]


def test_timestep_outside_the_embedding_is_a_clear_error():
    dt = small("aaren", max_timestep=5)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 5\)"):
        dt(*batch(T=6))


def module(kind="aaren", **kwargs):
    return DecisionTransformerModule(
        backbone=dict(kind=kind, d_model=D, n_layers=1, n_heads=1, d_ff=32, dropout=0.0),
        optim=dict(name="adamw", lr=3e-3, weight_decay=0.0, schedule=dict(name="none")), env="hopper",
        max_timestep=50, context_len=4, rtg_scale=1000.0, target_return=3600.0, eval_episodes_val=1,
        eval_episodes_test=1, **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_updates_fit_a_fixed_batch(kind):
    torch.manual_seed(0)
    m = module(kind)
    B, T = 8, 4
    data = (torch.randn(B, T, 1), torch.randn(B, T, 11), torch.rand(B, T, 3) * 1.6 - 0.8,
            torch.arange(T).expand(B, T), torch.ones(B, T, dtype=torch.bool))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = m._action_loss(data).item()
    for _ in range(60):
        opt.zero_grad()
        m._action_loss(data).backward()
        opt.step()
    assert m._action_loss(data).item() < 0.5 * first


def test_unknown_evaluation_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown evaluation mode 'replay'"):
        module(val_mode="replay")


def test_loading_an_older_checkpoint_keeps_the_newer_last_and_the_better_best():
    m = module()
    m.snapshots = {"last": {"step": 900, "score": 10.0, "weights": {}}, "best": {"step": 300, "score": 40.0,
                                                                                "weights": {}}}
    older = {"last": {"step": 300, "score": 40.0, "weights": {}}, "best": {"step": 300, "score": 40.0, "weights": {}}}
    m.on_load_checkpoint({"dt_snapshots": older})
    assert m.snapshots["last"]["step"] == 900 and m.snapshots["best"]["score"] == 40.0
    fresh = module()
    fresh.on_load_checkpoint({"dt_snapshots": older})
    assert fresh.snapshots["last"]["step"] == 300


def test_the_dt_owns_its_backbone_and_the_state_statistics_each_weight_stored_once():
    m = module()
    assert m.backbone is m.dt.backbone
    keys = list(m.state_dict())
    assert not [k for k in keys if k.startswith("backbone.")] and any(k.startswith("dt.backbone.") for k in keys)
    assert "dt.state_mean" in keys and "dt.state_std" in keys
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in m.dt.parameters())
    with pytest.raises(ValueError, match=r"state_mean must have shape \(11,\), got \(5,\)"):
        m.set_data_statistics(state_mean=np.zeros(5), state_std=np.ones(11))


def test_a_task_without_data_statistics_refuses_them():
    from tasks.classification.module import ClassificationModule
    from tasks.errors import ConfigError

    classifier = ClassificationModule(
        backbone=dict(kind="aaren", d_model=8, n_layers=1, n_heads=1, d_ff=16), optim=dict(name="adam", lr=1e-3),
        n_channels=2, n_classes=3, max_length=5)
    with pytest.raises(ConfigError, match=r"takes no data statistics, got \['state_mean'\]"):
        classifier.set_data_statistics(state_mean=np.zeros(2))


@pytest.mark.parametrize("best_step", [300, 900])
def test_test_step_evaluates_each_distinct_snapshot_once_and_reports_both(best_step):
    m = module(test_modes=("window", "stream"))
    weights = {k: v.clone() for k, v in m.state_dict().items()}
    m.snapshots = {"last": {"step": 900, "score": 1.0, "weights": weights},
                   "best": {"step": best_step, "score": 2.0, "weights": weights}}
    calls, logged = [], {}
    m.run_evaluation = lambda mode, n, seed: calls.append(mode) or {"normalized_score": float(len(calls))}
    m.log_test_metrics = lambda metrics, **kwargs: logged.update(metrics)
    m.test_step(None, 0)
    assert len(calls) == (2 if best_step == 900 else 4)
    assert logged["last_stream_normalized_score"] == 2.0 and logged["best_step"] == best_step
    assert logged["best_window_normalized_score"] == (1.0 if best_step == 900 else 3.0)


def test_every_validation_logs_the_learning_curve_scalars(tmp_path):
    # a tiny real fit (the environment evaluation replaced by a counter): val/score and val/action_mse are logged
    # at every validation round, equal to val/normalized_score and val/loss
    make_d4rl_hdf5(tmp_path / "rl" / "hopper-medium" / "hopper_medium-v2.hdf5", obs_dim=11, act_dim=3)
    dm = D4RLDataModule(dataset={"name": "hopper-medium", "env": "hopper", "file": "hopper_medium-v2.hdf5"},
                        data_root=str(tmp_path), context_len=4, batch_size=2, updates_per_epoch=2, val_windows=4)
    m = module()
    rounds = []
    m.run_evaluation = lambda mode, n, seed: rounds.append(mode) or {"normalized_score": 10.0 * len(rounds),
                                                                     "return_mean": 1.0}
    trainer = L.Trainer(max_steps=6, logger=CSVLogger(tmp_path, name="log"), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[DataStatistics()])
    trainer.fit(m, datamodule=dm)
    # the harness's DataStatistics handed the training data's state statistics to the policy
    np.testing.assert_array_equal(m.dt.state_mean.numpy(), dm.state_mean)
    np.testing.assert_array_equal(m.dt.state_std.numpy(), dm.state_std)
    assert not np.allclose(dm.state_mean, 0)
    with open(next(tmp_path.rglob("metrics.csv"))) as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/score")]
    assert [float(r["val/score"]) for r in rows] == [10.0, 20.0, 30.0]
    assert all(r["val/score"] == r["val/normalized_score"] and r["val/action_mse"] == r["val/loss"] for r in rows)
