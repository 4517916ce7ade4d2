"""TaskModule: the LightningModule every task subclasses. It checks the backbone and optimizer configs, builds the
backbone when the task asks (`build_backbone`) and the optimizer.

A task module adds its embeddings and heads, logs `val/loss` (and whatever `task.monitor` names) in validation
and every test metric as `test/<metric>`; the harness records exactly the `test/*` values (tasks/README.md).
"""
import inspect
from collections.abc import Mapping
from contextlib import nullcontext

import aaren
import lightning as L

from tasks.errors import ConfigError

from .optim import build_optimizer, check_optim


def check_backbone(backbone: Mapping) -> dict:
    """Names the config keys aaren.Backbone does not take; aaren.Backbone itself checks the values (ValueError)."""
    if not isinstance(backbone, Mapping):
        raise ConfigError(f"backbone must be a mapping, got {type(backbone).__name__}")
    allowed = set(inspect.signature(aaren.Backbone).parameters)
    unknown = set(backbone) - allowed
    if unknown:
        raise ConfigError(f"backbone: unknown keys {sorted(unknown)}; aaren.Backbone takes {sorted(allowed)}")
    return dict(backbone)


class TaskModule(L.LightningModule):
    """Base of every task's LightningModule: the checked configs, `build_backbone()` and the optimizer/schedule.

    backbone: {kind: aaren|transformer, d_model, n_layers, n_heads, d_ff, dropout, norm_first, activation}
    optim:    {name: adam|adamw|radam, lr, weight_decay, betas?, schedule: {name, warmup_steps?}} (optim.py)

    Contract: a subclass builds its backbone first, right after `super().__init__` (the seed's draws then go to the
    backbone first, whichever task), and exposes it as `self.backbone`: the attribute itself
    (`self.backbone = self.build_backbone()`), or a property where a task model of its own holds it (the DT keeps
    it inside its policy, `self.dt.backbone`, so that each weight is stored once). Streaming, export and the
    benchmarks read `module.backbone`.
    """

    # which of the run's checkpoints the harness tests: "best" (by task.checkpoint_monitor, else task.monitor) or
    # "last" (for a module that keeps and tests its own snapshots in every checkpoint, like the DT's best and last)
    tested_checkpoint = "best"

    def __init__(self, *, backbone: Mapping, optim: Mapping):
        super().__init__()
        self.backbone_config = check_backbone(backbone)
        self.optim_config = check_optim(optim)

    def build_backbone(self) -> aaren.Backbone:
        """A new aaren.Backbone of the checked config (Aaren or the causal Transformer, `kind`)."""
        return aaren.Backbone(**self.backbone_config)

    def set_data_statistics(self, **statistics) -> None:
        """Adopt the training data's statistics, `datamodule.data_statistics()` (the harness calls this at fit, for
        a datamodule that has them). A module that needs them (the DT's state mean/std) overrides this."""
        raise ConfigError(f"{type(self).__name__} takes no data statistics, got {sorted(statistics)}")

    def configure_optimizers(self):
        return build_optimizer(self.parameters(), self.optim_config)

    def precision_context(self):
        """The trainer's precision (`trainer.precision`, e.g. bf16-mixed → autocast) for model calls Lightning does
        not wrap itself (it wraps *_step only): evaluation in epoch-end hooks. Outside a trainer: no change."""
        return self.trainer.precision_plugin.forward_context() if self._trainer is not None else nullcontext()

    def log_test_metrics(self, metrics: Mapping[str, float], **kwargs) -> None:
        """Log {name: value} as `test/<name>`, what the harness records. kwargs go to `self.log_dict`."""
        kwargs.setdefault("sync_dist", True)  # under DDP: the mean over ranks, not rank 0 alone
        self.log_dict({f"test/{name}": value for name, value in metrics.items()}, **kwargs)
