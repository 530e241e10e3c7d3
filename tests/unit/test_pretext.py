"""Pretraining methods: the registry (built-ins, a method of your own by decorator or entry point), the
rotation method (its batches, its loss, a fit that saves, loads, exports and resumes) and what it refuses."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import cli_in_process
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD, load_recipe, register_pretrainer
from toolkit.config import Config, ConfigError, PretrainConfig, SVDDConfig
from toolkit.engines import reconstruction_error, sq_error
from toolkit.export import export
from toolkit.nets import Autoencoder, build_autoencoder
from toolkit.overrides import apply_overrides
from toolkit.pretext import Rotation, RotationNet, rotated, score_terms, translated
from toolkit.registry import (
    PRETRAINER_GROUP,
    RegistryError,
    available_pretrainers,
    build_pretrainer,
    pretrainer_options,
    unregister_pretrainer,
)
from toolkit.run import RunHarness
from toolkit.runfolder import RunFolder
from toolkit.stages import pretrain


@pytest.fixture(scope="module")
def digit_images():
    """scikit-learn's digits as 1x8x8 images: the normal classes 0, 1, 3, and the rest."""
    d = load_digits()
    x = d.data.astype(np.float32).reshape(-1, 1, 8, 8)
    normal = np.isin(d.target, (0, 1, 3))
    return x[normal], x[~normal]


def small_images(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


# ------------------------------------------------------------------------------------------ the registry


def test_builtins_are_listed_with_their_settings_and_the_plugins_verb_shows_them():
    assert {"autoencoder", "rotation"} <= set(available_pretrainers())
    assert pretrainer_options("autoencoder") == {} and pretrainer_options("rotation") == {
        "flip": True,
        "translate": 0,
        "normalize": True,
        "score_mirrored": False,
        "embed_mirrored": False,
    }
    r = cli_in_process("plugins")
    assert r.returncode == 0, r.stderr
    clusterers, methods = r.stdout.split("\n\n")
    assert clusterers.startswith("clusterers (--clustering.name=NAME") and "finch(level=-1" in clusterers
    assert methods.startswith("pretraining methods (--pretrain.method=NAME, --pretrain.options.KEY=VALUE):")
    assert (
        "\nautoencoder()\n" in methods
        and "\nrotation(flip=True, translate=0, normalize=True, score_mirrored=False, embed_mirrored=False)" in methods
    )


def test_the_setting_is_pretrains_alone_and_the_natural_image_recipes_pretrain_by_rotation():
    assert not hasattr(SVDDConfig(), "method")
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "folder", "table", "custom_clusterer"):
        cfg = load_recipe(name)  # the recipes give a plain OptimConfig: taken as PretrainConfig
        want = "rotation" if name in ("cifar10", "folder") else "autoencoder"
        assert isinstance(cfg.pretrain, PretrainConfig) and cfg.pretrain.method == want
        assert cfg.model.pretrain == cfg.pretrain
    cfg = apply_overrides(Config(), {"pretrain.method": "rotation", "pretrain.options.flip": False})
    assert (cfg.pretrain.method, cfg.pretrain.options) == ("rotation", {"flip": False})
    r = cli_in_process("cifar10", "--help")
    assert r.returncode == 0 and "--pretrain.method" in r.stdout and "'rotation'" in r.stdout


def test_unknown_method_is_refused_with_the_accepted_ones_and_the_nearest():
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), {"pretrain.method": "rotaton"})
    msg = str(e.value)
    assert "did you mean 'rotation'?" in msg and "accepted: autoencoder, rotation" in msg and "\n" not in msg
    with pytest.raises(RegistryError, match="unknown pretraining method 'nope'; available: autoencoder, rotation"):
        build_pretrainer("nope")
    with pytest.raises(ConfigError, match=r"pretrain: pretraining method 'rotation' has no option\(s\) \['flp'\]"):
        MultiRadiusDeepSVDD(**{"pretrain.method": "rotation", "pretrain.options.flp": False}).fit(np.zeros((4, 64)))


def test_builtin_and_taken_names_are_refused():
    for name in ("autoencoder", "rotation"):
        with pytest.raises(RegistryError, match=f"'{name}' is a built-in pretraining method.*pick another name"):
            register_pretrainer(name, Rotation)
    register_pretrainer("test-taken", Rotation)
    try:
        with pytest.raises(RegistryError, match="already registered"):
            register_pretrainer("test-taken", lambda: None)
    finally:
        unregister_pretrainer("test-taken")
    register_pretrainer("test-no-loss", lambda: type("M", (), {"build": lambda self: None})())
    try:
        with pytest.raises(TypeError, match=r"built a M without loss\(\)"):
            build_pretrainer("test-no-loss")
    finally:
        unregister_pretrainer("test-no-loss")


def test_net_width_reaches_every_built_in_method_and_a_method_without_it_is_told_so():
    from toolkit.config import ConfigError, NetConfig
    from toolkit.pretext import Autoencoding, pretraining_net

    wide = NetConfig(width=2)
    for method in (Autoencoding(), Rotation()):
        net = pretraining_net(method, "lenet28", (1, 28, 28), wide)
        encoder = getattr(net.encoder, "net", net.encoder)  # rotation's unit-length embedding wraps it
        assert encoder.conv1.out_channels == 16

    class Old:  # a method written before net.width: builds as it did at the paper's width
        def build(self, arch, in_shape, rep_dim=0, hidden=(32,), leak=0.1, fused=False):
            return build_autoencoder(arch, in_shape, rep_dim, hidden, leak, fused)

    assert pretraining_net(Old(), "lenet28", (1, 28, 28), NetConfig()).encoder.conv1.out_channels == 8
    with pytest.raises(ConfigError, match=r"net.width=2: the pretraining method Old's build\(\) takes no `width`"):
        pretraining_net(Old(), "lenet28", (1, 28, 28), wide)


def test_own_method_registered_with_the_decorator_is_used_in_a_fit(tmp_path):
    """The example of docs/plugins.md: a denoising autoencoder."""
    calls = []

    @register_pretrainer("test-denoising")
    class Denoising:
        reconstructs = True  # net(x) reconstructs x: svdd.recon_weight may keep training the decoder
        score_name = "denoised reconstruction error"

        def __init__(self, noise: float = 0.1):
            self.noise = noise

        def build(self, arch, in_shape, rep_dim=0, hidden=(32,), leak=0.1, fused=False, width=1.0):
            return build_autoencoder(arch, in_shape, rep_dim, hidden, leak, fused, width)

        def loss(self, net, x, generator):
            calls.append(self.noise)
            noisy = x + self.noise * torch.randn(x.shape, generator=generator, device=x.device)
            return sq_error(net(noisy), x).mean()

        def score(self, net, x):
            return reconstruction_error(net, x)

    try:
        assert pretrainer_options("test-denoising") == {"noise": 0.1}
        d = load_digits()
        x = d.data.astype(np.float32)
        normal = np.isin(d.target, (0, 1, 3))
        settings = {"pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1}
        own = {"pretrain.method": "test-denoising", "pretrain.options.noise": 0.2}
        det = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **settings, **own).fit(x[normal])
        assert calls and set(calls) == {0.2} and isinstance(det.recon_, Autoencoder)
        assert "pretext" in det.scorer_.names  # the digits recipe's score: its own score is there
        pixels = "nearest-centre distance (raw input)"
        own_terms = f"sphere score + one-sphere score + denoised reconstruction error + {pixels}"
        assert score_terms(det.resolved_config()) == own_terms
        plain = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **settings).fit(x[normal])
        assert not np.array_equal(det.decision_function(x), plain.decision_function(x))  # its own loss trained
        again = MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **settings, **own).fit(x[normal])
        np.testing.assert_array_equal(again.decision_function(x), det.decision_function(x))  # seeded noise
        loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
        assert loaded.resolved_config().pretrain.method == "test-denoising"
        np.testing.assert_array_equal(loaded.decision_function(x), det.decision_function(x))
    finally:
        unregister_pretrainer("test-denoising")


@pytest.mark.slow  # a Python subprocess
def test_own_method_from_an_entry_point(tmp_path):
    (tmp_path / "my_pretext.py").write_text(
        textwrap.dedent("""
        from toolkit.pretext import Rotation


        def upright(flip: bool = False):
            return Rotation(flip=flip)
        """)
    )
    dist = tmp_path / "my_pretext-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pretext\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{PRETRAINER_GROUP}]\nupright = my_pretext:upright\nrotation = my_pretext:not_the_builtin\n"
    )
    code = textwrap.dedent("""
        from toolkit.config import Config
        from toolkit.overrides import apply_overrides
        from toolkit.registry import RegistryError, build_pretrainer
        assert apply_overrides(Config(), {"pretrain.method": "upright"}).pretrain.method == "upright"
        assert build_pretrainer("upright").flip is False
        try:
            build_pretrainer("rotation")
        except RegistryError as e:
            print(e)
        from toolkit.__main__ import main
        raise SystemExit(main(["plugins"]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    clash, listing = r.stdout.split("\n", 1)
    assert "'rotation' is built in" in clash and "my_pretext:not_the_builtin (my-pretext)" in clash
    assert "upright(flip=False)" in listing and "rotation: unavailable" in listing


# ---------------------------------------------------------------------------------------- rotation


def test_each_image_is_shown_in_its_four_rotations():
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    turns, which = rotated(x)
    assert turns.shape == (8, 1, 3, 3) and which.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for k in range(4):
        assert torch.equal(turns[2 * k : 2 * k + 2], torch.rot90(x, k, dims=(2, 3)))
    net = Rotation().build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,))
    assert isinstance(net, RotationNet) and net.head.out_features == 4 and net.encoder.rep_dim == 4
    assert all(m.bias is None for m in net.encoder.modules() if isinstance(m, torch.nn.Linear))  # bias-free
    xb = torch.rand(6, 1, 8, 8)
    losses = [Rotation().loss(net, xb, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert losses[0] == losses[1] != losses[2]  # the flips are the generator's draws
    assert Rotation(flip=False).loss(net, xb, torch.Generator()) == Rotation(flip=False).loss(net, xb, None)


def test_translated_images_are_shifted_copies_with_reflected_borders():
    x = torch.rand(64, 3, 8, 8)
    moved = translated(x, 2, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and torch.equal(moved, translated(x, 2, torch.Generator().manual_seed(0)))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    shifts = set()
    for i in range(len(x)):  # each image is one 8x8 window of its own reflected padding, the same for every channel
        found = [
            (a, b) for a in range(5) for b in range(5) if torch.equal(moved[i], padded[i, :, a : a + 8, b : b + 8])
        ]
        assert found, i
        shifts.add(found[0])
    assert len(shifts) > 10  # drawn per image, over the whole range
    net = Rotation(translate=2).build("mlp", (3, 8, 8), rep_dim=4, hidden=(8,))
    losses = [Rotation(flip=False, translate=t).loss(net, x, torch.Generator().manual_seed(1)) for t in (0, 2, 2)]
    assert losses[0] != losses[1] == losses[2]
    with pytest.raises(ValueError, match="rotation translate=-1 must be a whole number of pixels"):
        Rotation(translate=-1)
    with pytest.raises(ConfigError, match="translate=8 moves 8x8 images by as many pixels or more: it must be under 8"):
        Rotation(translate=8).build("mlp", (3, 8, 8), rep_dim=4, hidden=(8,))


def test_rotation_embeddings_are_unit_length_and_its_head_takes_the_raw_ones():
    """``normalize`` (the default) scales the embedding the toolkit takes to unit length; the pretext head
    is trained on the raw embedding either way, so the two settings pretrain the same net."""
    torch.manual_seed(0)
    unit = Rotation().build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,)).eval()
    torch.manual_seed(0)
    raw = Rotation(normalize=False).build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,)).eval()
    xb = torch.rand(6, 1, 8, 8)
    z, z_raw = unit.encoder(xb), raw.encoder(xb)
    assert torch.allclose(z.norm(dim=1), torch.ones(6)) and not torch.allclose(z_raw.norm(dim=1), torch.ones(6))
    assert torch.allclose(z, torch.nn.functional.normalize(z_raw, dim=1))
    assert torch.equal(unit(xb), raw(xb))  # the same logits: the head sees the raw embedding
    assert unit.encoder.rep_dim == 4
    with pytest.raises(ValueError, match="rotation normalize='yes' must be True or False"):
        Rotation(normalize="yes")


def test_rotation_loss_goes_down_on_small_images(digit_images):
    x = torch.from_numpy(digit_images[0])
    x = (x - x.amin()) / (x.amax() - x.amin())
    torch.manual_seed(0)
    method = Rotation()
    net = method.build("mlp", (1, 8, 8), rep_dim=16, hidden=(32,))
    opt = PretrainConfig(method="rotation", epochs=6, lr=1e-3, milestones=(), batch_size=32)
    losses = [e["loss"] for e in pretrain(net, x, opt, seed=0).as_dict()["epochs"]]
    assert losses[0] < 1.1 * math.log(4) and losses[-1] < 0.6 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))


def test_what_a_method_cannot_give_and_flat_vectors_are_refused_before_training(tmp_path):
    """A decoder to keep training needs a method that reconstructs; the pretext score term needs a method
    with ``score``; rotation needs images."""
    x = np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ConfigError) as e:
        settings = {"pretrain.method": "rotation", "svdd.recon_weight": 0.5}
        MultiRadiusDeepSVDD(load_recipe("digits"), **settings).fit(x)
    msg = str(e.value)
    assert "svdd.recon_weight=0.5 needs the reconstruction error" in msg and "pretrain.method='rotation'" in msg
    assert "set svdd.recon_weight=0" in msg and "\n" not in msg
    with pytest.raises(ConfigError) as e:  # the digits as given: flat vectors of 64 values
        MultiRadiusDeepSVDD(load_recipe("digits"), **{"pretrain.method": "rotation"}).fit(x.reshape(20, 64))
    msg = str(e.value)
    assert "vectors of shape (64,)" in msg and "lenet28" in msg and "lenet32" in msg and "\n" not in msg

    class Unscored:  # a method without `score`: pretraining is not evaluated, and it gives no pretext term
        def build(self, arch, in_shape, rep_dim=0, hidden=(32,), leak=0.1, fused=False):
            return build_autoencoder(arch, in_shape, rep_dim, hidden, leak, fused)

        def loss(self, net, x, generator):
            return reconstruction_error(net, x).mean()

    register_pretrainer("test-unscored", Unscored)
    try:
        with pytest.raises(ConfigError) as e:
            MultiRadiusDeepSVDD(load_recipe("digits"), **{"pretrain.method": "test-unscored"}).fit(x.reshape(20, 64))
        msg = str(e.value)
        assert "score.pretext=1 adds the pretrained network's own score" in msg and "set score.pretext=0" in msg
        assert "pretrain.method='test-unscored' has no `score`" in msg and "\n" not in msg
        r = cli_in_process("--pretrain.method=test-unscored", f"--run_dir={tmp_path / 'run'}")
        assert r.returncode == 2 and "score.pretext=1 adds the pretrained network's own score" in r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()
    finally:
        unregister_pretrainer("test-unscored")


def test_rotations_score_is_the_cross_entropy_summed_over_the_four_rotations():
    torch.manual_seed(0)
    net = Rotation().build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,)).eval()
    x = torch.rand(7, 1, 8, 8)
    turns, which = rotated(x)
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(net(turns), which, reduction="none").view(4, 7).sum(0)
        assert torch.equal(Rotation().score(net, x), want)


def test_the_mirrored_embedding_is_the_same_for_an_image_and_its_mirror_image():
    """``embed_mirrored``: the toolkit's embedding is the unit-length sum of the image's and its mirror
    image's raw embeddings; the net's weights and its pretext logits are those of the plain net, so a
    pretrained net loads into either."""
    torch.manual_seed(0)
    plain = Rotation().build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,)).eval()
    mirrored = Rotation(embed_mirrored=True).build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,)).eval()
    mirrored.load_state_dict(plain.state_dict())
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        z = mirrored.encoder(x)
        torch.testing.assert_close(z, mirrored.encoder(x.flip(-1)))
        raw = plain.encoder.net
        torch.testing.assert_close(z, torch.nn.functional.normalize(raw(x) + raw(x.flip(-1)), dim=1))
        assert not torch.allclose(z, plain.encoder(x)) and torch.equal(mirrored(x), plain(x))
    with pytest.raises(ValueError, match="embed_mirrored=True .* needs normalize=True"):
        Rotation(normalize=False, embed_mirrored=True)


def test_the_mirrored_score_adds_the_mirror_images_four_rotations():
    torch.manual_seed(0)
    net = Rotation().build("mlp", (1, 8, 8), rep_dim=4, hidden=(8,)).eval()
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        plain, mirrored = Rotation().score(net, x), Rotation(score_mirrored=True).score(net, x)
        torch.testing.assert_close(mirrored, plain + Rotation().score(net, x.flip(-1)))
    assert not torch.allclose(mirrored, 2 * plain)  # the mirror image is a view of its own
    with pytest.raises(ValueError, match="rotation score_mirrored=1 must be True or False"):
        Rotation(score_mirrored=1)


@pytest.mark.slow  # a fit of LeNet nets
def test_rotation_fit_saves_loads_and_exports_with_identical_scores(tmp_path):
    settings = {"pretrain.method": "rotation", "pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1}
    settings |= {"pretrain.batch_size": 20, "svdd.batch_size": 20, "score.multi": 1.0}
    det = MultiRadiusDeepSVDD(load_recipe("mnist"), device="cpu", **settings).fit(small_images(60))
    assert det.scorer_.names == ["multi", "knn:autoencoder", "centres:raw"]  # the recipe's score, with the spheres
    assert isinstance(det.recon_, RotationNet) and isinstance(det.autoencoder_, RotationNet)
    new = small_images(9, seed=1)
    scores = det.decision_function(new)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    assert isinstance(loaded.recon_, RotationNet)
    np.testing.assert_array_equal(loaded.decision_function(new), scores)
    scorer = torch.jit.load(str(export(loaded, tmp_path / "scorer.pt")))
    np.testing.assert_allclose(scorer(torch.from_numpy(new)).numpy(), scores, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # a fit of LeNet nets
@pytest.mark.parametrize("mirrored", [False, True])
def test_rotations_own_score_joins_the_score_and_saves_loads_and_exports(tmp_path, mirrored):
    """score.pretext with rotation: the "pretext" column is ``Rotation().score`` of the pretrained net on the
    preprocessed input (with ``score_mirrored``, the mirror images' rotations too); the saved, loaded and
    exported (TorchScript, ONNX) detectors score the same, with the mirrored embedding too."""
    settings = {"pretrain.method": "rotation", "pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1}
    settings |= {"pretrain.options.score_mirrored": mirrored, "pretrain.options.embed_mirrored": mirrored}
    settings |= {"pretrain.batch_size": 20, "svdd.batch_size": 20, "score.pretext": 1.0}
    det = MultiRadiusDeepSVDD(load_recipe("mnist"), device="cpu", **settings).fit(small_images(60))
    assert det.scorer_.names == ["multi", "pretext", "knn:autoencoder", "centres:raw"]  # the spheres' weight: 0
    assert score_terms(det.resolved_config()) == (
        "rotation cross-entropy + 5-NN distance (autoencoder embedding) + nearest-centre distance (raw input)"
    )
    new = small_images(9, seed=1)
    with torch.inference_mode():
        want = Rotation(score_mirrored=mirrored).score(det.recon_, det.preprocessor_(torch.from_numpy(new)))
        column = det.scorer_.columns(torch.from_numpy(new))[0][:, 1]
    assert torch.equal(column, want) and torch.equal(det.scorer_.score_column("pretext", torch.from_numpy(new)), want)
    scores = det.decision_function(new)
    loaded = MultiRadiusDeepSVDD.load(det.save(tmp_path / "det.pt"))
    assert isinstance(loaded.recon_, RotationNet) and loaded.scorer_.names == det.scorer_.names
    np.testing.assert_array_equal(loaded.decision_function(new), scores)
    scorer = torch.jit.load(str(export(loaded, tmp_path / "scorer.pt")))  # recorded on 4 rows, run on 9
    np.testing.assert_allclose(scorer(torch.from_numpy(new)).numpy(), scores, rtol=1e-4, atol=1e-4)
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(export(loaded, tmp_path / "scorer.onnx")))
    np.testing.assert_allclose(session.run(None, {"x": new})[0], scores, rtol=1e-4, atol=1e-4)


def test_rotation_pretraining_resumes_exactly_and_logs_to_tensorboard(digit_images, tmp_path):
    """A resumed pretraining (from the checkpoint of its last but one epoch) ends with the weights of an
    uninterrupted one: the flips are drawn from the step's seeded generator. Its loss and test AUROC (by
    the rotation score) go to TensorBoard."""
    from ignite.contrib.handlers import TensorboardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x = torch.from_numpy(digit_images[0][:96])
    opt = PretrainConfig(method="rotation", epochs=3, lr=1e-3, milestones=(), batch_size=32)

    def train(folder, resume):
        torch.manual_seed(0)
        net = Rotation().build("mlp", (1, 8, 8), rep_dim=8, hidden=(16,))
        pretrain(net, x, opt, seed=0, harness=RunHarness(run=folder, resume=resume))
        return net.state_dict()

    reference = train(RunFolder(tmp_path / "ref"), False)
    folder = RunFolder(tmp_path / "run")
    train(folder, False)
    kept = [p.name for p in folder.checkpoints_of("pretrain")]
    assert sorted(kept) == ["pretrain_checkpoint_3.pt", "pretrain_checkpoint_6.pt"]  # epochs 1 and 2
    resumed = train(folder, True)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)

    normal, anomalous = digit_images
    test = (torch.from_numpy(np.concatenate([normal[:50], anomalous[:50]])), torch.arange(100) >= 50)
    settings = {"pretrain.method": "rotation", "pretrain.epochs": 2, "svdd.epochs": 1, "svdd.warmup_epochs": 1}
    settings |= {"net.arch": "mlp"}
    with TensorboardLogger(log_dir=str(tmp_path / "tb")) as tb:
        harness = RunHarness(tb=tb, eval_raw=test)
        MultiRadiusDeepSVDD(load_recipe("digits"), device="cpu", **settings).fit(normal, harness=harness)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert {"pretrain/loss", "pretrain/test/auroc"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("pretrain/loss")] == [1, 2]


def test_precise_batchnorm_after_rotation_pretraining_takes_the_rotated_batches_statistics(digit_images):
    """pretrain.refresh_bn: each BatchNorm's running statistics become those of the batches the method
    trained on, the four rotations of every image, not those of the upright images alone nor the moving
    average of the last batches."""
    x = torch.from_numpy(digit_images[0][:96])
    method = Rotation(flip=False)
    opt = PretrainConfig(method="rotation", epochs=2, lr=1e-3, milestones=(), batch_size=32, refresh_bn=True)
    torch.manual_seed(0)
    net = method.build("mlp", (1, 8, 8), rep_dim=8, hidden=(16,))
    pretrain(net, x, opt, seed=0, method=method)
    mlp = net.encoder.net
    bn = next(m for m in mlp.modules() if isinstance(m, torch.nn.BatchNorm1d))
    with torch.no_grad():
        seen = mlp[1](rotated(x)[0].flatten(1))  # the first layer's output on every rotation
        upright = mlp[1](x.flatten(1))
    assert not net.training
    assert torch.allclose(bn.running_mean, seen.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, seen.var(0), rtol=0.05)
    assert not torch.allclose(bn.running_mean, upright.mean(0), atol=1e-2)


def test_the_loss_in_evaluation_mode_shows_batchnorm_statistics_off_the_weights(digit_images, caplog):
    """The pretraining loss with the net in evaluation mode (as the spheres see it) is logged beside the
    training loss; far above it, with BatchNorm's statistics not recomputed, the log says how to."""
    import logging

    from toolkit.nets import refresh_batchnorm
    from toolkit.runner import report_evaluation_loss
    from toolkit.stages import evaluation_loss

    x = torch.from_numpy(digit_images[0][:96])
    method = Rotation()
    opt = PretrainConfig(method="rotation", epochs=30, lr=1e-2, milestones=(), batch_size=32)
    torch.manual_seed(0)
    net = method.build("mlp", (1, 8, 8), rep_dim=8, hidden=(16,))
    history = pretrain(net, x, opt, seed=0, method=method).as_dict()
    trained = history["epochs"][-1]["loss"]
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d))
    bn.running_mean += 2 * bn.running_var.sqrt()  # statistics that no longer fit the weights
    off = evaluation_loss(net, x, method, 32, seed=0)
    assert off > 2 * trained and not net.training
    assert evaluation_loss(net, x, method, 32, seed=0) == off  # its draws seeded: the same number again
    with caplog.at_level(logging.INFO, logger="toolkit"):
        report_evaluation_loss({"history": history, "eval_loss": off}, refreshed=False)
    assert f"{off:.4g} in evaluation mode" in caplog.text and "--pretrain.refresh_bn=True" in caplog.text
    refresh_batchnorm(net, x, 32, lambda xb: method.loss(net, xb, torch.Generator().manual_seed(0)))
    assert evaluation_loss(net, x, method, 32, seed=0) < 1.5 * trained
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="toolkit"):
        report_evaluation_loss({"history": history, "eval_loss": trained}, refreshed=False)
    assert "in evaluation mode" in caplog.text and "refresh_bn" not in caplog.text


@pytest.mark.slow  # CLI runs on image files
def test_a_rotation_run_resumes_from_its_finished_pretraining(tmp_path):
    """A run folder whose pretraining finished (the later stages lost): --resume takes the pretrained
    rotation net from it and ends with the uninterrupted run's detector."""
    np.save(tmp_path / "images.npy", small_images(60))
    args = [
        "folder",
        f"--data.dataset={tmp_path / 'images.npy'}",
        "--pretrain.method=rotation",
        "--pretrain.epochs=2",
        "--svdd.epochs=1",
        "--svdd.warmup_epochs=1",
        "--pretrain.batch_size=20",
        "--svdd.batch_size=20",
        "--baseline=False",
        "--progress=none",
    ]
    run_dir = tmp_path / "run"
    r = cli_in_process(*args, f"--run_dir={run_dir}")
    assert r.returncode == 0, r.stderr
    first = MultiRadiusDeepSVDD.load(run_dir / "detector_multi.pt")
    for stage in (run_dir / "stages").iterdir():
        if not stage.name.startswith("pretrain"):
            stage.unlink()
    (run_dir / "detector_multi.pt").unlink()
    r = cli_in_process(*args, f"--run_dir={run_dir}", "--resume=True")
    assert r.returncode == 0, r.stderr
    assert "pretrain: finished earlier" in r.stderr and "clustering: finished earlier" not in r.stderr
    again = MultiRadiusDeepSVDD.load(run_dir / "detector_multi.pt")
    x = small_images(7, seed=2)
    np.testing.assert_array_equal(again.decision_function(x), first.decision_function(x))
