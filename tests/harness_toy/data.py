"""Generated multichannel waves; the target is the series one step ahead."""
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

WAVES = {"sine": torch.sin, "square": lambda t: torch.sign(torch.sin(t))}


class ToyDataModule(L.LightningDataModule):
    def __init__(self, *, dataset: dict, data_root: str, batch_size: int, n_series: int, length: int,
                 noise: float, seed: int):
        super().__init__()
        if dataset["wave"] not in WAVES:
            raise ValueError(f"toy dataset {dataset['name']}: wave must be one of {sorted(WAVES)}")
        self.dataset, self.batch_size = dataset, batch_size
        self.n_series, self.length, self.noise, self.seed = n_series, length, noise, seed

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        channels = self.dataset["n_features"]
        phase = torch.rand(self.n_series, 1, channels, generator=generator) * 6.28
        t = torch.arange(self.length + 1).view(1, -1, 1) * 0.3 + phase        # (S, N + 1, C)
        series = WAVES[self.dataset["wave"]](t) + self.noise * torch.randn(t.shape, generator=generator)
        x, y = series[:, :-1], series[:, 1:]                                  # (S, N, C) each
        n_train, n_val = int(0.6 * self.n_series), int(0.2 * self.n_series)
        self.splits = {"train": TensorDataset(x[:n_train], y[:n_train]),
                       "val": TensorDataset(x[n_train:n_train + n_val], y[n_train:n_train + n_val]),
                       "test": TensorDataset(x[n_train + n_val:], y[n_train + n_val:])}

    def train_dataloader(self):
        return DataLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.splits["val"], batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.splits["test"], batch_size=self.batch_size)
