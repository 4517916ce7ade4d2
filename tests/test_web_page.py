"""web/: the exported ETTh1 forecaster in onnxruntime-web, driven in headless Chromium, forecasts the shipped test
series as the torch OnlineForecaster does, with a state that stays the same size while the KV cache grows.

Needs Debian's chromium and the npm packages (`apt-get install chromium`, `npm ci`); skips without them.
The model is a smoke-trained one exported here: checkpoints are not committed, and the torch reference needs the
same weights the page runs.
"""
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.deploy_runs import smoke_run
from tests.harness_toy.helpers import REPO, isolated_torch

sys.path.insert(0, str(REPO))
from scripts import export  # noqa: E402
from tasks.forecasting.online import OnlineForecaster  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
STEPS = 120
TOLERANCE = 1e-4
MISSING = [what for what, present in (
    ("chromium (apt-get install chromium)", Path(CHROMIUM).is_file()),
    ("node and npm (apt-get install nodejs npm)", shutil.which("node") is not None),
    ("the npm packages onnxruntime-web and playwright-core (npm ci)",
     all((REPO / "node_modules" / name).is_dir() for name in ("onnxruntime-web", "playwright-core"))),
    ("onnxruntime and onnxscript (pip install -e '.[experiments]')",
     all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnxscript"))),
) if not present]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the browser test needs {', '.join(MISSING)}")


class _Handler(SimpleHTTPRequestHandler):
    """The repository as a static site, and /_model/ from the test's folder."""

    def __init__(self, *args, model_dir: Path, **kwargs):
        self.model_dir = model_dir
        super().__init__(*args, directory=str(REPO), **kwargs)

    def translate_path(self, path: str) -> str:
        if path.startswith("/_model/"):
            return str(self.model_dir / path.removeprefix("/_model/").split("?")[0])
        return super().translate_path(path)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, model_dir=tmp_path))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_the_page_streams_etth1_as_the_torch_forecaster(tmp_path, server, capsys):
    folder = smoke_run(tmp_path / "runs", "forecasting")
    with isolated_torch():
        assert export.main(["--run", str(folder), "--out", str(tmp_path / "etth1.onnx")]) == 0
    capsys.readouterr()
    url = f"{server}/web/index.html?model=/_model/etth1.onnx&steps={STEPS}"
    done = subprocess.run(["node", str(REPO / "web" / "test" / "run_page.mjs"), url], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, CHROMIUM=CHROMIUM))
    assert done.returncode == 0, done.stderr[-3000:]
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["error"] is None and page["done"], page
    assert len(page["forecasts"]) == STEPS and page["steps_shown"] == str(STEPS)

    _, module, datamodule = export.load_run(folder)
    datamodule.setup("test")
    start, _ = datamodule.series.borders["test"]
    x = torch.from_numpy(datamodule.series.values[start:start + STEPS])       # (T, C), the scaled test rows
    marks = torch.from_numpy(datamodule.series.marks[start:start + STEPS])    # (T, F)
    online = OnlineForecaster(module, batch_size=1)
    reference = np.stack([online.update(x[t:t + 1], marks[t:t + 1]).reshape(-1).numpy() for t in range(STEPS)])
    worst = float(np.abs(np.asarray(page["forecasts"]) - reference).max())
    assert worst <= TOLERANCE, f"the page's forecasts differ from torch by {worst:.2e}"

    signature = json.loads((tmp_path / "etth1.onnx.json").read_text())
    m = next(i for i in signature["inputs"] if i["name"] == "m")
    assert page["stateBytes"] == online.state_nbytes + 8  # + the int64 position the Python object keeps as int
    kv = int(re.sub(r"\D", "", page["kv_bytes_shown"]))  # shown with the locale's digit grouping
    assert kv == 2 * m["shape"][0] * STEPS * module.backbone.d_model * 4 > page["stateBytes"]
