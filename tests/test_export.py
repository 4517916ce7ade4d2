"""The exported Aaren streaming step (aaren/export.py): ONNX in onnxruntime and TorchScript match torch over a
1000-step stream, which itself matches the parallel forward."""
import numpy as np
import pytest
import torch

import aaren
from aaren.export import (INPUT_NAMES, StreamingStep, export_onnx, export_torchscript, flatten_state,
                          unflatten_state)

STEPS, STREAMS, D_MODEL = 1000, 2, 16
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    model = aaren.Backbone(kind="aaren", d_model=D_MODEL, n_layers=2, n_heads=2, d_ff=32, dropout=0.1)
    with torch.no_grad():  # a "trained" model: weights away from their init, a query that is not ~0
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.train()  # the exporters must switch dropout off themselves


@pytest.fixture(scope="module")
def stream(backbone):
    """Tokens (N, B, D) and the torch reference outputs (N, B, D) and final flat state, step by step."""
    torch.manual_seed(1)
    x = 2.0 * torch.randn(STEPS, STREAMS, D_MODEL)
    step = StreamingStep(backbone=backbone)
    state, outputs = step.initial_state(STREAMS), []
    with torch.inference_mode():
        for x_t in x:
            y_t, *state = step(x_t, *state)
            outputs.append(y_t)
    return x, torch.stack(outputs), state


def test_streaming_step_equals_the_parallel_forward(backbone, stream):
    x, outputs, _ = stream
    with torch.no_grad():
        parallel = backbone.eval()(x.transpose(0, 1)).transpose(0, 1)  # (N, B, D)
    backbone.train()
    torch.testing.assert_close(outputs, parallel, atol=TOLERANCE, rtol=TOLERANCE)


def test_flat_state_round_trip_and_constant_size(backbone):
    state = backbone.init_state(3)
    m, c, a = flatten_state(state)
    assert m.shape == c.shape == (2, 3, 2) and a.shape == (2, 3, 2, 8)
    for layer, back in zip(state, unflatten_state(m, c, a)):
        for x, y in zip(layer, back):
            torch.testing.assert_close(x, y)


def test_onnx_matches_torch_over_a_1000_step_stream(backbone, stream, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = export_onnx(backbone, tmp_path / "aaren_step.onnx", batch_size=1)  # traced with 1, run with 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(INPUT_NAMES)
    x, outputs, final = stream
    state = [t.numpy() for t in StreamingStep(backbone=backbone).initial_state(STREAMS)]
    worst = 0.0
    for t in range(STEPS):
        y_t, *state = session.run(None, dict(zip(INPUT_NAMES, [x[t].numpy(), *state])))
        worst = max(worst, float(np.abs(y_t - outputs[t].numpy()).max()))
    assert worst <= TOLERANCE, f"onnxruntime drifts from torch by {worst:.2e} over {STEPS} steps"
    for ours, ref in zip(state, final):
        np.testing.assert_allclose(ours, ref.numpy(), atol=TOLERANCE, rtol=TOLERANCE)


def test_torchscript_matches_torch_over_a_1000_step_stream(backbone, stream, tmp_path):
    path = export_torchscript(backbone, tmp_path / "aaren_step.pt", batch_size=STREAMS)
    scripted = torch.jit.load(str(path))
    x, outputs, final = stream
    state = StreamingStep(backbone=backbone).initial_state(STREAMS)
    with torch.inference_mode():
        for t in range(STEPS):
            y_t, *state = scripted(x[t], *state)
            torch.testing.assert_close(y_t, outputs[t], atol=TOLERANCE, rtol=TOLERANCE)
    for ours, ref in zip(state, final):
        torch.testing.assert_close(ours, ref, atol=TOLERANCE, rtol=TOLERANCE)


def test_export_leaves_the_callers_module_alone(backbone):
    assert backbone.training
    step = StreamingStep(backbone=backbone)
    assert backbone.training and not step.backbone.training


def test_a_transformer_cannot_be_exported_as_a_constant_state_step():
    model = aaren.Backbone(kind="transformer", d_model=8, n_layers=1, n_heads=2, d_ff=16)
    with pytest.raises(ValueError, match="KV cache"):
        StreamingStep(backbone=model)
