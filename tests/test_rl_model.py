"""Decision Transformer: token layout, causality, padding, streaming = batch forward, training, snapshots,
validation logging."""
import csv
import os
import pickle

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

import aaren
from tests.fixtures import make_d4rl_hdf5
from tasks.rl.data import D4RLDataModule
from tasks.rl.model import DecisionTransformer
from tasks.rl.module import DecisionTransformerModule

S, A, D = 5, 2, 16
KINDS = ("aaren", "transformer")


def small(kind: str, *, max_timestep: int = 50, seed: int = 0):
    torch.manual_seed(seed)
    backbone = aaren.Backbone(kind=kind, d_model=D, n_layers=2, n_heads=2, d_ff=32, dropout=0.0)
    dt = DecisionTransformer(state_dim=S, act_dim=A, d_model=D, max_timestep=max_timestep)
    return dt.eval(), backbone.eval()


def batch(B=3, T=6, t0=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, 1, generator=g), torch.randn(B, T, S, generator=g),
            torch.rand(B, T, A, generator=g) * 2 - 1, torch.arange(t0, t0 + T).expand(B, T))


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_tanh_range(kind):
    dt, backbone = small(kind)
    actions = dt(backbone, *batch())
    assert actions.shape == (3, 6, A) and actions.abs().max() < 1


@pytest.mark.parametrize("kind", KINDS)
def test_action_t_depends_on_rtg_and_state_up_to_t_and_actions_before_t(kind):
    dt, backbone = small(kind)
    rtg, states, actions, timesteps = batch()
    base = dt(backbone, rtg, states, actions, timesteps)
    t = 3
    changed_action = actions.clone()
    changed_action[:, t] += 0.5                       # a_t comes after s_t: the prediction of a_t ignores it
    out = dt(backbone, rtg, states, changed_action, timesteps)
    torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1])
    assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])
    changed_state = states.clone()
    changed_state[:, t] += 0.5                        # s_t feeds a_t, never a_<t
    out = dt(backbone, rtg, changed_state, actions, timesteps)
    torch.testing.assert_close(out[:, :t], base[:, :t])
    assert not torch.allclose(out[:, t], base[:, t])
    changed_rtg = rtg.clone()
    changed_rtg[:, t] += 0.5
    out = dt(backbone, changed_rtg, states, actions, timesteps)
    torch.testing.assert_close(out[:, :t], base[:, :t])
    assert not torch.allclose(out[:, t], base[:, t])


@pytest.mark.parametrize("kind", KINDS)
def test_padded_timesteps_change_nothing_valid(kind):
    dt, backbone = small(kind)
    rtg, states, actions, timesteps = batch()
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    base = dt(backbone, rtg, states, actions, timesteps, mask)
    states2, actions2 = states.clone(), actions.clone()
    states2[0, 4:], actions2[0, 4:] = 9.0, 0.9
    out = dt(backbone, rtg, states2, actions2, timesteps, mask)
    torch.testing.assert_close(out[0, :4], base[0, :4])
    torch.testing.assert_close(out[1:], base[1:])


@pytest.mark.parametrize("kind", KINDS)
def test_stream_equals_window_forward(kind):
    """Token by token through backbone.step gives the batch forward's actions (the whole history is the window)."""
    dt, backbone = small(kind)
    rtg, states, actions, timesteps = batch(T=7, t0=2)
    expected = dt(backbone, rtg, states, actions, timesteps)
    with torch.no_grad():
        state = dt.start_stream(backbone, 3)
        got = []
        for t in range(7):
            action, state = dt.stream_action(backbone, state, rtg[:, t], states[:, t], timesteps[:, t])
            state = dt.stream_feed_action(backbone, state, actions[:, t], timesteps[:, t])
            got.append(action)
    torch.testing.assert_close(torch.stack(got, dim=1), expected, atol=1e-5, rtol=1e-4)


def test_stream_state_is_constant_for_aaren_and_grows_for_the_transformer():
    sizes = {}
    for kind in KINDS:
        dt, backbone = small(kind)
        rtg, states, actions, timesteps = batch(B=1, T=40)
        with torch.no_grad():
            state, sizes[kind] = dt.start_stream(backbone, 1), []
            for t in range(40):
                _, state = dt.stream_action(backbone, state, rtg[:, t], states[:, t], timesteps[:, t])
                state = dt.stream_feed_action(backbone, state, actions[:, t], timesteps[:, t])
                sizes[kind].append(aaren.state_nbytes(state))
    assert len(set(sizes["aaren"][1:])) == 1
    assert sizes["transformer"][-1] > 4 * sizes["transformer"][4]


def test_timestep_outside_the_embedding_is_a_clear_error():
    dt, backbone = small("aaren", max_timestep=5)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 5\)"):
        dt(backbone, *batch(T=6))


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


def test_testing_a_best_checkpoint_takes_the_newest_last_snapshot_from_last_ckpt(tmp_path):
    from types import SimpleNamespace

    torch.save({"dt_snapshots": {"last": {"step": 900, "score": 1.0, "weights": {}}}}, tmp_path / "last.ckpt")
    m = module()
    m.on_load_checkpoint({"dt_snapshots": {"last": {"step": 300, "score": 5.0, "weights": {}},
                                           "best": {"step": 300, "score": 5.0, "weights": {}}}})
    m._trainer = SimpleNamespace(ckpt_path=str(tmp_path / "best-epoch=2.ckpt"))
    m.on_test_start()
    assert m.snapshots["last"]["step"] == 900 and m.snapshots["best"]["step"] == 300


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this object runs code (touches the marker file)
        return (os.system, (f"touch {self.marker}",))


def test_the_last_checkpoint_beside_a_tested_one_is_loaded_without_running_code(tmp_path):
    from types import SimpleNamespace

    marker = tmp_path / "payload_ran"
    torch.save({"dt_snapshots": {}, "x": _Payload(marker)}, tmp_path / "last.ckpt")
    m = module()
    m._trainer = SimpleNamespace(ckpt_path=str(tmp_path / "best-epoch=2.ckpt"))
    with pytest.raises(pickle.UnpicklingError):
        m.on_test_start()
    assert not marker.exists()


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
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(m, datamodule=dm)
    with open(next(tmp_path.rglob("metrics.csv"))) as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/score")]
    assert [float(r["val/score"]) for r in rows] == [10.0, 20.0, 30.0]
    assert all(r["val/score"] == r["val/normalized_score"] and r["val/action_mse"] == r["val/loss"] for r in rows)
