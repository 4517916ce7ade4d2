"""A smoke-trained Decision Transformer exported to ONNX and played in MuJoCo from onnxruntime
(scripts/play_onnx_policy.py) scores what evaluate.py's torch stream mode scores on the same seeds."""
import json
import sys

import numpy as np
import pytest

from tests.deploy_runs import smoke_run
from tests.harness_toy.helpers import REPO, isolated_torch

pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco")
sys.path.insert(0, str(REPO))
from scripts import export, play_onnx_policy  # noqa: E402
from tasks.rl.online import best_weights  # noqa: E402

EPISODES = 3


def test_onnxruntime_episodes_score_as_the_torch_stream_mode(tmp_path, capsys):
    folder = smoke_run(tmp_path, "rl")
    model = tmp_path / "dt.onnx"
    with isolated_torch():
        assert export.main(["--run", str(folder), "--out", str(model)]) == 0
    capsys.readouterr()
    assert play_onnx_policy.main(["--model", str(model), "--run", str(folder), "--episodes", str(EPISODES)]) == 0
    played = json.loads(capsys.readouterr().out)

    _, module, _ = export.load_run(folder)
    best_weights(module)
    with isolated_torch():
        torch_stream = module.run_evaluation("stream", EPISODES, module.hparams.eval_seed_test)
    assert played["seed"] == module.hparams.eval_seed_test and played["env"] == module.env_name
    assert np.mean(played["lengths"]) == torch_stream["episode_length_mean"] and max(played["lengths"]) > 1
    np.testing.assert_allclose(played["returns"], torch_stream["returns"], rtol=1e-5)
    assert played["normalized_score"] == pytest.approx(torch_stream["normalized_score"], rel=1e-5)


def test_the_empty_state_comes_from_the_signature():
    signature = {"inputs": [{"name": "obs", "shape": [1, 3], "dtype": "float32", "stream_dim": 0},
                            {"name": "m", "shape": [2, 1, 4], "dtype": "float32", "stream_dim": 1, "initial": "-inf"},
                            {"name": "t", "shape": [], "dtype": "int64", "stream_dim": None, "initial": 0.0}]}
    m, t = play_onnx_policy.empty_state(signature, 5)
    assert m.shape == (2, 5, 4) and np.all(m == -np.inf) and t.shape == () and t.dtype == np.int64
