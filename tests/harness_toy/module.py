"""Toy task module: linear embedding → backbone → linear head; logs val/loss and test/{mse, mae}.

Env HARNESS_TOY_STEP_DELAY_S (seconds per training step) slows training down so a test can kill it mid-run.
"""
import os
import time

from torch import nn

from tasks.base.module import TaskModule


class ToyModule(TaskModule):
    def __init__(self, *, backbone: dict, optim: dict, n_features: int):
        super().__init__(backbone=backbone, optim=optim)
        self.backbone = self.build_backbone()
        self.embed = nn.Linear(n_features, backbone["d_model"])
        self.head = nn.Linear(backbone["d_model"], n_features)
        self.step_delay_s = float(os.environ.get("HARNESS_TOY_STEP_DELAY_S", "0"))

    def forward(self, x):                                   # x (B, N, C) → (B, N, C)
        return self.head(self.backbone(self.embed(x)))

    def training_step(self, batch, batch_idx):
        time.sleep(self.step_delay_s)
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self(x), y), sync_dist=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        error = self(x) - y
        self.log_test_metrics({"mse": error.pow(2).mean(), "mae": error.abs().mean()})
