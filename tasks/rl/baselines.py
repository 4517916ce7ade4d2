"""Sanity baseline for RL: the behaviour data's own level.

behaviour_data: the D4RL-normalised mean trajectory return of the training file (what the policies that wrote it
scored; behaviour cloning of the data lands near it). It is set beside every normalised-score column of a table
(each snapshot × mode), so a policy scoring below the data it learned from is flagged. Source: the dataset's
statistics written with the file (results/rl_data/<dataset>.json, `normalized_return_mean`).
"""
from .evaluate import MODES
from .module import SNAPSHOTS


def sanity_baselines(statistics: dict) -> dict:
    """statistics: a results/rl_data/<dataset>.json payload → {name: {metric: value}}."""
    score = statistics.get("normalized_return_mean")
    if not isinstance(score, (int, float)):
        raise ValueError(f"sanity_baselines: {statistics.get('dataset')!r} statistics lack normalized_return_mean")
    return {"behaviour_data": {f"{snapshot}_{mode}_normalized_score": float(score)
                               for snapshot in SNAPSHOTS for mode in MODES}}
