"""Config composition for every (task, dataset, model) the configs define, run identity, clear config errors."""
import sys
from pathlib import Path

import hydra
import pytest
import yaml
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.harness import identity  # noqa: E402
from tasks.harness.checks import check_run_config  # noqa: E402
from tasks.errors import ConfigError  # noqa: E402
from tasks.harness.runner import trainer_kwargs  # noqa: E402
from tests.harness_toy.helpers import CONF, TOY_CONF, compose_config, path_overrides, run_in_process  # noqa: E402

CONF_DIRS = (CONF, TOY_CONF)


def _yaml_stems(sub: str) -> list[str]:
    return sorted({path.relative_to(d / sub).with_suffix("").as_posix()
                   for d in CONF_DIRS for path in (d / sub).rglob("*.yaml")})


def _datasets_by_task() -> dict[str, list[str]]:
    by_task = {}
    for conf_dir in CONF_DIRS:
        for path in sorted((conf_dir / "dataset").glob("*.yaml")):
            by_task.setdefault((yaml.safe_load(path.read_text()) or {}).get("task"), []).append(path.stem)
    return by_task


TASKS, MODELS = _yaml_stems("task"), _yaml_stems("model")
# Every (task, dataset) composes with every model: composed with model=aaren here, while
# test_models_differ_only_in_backbone_kind shows the other model changes `kind` alone (halves the composing time).
COMBOS = [(t, d) for t in TASKS for d in _datasets_by_task().get(t, [])]
PAPER = [name for name in _yaml_stems("experiment") if name.startswith("paper/")]


def test_discovery_sees_the_toy_task_and_both_models():
    assert "toy" in TASKS and MODELS == ["aaren", "transformer"]
    assert ("toy", "toy_square") in COMBOS


@pytest.mark.parametrize("task,dataset", COMBOS)
def test_every_combination_composes(task, dataset):
    cfg = compose_config([f"task={task}", f"dataset={dataset}", "model=aaren"])
    check_run_config(cfg)
    assert (cfg.task.name, cfg.dataset.name, cfg.task.backbone.kind) == (task, dataset, "aaren")
    trainer_kwargs(cfg)  # every trainer key is a lightning.Trainer argument
    for key in ("task.datamodule._target_", "task.module._target_"):
        hydra.utils.get_class(OmegaConf.select(cfg, key))  # the class exists and imports


@pytest.mark.parametrize("task", TASKS)
def test_models_differ_only_in_backbone_kind(task):
    configs = [identity.identity_config(compose_config([f"task={task}", f"model={m}"])) for m in MODELS]

    def leaves(node, prefix=""):
        if isinstance(node, dict):
            return {k: v for key, sub in node.items() for k, v in leaves(sub, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): node}

    a, b = (leaves(c) for c in configs)
    assert {key.rsplit(".", 1)[-1] for key in set(a) | set(b) if a.get(key) != b.get(key)} == {"kind"}


@pytest.mark.parametrize("task", TASKS)
def test_task_picks_its_default_dataset_and_the_command_line_wins(task):
    cfg = compose_config([f"task={task}"])
    assert cfg.dataset.task == task
    others = [d for d in _datasets_by_task()[task] if d != cfg.dataset.name]
    if others:
        assert compose_config([f"task={task}", f"dataset={others[0]}"]).dataset.name == others[0]


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_grids_name_existing_datasets_of_their_task(experiment):
    cfg = compose_config([f"experiment={experiment}"], return_hydra_config=True)
    params = dict(cfg.hydra.sweeper.params)
    task = cfg.task.name
    datasets = str(params.get("dataset", cfg.dataset.name)).split(",")
    assert set(datasets) <= set(_datasets_by_task()[task]), f"{experiment}: unknown datasets"
    assert set(str(params.get("model", "")).split(",")) == {"aaren", "transformer"}
    assert "seed" in params
    for key in params:  # every swept key exists in the composed config
        assert key in ("dataset", "model", "seed") or OmegaConf.select(cfg, key) is not None, key


@pytest.mark.parametrize("experiment", [name for name in _yaml_stems("experiment") if not name.startswith("paper/")])
def test_other_experiments_compose(experiment):
    check_run_config(compose_config([f"experiment={experiment}"]))


def test_launcher_configs_compose():
    for launcher, target in (("local_parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")):
        cfg = compose_config(["task=toy", f"hydra/launcher={launcher}"], return_hydra_config=True)
        assert cfg.hydra.launcher._target_.endswith(target)


def test_missing_task_is_a_clear_hydra_error():
    with pytest.raises(hydra.errors.ConfigCompositionException, match="You must specify .task."):
        compose_config([])


# --- run identity ---------------------------------------------------------------------------------------

def test_identity_ignores_paths_and_logging_but_not_what_changes_results(tmp_path):
    base = compose_config(["task=toy", *path_overrides(tmp_path)])
    same = [["task=toy", *path_overrides(tmp_path / "elsewhere")], ["task=toy", "logger=csv"],
            ["task=toy", "trainer.enable_progress_bar=false"]]
    different = [["task=toy", "seed=1"], ["task=toy", "model=transformer"], ["task=toy", "dataset=toy_square"],
                 ["task=toy", "task.module.optim.lr=0.5"], ["task=toy", "task.variant.horizon=2"],
                 ["task=toy", "trainer=ddp"]]
    h = identity.config_hash(base)
    assert all(identity.config_hash(compose_config(o)) == h for o in same)
    hashes = {identity.config_hash(compose_config(o)) for o in different}
    assert h not in hashes and len(hashes) == len(different)
    assert identity.run_id(base, experiment="adhoc") != identity.run_id(base, experiment="cpu/x")
    assert identity.run_id(base, experiment="adhoc").startswith("aaren_s0_")
    assert identity.identity_config(base)["task"]["datamodule"]["data_root"] == identity.IGNORED


# --- malformed values fail with a message naming the key ------------------------------------------------

@pytest.mark.parametrize("override,message", [
    ("seed=-1", "'seed'"), ("seed=abc", "'seed'"), ("model.kind=rnn", "'model.kind'"),
    ("task.monitor_mode=maximum", "'task.monitor_mode'"), ("task.patience=soon", "'task.patience'"),
    ("dataset.task=other", "belongs to task 'other'"), ("logger.kind=tensorboard", "'logger.kind'"),
    ("task.variant={horizon: [1, 2]}", "'task.variant.horizon'"), ("force=maybe", "'force'"),
    ("~task.datamodule._target_", "'task.datamodule'"),
])
def test_malformed_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        check_run_config(compose_config(["task=toy", override]))


def test_unknown_trainer_argument_is_named():
    with pytest.raises(ConfigError, match="max_epoch"):
        trainer_kwargs(compose_config(["task=toy", "+task.trainer.max_epoch=3"]))


@pytest.mark.parametrize("override,message", [
    ("task.module.optim.lr=-1", "optim.lr"), ("task.module.optim.name=sgd", "optim.name"),
    ("task.module.optim.schedule.name=cosine", "optim.schedule.name"),
    ("+task.backbone.n_head=2", "unknown keys \\['n_head'\\]"),
    ("task.backbone.d_model=9", "divisible"), ("task.backbone.dropout=1.5", "dropout"),  # aaren's own checks
])
def test_malformed_module_values_fail_before_training(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):  # ConfigError or aaren's ValueError, naming the key
        run_in_process(tmp_path, ["task=toy", override])
