"""Calendar features of each time stamp, TSLib's `timeF` encoding (embed=timeF, timeenc=1).

Every feature is scaled to [-0.5, 0.5]. Which features a dataset gets depends on its `freq` string, as in
TSLib's `time_features_from_frequency_str`. Note (a TSLib fact worth knowing): TSLib's `run.py` defaults to
`--freq h` and its long-horizon scripts never override it, so every dataset — ETTm (15 min), Weather (10 min),
Exchange (daily) — is encoded with the 4 hourly features; our dataset configs say `time_feature_freq: h` too.
"""
import numpy as np
import pandas as pd

# name → (DatetimeIndex → float array in [-0.5, 0.5])
FEATURES = {
    "second_of_minute": lambda t: t.second / 59.0 - 0.5,
    "minute_of_hour": lambda t: t.minute / 59.0 - 0.5,
    "hour_of_day": lambda t: t.hour / 23.0 - 0.5,
    "day_of_week": lambda t: t.dayofweek / 6.0 - 0.5,
    "day_of_month": lambda t: (t.day - 1) / 30.0 - 0.5,
    "day_of_year": lambda t: (t.dayofyear - 1) / 365.0 - 0.5,
    "month_of_year": lambda t: (t.month - 1) / 11.0 - 0.5,
    "week_of_year": lambda t: (t.isocalendar().week.to_numpy() - 1) / 52.0 - 0.5,
}

_DAILY = ("day_of_week", "day_of_month", "day_of_year")
FEATURES_BY_FREQ = {
    "s": ("second_of_minute", "minute_of_hour", "hour_of_day") + _DAILY,
    "t": ("minute_of_hour", "hour_of_day") + _DAILY,
    "h": ("hour_of_day",) + _DAILY,
    "d": _DAILY,
    "b": _DAILY,
    "w": ("day_of_month", "week_of_year"),
    "m": ("month_of_year",),
}


def n_time_features(freq: str) -> int:
    if freq not in FEATURES_BY_FREQ:
        raise ValueError(f"time features: freq must be one of {sorted(FEATURES_BY_FREQ)}, got {freq!r}")
    return len(FEATURES_BY_FREQ[freq])


def time_features(dates, freq: str) -> np.ndarray:
    """dates (T,) datetime-like → (T, F) float32 with F = n_time_features(freq)."""
    n_time_features(freq)  # validates freq
    index = pd.DatetimeIndex(dates)
    columns = [np.asarray(FEATURES[name](index), dtype=np.float64) for name in FEATURES_BY_FREQ[freq]]
    return np.stack(columns, axis=-1).astype(np.float32)
