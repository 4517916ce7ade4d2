"""The UEA protocol on plain arrays: NaN interpolation (checked against pandas, as TSLib does it), label coding,
the stratified validation split, standardisation statistics."""
import numpy as np
import pandas as pd
import pytest
import torch

from tasks.classification.protocol import (EPS, ChannelStandardiser, ClassificationDataError, encode_labels,
                                           interpolate_missing, stratified_split, tslib_instance_norm)


def test_interpolation_matches_pandas_linear_both_directions():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(20, 3))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[0, 0] = values[-1, 1] = values[-2, 1] = np.nan  # leading and trailing gaps
    values[:, 2] = rng.normal(size=20)  # a channel without gaps stays as it is
    reference = pd.DataFrame(values).interpolate(method="linear", limit_direction="both").to_numpy()
    out = interpolate_missing(values, where="case 0")
    np.testing.assert_allclose(out, reference)
    assert not np.isnan(out).any()


def test_interpolation_of_an_all_nan_channel_names_the_case():
    values = np.ones((5, 2))
    values[:, 1] = np.nan
    with pytest.raises(ClassificationDataError, match=r"Toy_TRAIN.ts case 3: channel 1"):
        interpolate_missing(values, where="Toy_TRAIN.ts case 3")


def test_labels_coded_by_train_classes_and_unseen_test_labels_rejected():
    classes = ("b", "a", "c")
    y_train, y_test = encode_labels(["a", "b", "c", "a"], ["c", "a"], classes=classes, test_file="T_TEST.ts")
    assert y_train.tolist() == [1, 0, 2, 1] and y_test.tolist() == [2, 1]
    with pytest.raises(ClassificationDataError, match=r"T_TEST.ts: labels \['d'\] do not occur"):
        encode_labels(["a", "b"], ["a", "d"], classes=("a", "b", "d"), test_file="T_TEST.ts")


def test_stratified_split_is_disjoint_stratified_and_seeded():
    y = np.repeat(np.arange(4), [10, 5, 3, 2])
    train_idx, val_idx = stratified_split(y, val_fraction=0.2, seed=0, where="f")
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.union1d(train_idx, val_idx).tolist() == list(range(len(y)))
    assert np.bincount(y[val_idx]).tolist() == [2, 1, 1, 1]  # round(0.2·n_c), at least 1, at most n_c − 1
    assert np.array_equal(stratified_split(y, val_fraction=0.2, seed=0, where="f")[1], val_idx)
    others = [stratified_split(y, val_fraction=0.2, seed=s, where="f")[1] for s in range(1, 6)]
    assert any(not np.array_equal(o, val_idx) for o in others)


def test_stratified_split_refuses_a_singleton_class():
    with pytest.raises(ClassificationDataError, match="class 2 has 1 training case"):
        stratified_split(np.array([0, 0, 1, 1, 2]), val_fraction=0.2, seed=0, where="f")


def test_standardiser_statistics_over_all_steps_of_the_fit_cases():
    rng = np.random.default_rng(1)
    fit_cases = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (4, 7, 9)]
    other = [rng.normal(size=(5, 2))]
    scaler = ChannelStandardiser().fit(fit_cases)
    rows = pd.DataFrame(np.concatenate(fit_cases))  # TSLib's Normalizer: pandas mean/std over every row
    np.testing.assert_allclose(scaler.mean, rows.mean().to_numpy())
    np.testing.assert_allclose(scaler.std, rows.std().to_numpy())
    out = scaler.transform(fit_cases + other)
    np.testing.assert_allclose(np.concatenate(out[:3]).mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[3], (other[0] - rows.mean().to_numpy()) / (rows.std().to_numpy() + EPS))


def test_tslib_instance_norm_matches_its_torch_definition():
    case = np.random.default_rng(2).normal(2.0, 3.0, size=(6, 3))
    t = torch.from_numpy(case)  # TSLib's UEAloader.instance_norm, written with torch ops
    t = t - t.mean(0, keepdim=True)
    expected = t / torch.sqrt(torch.var(t, dim=1, keepdim=True, unbiased=False) + 1e-5)
    out = tslib_instance_norm(case)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(out.var(axis=1), 1.0, atol=1e-2)  # each step: unit variance across channels
