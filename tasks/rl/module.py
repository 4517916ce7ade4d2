"""DecisionTransformerModule: DT tokens → shared causal aaren.Backbone → tanh action head, trained by action MSE.

Training (min-decision-transformer): batches of K-timestep windows; loss = mean squared error between predicted
and dataset actions over valid (unpadded) timesteps. Validation: `val/loss` on fixed windows, then (outside the
sanity check) `eval_episodes_val` episodes in the environment (mode `val_mode`), logged as
`val/normalized_score` and `val/return`; each validation also logs the learning-curve names `val/action_mse`
(= `val/loss`, the action MSE on the fixed windows) and `val/score` (= `val/normalized_score`). The module
keeps two weight snapshots, stored in its checkpoints: `last` (the latest validation) and `best` (highest `val/normalized_score`, the DT papers' report).
Test: for each snapshot and each mode, `eval_episodes_test` episodes on other reset seeds, logged as
`test/<snapshot>_<mode>_<metric>` (normalized_score, normalized_score_std, return, episode_length, and for
stream: step_latency_ms and state_bytes_per_episode; window: step_latency_ms). When `best` is the last
validation's snapshot (the same weights), its episodes are run once and reported under both names.
"""
import copy
from collections.abc import Mapping

import torch.nn.functional as F

from tasks.base.module import TaskModule

from .envs import env_spec
from .evaluate import MODES, evaluate
from .model import DecisionTransformer

SNAPSHOTS = ("last", "best")


class DecisionTransformerModule(TaskModule):
    """Keyword-only: backbone, optim (TaskModule); env (D4RL env key); max_timestep (size of the timestep
    embedding); context_len K; rtg_scale; target_return (R̂_0 of evaluation); eval settings.
    The harness tests the run's last checkpoint (`tested_checkpoint`): it holds both snapshots, best and last."""
    tested_checkpoint = "last"

    def __init__(self, *, backbone: Mapping, optim: Mapping, env: str, max_timestep: int, context_len: int,
                 rtg_scale: float, target_return: float, eval_episodes_val: int, eval_episodes_test: int,
                 val_mode: str = "window", test_modes=MODES, eval_seed_val: int = 0, eval_seed_test: int = 10_000):
        super().__init__(backbone=backbone, optim=optim)
        backbone_module = self.build_backbone()   # first, as every task (TaskModule): the seed's first draws
        self.save_hyperparameters()
        spec = env_spec(env)
        for mode in (val_mode, *test_modes):
            if mode not in MODES:
                raise ValueError(f"DecisionTransformerModule: unknown evaluation mode {mode!r}; expected {MODES}")
        self.env_name, self.context_len, self.rtg_scale, self.target_return = env, context_len, rtg_scale, target_return
        # the DT owns the backbone (one copy of each weight: its keys are dt.backbone.*)
        self.dt = DecisionTransformer(backbone=backbone_module, state_dim=spec.obs_dim,
                                      act_dim=spec.act_dim, max_timestep=max_timestep)
        self.snapshots: dict = {}   # name → {"step", "score", "weights"}

    @property
    def backbone(self):
        """TaskModule's accessor: the backbone lives inside the policy."""
        return self.dt.backbone

    def set_data_statistics(self, *, state_mean, state_std) -> None:
        """The training data's state statistics (the harness hands over `datamodule.data_statistics()` at fit);
        they are the DT's buffers, so they travel with the weights and every snapshot."""
        self.dt.set_state_statistics(state_mean, state_std)

    def forward(self, rtg, states, actions, timesteps, mask=None):
        """rtg (B, T, 1), states (B, T, S), actions (B, T, A), timesteps (B, T), mask (B, T) → actions (B, T, A)."""
        return self.dt(rtg, states, actions, timesteps, mask)

    def _action_loss(self, batch):
        rtg, states, actions, timesteps, mask = batch
        predicted = self(rtg, states, actions, timesteps, mask)
        return F.mse_loss(predicted[mask], actions[mask])

    def training_step(self, batch, batch_idx):
        loss = self._action_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._action_loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        self.log("val/action_mse", loss, batch_size=batch[0].shape[0])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        result = self.run_evaluation(self.hparams.val_mode, self.hparams.eval_episodes_val,
                                     self.hparams.eval_seed_val)
        score = result["normalized_score"]
        self.log("val/normalized_score", score, prog_bar=True)
        self.log("val/score", score)
        self.log("val/return", result["return_mean"])
        weights = copy.deepcopy({k: v.detach().cpu() for k, v in self.state_dict().items()})
        self.snapshots["last"] = {"step": self.global_step, "score": score, "weights": weights}
        if "best" not in self.snapshots or score > self.snapshots["best"]["score"]:
            self.snapshots["best"] = {"step": self.global_step, "score": score, "weights": weights}

    def run_evaluation(self, mode: str, n_episodes: int, seed: int) -> dict:
        """Episodes at the trainer's precision, in validation (an epoch-end hook) as in test."""
        with self.precision_context():
            return evaluate(self.dt, env_name=self.env_name, mode=mode, n_episodes=n_episodes,
                            target_return=self.target_return, rtg_scale=self.rtg_scale,
                            context_len=self.context_len, seed=seed)

    def test_step(self, batch, batch_idx):
        current = {k: v.detach().clone() for k, v in self.state_dict().items()}
        snapshots = self.snapshots or {"last": {"step": self.global_step, "score": float("nan"), "weights": current}}
        metrics, evaluated = {}, {}  # evaluated: snapshot step → {mode: result}
        for name in SNAPSHOTS:
            if name not in snapshots:
                continue
            step = snapshots[name]["step"]
            metrics[f"{name}_step"] = float(step)
            if step not in evaluated:  # best taken at the last validation: the same weights, evaluated once
                self.load_state_dict(snapshots[name]["weights"])
                evaluated[step] = {mode: self.run_evaluation(mode, self.hparams.eval_episodes_test,
                                                             self.hparams.eval_seed_test)
                                   for mode in self.hparams.test_modes}
            for mode, result in evaluated[step].items():
                for key in ("normalized_score", "normalized_score_std", "return_mean", "episode_length_mean",
                            "step_latency_ms", "state_bytes_per_episode"):
                    if key in result:
                        metrics[f"{name}_{mode}_{key}"] = float(result[key])
        self.load_state_dict(current)
        self.log_test_metrics(metrics, batch_size=1)

    # snapshots travel in checkpoints; loading an older checkpoint never replaces a newer snapshot
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dt_snapshots"] = self.snapshots

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        for name, snap in checkpoint.get("dt_snapshots", {}).items():
            mine = self.snapshots.get(name)
            if mine is None or (name == "last" and snap["step"] > mine["step"]) or (
                    name == "best" and snap["score"] > mine["score"]):
                self.snapshots[name] = snap
