"""ClassificationModule: embedding → shared causal aaren.Backbone → head over valid positions; cross-entropy.

Batches are (x (B, N, C) standardised and right-padded with zeros, mask (B, N) bool True=valid, y (B,) int64).
The padding mask goes into the backbone (the scan gives padded steps no weight; self-attention never attends to
them) and into the head. Logs `val/loss`, `val/accuracy` and `test/loss`, `test/accuracy` (accuracy on TEST is the
paper's metric).
"""
from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from tasks.base.module import TaskModule

from .model import ClassificationHead, SeriesEmbedding


class ClassificationModule(TaskModule):
    """Keyword-only: backbone, optim (TaskModule), n_channels, n_classes, max_length (longest series of the
    dataset, sizes the flatten head), pooling ("flatten" | "last", see model.py)."""

    def __init__(self, *, backbone: Mapping, optim: Mapping, n_channels: int, n_classes: int, max_length: int,
                 pooling: str = "flatten"):
        super().__init__(backbone=backbone, optim=optim)
        self.backbone = self.build_backbone()
        self.save_hyperparameters()
        d_model, dropout = self.backbone_config["d_model"], self.backbone_config.get("dropout", 0.1)
        self.embedding = SeriesEmbedding(n_channels=n_channels, d_model=d_model, dropout=dropout)
        self.head = ClassificationHead(d_model=d_model, n_classes=n_classes, pooling=pooling,
                                       max_length=max_length, dropout=dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, C), mask (B, N) bool True=valid → logits (B, K)"""
        return self.head(self.backbone(self.embedding(x), mask), mask)

    def _loss_and_correct(self, batch):
        x, mask, y = batch
        logits = self(x, mask)  # (B, K)
        return F.cross_entropy(logits, y), (logits.argmax(dim=-1) == y).float()

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss_and_correct(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[2].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        self._log_eval("val", batch)

    def test_step(self, batch, batch_idx):
        self._log_eval("test", batch)

    def _log_eval(self, split: str, batch) -> None:
        # Per-batch means weighted by batch size: Lightning's epoch reduction gives the means over all cases.
        loss, correct = self._loss_and_correct(batch)
        size = batch[2].shape[0]
        self.log(f"{split}/loss", loss, batch_size=size, prog_bar=split == "val")
        self.log(f"{split}/accuracy", correct.mean(), batch_size=size, prog_bar=split == "val")
