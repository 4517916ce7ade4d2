"""Ways to run one streaming step of a Backbone, behind one interface, and a KV cache filled at any length.

    eager        Backbone.step (Aaren: ScanStates; Transformer: KV caches), Python + torch eager
    torchscript  aaren.export.trace_torchscript: the same step, traced (Aaren only)
    onnxruntime  aaren.export.export_onnx run in onnxruntime's CPU provider (Aaren only, CPU only)

A stepper has: inputs(pool) → per-step inputs; init(batch) → state; step(x_t, state) → state;
nbytes(state); clone(state); saveable(state) → tensors to torch.save (None: cannot resume); restore(tensors).
"""
import copy
import tempfile
from pathlib import Path

import torch

import aaren
from aaren.export import StreamingStep, export_onnx, flatten_state, trace_torchscript, unflatten_state

from .common import BenchmarkError

PATHS = ("eager", "torchscript", "onnxruntime")


class EagerStepper:
    def __init__(self, backbone: aaren.Backbone):
        self.backbone = backbone.eval()
        self.constant_state = backbone.kind == "aaren"

    def inputs(self, pool):
        return list(pool)  # (B, D) each

    def init(self, batch):
        return self.backbone.init_state(batch)

    def step(self, x_t, state):
        return self.backbone.step(x_t, state)[1]

    def nbytes(self, state):
        return aaren.state_nbytes(state)

    def clone(self, state):
        if self.constant_state:
            return [aaren.ScanState(*(t.clone() for t in layer)) for layer in state]
        return copy.deepcopy(state)

    def saveable(self, state):
        return list(flatten_state(state)) if self.constant_state else None

    def restore(self, tensors):
        return unflatten_state(*tensors)


class TorchScriptStepper:
    def __init__(self, backbone: aaren.Backbone, batch: int):
        self.module = trace_torchscript(backbone, batch_size=batch)
        self.flat = StreamingStep(backbone=backbone)

    def inputs(self, pool):
        return list(pool)

    def init(self, batch):
        return self.flat.initial_state(batch)

    def step(self, x_t, state):
        return tuple(self.module(x_t, *state)[1:])

    def nbytes(self, state):
        return aaren.state_nbytes(state)

    def clone(self, state):
        return tuple(t.clone() for t in state)

    def saveable(self, state):
        return list(state)

    def restore(self, tensors):
        return tuple(tensors)


class OnnxRuntimeStepper:
    def __init__(self, backbone: aaren.Backbone, batch: int, device: str):
        if device != "cpu":
            raise BenchmarkError("the onnxruntime path is measured on CPU only (CPUExecutionProvider)")
        import onnxruntime  # lazy: an optional dependency of the benchmark

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory() as folder:
            path = export_onnx(backbone, Path(folder) / "step.onnx", batch_size=batch)
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.flat = StreamingStep(backbone=backbone)

    def inputs(self, pool):
        return [x.cpu().numpy() for x in pool]

    def init(self, batch):
        return tuple(t.numpy() for t in self.flat.initial_state(batch))

    def step(self, x_t, state):
        m, c, a = state
        return tuple(self.session.run(None, {"x_t": x_t, "m": m, "c": c, "a": a})[1:])

    def nbytes(self, state):
        return sum(int(x.nbytes) for x in state)

    def clone(self, state):
        return tuple(x.copy() for x in state)

    def saveable(self, state):
        return [torch.from_numpy(x.copy()) for x in state]

    def restore(self, tensors):
        return tuple(t.numpy() for t in tensors)


def make_stepper(path: str, backbone: aaren.Backbone, *, batch: int, device: str):
    if path != "eager" and backbone.kind != "aaren":
        raise BenchmarkError(f"path {path!r} exports Aaren's constant-size state; the Transformer runs eager only")
    if path == "eager":
        return EagerStepper(backbone)
    if path == "torchscript":
        return TorchScriptStepper(backbone, batch)
    if path == "onnxruntime":
        return OnnxRuntimeStepper(backbone, batch, device)
    raise BenchmarkError(f"unknown path {path!r}; known: {PATHS}")


def kv_cache_bytes(backbone: aaren.Backbone, *, batch: int, tokens: int) -> int:
    """Bytes of the Transformer's KV caches (all layers) after `tokens` tokens: k, v and the valid mask."""
    attention, empty = backbone.blocks[0].attention, backbone.init_state(1)[0]
    capacity = aaren.KVCache.capacity_for(tokens, initial=empty.capacity)
    element = next(backbone.parameters()).element_size()
    per_layer = 2 * batch * attention.n_heads * capacity * attention.head_dim * element + batch * capacity
    return len(backbone.blocks) * per_layer


def filled_kv_state(backbone: aaren.Backbone, *, batch: int, tokens: int) -> list:
    """KV caches holding `tokens` random keys/values, in buffers of the size real streaming would have grown.

    A decode step's cost does not depend on the cached values (attention reads all of them), so this stands in
    for streaming `tokens` real tokens, which costs O(tokens²) — see docs/efficiency.md (Method).
    """
    state = []
    for empty in backbone.init_state(batch):
        capacity = aaren.KVCache.capacity_for(tokens, initial=empty.capacity)
        k = torch.randn(empty.batch_size, empty.n_heads, capacity, empty.head_dim, device=empty.device,
                        dtype=empty.dtype)
        valid = torch.ones(empty.batch_size, capacity, device=empty.device, dtype=torch.bool)
        state.append(aaren.KVCache.from_buffers(k, torch.randn_like(k), valid, length=tokens))
    return state
