"""The run configuration's dataclasses: their checks and help metadata; the toolkit's modules import no cycle."""

import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import toolkit
import toolkit.config as C
from toolkit import overrides, recipes_loader
from toolkit.config import Config, ConfigError
from toolkit.overrides import apply_overrides
from toolkit.stages import make_optimizer


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("svdd.nu", 0.0, r"\(0, 1\]"),
        ("svdd.nu", 1.5, r"\(0, 1\]"),
        ("normal_classes", [], "empty"),
        ("normal_classes", [1, 1], "duplicates"),
        ("normal_classes", [12], "0..9"),
        ("svdd.objective", "hard", "accepted"),
        ("data.dataset", "", "path of your data"),
        ("data.image_mode", "sepia", "accepted"),
        ("preprocess", "zscore", "accepted"),
        ("pretrain.optimizer", "rmsprop", "accepted"),
        ("svdd.momentum", 1.0, r"\[0, 1\)"),
        ("net.width", 0.0, "positive multiple"),
        ("net.width", float("nan"), "positive multiple"),
    ],
)
def test_bad_values_are_refused(key, value, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), {key: value})


@pytest.mark.parametrize("name", C.OPTIMIZERS)
def test_each_stage_trains_with_the_optimizer_its_settings_name(name):
    params = [torch.nn.Parameter(torch.ones(3))]
    opt = C.OptimConfig(optimizer=name, lr=0.1, momentum=0.5, weight_decay=1e-3, milestones=(2,), gamma=0.5)
    optimizer, scheduler = make_optimizer(params, opt)
    assert type(optimizer) is {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["weight_decay"] == 1e-3
    if name == "sgd":
        assert optimizer.defaults["momentum"] == 0.5 and optimizer.defaults["nesterov"]
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_every_leaf_field_keeps_its_help_in_its_metadata():
    for cls in (C.DataConfig, C.NetConfig, C.PretrainConfig, C.SVDDConfig, C.ClusteringConfig, C.MonitorConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata["help"].strip(), f"{cls.__name__}.{f.name}"


def test_the_package_exports_the_defining_modules_names_and_no_module_imports_itself_back():
    """``from toolkit import apply_overrides, load_recipe`` gives the defining modules' own; no toolkit module
    imports (at top level) one that imports it back: config.py, which the others build on, imports neither."""
    assert toolkit.apply_overrides is overrides.apply_overrides and toolkit.load_recipe is recipes_loader.load_recipe
    assert not hasattr(C, "apply_overrides") and not hasattr(C, "load_recipe")
    mods = {p.stem: p for p in Path(toolkit.__file__).parent.glob("*.py")}
    graph = {
        m: {
            n.module.split(".")[0]
            for n in ast.parse(p.read_text()).body
            if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module
        }
        & set(mods)
        for m, p in mods.items()
    }
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        for n in graph[m]:
            assert n not in path, f"import cycle: {' -> '.join(path[path.index(n) :] + [n])}"
            if n not in done:
                visit(n, path + [n])
        done.add(m)

    for m in graph:
        visit(m, [m])
