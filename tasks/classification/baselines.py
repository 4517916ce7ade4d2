"""Sanity baselines for classification: label-only predictors scored on the TEST cases, as the models' accuracy.

- majority_class: always the most frequent class of the TRAIN file (ties: the first in the file's class order).
- uniform_guess: a class drawn uniformly at random; its expected accuracy is 1 / K whatever the test labels.
"""
import numpy as np


def sanity_baselines(train_labels: np.ndarray, test_labels: np.ndarray, n_classes: int) -> dict:
    """train_labels (N_train,), test_labels (N_test,): class indices in [0, K) → {name: {accuracy}}."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if len(train_labels) == 0 or len(test_labels) == 0:
        raise ValueError("sanity_baselines: empty TRAIN or TEST labels")
    majority = int(np.argmax(np.bincount(train_labels, minlength=n_classes)))
    return {"majority_class": {"accuracy": float(np.mean(test_labels == majority))},
            "uniform_guess": {"accuracy": 1.0 / n_classes}}
