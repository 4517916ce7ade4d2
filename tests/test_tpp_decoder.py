"""The log-normal mixture decoder against torch.distributions, the temporal encoding, and the metric definitions
on a hand-computed batch."""
from pathlib import Path

import math

import pytest
import torch
import yaml
from torch.distributions import Categorical, LogNormal, MixtureSameFamily

from tasks.tpp.model import EventEmbedding
from tasks.tpp.lognormal_mixture import LogNormalMixture, LogNormalMixtureHead
from tasks.tpp.mark_likelihood import mark_log_likelihood, reference_mark_log_likelihood
from tasks.tpp.metrics import TPPMetrics

REPO = Path(__file__).resolve().parents[1]


def _random_mixture(shape=(3, 5), k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_w = torch.log_softmax(torch.randn(*shape, k, generator=g, dtype=torch.float64), -1)
    loc = torch.randn(*shape, k, generator=g, dtype=torch.float64)
    scale = torch.rand(*shape, k, generator=g, dtype=torch.float64) + 0.2
    return LogNormalMixture(log_w, loc, scale), MixtureSameFamily(Categorical(logits=log_w), LogNormal(loc, scale))


def test_log_prob_cdf_survival_and_mean_match_torch_distributions():
    ours, reference = _random_mixture()
    tau = torch.rand(3, 5, dtype=torch.float64) * 4 + 1e-3
    torch.testing.assert_close(ours.log_prob(tau), reference.log_prob(tau))
    torch.testing.assert_close(ours.cdf(tau), reference.cdf(tau))
    torch.testing.assert_close(ours.log_survival(tau), torch.log1p(-reference.cdf(tau)))
    torch.testing.assert_close(ours.mean(), reference.mean)


def test_log_survival_stays_finite_far_in_the_tail():
    ours, _ = _random_mixture()
    far = torch.full((3, 5), 1e8, dtype=torch.float64)
    assert torch.isfinite(ours.log_survival(far)).all() and (ours.log_survival(far) < -10).all()


def test_head_gradients_are_finite_and_reach_every_parameter():
    head = LogNormalMixtureHead(d_model=8, n_components=3)
    h = torch.randn(2, 7, 8)
    dist = head(h)
    assert dist.log_weights.shape == (2, 7, 3) and (dist.scale > 0).all()
    loss = -(dist.log_prob(torch.rand(2, 7) + 0.1).mean() + dist.log_survival(torch.rand(2, 7) + 0.1).mean())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_event_embedding_shape():
    x = torch.tensor([0.0, 1.5, 300.0])
    emb = EventEmbedding(num_marks=3, d_model=6)
    assert emb(x[None], x[None], torch.tensor([[0, 2, 1]])).shape == (1, 3, 6)


def _terms(**overrides):
    """Two sequences: 3 targets and 1 target (padded to 3). Hand-chosen numbers."""
    terms = dict(
        time_ll=torch.tensor([[-1.0, -2.0, -3.0], [-0.5, 0.0, 0.0]]),
        mark_ll=torch.tensor([[-0.1, -0.2, -0.3], [-0.4, 0.0, 0.0]]),
        log_survival=torch.tensor([[-7.0, -8.0, -0.9], [-0.6, 0.0, 0.0]]),
        mean=torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]]),
        tau=torch.tensor([[2.0, 2.0, 1.0], [1.0, 1.0, 1.0]]),
        predicted_mark=torch.tensor([[0, 1, 1], [2, 0, 0]]),
        mark=torch.tensor([[0, 1, 0], [1, 0, 0]]),
        target_mask=torch.tensor([[True, True, True], [True, False, False]]),
    )
    terms.update(overrides)
    return terms


def test_metrics_on_a_hand_computed_batch():
    metrics = TPPMetrics(num_marks=3)
    metrics.update(**_terms(), true_time_ll=torch.full((2, 3), -0.25), true_mark_ll=torch.full((2, 3), -0.5))
    out = metrics.compute()
    assert out["nll_time"] == pytest.approx(6.5 / 4)
    assert out["nll_mark"] == pytest.approx(1.0 / 4)
    assert out["nll"] == pytest.approx(7.5 / 4)
    assert out["accuracy"] == pytest.approx(2 / 4)
    assert out["rmse"] == pytest.approx(math.sqrt((1 + 0 + 4 + 9) / 4))            # errors -1, 0, 2 and 3
    assert out["rmse_metatpp"] == pytest.approx(math.sqrt((1 ** 2 + 3 ** 2) / 4))  # per-sequence sums 1 and 3
    # Meta-TPP: last target by survival (-0.9 and -0.6), all marks, over 4 + 2 events (first events included)
    assert out["nll_metatpp"] == pytest.approx((1 + 2 + 0.9 + 0.6 + 1.0) / 6)
    assert out["true_nll_time"] == pytest.approx(0.25) and out["true_nll_mark"] == pytest.approx(0.5)
    assert out["true_nll"] == pytest.approx(0.75)


def test_metrics_do_not_depend_on_batching():
    whole, split = TPPMetrics(num_marks=3), TPPMetrics(num_marks=3)
    terms = _terms()
    whole.update(**terms)
    for row in range(2):
        split.update(**{k: v[row:row + 1] for k, v in terms.items()})
    assert whole.compute() == pytest.approx(split.compute())


def test_single_mark_data_reports_no_mark_metrics_and_empty_splits_fail():
    metrics = TPPMetrics(num_marks=1)
    metrics.update(**_terms(mark_ll=torch.zeros(2, 3)))
    assert "nll_mark" not in metrics.compute() and "accuracy" not in metrics.compute()
    with pytest.raises(ValueError, match="no target events"):
        TPPMetrics(num_marks=1).compute()


def test_every_reported_metric_is_defined_in_the_recorded_protocol():
    report = yaml.safe_load((REPO / "conf" / "task" / "tpp.yaml").read_text())["report"]
    metrics = TPPMetrics(num_marks=3)
    metrics.update(**_terms(), true_time_ll=torch.zeros(2, 3), true_mark_ll=torch.zeros(2, 3))
    assert set(metrics.compute()) == set(report["metrics"])


def test_fused_mark_likelihood_equals_log_softmax_gather_in_outputs_and_gradients():
    torch.manual_seed(0)
    logits = (torch.randn(3, 7, 50, dtype=torch.float64) * 4).requires_grad_()
    marks = torch.randint(50, (3, 7))
    weights = torch.randn(3, 7, dtype=torch.float64)          # a non-uniform incoming gradient
    fused = mark_log_likelihood(logits, marks)
    (grad,) = torch.autograd.grad((fused * weights).sum(), logits)
    reference = reference_mark_log_likelihood(logits, marks)
    (expected,) = torch.autograd.grad((reference * weights).sum(), logits)
    torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(grad, expected)
    small = logits[:1, :2, :6].detach().requires_grad_()
    assert torch.autograd.gradcheck(mark_log_likelihood, (small, marks[:1, :2] % 6))


@pytest.mark.parametrize("grad", [True, False])
def test_mark_terms_score_the_valid_targets_alone_in_chunks(monkeypatch, grad):
    import tasks.tpp.mark_likelihood as ml

    monkeypatch.setattr(ml, "CHUNK_ROWS", 3)                  # several chunks without autograd
    torch.manual_seed(0)
    head, h = torch.nn.Linear(4, 9), torch.randn(2, 5, 4)
    marks, valid = torch.randint(9, (2, 5)), torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.set_grad_enabled(grad):
        mark_ll, predicted = ml.mark_terms(head, h, marks, valid)
    log_probs = torch.log_softmax(head(h), -1)
    expected = torch.where(valid, log_probs.gather(-1, marks.unsqueeze(-1)).squeeze(-1), 0.0)
    torch.testing.assert_close(mark_ll, expected)
    assert torch.equal(predicted, torch.where(valid, log_probs.argmax(-1), 0))
    assert mark_ll.requires_grad == grad
