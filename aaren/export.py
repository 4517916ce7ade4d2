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

A whole task model (embedding → backbone → head, plus whatever else it carries, e.g. running statistics) streams
the same way: an `OnlineStep` is any module whose forward is (*observation, *state) → (*prediction, *state'),
with a fixed-size flat state. `export_step_onnx` / `export_step_torchscript` export it, `OnnxStep` runs the ONNX
file in onnxruntime with the same calling convention, and `replay` / `max_abs_difference` check two runtimes
against each other over a stream. `StreamingStep` (the backbone alone) is one such step; `FlatKVStep` is the
Transformer baseline's step over fixed-length KV caches, exported the same way for like-for-like benchmarks.

Only torch is imported here; onnx/onnxscript are imported by torch.onnx inside the exporters, onnxruntime inside
`OnnxStep`.
"""
import copy
import math
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


class OnlineStep(nn.Module):
    """A streaming predictor as one pure function over flat tensors, the base of every exportable step.

    Subclasses name their tensors and implement three methods:
      observation_names / prediction_names / state_names (class attributes, tuples of str);
      initial_state(batch_size) → the empty state, one tensor per state name (fixed shapes);
      example_observation(batch_size) → one observation of the right shapes and dtypes (values do not matter);
      forward(*observation, *state) → (*prediction, *state'), same shapes in as out for the state.
    In a graph file the inputs are observation_names + state_names, the outputs prediction_names + <state>_next.
    """
    observation_names: tuple[str, ...] = ()
    prediction_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    max_steps: int | None = None  # a stream's length limit, where the model has one (None: unbounded)

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*self.observation_names, *self.state_names)

    @property
    def output_names(self) -> tuple[str, ...]:
        return (*self.prediction_names, *(f"{name}_next" for name in self.state_names))

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def example_observation(self, batch_size: int) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def example_inputs(self, batch_size: int) -> tuple[Tensor, ...]:
        return (*self.example_observation(batch_size), *self.initial_state(batch_size))

    def batch_dims(self) -> tuple[int | None, ...]:
        """Per input, the dimension that indexes the streams (None: shared by all streams, e.g. a step counter),
        found by comparing the example inputs of 2 and 3 streams."""
        dims = []
        for name, two, three in zip(self.input_names, self.example_inputs(2), self.example_inputs(3)):
            differ = [d for d, (p, q) in enumerate(zip(two.shape, three.shape)) if p != q]
            if len(differ) > 1 or two.dim() != three.dim():
                raise ValueError(f"{type(self).__name__}: input {name!r} has no single stream dimension "
                                 f"({tuple(two.shape)} for 2 streams, {tuple(three.shape)} for 3)")
            dims.append(differ[0] if differ else None)
        return tuple(dims)


class StreamingStep(OnlineStep):
    """One streaming step of an Aaren Backbone with the state as three flat tensors (see the module docstring).

    Keyword-only: backbone (an `aaren.Backbone` of kind "aaren"; a deep copy in eval mode is kept, so the caller's
    module is untouched). forward(x_t (B, D), m (L, B, H), c (L, B, H), a (L, B, H, Dh)) → (y_t, m', c', a').
    """
    observation_names, prediction_names, state_names = INPUT_NAMES[:1], OUTPUT_NAMES[:1], INPUT_NAMES[1:]

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

    def example_observation(self, batch_size: int) -> tuple[Tensor]:
        p = next(self.parameters())
        return (torch.zeros(batch_size, self.backbone.d_model, device=p.device, dtype=p.dtype),)

    def forward(self, x_t: Tensor, m: Tensor, c: Tensor, a: Tensor):
        y_t, state = self.backbone.step(x_t, unflatten_state(m, c, a))
        return (y_t, *flatten_state(state))


class FlatKVStep(nn.Module):
    """One streaming step of a Transformer Backbone against per-layer caches of fixed length T: the baseline's
    exported step, so Aaren's exported step can be compared with it in one runtime (benchmarks/exported_kv.py).

        (x_t (B, D), k_0..k_{L-1} (B, H, Dh, T), v_0..v_{L-1} (B, H, T, Dh))
            → (y_t (B, D), k_t (L, B, H, Dh), v_t (L, B, H, Dh))

    attends to the T cached tokens and to itself and returns the new keys/values for the caller to append (no copy
    of the cache inside the graph). Keys are kept transposed (Dh, T) so the score product is a plain MatMul. The
    block around the attention is the backbone's own `_residual`; it equals `CausalSelfAttention.step` on a
    `KVCache` (tests/test_bench_efficiency.py).

    Keyword-only: backbone (an `Backbone` of kind "transformer"; an eval-mode deep copy is kept).
    """

    def __init__(self, *, backbone: Backbone):
        super().__init__()
        if not isinstance(backbone, Backbone) or backbone.kind != "transformer":
            raise ValueError(f"FlatKVStep: needs a Transformer backbone, got {getattr(backbone, 'kind', backbone)!r}")
        self.backbone = copy.deepcopy(backbone).eval()
        self.n_layers = len(self.backbone.blocks)

    def forward(self, x_t: Tensor, *cache: Tensor):
        keys_t, values_t = cache[:self.n_layers], cache[self.n_layers:]  # (B, H, Dh, T), (B, H, T, Dh)
        new_k, new_v = [], []
        for block, keys_t_l, values_l in zip(self.backbone.blocks, keys_t, values_t):
            attention = block.attention

            def attend(h, attention=attention, keys_t_l=keys_t_l, values_l=values_l):
                q, k, v = attention._qkv(h.unsqueeze(1))                       # (B, H, 1, Dh) each
                scale = 1.0 / math.sqrt(attention.head_dim)                     # as SDPA's default
                scores = torch.cat([q @ keys_t_l, (q * k).sum(-1, keepdim=True)], dim=-1) * scale  # (B, H, 1, T+1)
                p = torch.softmax(scores, dim=-1)
                o = p[..., :-1] @ values_l + p[..., -1:] * v                    # (B, H, 1, Dh)
                new_k.append(k[:, :, 0])
                new_v.append(v[:, :, 0])
                return attention.out_proj(o[:, :, 0].flatten(-2))

            x_t = block._residual(x_t, attend)
        return self.backbone.norm(x_t), torch.stack(new_k), torch.stack(new_v)

    def filled_cache(self, batch: int, tokens: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """Random keys (B, H, Dh, T) and values (B, H, T, Dh) per layer: a cache holding `tokens` tokens."""
        attention = self.backbone.blocks[0].attention
        h, dh = attention.n_heads, attention.head_dim
        keys = [torch.randn(batch, h, dh, tokens, generator=generator) for _ in range(self.n_layers)]
        return keys + [torch.randn(batch, h, tokens, dh, generator=generator) for _ in range(self.n_layers)]


def split_backbone(model: nn.Module) -> tuple[nn.Module, StreamingStep]:
    """A task model (embedding, `model.backbone`, heads) → (an eval-mode copy of it without the backbone, the
    backbone's StreamingStep): the parts a task's OnlineStep wraps, each parameter held once, the caller's untouched."""
    rest = copy.deepcopy(model).eval()
    backbone = StreamingStep(backbone=rest.backbone)
    rest.backbone = None
    if hasattr(rest, "_jit_is_scripting"):  # a LightningModule: its `trainer` property raises outside a Trainer
        rest._jit_is_scripting = True        # when torch.jit.trace probes attributes, unless this is set (as in
    return rest, backbone                    # Lightning's own to_torchscript)


def example_inputs(step: OnlineStep, batch_size: int) -> tuple[Tensor, ...]:
    """An observation and the empty state: the inputs to trace with."""
    return step.example_inputs(batch_size)


def export_step_onnx(step: OnlineStep, path: str | Path, *, batch_size: int = 1, dynamic_batch: bool = True) -> Path:
    """Write `step` (eval mode) to an ONNX file with the dynamo exporter; returns the path.

    Inputs/outputs are named step.input_names / step.output_names; with dynamic_batch the number of streams is a
    symbolic dimension. Run it with onnxruntime (`OnnxStep`): feed observation + state, get prediction + state'.
    """
    step = step.eval()
    inputs = tuple(x.clone() for x in step.example_inputs(batch_size))  # inputs sharing a tensor would be aliased
    dynamic_shapes = None
    if dynamic_batch:
        streams = torch.export.Dim("streams")
        dynamic_shapes = tuple({} if d is None else {d: streams} for d in step.batch_dims())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(step, inputs, str(path), dynamo=True, input_names=list(step.input_names),
                          output_names=list(step.output_names), dynamic_shapes=dynamic_shapes, verbose=False,
                          external_data=False)  # one self-contained file (weights inside), what a device loads
    return path


def trace_step_torchscript(step: OnlineStep, *, batch_size: int = 1) -> torch.jit.ScriptModule:
    """`step` (eval mode) as a traced TorchScript module (callable from C++ / LibTorch / mobile)."""
    step = step.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # the shape checks in Backbone.step / aaren.step hold for every input of the traced shapes; the tracer
        # warns that they become constants, which is what we want
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(step, step.example_inputs(batch_size))


def export_step_torchscript(step: OnlineStep, path: str | Path, *, batch_size: int = 1) -> Path:
    """Save the traced `step` to `path` (load with torch.jit.load); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trace_step_torchscript(step, batch_size=batch_size).save(str(path))
    return path


def export_onnx(backbone: Backbone, path: str | Path, *, batch_size: int = 1, dynamic_batch: bool = True) -> Path:
    """The streaming step of `backbone` (inputs INPUT_NAMES, outputs OUTPUT_NAMES) to ONNX; see export_step_onnx."""
    return export_step_onnx(StreamingStep(backbone=backbone), path, batch_size=batch_size,
                            dynamic_batch=dynamic_batch)


def trace_torchscript(backbone: Backbone, *, batch_size: int = 1) -> torch.jit.ScriptModule:
    """The streaming step of `backbone` as a traced TorchScript module."""
    return trace_step_torchscript(StreamingStep(backbone=backbone), batch_size=batch_size)


def export_torchscript(backbone: Backbone, path: str | Path, *, batch_size: int = 1) -> Path:
    """Save the traced streaming step of `backbone` to `path` (load with torch.jit.load); returns the path."""
    return export_step_torchscript(StreamingStep(backbone=backbone), path, batch_size=batch_size)


def describe_step(step: OnlineStep) -> dict:
    """The calling convention of `step` as plain JSON data, for runtimes without torch (numpy, a browser):
    {inputs: [{name, shape (1 stream), dtype, stream_dim, [initial: the constant the empty state is filled with,
    "-inf" | "inf" | a number]}], outputs: [names], state: [names]}. Every state must start constant."""
    inputs = []
    names, n_obs = step.input_names, len(step.observation_names)
    for i, (name, x, dim) in enumerate(zip(names, step.example_inputs(1), step.batch_dims())):
        entry = {"name": name, "shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch."),
                 "stream_dim": dim}
        if i >= n_obs:
            values = x.unique()
            if values.numel() > 1:
                raise ValueError(f"describe_step: the initial {name!r} is not constant; a runtime cannot build it")
            value = float(values[0]) if values.numel() else 0.0
            entry["initial"] = str(value) if value in (float("inf"), float("-inf")) else value
        inputs.append(entry)
    return {"inputs": inputs, "outputs": list(step.output_names), "state": list(step.state_names)}


class OnnxStep:
    """An exported step in onnxruntime, called like the torch step: (*observation, *state) → (*prediction,
    *state'), torch tensors in and out (CPU). Needs the onnxruntime package (imported here, not by aaren)."""

    def __init__(self, path: str | Path, *, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"OnnxStep: the graph takes {len(self.input_names)} inputs {self.input_names}, "
                             f"got {len(inputs)}")
        feed = {name: x.detach().cpu().numpy() for name, x in zip(self.input_names, inputs)}
        return tuple(torch.from_numpy(y) for y in self.session.run(None, feed))


def replay(step, observations, state: tuple[Tensor, ...]) -> tuple[list[tuple[Tensor, ...]], tuple[Tensor, ...]]:
    """Feed observations [(tensors of one step)] × T through `step` (an OnlineStep, a TorchScript module or an
    OnnxStep), carrying the state → (predictions [(tensors)] × T, final state)."""
    predictions, n_state = [], len(state)
    with torch.no_grad():
        for observation in observations:
            outputs = tuple(step(*observation, *state))
            predictions.append(outputs[:len(outputs) - n_state])
            state = outputs[len(outputs) - n_state:]
    return predictions, state


def max_abs_difference(ours: list[tuple[Tensor, ...]], reference: list[tuple[Tensor, ...]]) -> float:
    """The largest |ours − reference| over every step and tensor of two prediction streams of the same shapes."""
    if len(ours) != len(reference):
        raise ValueError(f"max_abs_difference: {len(ours)} steps against {len(reference)}")
    worst = 0.0
    for step_ours, step_ref in zip(ours, reference):
        for a, b in zip(step_ours, step_ref, strict=True):
            worst = max(worst, float((a.double() - b.double()).abs().max()))
    return worst
