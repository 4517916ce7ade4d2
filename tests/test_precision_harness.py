"""trainer.precision=bf16-mixed (Lightning's autocast) through the harness: every task trains, validates, tests and
records under it; the precision is part of the run identity and shown in the record; the pieces that must stay in
float32 do (RL actions to NumPy, TPP likelihoods, evaluation in epoch-end hooks)."""
import math

import hydra
import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import aaren
from tasks.harness import identity
from tasks.base.module import TaskModule
from tasks.rl.evaluate import evaluate
from tasks.rl.model import DecisionTransformer
from tasks.tpp.module import TPPModule
from tests.harness_toy.helpers import CONF, compose_config, path_overrides, records, run_in_process

TASKS = sorted(p.stem for p in (CONF / "experiment" / "smoke").glob("*.yaml"))
BF16 = "trainer.precision=bf16-mixed"


@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_end_to_end_in_bf16_mixed_and_records_it(tmp_path, task):
    overrides = [f"experiment=smoke/{task}", BF16]
    cfg = compose_config([*overrides, *path_overrides(tmp_path)])
    fixture = OmegaConf.select(cfg, "smoke.fixture")
    if fixture is not None:
        hydra.utils.instantiate(fixture)
    record = run_in_process(tmp_path, overrides)
    assert [p.name for p in records(tmp_path)] == [f"{record['run_id']}.json"]
    assert record["config"]["trainer"]["precision"] == "bf16-mixed"  # shown where conf/trainer puts it
    assert record["metrics"] and all(v is not None and math.isfinite(v) for v in record["metrics"].values())


def test_precision_is_part_of_the_run_identity(tmp_path):
    base = ["experiment=smoke/forecasting", *path_overrides(tmp_path)]
    fp32, bf16 = compose_config(base), compose_config([*base, BF16])
    assert fp32.trainer.precision == "32-true"
    assert identity.identity_config(fp32)["trainer"]["precision"] == "32-true"
    experiment = "smoke/forecasting"
    assert identity.run_id(fp32, experiment=experiment) != identity.run_id(bf16, experiment=experiment)


def test_precision_context_follows_the_trainer():
    module = TaskModule(backbone=dict(kind="aaren", d_model=8, n_layers=1, n_heads=1, d_ff=8),
                        optim=dict(name="adam", lr=1e-3))
    with module.precision_context():  # no trainer: unchanged
        assert not torch.is_autocast_enabled("cpu")
    for precision, autocast in (("32-true", False), ("bf16-mixed", True)):
        module.trainer = L.Trainer(accelerator="cpu", precision=precision, logger=False, enable_progress_bar=False)
        with module.precision_context():
            assert torch.is_autocast_enabled("cpu") is autocast


def test_tpp_likelihoods_stay_float32_under_autocast():
    torch.manual_seed(0)
    module = TPPModule(backbone=dict(kind="aaren", d_model=16, n_layers=1, n_heads=1, d_ff=16, dropout=0.0),
                       optim=dict(name="adam", lr=1e-3), num_marks=5, n_components=3).eval()
    h = torch.randn(2, 7, 16)
    tau = torch.rand(2, 7) + 0.1
    dist, marks = module.decode(h)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist_bf16, marks_bf16 = module.decode(h)
    assert marks_bf16.dtype == torch.float32 and dist_bf16.log_prob(tau).dtype == torch.float32
    torch.testing.assert_close(marks_bf16, marks)
    torch.testing.assert_close(dist_bf16.log_prob(tau), dist.log_prob(tau))


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_rl_evaluation_runs_under_bf16_autocast(mode):
    torch.manual_seed(0)
    backbone = aaren.Backbone(kind="aaren", d_model=16, n_layers=1, n_heads=1, d_ff=32, dropout=0.0).eval()
    dt = DecisionTransformer(backbone=backbone, state_dim=11, act_dim=3, max_timestep=1000)
    common = dict(env_name="hopper", mode=mode, n_episodes=2, target_return=3600.0, rtg_scale=1000.0, context_len=4,
                  seed=5, max_steps=6)
    fp32 = evaluate(dt, **common)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = evaluate(dt, **common)  # failed at action.numpy() (NumPy has no bfloat16)
    np.testing.assert_allclose(bf16["returns"], fp32["returns"], rtol=0.05, atol=0.05)


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_online_paths_run_under_bf16_autocast_and_agree_with_the_batch_model(kind):
    """The streaming helpers under the autocast a user (or the harness) sets: they run, and the last online
    prediction is the batch prediction to bf16 rounding (both under autocast)."""
    from tasks.classification.module import ClassificationModule
    from tasks.classification.online import OnlineClassifier
    from tasks.forecasting.module import ForecastingModule
    from tasks.forecasting.online import OnlineForecaster

    backbone = dict(kind=kind, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0)
    torch.manual_seed(0)
    forecaster = ForecastingModule(backbone=backbone, optim=dict(name="adam", lr=1e-3), channels=3,
                                   time_feature_freq="h", seq_len=12, horizon=4).eval()
    classifier = ClassificationModule(backbone=backbone, optim=dict(name="adam", lr=1e-3), n_channels=3,
                                      n_classes=4, max_length=12).eval()
    x, marks = torch.randn(2, 12, 3), torch.rand(2, 12, 4) - 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        online = OnlineForecaster(forecaster, batch_size=2)
        forecasts = [online.update(x[:, t], marks[:, t]) for t in range(12)]
        logits = OnlineClassifier(classifier).predict_prefixes(x)
        batch_forecast, batch_logits = forecaster(x, marks), classifier(x, torch.ones(2, 12, dtype=torch.bool))
    torch.testing.assert_close(forecasts[-1].float(), batch_forecast.float(), rtol=0.05, atol=0.05)
    torch.testing.assert_close(logits[:, -1].float(), batch_logits.float(), rtol=0.05, atol=0.05)


def test_tpp_decode_keeps_float64():
    torch.manual_seed(0)
    module = TPPModule(backbone=dict(kind="aaren", d_model=8, n_layers=1, n_heads=1, d_ff=8, dropout=0.0),
                       optim=dict(name="adam", lr=1e-3), num_marks=3, n_components=2).double().eval()
    dist, marks = module.decode(torch.randn(2, 4, 8, dtype=torch.float64))
    assert marks.dtype == dist.loc.dtype == torch.float64


def test_retest_reproduces_a_bf16_record_and_measures_it_in_fp32(tmp_path):
    """scripts/retest.py: the run's tested checkpoint tested again at both precisions; the bf16-mixed pass is the
    record's own computation (equal metrics), the fp32 pass differs by rounding only."""
    from scripts.retest import retest
    overrides = ["experiment=smoke/forecasting", BF16]
    record = run_in_process(tmp_path, overrides)
    run_dir = identity.run_dir(compose_config([*overrides, *path_overrides(tmp_path)]), record["run_id"])
    result = retest(run_dir)
    assert (result["task"], result["trained_at"]) == ("forecasting", "bf16-mixed")
    assert result["checkpoint"].startswith("best")                  # the checkpoint the harness tested
    assert result["record_metrics"] == record["metrics"]
    assert result["metrics"]["bf16-mixed"] == pytest.approx(record["metrics"], rel=1e-6)
    assert result["metrics"]["32-true"] == pytest.approx(record["metrics"], rel=0.05)
    assert set(result["rel_diff"]) == set(record["metrics"]) and max(result["rel_diff"].values()) < 0.05
    with pytest.raises(SystemExit, match="no such key"):
        retest(run_dir, overrides={"task.datamodule.drop_last_tset": True})
    (run_dir / "fit_done.json").unlink()
    with pytest.raises(SystemExit, match="has not finished training"):
        retest(run_dir)


def test_retest_with_tslibs_drop_last_test_loader_leaves_out_exactly_the_last_partial_batch(tmp_path):
    """--set task.datamodule.drop_last_test=true: TSLib's paper-era test loader (batch 32, drop_last). ETTh1 at
    96/96 has 2785 test windows, so it scores 2784: the full-set MSE is their mean with the last window's."""
    from scripts.retest import retest
    record = run_in_process(tmp_path, ["experiment=smoke/forecasting"])
    run_dir = identity.run_dir(compose_config(["experiment=smoke/forecasting", *path_overrides(tmp_path)]),
                               record["run_id"])
    every = {"task.trainer.limit_test_batches": 1.0}
    full, kept = (retest(run_dir, ("32-true",), every | {"task.datamodule.drop_last_test": drop})["metrics"]["32-true"]
                  for drop in (False, True))
    cfg = OmegaConf.load(run_dir / "config.yaml")
    datamodule = hydra.utils.instantiate(cfg.task.datamodule, _convert_="all")
    datamodule.setup("test")
    module = hydra.utils.instantiate(cfg.task.module, _convert_="all").eval()
    [best] = (run_dir / "checkpoints").glob("best-*.ckpt")
    module.load_state_dict(torch.load(best, weights_only=True)["state_dict"])
    windows = datamodule.windows["test"]
    x, x_mark, y = (t.unsqueeze(0) for t in windows[len(windows) - 1])
    with torch.no_grad():
        last = torch.nn.functional.mse_loss(module(x, x_mark), y).item()
    assert len(windows) == 2785 and kept["mse"] != full["mse"]
    assert full["mse"] == pytest.approx((2784 * kept["mse"] + last) / 2785, rel=1e-5)
