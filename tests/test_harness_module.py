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
    assert _lrs({"name": "tslib_type1"}, 5) == [1.0, 1.0, 0.5, 0.25, 0.125]     # TSLib: adjust(epoch + 1) after each
    assert _lrs({"name": "linear_warmup", "warmup_steps": 4}, 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "radam", "lr": 0.1}).__class__ \
        is torch.optim.RAdam


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_task_module_builds_the_backbone_and_optimizer(kind):
    module = TaskModule(backbone={**BACKBONE, "kind": kind},
                        optim={"name": "adamw", "lr": 1e-3, "weight_decay": 0.1, "betas": [0.9, 0.95]})
    backbone = module.build_backbone()
    assert backbone.kind == kind and backbone(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    assert backbone is not module.build_backbone()   # a new one each call; the subclass decides where it lives
    module.backbone = backbone
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


def _task_modules(kind):
    """Each task's module at a tiny size: name → (constructor, backbone config)."""
    from tasks.classification.module import ClassificationModule
    from tasks.forecasting.module import ForecastingModule
    from tasks.rl.module import DecisionTransformerModule
    from tasks.tpp.module import TPPModule
    backbone, optim = {**BACKBONE, "kind": kind}, {"name": "adam", "lr": 1e-3}
    return {
        "forecasting": lambda: ForecastingModule(backbone=backbone, optim=optim, channels=3, time_feature_freq="h",
                                                 seq_len=8, horizon=4),
        "classification": lambda: ClassificationModule(backbone=backbone, optim=optim, n_channels=3, n_classes=4,
                                                       max_length=8),
        "tpp": lambda: TPPModule(backbone=backbone, optim=optim, num_marks=5, n_components=2),
        "rl": lambda: DecisionTransformerModule(backbone=backbone, optim=optim, env="hopper", max_timestep=50,
                                                context_len=4, rtg_scale=1000.0, target_return=3600.0,
                                                eval_episodes_val=1, eval_episodes_test=1),
    }, backbone


@pytest.mark.parametrize("task", ["forecasting", "classification", "tpp", "rl"])
@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_every_task_builds_its_backbone_first(task, kind):
    """TaskModule's contract: the backbone takes the seed's first draws in every task, so a seed initialises the
    same backbone whichever task wraps it (and a refactor of a module cannot silently change a seed's run)."""
    import aaren
    builders, config = _task_modules(kind)
    torch.manual_seed(0)
    module = builders[task]()
    torch.manual_seed(0)
    reference = aaren.Backbone(**config)
    got, want = module.backbone.state_dict(), reference.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert sum(p.numel() for p in module.parameters()) > sum(p.numel() for p in reference.parameters())
    names = [name for name, _ in module.named_parameters()]   # stored once, under one prefix
    assert len(names) == len(set(names)) and len([n for n in names if ".backbone." in f".{n}"]) == len(want)
