"""Each task's exportable step (tasks/*/online.py) equals the task's torch online predictor, step by step, in
eager torch and traced TorchScript (ONNX is checked on trained runs in test_export_cli.py); the generic parts of
aaren.export (stream dimensions, the JSON signature, inputs that share a tensor) on a toy step."""
import pytest
import torch
from torch import nn

import aaren
from aaren.export import (OnlineStep, StreamingStep, describe_step, export_step_onnx, max_abs_difference, replay,
                          trace_step_torchscript)
from tasks.classification.online import ClassifyStep, OnlineClassifier
from tasks.forecasting.online import ForecastStep, OnlineForecaster
from tasks.tpp.online import NextEventStep, OnlineEventForecaster
from tests.test_classification_model import N_CHANNELS
from tests.test_classification_model import make_module as classification_module
from tests.test_forecasting_online import C, F
from tests.test_forecasting_online import make_module as forecasting_module
from tests.test_tpp_model import _module as tpp_module

STEPS = 12


def _both_runtimes(step: OnlineStep, observations, reference, *, batch: int, atol: float):
    ours, _ = replay(step, observations, step.initial_state(batch))
    assert max_abs_difference(ours, reference) <= atol
    traced, _ = replay(trace_step_torchscript(step, batch_size=batch), observations, step.initial_state(batch))
    assert max_abs_difference(traced, reference) <= atol


def test_forecast_step_equals_the_online_forecaster():
    module = forecasting_module("aaren").eval()
    g = torch.Generator().manual_seed(0)
    x, marks = 3 * torch.randn(STEPS, 2, C, generator=g) + 5, torch.rand(STEPS, 2, F, generator=g)
    online = OnlineForecaster(module, batch_size=2)
    reference = [(online.update(x[t], marks[t]),) for t in range(STEPS)]
    _both_runtimes(ForecastStep(module=module), list(zip(x, marks)), reference, batch=2, atol=1e-5)


def test_forecast_step_refuses_window_normalisation():
    with pytest.raises(ValueError, match="input_norm='prefix'"):
        ForecastStep(module=forecasting_module("aaren", input_norm="window"))


@pytest.mark.parametrize("pooling", ["flatten", "last"])
def test_classify_step_gives_the_online_classifier_probabilities(pooling):
    module = classification_module("aaren", pooling)
    x = torch.randn(7, 2, N_CHANNELS, generator=torch.Generator().manual_seed(0))  # 7 of max_length 9 steps
    online, reference = OnlineClassifier(module), []
    state = online.init_state(2)
    for x_t in x:
        logits, state = online.step(x_t, state)
        reference.append((logits.softmax(-1),))
    _both_runtimes(ClassifyStep(module=module), [(x_t,) for x_t in x], reference, batch=2, atol=1e-6)


def test_next_event_step_equals_the_online_event_forecaster():
    module, scale = tpp_module("aaren"), 0.7
    g = torch.Generator().manual_seed(0)
    times = torch.cumsum(torch.rand(STEPS, 2, generator=g) + 0.05, dim=0)
    marks = torch.randint(0, 2, (STEPS, 2), generator=g)
    online, reference = OnlineEventForecaster(module, time_scale=scale, batch_size=2), []
    for time, mark in zip(times, marks):
        out = online.observe(time, mark)
        dist = out["distribution"]
        reference.append((out["expected_interval"], out["mark_probs"], dist.log_weights, dist.loc, dist.scale))
    _both_runtimes(NextEventStep(module=module, time_scale=scale), list(zip(times, marks)), reference, batch=2,
                   atol=1e-5)


def test_policy_step_equals_the_decision_transformers_stream():
    pytest.importorskip("mujoco")
    from tasks.rl.online import PolicyStep, TorchStreamPolicy
    from tests.test_rl_model import module as rl_module

    module = rl_module("aaren")
    with torch.no_grad():
        module.dt.state_mean.normal_(), module.dt.state_std.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(0)
    rtg = 3600 - torch.cumsum(torch.rand(STEPS, 2, 1, generator=g), dim=0)
    obs = torch.randn(STEPS, 2, module.dt.state_dim, generator=g)
    policy = TorchStreamPolicy(module, 2)
    reference = [(torch.from_numpy(policy(r.numpy(), o.numpy())),) for r, o in zip(rtg, obs)]
    _both_runtimes(PolicyStep(module=module), list(zip(rtg, obs)), reference, batch=2, atol=1e-6)


# ---- the generic part, on a toy step -------------------------------------------------------------------------
class _CountingStep(OnlineStep):
    """y_t = W x_t + total; state: total (B, D) and count (B, D), both starting at zero (from ONE tensor)."""
    observation_names, prediction_names, state_names = ("x_t",), ("y_t",), ("total", "count")

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 3)

    def initial_state(self, batch_size):
        zeros = torch.zeros(batch_size, 3)
        return zeros, zeros  # the same tensor twice: the exporter must not alias the two inputs

    def example_observation(self, batch_size):
        return (torch.zeros(batch_size, 3),)

    def forward(self, x_t, total, count):
        total = total + x_t
        return self.proj(x_t) + total, total, count + 1


def test_stream_dims_and_signature():
    step = _CountingStep()
    assert step.batch_dims() == (0, 0, 0) and step.output_names == ("y_t", "total_next", "count_next")
    backbone = aaren.Backbone(kind="aaren", d_model=8, n_layers=2, n_heads=2, d_ff=16)
    signature = describe_step(StreamingStep(backbone=backbone))
    inputs = {i["name"]: i for i in signature["inputs"]}
    assert inputs["m"] == {"name": "m", "shape": [2, 1, 2], "dtype": "float32", "stream_dim": 1, "initial": "-inf"}
    assert inputs["a"]["initial"] == 0.0 and "initial" not in inputs["x_t"]


def test_a_state_that_does_not_start_constant_is_refused():
    class Noisy(_CountingStep):
        def initial_state(self, batch_size):
            return torch.randn(batch_size, 3), torch.zeros(batch_size, 3)

    with pytest.raises(ValueError, match="'total' is not constant"):
        describe_step(Noisy())


def test_onnx_keeps_state_inputs_that_start_as_one_tensor_apart(tmp_path):
    pytest.importorskip("onnxscript")
    from aaren.export import OnnxStep

    step = _CountingStep().eval()
    x = [(torch.randn(2, 3),) for _ in range(5)]
    reference, _ = replay(step, x, step.initial_state(2))
    ours, _ = replay(OnnxStep(export_step_onnx(step, tmp_path / "toy.onnx")), x, step.initial_state(2))
    assert max_abs_difference(ours, reference) <= 1e-6


def test_the_latency_benchmark_runs_and_writes_its_json(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    import json
    import sys

    from tests.harness_toy.helpers import REPO
    sys.path.insert(0, str(REPO))
    from scripts import bench_export

    out = tmp_path / "exported.json"
    assert bench_export.main(["--tasks", "tpp", "--rounds", "1", "--steps", "3", "--out", str(out)]) == 0
    [row] = json.loads(out.read_text())["rows"]
    assert row["task"] == "tpp" and row["torch_eager_ms"] > 0 and row["onnxruntime_ms"] > 0
    assert "| tpp | Hawkes |" in capsys.readouterr().out
