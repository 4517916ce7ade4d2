"""The classifier: padding acts inside the attention, the head pools valid positions only, and the online
classifier (one prediction after every step) ends on the batch prediction, for both kinds and both poolings."""
import pytest
import torch

import aaren
from tasks.classification.module import ClassificationModule
from tasks.classification.online import OnlineClassifier

N_CHANNELS, N_CLASSES, MAX_LENGTH = 3, 4, 9
KINDS, POOLINGS = ("aaren", "transformer"), ("flatten", "last")


def make_module(kind: str, pooling: str, *, seed: int = 0) -> ClassificationModule:
    torch.manual_seed(seed)
    return ClassificationModule(
        backbone=dict(kind=kind, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.1),
        optim=dict(name="radam", lr=1e-3), n_channels=N_CHANNELS, n_classes=N_CLASSES, max_length=MAX_LENGTH,
        pooling=pooling).eval()


def padded_batch(lengths, *, seed: int = 1, fill: float = 0.0):
    """x (B, N, C) with padded steps set to `fill`, mask (B, N) right-padded."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    n = int(lengths.max())
    mask = torch.arange(n)[None, :] < lengths[:, None]
    x = torch.randn(len(lengths), n, N_CHANNELS, generator=generator)
    return torch.where(mask[..., None], x, torch.full_like(x, fill)), mask


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("lengths", [(7, 7, 7), (7, 4, 1)], ids=["no_padding", "padding"])
def test_online_prediction_at_the_last_step_equals_the_batch_prediction(kind, pooling, lengths):
    module = make_module(kind, pooling)
    x, mask = padded_batch(lengths)
    with torch.no_grad():
        batch = module(x, mask)  # (B, K)
    online = OnlineClassifier(module).predict_prefixes(x, None if min(lengths) == max(lengths) else mask)
    assert online.shape == (len(lengths), x.shape[1], N_CLASSES)
    torch.testing.assert_close(online[:, -1], batch, rtol=1e-5, atol=1e-5)
    # every intermediate prediction is the batch prediction for that prefix
    for t in (1, 3):
        with torch.no_grad():
            prefix = module(x[:1, :t], mask[:1, :t])
        torch.testing.assert_close(online[:1, t - 1], prefix, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_changes_nothing(kind, pooling):
    """A case padded in a batch gets the logits it gets alone, whatever the padded values are."""
    module = make_module(kind, pooling)
    x, mask = padded_batch((7, 4), fill=123.0)
    with torch.no_grad():
        padded = module(x, mask)
        alone = module(x[1:, :4], mask[1:, :4])
        zeros = module(torch.where(mask[..., None], x, torch.zeros_like(x)), mask)
    torch.testing.assert_close(padded[1:], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded, zeros, rtol=1e-5, atol=1e-5)


def test_aaren_online_state_is_constant_size_and_the_transformer_cache_grows():
    x, _ = padded_batch((20, 20))  # "last" pooling reads any length; the cache starts with room for 16 steps
    sizes = {}
    for kind in KINDS:
        online = OnlineClassifier(make_module(kind, "last"))
        state, sizes[kind] = online.init_state(2), []
        for t in range(x.shape[1]):
            _, state = online.step(x[:, t], state)
            sizes[kind].append(aaren.state_nbytes(state))
    assert len(set(sizes["aaren"])) == 1
    assert sizes["transformer"][-1] > sizes["transformer"][0]


def test_head_rejects_left_padding_and_overlong_series():
    module = make_module("aaren", "flatten")
    x, mask = padded_batch((5, 3))
    with pytest.raises(ValueError, match="right padding"):
        module(x, mask.flip(1))
    long_x = torch.randn(1, MAX_LENGTH + 1, N_CHANNELS)
    with pytest.raises(ValueError, match=f"max_length {MAX_LENGTH}"):
        module(long_x, torch.ones(1, MAX_LENGTH + 1, dtype=torch.bool))


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(ValueError, match="pooling must be one of"):
        make_module("aaren", "mean")


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter_and_skip_padded_inputs(kind):
    module = make_module(kind, "flatten").train()
    x, mask = padded_batch((6, 2))
    x.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(module(x, mask), torch.tensor([0, 3]))
    loss.backward()
    silent = [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []
    steps = module.head.proj.weight.grad.view(N_CLASSES, MAX_LENGTH, -1).abs().sum(dim=(0, 2))  # (max_length,)
    assert torch.all(steps[:6] > 0) and torch.all(steps[6:] == 0)  # no case reaches steps 6..8
    assert torch.all(x.grad[~mask] == 0) and x.grad[mask].abs().sum() > 0
