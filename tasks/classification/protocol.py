"""The UEA classification protocol on plain arrays: NaN interpolation, label encoding, validation split, scaling.

A split is a list of cases, each an array (T_i, C) (time steps × channels; T_i may differ between cases), and an
array of string labels. Every function here is pure numpy and names the file in its errors.

Facts from TSLib (data_provider/data_loader.py UEAloader, data_provider/uea.py), with our defaults:
- NaNs: linear interpolation along time per case and channel, edges filled with the nearest value (pandas
  `interpolate(method="linear", limit_direction="both")`), done before normalisation.
- Labels: TSLib codes each file on its own (pandas categorical codes of the labels it sees); we code both files by
  TRAIN's declared @classLabel order and refuse TEST labels that no TRAIN case has.
- Normalisation: per channel over every time step of every case, (x − mean) / (std + eps), std with ddof=1, eps =
  float64 machine epsilon. TSLib fits it on each file separately ("per_split"); by default we fit it on the
  training cases only ("train") and apply it everywhere.
- EthanolConcentration: TSLib also normalises each case on its own (`instance_norm`), see `tslib_instance_norm`.
"""
import numpy as np

NORMALISATIONS = ("train", "per_split")
EPS = np.finfo(np.float64).eps  # TSLib's Normalizer adds this to the std
INSTANCE_NORM_EPS = 1e-5  # TSLib's instance_norm: sqrt(var + 1e-5)


class ClassificationDataError(ValueError):
    """A classification split violates the protocol (unknown test labels, all-NaN channel, shape mismatch)."""


def interpolate_missing(values: np.ndarray, *, where: str) -> np.ndarray:
    """values (T, C) with NaNs → (T, C): linear in time per channel, leading/trailing NaNs take the nearest value."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    if not missing.any():
        return values
    out = values.copy()
    steps = np.arange(values.shape[0])
    for channel in np.flatnonzero(missing.any(axis=0)):
        valid = ~missing[:, channel]
        if not valid.any():
            raise ClassificationDataError(f"{where}: channel {channel} has no observed value to interpolate from")
        out[:, channel] = np.interp(steps, steps[valid], values[valid, channel])  # np.interp clamps at the edges
    return out


def encode_labels(train_labels, test_labels, *, classes, test_file) -> tuple[np.ndarray, np.ndarray]:
    """String labels → (y_train (N_train,), y_test (N_test,)) int64 indices into `classes` (TRAIN's declared
    @classLabel order). Every TEST label must occur among the TRAIN cases: a class never trained on cannot be
    predicted, so its accuracy would be an artefact."""
    train_labels = np.asarray(train_labels).astype(str)
    test_labels = np.asarray(test_labels).astype(str)
    unseen = sorted(set(test_labels.tolist()) - set(train_labels.tolist()))
    if unseen:
        raise ClassificationDataError(f"{test_file}: labels {unseen} do not occur in the training file "
                                      f"(training labels: {sorted(set(train_labels.tolist()))})")
    index = {str(label): i for i, label in enumerate(classes)}
    code = np.vectorize(index.__getitem__, otypes=[np.int64])
    return code(train_labels), code(test_labels)


def stratified_split(y: np.ndarray, *, val_fraction: float, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of TRAIN → (train_idx, val_idx), sorted.

    Each class sends round(val_fraction · n_c) of its n_c cases to validation, at least 1 and at most n_c − 1.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ClassificationDataError(f"{where}: val_fraction must be in (0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < 2:
            raise ClassificationDataError(f"{where}: class {label} has {len(members)} training case(s); a "
                                          f"stratified validation split needs at least 2 per class")
        n_val = min(max(int(round(val_fraction * len(members))), 1), len(members) - 1)
        val_idx.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val_idx))
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx


class ChannelStandardiser:
    """Per-channel (x − mean) / (std + eps) with statistics over every time step of the cases it is fit on."""

    def __init__(self):
        self.mean = self.std = None

    def fit(self, cases: list[np.ndarray]) -> "ChannelStandardiser":
        rows = np.concatenate(cases, axis=0)  # (Σ T_i, C)
        self.mean = rows.mean(axis=0)
        self.std = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros_like(self.mean)
        return self

    def transform(self, cases: list[np.ndarray]) -> list[np.ndarray]:
        if self.mean is None:
            raise RuntimeError("ChannelStandardiser.transform called before fit")
        return [(case - self.mean) / (self.std + EPS) for case in cases]


def tslib_instance_norm(case: np.ndarray) -> np.ndarray:
    """TSLib's per-case normalisation for EthanolConcentration, as it is written there: case (T, C) minus its
    per-channel time mean, divided by the per-time-step std across channels (biased) with 1e-5 inside the root."""
    centred = case - case.mean(axis=0, keepdims=True)
    return centred / np.sqrt(centred.var(axis=1, keepdims=True) + INSTANCE_NORM_EPS)
