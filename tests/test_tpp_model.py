"""THP+ on both backbones: causality, padding, online prediction equal to the batch forward (constant-size Aaren
state), a brief training run that moves toward the known Hawkes truth, and train.py end to end."""
import json

import aaren
import pytest
import torch

from lightning.pytorch.callbacks import EarlyStopping

from tasks.errors import ConfigError
from tasks.tpp.data import TPPDataModule
from tasks.tpp.module import TPPModule
from tasks.tpp.online import OnlineEventForecaster
from tests.harness_toy.helpers import compose_config, path_overrides, records, run_in_process

KINDS = ["aaren", "transformer"]
HAWKES = dict(process="hawkes", baseline=[0.5, 0.25], adjacency=[[0.4, 0.2], [0.1, 0.5]], decay=1.5,
              end_time=30.0, seed=0, sampler="numpy")


def _datamodule(n_sequences: int, batch_size: int = 8) -> TPPDataModule:
    dataset = dict(name="Hawkes", num_marks=2, split={"train": 0.6, "val": 0.2},
                   generator=dict(HAWKES, n_sequences=n_sequences))
    dm = TPPDataModule(dataset=dataset, batch_size=batch_size, eval_batch_size=64)
    dm.setup()
    return dm


def _module(kind: str, *, lr: float = 1e-3, d_model: int = 16) -> TPPModule:
    torch.manual_seed(0)
    backbone = dict(kind=kind, d_model=d_model, n_layers=2, n_heads=1, d_ff=d_model, dropout=0.0)
    return TPPModule(backbone=backbone, optim=dict(name="adam", lr=lr, weight_decay=0.0), num_marks=2,
                     n_components=4).eval()


@pytest.fixture(scope="module")
def batch():
    return next(iter(_datamodule(10).test_dataloader()))


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_are_causal(kind, batch):
    module = _module(kind)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["tau"][:, 5:] *= 3.0
    changed["time"][:, 5:] += 7.0
    changed["marks"][:, 5:] = 1 - changed["marks"][:, 5:]
    with torch.no_grad():
        a, b = module.next_event_terms(batch), module.next_event_terms(changed)
    torch.testing.assert_close(a["mean"][:, :5], b["mean"][:, :5])
    torch.testing.assert_close(a["mark_ll"][:, :4], b["mark_ll"][:, :4])    # targets 1..4 are unchanged events
    assert not torch.allclose(a["mean"][:, 5:], b["mean"][:, 5:])


@pytest.mark.parametrize("kind", KINDS)
def test_padding_acts_inside_attention(kind, batch):
    module = _module(kind)
    lengths = batch["mask"].sum(1)
    row = int(lengths.argmin())
    alone = {k: v[row:row + 1, :int(lengths[row])] if v.dim() == 2 else v[row:row + 1] for k, v in batch.items()}
    with torch.no_grad():
        together, by_itself = module.next_event_terms(batch), module.next_event_terms(alone)
    n = int(lengths[row]) - 1
    for key in ("time_ll", "mark_ll", "mean", "log_survival"):
        torch.testing.assert_close(together[key][row, :n], by_itself[key][0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_online_forecasts_equal_the_batch_forward(kind, batch):
    module = _module(kind)
    scale = float(batch["scale"][0])
    with torch.no_grad():
        dist, mark_log_probs = module.decode(module(batch))
    forecaster = OnlineEventForecaster(module, time_scale=scale, batch_size=batch["mask"].shape[0])
    sizes = []
    for i in range(int(batch["mask"].sum(1).min())):
        out = forecaster.observe(batch["time"][:, i] * scale, batch["marks"][:, i])
        torch.testing.assert_close(out["expected_interval"], dist.mean()[:, i] * scale, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out["mark_probs"], mark_log_probs[:, i].exp(), rtol=1e-4, atol=1e-6)
        sizes.append(aaren.state_nbytes(forecaster.state))
    if kind == "aaren":
        assert len(set(sizes)) == 1      # (m, c, a) per layer: constant-size state (§3.1)
    else:
        assert sizes[-1] > sizes[0]      # the Transformer's KV cache grows with every event


def test_online_forecaster_rejects_time_going_backwards():
    forecaster = OnlineEventForecaster(_module("aaren"), time_scale=1.0)
    forecaster.observe(torch.tensor([2.0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="must not decrease"):
        forecaster.observe(torch.tensor([1.0]), torch.tensor([1]))


def _test_nll(module: TPPModule, dm: TPPDataModule) -> dict:
    module.eval()
    module.metrics["test"].reset()
    with torch.no_grad():
        for b in dm.test_dataloader():
            module._evaluate("test", b)
    return module.metrics["test"].compute()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # training_step outside a Trainer
def test_brief_training_moves_the_nll_toward_the_known_truth():
    dm = _datamodule(60)
    module = _module("aaren", lr=1e-2)
    optimizer = module.configure_optimizers()
    before = _test_nll(module, dm)
    module.train()
    for _ in range(4):
        for b in dm.train_dataloader():
            loss = module.training_step(b, 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = _test_nll(module, dm)
    assert before["true_nll"] == after["true_nll"]
    gap_before, gap_after = before["nll"] - before["true_nll"], after["nll"] - after["true_nll"]
    assert gap_after < 0.5 * gap_before, (before, after)
    assert after["nll_time"] - after["true_nll_time"] < 0.5 * (before["nll_time"] - before["true_nll_time"])


def test_train_py_runs_the_embedded_hawkes_default_and_records_the_truth(tmp_path):
    tiny = ["task=tpp", "model=aaren", "dataset.generator.n_sequences=20", "dataset.generator.end_time=15.0",
            "task.backbone.d_model=8", "task.backbone.d_ff=8", "task.trainer.max_epochs=1"]
    record = run_in_process(tmp_path, tiny)
    [path] = records(tmp_path)
    assert json.loads(path.read_text()) == record
    assert record["dataset"] == "Hawkes" and record["data_label"] == "Hawkes (known truth)"
    assert set(record["metrics"]) == set(record["report"]["metrics"])
    assert record["metrics"]["nll"] > record["metrics"]["true_nll"] > 0


def test_metatpp_loss_is_the_summed_survival_likelihood_plus_an_l2_penalty():
    # the hand example of test_tpp_decoder: per-target time (−1, −2, last by survival −0.9 | last −0.6), marks
    # (−0.1, −0.2, −0.3 | −0.4)
    terms = dict(time_ll=torch.tensor([[-1.0, -2.0, -3.0], [-0.5, 0.0, 0.0]]),
                 mark_ll=torch.tensor([[-0.1, -0.2, -0.3], [-0.4, 0.0, 0.0]]),
                 log_survival=torch.tensor([[-7.0, -8.0, -0.9], [-0.6, 0.0, 0.0]]),
                 target_mask=torch.tensor([[True, True, True], [True, False, False]]))
    ours = _module("aaren")
    assert float(ours.training_loss(terms)) == pytest.approx((6.5 + 1.0) / 4)
    backbone = dict(kind="aaren", d_model=8, n_layers=1, n_heads=1, d_ff=8, dropout=0.0)
    summed = TPPModule(backbone=backbone, optim=dict(name="adam", lr=1e-4), num_marks=2, n_components=2,
                       loss="metatpp_sum", l2_penalty=0.1)
    squares = sum(float(p.detach().pow(2).sum()) for p in summed.parameters())
    loss = summed.training_loss(terms)
    assert float(loss) == pytest.approx(1 + 2 + 0.9 + 0.6 + 1.0 + 0.05 * squares, rel=1e-6)
    loss.backward()                                  # the terms are constants here: the gradient is λ θ alone
    for p in summed.parameters():
        torch.testing.assert_close(p.grad, 0.1 * p.detach())


def test_unknown_loss_or_negative_penalty_is_named():
    backbone = dict(kind="aaren", d_model=8, n_layers=1, n_heads=1, d_ff=8, dropout=0.0)
    with pytest.raises(ConfigError, match="task.module.loss"):
        TPPModule(backbone=backbone, optim=dict(name="adam", lr=1e-4), num_marks=2, n_components=2, loss="sum")
    with pytest.raises(ConfigError, match="task.module.l2_penalty"):
        TPPModule(backbone=backbone, optim=dict(name="adam", lr=1e-4), num_marks=2, n_components=2, l2_penalty=-1)


def test_metatpp_experiment_stops_on_val_nll_and_selects_the_checkpoint_by_val_rmse(tmp_path):
    from tasks.harness.runner import build_callbacks

    cfg = compose_config(["experiment=cpu/tpp_metatpp", *path_overrides(tmp_path)])
    checkpoint, _, callbacks = build_callbacks(cfg, tmp_path, show_progress=False)
    [stopping] = [c for c in callbacks if isinstance(c, EarlyStopping)]
    assert (checkpoint.monitor, stopping.monitor) == ("val/rmse_metatpp", "val/nll_metatpp")
    assert cfg.task.module.optim.weight_decay == 0 and cfg.task.module.l2_penalty == 1e-4
    tiny = ["experiment=cpu/tpp_metatpp", "model=transformer", "dataset.generator.n_sequences=20",
            "dataset.generator.end_time=15.0", "task.backbone.d_model=8", "task.backbone.d_ff=8",
            "task.trainer.max_epochs=2"]
    record = run_in_process(tmp_path, tiny)
    assert record["protocol"]["loss"] == "metatpp_sum" and record["protocol"]["l2_penalty"] == 1e-4
    assert record["protocol"]["checkpoint_selection"] == "val/rmse_metatpp"
    assert record["monitor"]["name"] == "val/rmse_metatpp" and record["monitor"]["best"] > 0
