"""A tiny real run (CleanRL style): both models learn a generated UEA-format problem; and the task config
records its protocol switches."""
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from tasks.classification.data import UEADataModule
from tasks.classification.module import ClassificationModule
from tests.fixtures import make_ts_pair

NAME = "SelfRegulationSCP2"  # a registered name without recorded file sizes: generated files stand in for it
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_both_models_learn_a_small_problem(tmp_path, kind):
    make_ts_pair(tmp_path / "classification" / NAME, NAME, n_train=48, n_test=24, n_dims=2, lengths=(10, 16),
                 n_classes=3, seed=0)
    dm = UEADataModule(dataset={"name": NAME, "max_length": 16}, data_root=str(tmp_path), batch_size=8, seed=0)
    L.seed_everything(0)
    module = ClassificationModule(backbone=dict(kind=kind, d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0),
                                  optim=dict(name="radam", lr=1e-2), n_channels=2, n_classes=3, max_length=16)
    trainer = L.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=4.0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    (metrics,) = trainer.test(module, datamodule=dm, verbose=False)
    assert set(metrics) == {"test/accuracy", "test/loss"}
    assert metrics["test/accuracy"] >= 0.75  # chance is 1/3; frequencies 1, 2, 3 are easy to tell apart


def test_the_task_config_records_its_protocol():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["task=classification", "dataset=EthanolConcentration",
                                          "task.datamodule.validation=test"])
    protocol = cfg.task.protocol
    assert protocol.validation == "test" and protocol.normalisation == "train" and protocol.pooling == "flatten"
    assert protocol.instance_norm is True and cfg.task.datamodule.seed == cfg.seed
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["task=classification", "dataset=PEMS-SF"])
    assert cfg.task.protocol.instance_norm is False and cfg.task.module.n_channels == 963


def test_paper_era_tslib_schedule_steps_the_lr_after_every_fifth_epoch():
    from tasks.base.optim import build_optimizer

    out = build_optimizer([torch.nn.Parameter(torch.zeros(1))],
                          {"name": "radam", "lr": 1e-3, "schedule": {"name": "tslib_type1_every_5_epochs"}})
    optimizer, scheduler = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "epoch"
    lrs = []
    for _ in range(16):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # TSLib before 1c7f843: after epoch e with e % 5 == 0, lr = 1e-3 · 0.5^(e − 1)
    expected = [1e-3] * 5 + [6.25e-5] * 5 + [1e-3 * 0.5 ** 9] * 5 + [1e-3 * 0.5 ** 14]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_the_tslib_lr_experiment_changes_only_the_schedule():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        base = compose("train", overrides=["task=classification", "dataset=Handwriting"])
        tslib = compose("train", overrides=["experiment=cpu/classification_tslib_lr", "dataset=Handwriting"])
    assert tslib.task.module.optim.schedule.name == "tslib_type1_every_5_epochs"
    tslib.task.module.optim.schedule.name = "none"
    assert tslib.task == base.task
