"""Training and scoring on the user's own data: image folders, .npy/.npz arrays, .csv tables; the
preprocessing setting; image layouts; the folder and table recipes end to end."""

import json

import numpy as np
import pytest
import torch
from conftest import cli
from PIL import Image

from toolkit import MultiRadiusDeepSVDD
from toolkit.__main__ import main
from toolkit.config import ConfigError, DataConfig
from toolkit.data import DataError, image_layout, load_split
from toolkit.nets import resolve_arch
from toolkit.preprocessing import Preprocessor, Standardizer, build_preprocessor, resolve_preprocess
from toolkit.sources import image_files, image_mode, open_npy, read_images, read_npz, read_table

# short schedules, one SVDD model (no one-sphere term or baseline): these tests are about the data paths
TINY = [
    "--pretrain.epochs=2",
    "--svdd.epochs=2",
    "--svdd.warmup_epochs=1",
    "--score.single=0",
    "--baseline=False",
    "--monitor.projector_samples=50",
    "--progress=none",
]


def _bar_image(rng, vertical: bool, size: int = 40, colour: bool = False) -> Image.Image:
    a = rng.integers(0, 40, (size, size)).astype(np.uint8)
    if vertical:
        a[size // 4 : 3 * size // 4, size // 2 - 3 : size // 2 + 3] = 255
    else:
        a[size // 2 - 3 : size // 2 + 3, size // 8 : 7 * size // 8] = 255
    return Image.fromarray(np.stack([a, a // 2, a], axis=2) if colour else a)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """normal/ (vertical bars) and odd/ (horizontal bars), grey 40x40 PNGs."""
    root = tmp_path_factory.mktemp("own") / "images"
    rng = np.random.default_rng(0)
    for cls, n, vertical in (("normal", 40, True), ("odd", 12, False)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            _bar_image(rng, vertical).save(root / cls / f"{cls}{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A .csv of 5 features in very different units; label 0 normal, 1 anomalous."""
    rng = np.random.default_rng(1)
    x = np.round(np.r_[rng.normal(0, 1, (120, 5)), rng.normal(3, 1, (40, 5))] * [1, 10, 100, 1000, 0.1], 5)
    y = np.r_[np.zeros(120, int), np.ones(40, int)]
    path = tmp_path_factory.mktemp("own") / "table.csv"
    lines = ["a,b,c,d,e,label", *(",".join(f"{v:.5f}" for v in r) + f",{c}" for r, c in zip(x, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path, x.astype(np.float32), y


# ------------------------------------------------------------------------------------------- readers


def test_table_reader_takes_the_label_column_and_refuses_text_features(table, tmp_path):
    path, x, y = table
    d = read_table(path, "label")
    np.testing.assert_allclose(d.x, x, rtol=1e-5)
    np.testing.assert_array_equal(d.y, y)
    assert read_table(path, "").x.shape == (160, 6)  # no label column: every column is a feature
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,0\n3,red,1\n")
    with pytest.raises(DataError, match=r"column 'b' holds 'red', not a number"):
        read_table(bad)
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"rows \[3\] do not have the header's 2 columns"):
        read_table(bad)
    named = tmp_path / "named.csv"
    named.write_text("a,label\n1,ok\n2,ok\n3,broken\n")
    assert read_table(named).y.tolist() == ["ok", "ok", "broken"]
    named.write_bytes("label,a\n0,1.5\n1,2\n".encode("utf-8-sig"))  # as spreadsheets save it
    d = read_table(named)
    assert d.y.tolist() == [0, 1] and d.x.tolist() == [[1.5], [2.0]] and d.columns == ["a"]


def test_a_label_column_surely_meant_but_absent_is_refused_for_training(table, tmp_path):
    """Read as unlabelled, the classes would be trained on as a feature: a label column asked for by name,
    or one named as the default in another case, must be there when training (a table to score may have none)."""
    path, _, _ = table
    with pytest.raises(
        DataError, match=r"no column 'class' \(data.label_column\); its columns are a, b, c, d, e, label"
    ):
        read_table(path, "class", training=True)
    assert read_table(path, "class").columns == ["a", "b", "c", "d", "e", "label"]  # to score: every column
    cased = tmp_path / "cased.csv"
    cased.write_text("a,Label\n1,0\n2,1\n")
    with pytest.raises(DataError, match="pass --data.label_column=Label"):
        read_table(cased, "label", training=True)
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,0\n2,1\n")
    assert read_table(plain, "label", training=True).y is None  # no classes: all normal, as documented
    assert read_table(cased, "", training=True).columns == ["a", "Label"]


def test_npz_reader_needs_x_and_checks_y(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
    d = read_npz(tmp_path / "a.npz")
    assert d.x.shape == (4, 3) and d.y.tolist() == [0, 1, 0, 1]
    np.savez(tmp_path / "b.npz", data=np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"holds arrays \['data'\]; an array named x"):
        read_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=np.zeros((4, 3)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"one class per item of x \(4\)"):
        read_npz(tmp_path / "c.npz")
    np.save(tmp_path / "d.npy", np.zeros((4, 3), np.complex64))  # never cut to its real parts
    with pytest.raises(DataError, match=r"holds complex numbers \(complex64\); real numbers are needed"):
        open_npy(tmp_path / "d.npy")


def test_image_folders_flat_or_by_class(image_folder, tmp_path):
    files, y = image_files(image_folder)
    assert len(files) == 52 and sorted(set(y)) == ["normal", "odd"]
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        _bar_image(rng, True, size=20).save(flat / f"{i}.png")
    files, y = image_files(flat)
    assert len(files) == 3 and y is None
    assert image_mode(files) == "grey"
    _bar_image(rng, True, colour=True).save(flat / "c.png")
    assert image_mode(image_files(flat)[0]) == "colour"  # one colour image makes the folder colour
    x = read_images(image_files(flat)[0], (3, 32, 32))
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    with pytest.raises(DataError, match="is 20x20; this detector takes 32x32"):
        read_images(files, (3, 32, 32), resize=False)
    (flat / "sub").mkdir()
    with pytest.raises(DataError, match="both images and subfolders"):
        image_files(flat)


# ------------------------------------------------------------------------------------------- splits


def test_labelled_folder_split_names_classes_and_keeps_only_normal_for_training(image_folder):
    cfg = DataConfig(dataset=str(image_folder), normal_classes=("normal",), test_fraction=0.25)
    s = load_split(cfg, seed=0)
    assert s.labelled and s.class_names == ["normal", "odd"]
    assert s.x_train.shape[1:] == (1, 28, 28)  # grey images read at the LeNet net's size
    assert set(s.y_train.tolist()) == {0}  # only "normal" trains
    assert len(s.x_test) == 13 and s.is_anomaly_test.sum() == 3  # stratified: a quarter of each class
    np.testing.assert_array_equal(s.is_anomaly_test, s.y_test == 1)
    with pytest.raises(DataError, match=r"\['good'\] are not in .*its classes are \['normal', 'odd'\]"):
        load_split(DataConfig(dataset=str(image_folder), normal_classes=("good",)))
    with pytest.raises(DataError, match="none is left as anomaly"):
        load_split(DataConfig(dataset=str(image_folder), normal_classes=("normal", "odd")))


def test_unlabelled_data_are_all_normal_and_their_own_test_set(tmp_path):
    x = np.random.default_rng(0).random((30, 28, 28, 1)).astype(np.float32)  # channels-last grey
    np.save(tmp_path / "x.npy", x)
    s = load_split(DataConfig(dataset=str(tmp_path / "x.npy")), seed=0)
    assert not s.labelled and s.x_train.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(s.x_train[:, 0], x[..., 0])
    assert s.x_test is s.x_train and s.is_anomaly_test.sum() == 0


def test_a_separate_labelled_test_set(image_folder, tmp_path):
    """data.test: every normal item of the data trains (all of an unlabelled set), the test set is the other
    file's, and class names are shared between the two."""
    s = load_split(DataConfig(dataset=str(image_folder), normal_classes=("normal",), test=str(image_folder)), seed=0)
    assert s.labelled and s.train_labelled and s.class_names == ["normal", "odd"]
    assert len(s.x_train) == 40 and len(s.x_test) == 52 and s.is_anomaly_test.sum() == 12
    assert set(s.named(s.y_train).tolist()) == {"normal"}
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(20, int), np.ones(8, int)]
    np.savez(tmp_path / "test.npz", x=rng.random((28, 6)).astype(np.float32), y=y)
    np.save(tmp_path / "train.npy", rng.random((30, 6)).astype(np.float32))  # no labels: all normal
    s = load_split(
        DataConfig(dataset=str(tmp_path / "train.npy"), normal_classes=(0,), test=str(tmp_path / "test.npz"))
    )
    assert s.labelled and not s.train_labelled and len(s.x_train) == 30
    np.testing.assert_array_equal(s.is_anomaly_test, y)


def test_a_test_set_that_cannot_give_an_auroc_is_refused(tmp_path):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "train.npy", rng.random((30, 6)).astype(np.float32))
    np.save(tmp_path / "plain.npy", rng.random((10, 6)).astype(np.float32))
    np.savez(tmp_path / "normal_only.npz", x=rng.random((10, 6)).astype(np.float32), y=np.zeros(10, int))
    np.savez(
        tmp_path / "wide.npz", x=rng.random((10, 7)).astype(np.float32), y=np.r_[np.zeros(5, int), np.ones(5, int)]
    )
    train = str(tmp_path / "train.npy")
    cases = {
        "plain.npy": "has no classes: a test set needs them",
        "normal_only.npz": "holds no anomalies",
        "wide.npz": r"the test items .* are \(7,\) each, the training items .* \(6,\)",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message):
            load_split(DataConfig(dataset=train, normal_classes=(0,), test=str(tmp_path / name)))
    with pytest.raises(ConfigError, match="a separate test set is for your own data"):
        DataConfig(dataset="mnist", test=str(tmp_path / "normal_only.npz"))


def test_unknown_names_and_missing_files_are_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"'mnits' does not exist .*did you mean 'mnist'\?"):
        load_split(DataConfig(dataset="mnits"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="none of: a folder of images, a .npy or .npz array, a .csv table"):
        load_split(DataConfig(dataset=str(tmp_path / "notes.txt")))
    with pytest.raises(ConfigError, match="0..9"):
        DataConfig(dataset="mnist", normal_classes=("normal",))  # named classes are for own data only


# ------------------------------------------------------------------------------------------- layout, nets


def test_image_layouts_become_channels_first():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    np.testing.assert_array_equal(image_layout(x), x.transpose(0, 3, 1, 2))
    assert image_layout(x[..., 0]).shape == (2, 1, 4, 5)
    chw = np.zeros((2, 3, 8, 8), np.float32)
    assert image_layout(chw) is chw and image_layout(np.zeros((2, 7))).shape == (2, 7)
    with pytest.raises(ValueError, match=r"shape \(5, 5, 5\); accepted: tables \(N, D\), grey images"):
        image_layout(np.zeros((2, 5, 5, 5)))


def test_auto_net_refuses_image_sizes_it_has_no_conv_net_for():
    assert resolve_arch("auto", (1, 28, 28)) == "lenet28" and resolve_arch("auto", (12,)) == "mlp"
    with pytest.raises(ConfigError, match=r"\(3, 64, 64\): net.arch=auto has convolutional nets for 1x28x28"):
        resolve_arch("auto", (3, 64, 64))
    assert resolve_arch("mlp", (3, 64, 64)) == "mlp"  # asked for explicitly: a net on the flat pixels


def test_python_fit_takes_grey_and_channels_last_images_with_the_conv_net():
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28)).astype(np.float32)
    det = MultiRadiusDeepSVDD(**{"pretrain.epochs": 1, "svdd.epochs": 1, "svdd.warmup_epochs": 0}, device="cpu")
    det.fit(x)
    assert det.arch_ == "lenet28" and det.input_shape_ == (1, 28, 28)
    np.testing.assert_array_equal(det.decision_function(x[:5]), det.decision_function(x[:5, None]))
    np.testing.assert_array_equal(det.decision_function(x[:5]), det.decision_function(x[:5, :, :, None]))


# ------------------------------------------------------------------------------------------- preprocessing


def test_preprocessing_setting_with_a_default_per_kind_of_data(table, digits, tmp_path):
    assert resolve_preprocess("auto", (5,)) == "standardize"
    assert resolve_preprocess("auto", (1, 28, 28)) == "gcn-minmax"
    assert resolve_preprocess("none", (5,)) == "none"
    _, x, _ = table
    prep = Standardizer((5,)).fit(torch.from_numpy(x))
    z = prep(torch.from_numpy(x)).double()
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0, unbiased=False), 1, atol=1e-5)
    const = torch.ones(4, 2)
    assert torch.equal(Standardizer((2,)).fit(const)(const), torch.zeros(4, 2))  # constant columns stay finite
    assert isinstance(build_preprocessor("gcn-minmax"), Preprocessor)

    # a table's units matter again: 100 x + 50 scores differently from x (per-row GCN made them equal)
    normal = x[:120]
    settings = {"pretrain.epochs": 2, "svdd.epochs": 2, "svdd.warmup_epochs": 1, "net.arch": "mlp"}
    det = MultiRadiusDeepSVDD(device="cpu", **settings).fit(normal)
    assert isinstance(det.preprocessor_, Standardizer)
    assert not np.allclose(det.decision_function(100 * normal + 50), det.decision_function(normal), rtol=1e-3)
    det.save(tmp_path / "d.pt")
    back = MultiRadiusDeepSVDD.load(tmp_path / "d.pt")
    assert isinstance(back.preprocessor_, Standardizer)
    np.testing.assert_array_equal(back.decision_function(x), det.decision_function(x))
    gcn = MultiRadiusDeepSVDD(device="cpu", preprocess="gcn-minmax", **settings).fit(normal)
    np.testing.assert_allclose(gcn.decision_function(100 * normal + 50), gcn.decision_function(normal), rtol=1e-4)
    none = MultiRadiusDeepSVDD(device="cpu", preprocess="none", **settings).fit(digits[0])
    assert type(MultiRadiusDeepSVDD.load(none.save(tmp_path / "n.pt")).preprocessor_).__name__ == "NoPreprocessing"


# ------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_folder_recipe_through_the_cli_then_score_new_images(image_folder, tmp_path):
    run_dir = tmp_path / "run"
    r = cli("folder", f"--data.dataset={image_folder}", "--test_fraction=0.25", *TINY, f"--run_dir={run_dir}")
    assert r.returncode == 0, r.stderr
    assert "normal classes ['normal']" in r.stdout
    assert "\n| normal | " in r.stdout  # the contingency table names the class by its folder
    res = json.loads((run_dir / "results.json").read_text())
    assert res["multi"]["test_auroc"] is not None and res["n_test_anomalies"] == 3
    det = MultiRadiusDeepSVDD.load(run_dir / "detector_multi.pt")
    assert det.arch_ == "lenet28" and det.input_shape_ == (1, 28, 28)
    # new images of another size and in colour: read like the training folder (grey, resized to 28x28)
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        _bar_image(rng, i == 0, size=56, colour=True).save(new / f"n{i}.png")
    out = tmp_path / "s.csv"
    assert main(["score", str(run_dir), str(new), f"--out={out}"]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "id,score,is_anomaly,cluster"
    assert [r.split(",")[0] for r in rows[1:]] == ["n0.png", "n1.png", "n2.png"]


@pytest.mark.slow
def test_table_recipe_on_a_csv_then_score_it(table, tmp_path, capsys):
    path, x, y = table
    run_dir = tmp_path / "run"
    args = ["table", f"--data.dataset={path}", "--pretrain.epochs=5", "--svdd.epochs=5", *TINY[2:]]
    assert main([*args, f"--run_dir={run_dir}"]) == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert (res["n_train"], res["n_calibration"], res["n_test"]) == (48, 12, 80)  # a fifth held out: the threshold
    assert res["multi"]["test_auroc"] > 0.9
    det = MultiRadiusDeepSVDD.load(run_dir / "detector_multi.pt")
    assert isinstance(det.preprocessor_, Standardizer) and det.input_shape_ == (5,)
    out = tmp_path / "s.csv"
    assert main(["score", str(run_dir), str(path), f"--out={out}"]) == 0  # the label column is left out
    scores = np.array([float(r.split(",")[1]) for r in out.read_text().splitlines()[1:]])
    np.testing.assert_allclose(scores, det.decision_function(x), rtol=1e-5)
    assert det.feature_names_in_.tolist() == ["a", "b", "c", "d", "e"]  # the table's columns, kept
    bad = tmp_path / "narrow.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["score", str(run_dir), str(bad), f"--out={tmp_path / 'n.csv'}"]) == 2
    assert "column names do not match those the detector was fitted on (missing: c, d, e)" in capsys.readouterr().err
    lines = path.read_text().splitlines()  # the same table, its columns in reverse: refused, not scored wrongly
    flipped = tmp_path / "flipped.csv"
    flipped.write_text("\n".join(",".join(line.split(",")[4::-1] + line.split(",")[5:]) for line in lines) + "\n")
    assert main(["score", str(run_dir), str(flipped), f"--out={tmp_path / 'n.csv'}"]) == 2
    assert "in another order (fit: a, b, c, d, e; " in capsys.readouterr().err
    assert not (tmp_path / "n.csv").exists()


@pytest.mark.slow
def test_arrays_labelled_npz_and_unlabelled_npy_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(40, int), np.ones(12, int)]
    x = rng.random((52, 28, 28)).astype(np.float32) * 0.3
    x[y == 0, 7:21, 12:16] += 0.7  # normal: a vertical bar; anomalies: noise only
    np.savez(tmp_path / "a.npz", x=x, y=y)
    labelled = tmp_path / "labelled"
    args = ["folder", "--normal_classes=[0]", "--test_fraction=0.25", *TINY]
    assert main([*args, f"--data.dataset={tmp_path / 'a.npz'}", f"--run_dir={labelled}"]) == 0
    assert json.loads((labelled / "results.json").read_text())["multi"]["test_auroc"] is not None

    np.save(tmp_path / "x.npy", x[y == 0][..., None])  # channels-last, no labels: all normal
    unlabelled = tmp_path / "unlabelled"
    assert main([*args, f"--data.dataset={tmp_path / 'x.npy'}", f"--run_dir={unlabelled}"]) == 0
    assert "unlabelled: all 40 items are normal training data" in capsys.readouterr().out
    res = json.loads((unlabelled / "results.json").read_text())
    assert res["normal_classes"] is None and res["multi"]["test_auroc"] is None
    scores = np.load(unlabelled / "scores.npz")["multi_score"]
    det = MultiRadiusDeepSVDD.load(unlabelled / "detector_multi.pt")
    np.testing.assert_allclose(scores, det.decision_function(x[y == 0]), rtol=1e-5)  # the training items, scored
    assert main(["report", str(unlabelled), "--projection=pca"]) == 0
    md = (unlabelled / "report.md").read_text()
    assert "n/a" in md and not (unlabelled / "roc.png").exists()
    top = int(np.argmax(det.decision_function(x[y == 0])))  # the most anomalous item, by its row in the data
    assert "by row in the data, in their order:" in md and f"- Multi-Radius Deep SVDD: row {top} (" in md

    # the same unlabelled items trained, tested on a labelled set: an AUROC, and no class agreement
    tested = tmp_path / "tested"
    test = f"--data.test={tmp_path / 'a.npz'}"
    assert main([*args, f"--data.dataset={tmp_path / 'x.npy'}", test, f"--run_dir={tested}"]) == 0
    res = json.loads((tested / "results.json").read_text())
    assert res["n_train"] == 40 and res["n_test"] == 52 and res["n_test_anomalies"] == 12
    assert res["multi"]["test_auroc"] is not None and "agreement" not in res["clustering"]

    np.save(tmp_path / "big.npy", rng.random((4, 3, 64, 64)).astype(np.float32))
    assert main(["folder", f"--data.dataset={tmp_path / 'big.npy'}", f"--run_dir={tmp_path / 'big'}"]) == 2
    assert "net.arch=auto has convolutional nets for 1x28x28" in capsys.readouterr().err
    assert not (tmp_path / "big" / "config.json").exists()  # refused before the run folder is written
