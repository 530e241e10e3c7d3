"""Checked overrides (dotted, bare and dict keys, types, the nearest valid names) and the help table."""

import pytest
from conftest import cli_in_process

from toolkit.config import Config, ConfigError
from toolkit.overrides import CHOICES, apply_overrides, describe, field_help, field_table


def test_dotted_bare_and_dict_overrides():
    cfg = apply_overrides(
        Config(),
        {
            "svdd.epochs": 3,
            "normal_classes": [0, 1, 3],
            "clustering.name": "kmeans",
            "svdd.lr": 1,
            "clustering.options.n_clusters": 4,
            "baseline": "false",
        },
    )
    assert cfg.svdd.epochs == 3 and cfg.data.normal_classes == (0, 1, 3)
    assert cfg.clustering.name == "kmeans" and cfg.clustering.options == {"n_clusters": 4}
    assert cfg.svdd.lr == 1.0 and isinstance(cfg.svdd.lr, float) and cfg.baseline is False
    assert cfg.pretrain.epochs == Config().pretrain.epochs  # untouched


def test_unknown_key_lists_valid_settings():
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), {"svdd.epoch": 3})
    assert "unknown setting --svdd.epoch" in str(e.value) and "--svdd.epochs" in str(e.value)


def test_ambiguous_bare_key_is_refused():
    with pytest.raises(ConfigError, match="ambiguous.*--pretrain.epochs"):
        apply_overrides(Config(), {"epochs": 3})


@pytest.mark.parametrize(
    "key,value",
    [
        ("svdd.epochs", 2.5),
        ("svdd.epochs", "three"),
        ("svdd.nu", "high"),
        ("normal_classes", "0,1"),
        ("baseline", 3),
        ("clustering.options", [1]),
    ],
)
def test_wrong_types_are_refused(key, value):
    with pytest.raises(ConfigError, match="wrong type"):
        apply_overrides(Config(), {key: value})


@pytest.mark.parametrize(
    "typo, suggestion", [("svdd.epoch", "--svdd.epochs"), ("svd.nu", "--svdd.nu"), ("pretrain.lr_", "--pretrain.lr")]
)
def test_unknown_setting_suggests_the_nearest_ones(typo, suggestion):
    with pytest.raises(ConfigError, match="did you mean") as e:
        apply_overrides(Config(), {typo: 1})
    assert suggestion in str(e.value) and len(str(e.value).splitlines()) == 1


def test_every_setting_has_help_and_closed_sets_list_their_values():
    helps = field_help()
    assert set(helps) == set(field_table(Config())) and all(helps.values())
    text = describe(Config())
    assert "--svdd.nu" in text and "share of training points allowed outside" in text
    for key, values in CHOICES.items():
        line = next(line for line in text.splitlines() if line.strip().startswith(f"--{key} "))
        assert all(repr(v) in line for v in values)


def test_help_text_comes_whole_from_the_field_metadata():
    """A help text written over several lines reaches ``--help`` whole, on its setting's line."""
    whole = (
        'with score.knn: "embedding" (the multi-sphere encoder\'s), "autoencoder" (the pretrained network\'s '
        'encoder), "input" (the preprocessed input), "raw" (the data as given), "pooled" (images as given, each '
        'channel averaged over a 4x4 grid of patches: their colour layout), or several joined by "+" '
        '("autoencoder+raw"): one k-NN column per space, each weighted by score.knn'
    )
    assert field_help()["score.knn_space"] == whole
    r = cli_in_process("digits", "--help")
    assert r.returncode == 0
    line = next(line for line in r.stdout.splitlines() if line.strip().startswith("--score.knn_space "))
    assert whole in line


def test_naming_another_clusterer_starts_its_options_afresh():
    from toolkit.recipes_loader import load_recipe

    digits = load_recipe("digits")  # FINCH with its level option
    assert digits.clustering.options == {"level": 0}
    kmeans = apply_overrides(digits, {"clustering.name": "kmeans", "clustering.options.n_clusters": 3})
    assert kmeans.clustering.options == {"n_clusters": 3}  # the sub-key applies after the reset, in any order
    assert apply_overrides(digits, {"clustering.options.n_clusters": 3, "clustering.name": "kmeans"}) == kmeans
    assert apply_overrides(digits, {"clustering.name": "single"}).clustering.options == {}
    same = apply_overrides(digits, {"clustering.name": "finch"})  # the same clusterer keeps them
    assert same.clustering.options == {"level": 0}
    assert apply_overrides(digits, {"clustering.options.min_size": 2}).clustering.options == {"level": 0, "min_size": 2}


def test_overrides_are_checked_together_in_any_order():
    """A section is checked once all of its overrides apply: classes named by folder may come before
    the folder that has them (checked one by one, cifar10's classes 0..9 refused the names)."""
    from toolkit.recipes_loader import load_recipe

    over = {"data.normal_classes": ["airplane", "automobile"], "data.dataset": "images/train"}
    cfg = apply_overrides(load_recipe("cifar10"), over)
    assert cfg == apply_overrides(load_recipe("cifar10"), dict(reversed(over.items())))
    assert cfg.data.normal_classes == ("airplane", "automobile") and cfg.data.dataset == "images/train"
    with pytest.raises(ConfigError, match=r"--data.normal_classes=.*cifar10 has classes 0..9"):
        apply_overrides(load_recipe("cifar10"), {"data.normal_classes": ["airplane"]})


@pytest.mark.parametrize(
    "old,new",
    [
        ("svdd.score_multi", "score.multi"),
        ("svdd.score", "score.rule"),
        ("knn_space", "score.knn_space"),
        ("score.recon", "score.pretext"),
        ("recon", "score.pretext"),
        ("svdd.score_recon", "score.pretext"),
    ],
)
def test_the_scores_old_setting_names_point_to_the_new_ones(old, new):
    """The score's settings moved from ``svdd`` to their own section, and the pretrained network's own score
    term is ``score.pretext`` whatever its method scores by: an old name says where it went."""
    with pytest.raises(ConfigError, match=f"--{old} is now --{new}; did you mean --{new}"):
        apply_overrides(Config(), {old: 1})
    r = cli_in_process("digits", f"--{old}=1")
    assert r.returncode == 2 and f"did you mean --{new}?" in r.stderr


def test_a_refusal_of_a_keyword_setting_names_it_as_the_keyword_given():
    """The estimator's settings are keywords (MultiRadiusDeepSVDD(cfg, **{"svdd.nu": 0.1})), not options."""
    from toolkit import MultiRadiusDeepSVDD, load_recipe
    from toolkit.overrides import as_keywords

    assert as_keywords("--svdd.score_knn is now --score.knn; did you mean --score.knn?") == (
        "'svdd.score_knn' is now 'score.knn'; did you mean 'score.knn'?"
    )
    assert as_keywords("--svdd.nu=3.0: svdd.nu=3.0 must be in (0, 1]") == "svdd.nu=3.0: svdd.nu=3.0 must be in (0, 1]"
    with pytest.raises(
        ConfigError, match=r"unknown setting 'svdd.nuu'; did you mean 'svdd.nu'.*\(python -m toolkit -h"
    ):
        MultiRadiusDeepSVDD(load_recipe("digits"), **{"svdd.nuu": 0.1}).resolved_config()
