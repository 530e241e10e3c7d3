"""The run configuration's dataclasses: their checks, help metadata and the names they re-export."""

import dataclasses

import pytest

import toolkit.config as C
from toolkit import overrides, recipes_loader
from toolkit.config import Config, ConfigError, apply_overrides


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
    ],
)
def test_bad_values_are_refused(key, value, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), {key: value})


def test_every_leaf_field_keeps_its_help_in_its_metadata():
    for cls in (C.DataConfig, C.NetConfig, C.PretrainConfig, C.SVDDConfig, C.ClusteringConfig, C.MonitorConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata["help"].strip(), f"{cls.__name__}.{f.name}"


def test_the_moved_names_are_still_importable_from_config():
    """Recipes, plugins and user code import these from toolkit.config; they are the defining modules' own."""
    for name in ("CHOICES", "apply_overrides", "describe", "field_help", "field_table", "resolve_key"):
        assert getattr(C, name) is getattr(overrides, name), name
    for name in ("default_recipe", "dumps", "from_dict", "load_recipe", "packaged_recipes", "replay", "to_dict"):
        assert getattr(C, name) is getattr(recipes_loader, name), name
