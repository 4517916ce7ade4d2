"""D4RL HDF5 → trajectories → Decision Transformer training windows (min-decision-transformer's protocol).

1. `read_d4rl_hdf5` (data layer) reads and validates the file; here its observation / action widths are checked
   against the environment, and it is split into trajectories at `terminals | timeouts`. An unfinished last
   trajectory (no flag: the file was cut at its size) is dropped, as DT's D4RL loader does.
2. Return-to-go R̂_t = Σ_{t'≥t} r_t' (undiscounted), divided by `rtg_scale`. States are standardised with the
   dataset's mean and std (+1e-6), computed over every state of the kept trajectories.
3. A training item (`trajectory_sampling`), drawn afresh for each batch (`updates_per_epoch` batches make an
   epoch) from torch's generator, which the harness seeds:
   - "uniform" (ours, with replacement): a trajectory drawn uniformly, a window of K consecutive timesteps drawn
     uniformly inside it (shorter trajectories: the whole of it, right-padded with zeros and masked);
   - "length_proportional" (kzl's decision-transformer, gym/experiment.py get_batch): a trajectory drawn with
     probability T_i / Σ T, its window starting at any of its T timesteps, so windows near the end are cut short;
     kzl left-pads them, we right-pad and mask (the same outputs on the valid steps: masks act inside attention).
"""
from collections.abc import Mapping
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tasks.errors import ConfigError

from .d4rl_format import PROVENANCE, episode_ends
from .envs import env_spec

STD_EPS = 1e-6  # added to the state std (min-decision-transformer)
SAMPLINGS = ("uniform", "length_proportional")


@dataclass
class Trajectory:
    observations: np.ndarray   # (T, S) float32
    actions: np.ndarray        # (T, A) float32
    rewards: np.ndarray        # (T,) float32


def split_trajectories(arrays: Mapping, *, source, env_name: str) -> list[Trajectory]:
    """Flat D4RL arrays → finished trajectories; raises DatasetFormatError naming `source` on a misfit."""
    from tasks.datasets.errors import DatasetFormatError

    spec = env_spec(env_name)
    obs, actions = arrays["observations"], arrays["actions"]
    if obs.shape[1] != spec.obs_dim:
        raise DatasetFormatError(source, f"observations have {obs.shape[1]} dims but {env_name} ({spec.gym_id}, "
                                         f"D4RL layout) has {spec.obs_dim}")
    if actions.shape[1] != spec.act_dim:
        raise DatasetFormatError(source, f"actions have {actions.shape[1]} dims but {env_name} has {spec.act_dim}")
    ends = episode_ends(arrays["terminals"], arrays["timeouts"])
    if len(ends) == 0:
        raise DatasetFormatError(source, "no finished trajectory (no terminals or timeouts set)")
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [Trajectory(obs[s:e + 1], actions[s:e + 1], arrays["rewards"][s:e + 1]) for s, e in zip(starts, ends)]


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """R̂_t = Σ_{t' ≥ t} r_t' (float64 sum, returned as float32)."""
    return np.cumsum(rewards[::-1], dtype=np.float64)[::-1].astype(np.float32)


def check_provenance(path, expected: str | None) -> None:
    """The config's provenance label (recorded with results) must match the file: a regenerated file carries
    the attribute provenance = "regenerated, not D4RL"; D4RL's own files carry none."""
    from tasks.datasets.errors import DatasetFormatError
    from tasks.datasets.readers.d4rl import read_hdf5_attr

    if expected is None:
        return
    regenerated = read_hdf5_attr(path, "provenance") == PROVENANCE
    if regenerated != (expected == PROVENANCE):
        found = "regenerated (provenance attribute)" if regenerated else "not labelled regenerated"
        raise DatasetFormatError(path, f"the dataset config labels it {expected!r} but the file is {found}")


class TrajectoryWindows(Dataset):
    """Random K-step windows. Item: (rtg (K, 1), states (K, S), actions (K, A), timesteps (K,) long, mask (K,))."""

    def __init__(self, trajectories: list[Trajectory], *, context_len: int, rtg_scale: float,
                 state_mean: np.ndarray, state_std: np.ndarray, n_items: int, sampling: str = "uniform"):
        if sampling not in SAMPLINGS:
            raise ValueError(f"trajectory_sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        self.context_len, self.n_items, self.sampling = context_len, n_items, sampling
        self.lengths = torch.tensor([len(t.rewards) for t in trajectories], dtype=torch.float64)   # (n_traj,)
        self.states = [torch.as_tensor((t.observations - state_mean) / state_std, dtype=torch.float32)
                       for t in trajectories]
        self.actions = [torch.as_tensor(t.actions) for t in trajectories]
        self.rtg = [torch.as_tensor(returns_to_go(t.rewards) / rtg_scale).unsqueeze(-1) for t in trajectories]

    def __len__(self) -> int:
        return self.n_items

    def window(self, index: int, start: int):
        """Trajectory `index` from `start`: K steps, zero right-padded and masked when the trajectory is shorter."""
        K, T = self.context_len, len(self.states[index])
        stop = min(start + K, T)
        pad = K - (stop - start)

        def take(x):
            return torch.cat([x[start:stop], x.new_zeros((pad, *x.shape[1:]))])

        mask = torch.arange(K) < stop - start
        timesteps = torch.where(mask, torch.arange(start, start + K), torch.zeros(K, dtype=torch.long))
        return take(self.rtg[index]), take(self.states[index]), take(self.actions[index]), timesteps, mask

    def __getitem__(self, _):
        if self.sampling == "length_proportional":
            index = int(torch.multinomial(self.lengths, 1))
            return self.window(index, int(torch.randint(len(self.states[index]), ())))
        index = int(torch.randint(len(self.states), ()))
        T = len(self.states[index])
        start = int(torch.randint(T - self.context_len + 1, ())) if T >= self.context_len else 0
        return self.window(index, start)


class FixedWindows(Dataset):
    """A fixed, seeded set of windows (validation loss): the same items every epoch."""

    def __init__(self, windows: TrajectoryWindows, *, n_items: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n_items):
            index = int(torch.randint(len(windows.states), (), generator=generator))
            T = len(windows.states[index])
            high = max(T - windows.context_len + 1, 1)
            self.items.append(windows.window(index, int(torch.randint(high, (), generator=generator))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _OneItem(Dataset):
    """The test loop's single placeholder batch: the test step runs the environment evaluation itself."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i):
        return torch.zeros(1)


class D4RLDataModule(L.LightningDataModule):
    """dataset: the conf/dataset node {name, env, level, file, ...}; data_root: <root>/rl/<name>/<file>.

    Validation loss is measured on `val_windows` fixed windows drawn from the same trajectories (D4RL has no
    held-out split and DT trains on all of it); the environment evaluation is the module's job.
    """

    def __init__(self, *, dataset: Mapping, data_root: str | None = None, context_len: int = 20,
                 rtg_scale: float = 1000.0, batch_size: int = 64, updates_per_epoch: int = 1000,
                 val_windows: int = 1024, seed: int = 0, num_workers: int = 0,
                 trajectory_sampling: str = "uniform"):
        super().__init__()
        self.dataset = dict(dataset)
        self.env_name = self.dataset["env"]
        env_spec(self.env_name)
        self.data_root, self.context_len, self.rtg_scale = data_root, context_len, rtg_scale
        self.batch_size, self.updates_per_epoch, self.val_windows = batch_size, updates_per_epoch, val_windows
        self.seed, self.num_workers = seed, num_workers
        if trajectory_sampling not in SAMPLINGS:
            raise ConfigError(f"task.datamodule.trajectory_sampling must be one of {list(SAMPLINGS)}, "
                              f"got {trajectory_sampling!r}")
        self.trajectory_sampling = trajectory_sampling
        self.train_windows = None

    def file(self):
        from tasks.datasets.registry import locate

        return locate(self.dataset["name"], root=self.data_root) / self.dataset["file"]

    def setup(self, stage: str | None = None) -> None:
        if self.train_windows is not None:
            return
        from tasks.datasets.readers import read_d4rl_hdf5

        path = self.file()
        check_provenance(path, self.dataset.get("provenance"))
        self.trajectories = split_trajectories(read_d4rl_hdf5(path), source=path, env_name=self.env_name)
        states = np.concatenate([t.observations for t in self.trajectories])
        self.state_mean = states.mean(axis=0).astype(np.float32)
        self.state_std = (states.std(axis=0) + STD_EPS).astype(np.float32)
        self.train_windows = TrajectoryWindows(
            self.trajectories, context_len=self.context_len, rtg_scale=self.rtg_scale, state_mean=self.state_mean,
            state_std=self.state_std, n_items=self.updates_per_epoch * self.batch_size,
            sampling=self.trajectory_sampling)
        self.fixed_val = FixedWindows(self.train_windows, n_items=self.val_windows, seed=self.seed)

    def data_statistics(self) -> dict:
        """What the model needs from the training data (the harness hands it to `module.set_data_statistics`)."""
        return {"state_mean": self.state_mean, "state_std": self.state_std}

    def data_fingerprint(self) -> dict:
        """Which file the run read (recorded with its results): regenerated files differ between rebuilds."""
        from tasks.datasets.download import sha256_of
        from tasks.datasets.readers.d4rl import read_hdf5_attr

        path = self.file()
        created = read_hdf5_attr(path, "created_utc")
        return {"file": f"{path.parent.name}/{path.name}", "bytes": path.stat().st_size, "sha256": sha256_of(path),
                "created_utc": None if created is None else str(created),
                "trajectories": len(self.trajectories),
                "transitions": int(sum(len(t.rewards) for t in self.trajectories))}

    def train_dataloader(self):
        return DataLoader(self.train_windows, batch_size=self.batch_size, num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(self.fixed_val, batch_size=self.batch_size, num_workers=self.num_workers)

    def test_dataloader(self):
        return DataLoader(_OneItem(), batch_size=1)
