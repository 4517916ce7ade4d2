"""TaskModule: the backbone and the optimizer / lr schedule every task gets from its config."""
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.errors import ConfigError  # noqa: E402
from tasks.base.module import TaskModule  # noqa: E402
from tasks.base.optim import build_optimizer  # noqa: E402

BACKBONE = {"kind": "aaren", "d_model": 8, "n_layers": 1, "n_heads": 2, "d_ff": 16, "dropout": 0.0}


def _lrs(schedule: dict, steps: int) -> list[float]:
    out = build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "adam", "lr": 1.0, "schedule": schedule})
    optimizer, scheduler = out["optimizer"], out["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_schedules():
    assert _lrs({"name": "halve_each_epoch"}, 4) == [1.0, 0.5, 0.25, 0.125]
    assert _lrs({"name": "linear_warmup", "warmup_steps": 4}, 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "radam", "lr": 0.1}).__class__ \
        is torch.optim.RAdam


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_task_module_builds_the_backbone_and_optimizer(kind):
    module = TaskModule(backbone={**BACKBONE, "kind": kind},
                        optim={"name": "adamw", "lr": 1e-3, "weight_decay": 0.1, "betas": [0.9, 0.95]})
    assert module.backbone.kind == kind and module.backbone(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95) and optimizer.param_groups[0]["weight_decay"] == 0.1


@pytest.mark.parametrize("optim,message", [
    ({"name": "adam"}, "optim.lr"), ({"name": "adam", "lr": 0}, "optim.lr"), ({"name": "sgd", "lr": 1}, "optim.name"),
    ({"name": "adam", "lr": 1, "weight_decay": -1}, "optim.weight_decay"),
    ({"name": "adam", "lr": 1, "momentum": 0.9}, "unknown keys"),
    ({"name": "adam", "lr": 1, "betas": [0.9]}, "optim.betas"),
    ({"name": "adam", "lr": 1, "schedule": {"name": "linear_warmup"}}, "warmup_steps"),
])
def test_bad_optim_is_named(optim, message):
    with pytest.raises(ConfigError, match=message):
        TaskModule(backbone=BACKBONE, optim=optim)
