"""Optimizer and learning-rate schedule from a plain config dict (shared by every task).

optim = {name: adam|adamw|radam, lr, weight_decay, betas: [b1, b2] (optional), eps (optional, torch's default),
         schedule: {name: none|halve_each_epoch|tslib_type1|tslib_type1_every_5_epochs|linear_warmup,
                    warmup_steps: int (linear_warmup only)}}
- halve_each_epoch: lr_e = lr · 0.5^e during epoch e (0-based): lr, lr/2, lr/4, ...
- tslib_type1: TSLib's long-horizon loop exactly: after each epoch it calls adjust_learning_rate(epoch + 1), type1
  sets lr · 0.5^((epoch + 1) − 1), so the first two epochs both run at lr: lr, lr, lr/2, lr/4, ...
- tslib_type1_every_5_epochs: TSLib's classification loop before its 2024-07-14 change (commit 1c7f843) called
  adjust_learning_rate(type1) only after every 5th epoch: after epoch e (1-based, e % 5 == 0) lr = lr · 0.5^(e − 1),
  i.e. lr for epochs 1–5, lr/16 for 6–10 (6.25e-5 at 1e-3), lr/512 for 11–15 (≈ 1.95e-6), lr/2^14 for 16–20, ...
- linear_warmup: lr_t = lr · min((t + 1) / warmup_steps, 1) per optimizer step (Decision Transformer).
"""
from collections.abc import Mapping

import torch

from tasks.errors import ConfigError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}
SCHEDULES = ("none", "halve_each_epoch", "tslib_type1", "tslib_type1_every_5_epochs", "linear_warmup")
OPTIM_KEYS = {"name", "lr", "weight_decay", "betas", "eps", "schedule"}


def _positive_number(value, key: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"optim.{key} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"optim.{key} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def check_optim(optim: Mapping) -> dict:
    """Validate an optim dict and return a normalised copy; raises ConfigError naming the bad key."""
    if not isinstance(optim, Mapping):
        raise ConfigError(f"optim must be a mapping, got {type(optim).__name__}")
    unknown = set(optim) - OPTIM_KEYS
    if unknown:
        raise ConfigError(f"optim: unknown keys {sorted(unknown)}; allowed: {sorted(OPTIM_KEYS)}")
    name = optim.get("name")
    if name not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    out = {"name": name, "lr": _positive_number(optim.get("lr"), "lr"),
           "weight_decay": _positive_number(optim.get("weight_decay", 0.0), "weight_decay", allow_zero=True)}
    if optim.get("betas") is not None:
        betas = list(optim["betas"])
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {optim['betas']!r}")
        out["betas"] = tuple(float(b) for b in betas)
    if optim.get("eps") is not None:
        out["eps"] = _positive_number(optim["eps"], "eps")
    schedule = dict(optim.get("schedule") or {"name": "none"})
    if schedule.get("name", "none") not in SCHEDULES:
        raise ConfigError(f"optim.schedule.name must be one of {list(SCHEDULES)}, got {schedule.get('name')!r}")
    schedule.setdefault("name", "none")
    if schedule["name"] == "linear_warmup":
        steps = schedule.get("warmup_steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"optim.schedule.warmup_steps must be a positive int, got {steps!r}")
    out["schedule"] = schedule
    return out


def tslib_every_5_epochs_factor(epochs_done: int) -> float:
    """lr multiplier while training epoch `epochs_done` + 1: the last type1 update happened after epoch
    j = 5 · ⌊epochs_done / 5⌋ and set lr · 0.5^(j − 1); none yet while j = 0."""
    last_update = 5 * (epochs_done // 5)
    return 1.0 if last_update == 0 else 0.5 ** (last_update - 1)


# lr multiplier while training epoch `epochs_done` + 1, per epoch-wise schedule
EPOCH_FACTORS = {"halve_each_epoch": lambda epochs_done: 0.5 ** epochs_done,
                 "tslib_type1": lambda epochs_done: 0.5 ** max(epochs_done - 1, 0),
                 "tslib_type1_every_5_epochs": tslib_every_5_epochs_factor}


def build_optimizer(parameters, optim: Mapping):
    """Return what LightningModule.configure_optimizers returns: an optimizer, or {optimizer, lr_scheduler}."""
    optim = check_optim(optim)
    kwargs = {"lr": optim["lr"], "weight_decay": optim["weight_decay"]}
    kwargs.update({key: optim[key] for key in ("betas", "eps") if key in optim})
    optimizer = OPTIMIZERS[optim["name"]](parameters, **kwargs)
    schedule = optim["schedule"]
    if schedule["name"] == "none":
        return optimizer
    if schedule["name"] in EPOCH_FACTORS:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, EPOCH_FACTORS[schedule["name"]])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    warmup = schedule["warmup_steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min((step + 1) / warmup, 1.0))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
