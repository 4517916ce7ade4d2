"""Deploy Aaren as an RNN: the streaming step of a Backbone over flat tensors, exported to ONNX or TorchScript.

Aaren's streaming state is constant-size (§3.1): per layer l, m_l, c_l (B, H) and a_l (B, H, Dh). Stacked over
the L layers it is three plain tensors, so one step is a pure function

    (x_t (B, D), m (L, B, H), c (L, B, H), a (L, B, H, Dh)) → (y_t (B, D), m', c', a')

that any runtime can call in a loop, feeding the state back in: no Python, no growing KV cache, memory fixed at
export time — what a phone or a microcontroller needs (the paper's motivation, §1). The exported graph is the
library's own `Backbone.step` (eval mode, so dropout is off), traced once; nothing is re-implemented here.

    step = StreamingStep(backbone=trained_backbone)          # eval-mode copy, torch-callable
    export_onnx(trained_backbone, "aaren_step.onnx")        # dynamo exporter (needs onnxscript)
    export_torchscript(trained_backbone, "aaren_step.pt")   # torch.jit.trace

Only torch is imported here; onnx/onnxscript are imported by torch.onnx inside `export_onnx`.
"""
import copy
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .backbone import Backbone
from .state import ScanState

INPUT_NAMES = ("x_t", "m", "c", "a")
OUTPUT_NAMES = ("y_t", "m_next", "c_next", "a_next")


def flatten_state(state: list) -> tuple[Tensor, Tensor, Tensor]:
    """Per-layer ScanStates [(m (B, H), c (B, H), a (B, H, Dh))] × L → m, c (L, B, H), a (L, B, H, Dh)."""
    return tuple(torch.stack([getattr(layer, field) for layer in state]) for field in ScanState._fields)


def unflatten_state(m: Tensor, c: Tensor, a: Tensor) -> list:
    """The inverse of `flatten_state`: one ScanState per layer."""
    return [ScanState(m[i], c[i], a[i]) for i in range(m.shape[0])]


class StreamingStep(nn.Module):
    """One streaming step of an Aaren Backbone with the state as three flat tensors (see the module docstring).

    Keyword-only: backbone (an `aaren.Backbone` of kind "aaren"; a deep copy in eval mode is kept, so the caller's
    module is untouched). forward(x_t (B, D), m (L, B, H), c (L, B, H), a (L, B, H, Dh)) → (y_t, m', c', a').
    """

    def __init__(self, *, backbone: Backbone):
        super().__init__()
        if not isinstance(backbone, Backbone) or backbone.kind != "aaren":
            kind = getattr(backbone, "kind", type(backbone).__name__)
            raise ValueError(f"StreamingStep: needs an aaren.Backbone of kind 'aaren' (a constant-size state), got "
                             f"{kind!r}; a Transformer's KV cache grows with every token and has no fixed shape")
        self.backbone = copy.deepcopy(backbone).eval()

    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """The empty state (m = −inf, c = 0, a = 0) of `batch_size` streams, flat."""
        return flatten_state(self.backbone.init_state(batch_size))

    def forward(self, x_t: Tensor, m: Tensor, c: Tensor, a: Tensor):
        y_t, state = self.backbone.step(x_t, unflatten_state(m, c, a))
        return (y_t, *flatten_state(state))


def example_inputs(step: StreamingStep, batch_size: int) -> tuple[Tensor, ...]:
    """A token and the empty state: the inputs to trace with."""
    p = next(step.parameters())
    x_t = torch.zeros(batch_size, step.backbone.d_model, device=p.device, dtype=p.dtype)
    return (x_t, *step.initial_state(batch_size))


def export_onnx(backbone: Backbone, path: str | Path, *, batch_size: int = 1, dynamic_batch: bool = True) -> Path:
    """Write the streaming step of `backbone` to an ONNX file with the dynamo exporter; returns the path.

    Inputs/outputs are named INPUT_NAMES / OUTPUT_NAMES; with dynamic_batch the number of streams B is a
    symbolic dimension. Run it with onnxruntime: feed (x_t, m, c, a), get (y_t, m', c', a'), feed the state back.
    """
    step = StreamingStep(backbone=backbone)
    inputs = example_inputs(step, batch_size)
    dynamic_shapes = None
    if dynamic_batch:
        streams = torch.export.Dim("streams")
        dynamic_shapes = ({0: streams}, {1: streams}, {1: streams}, {1: streams})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(step, inputs, str(path), dynamo=True, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_shapes=dynamic_shapes, verbose=False)
    return path


def trace_torchscript(backbone: Backbone, *, batch_size: int = 1) -> torch.jit.ScriptModule:
    """The streaming step of `backbone` as a traced TorchScript module (callable from C++ / LibTorch / mobile)."""
    step = StreamingStep(backbone=backbone)
    with torch.no_grad(), warnings.catch_warnings():
        # the shape checks in Backbone.step / aaren.step hold for every input of the traced shapes; the tracer
        # warns that they become constants, which is what we want
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(step, example_inputs(step, batch_size))


def export_torchscript(backbone: Backbone, path: str | Path, *, batch_size: int = 1) -> Path:
    """Save the traced streaming step to `path` (load with torch.jit.load); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trace_torchscript(backbone, batch_size=batch_size).save(str(path))
    return path
