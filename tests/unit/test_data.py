"""Dataset loading through torchvision's real code path on files the tests write, and preprocessing."""

import numpy as np
import pytest
import torch
from fakes import make_cifar10, make_mnist

from toolkit.config import DataConfig
from toolkit.data import DataError, TensorBatches, load_split
from toolkit.preprocessing import Preprocessor, global_contrast_normalization


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_through_torchvision(tmp_path, dataset, folder):
    make_mnist(tmp_path, folder)
    split = load_split(DataConfig(dataset=dataset, root=str(tmp_path), download=False, normal_classes=(0, 1, 3)))
    assert split.input_shape == (1, 28, 28)
    assert split.x_train.dtype == np.float32 and 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    assert set(split.y_train.tolist()) == {0, 1, 3} and len(split.x_train) == 15  # 5 of each in 50
    assert len(split.x_test) == 30
    assert split.is_anomaly_test.tolist() == [0 if y in (0, 1, 3) else 1 for y in split.y_test.tolist()]


def test_cifar10_pickles_load_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    make_cifar10(tmp_path)
    # our generated files cannot have the official MD5 sums; everything else is torchvision's own path
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    split = load_split(DataConfig(dataset="cifar10", root=str(tmp_path), download=False, normal_classes=(0, 1)))
    assert split.input_shape == (3, 32, 32)
    assert len(split.x_train) == 20 and set(split.y_train.tolist()) == {0, 1}
    assert len(split.x_test) == 30 and split.is_anomaly_test.sum() == 24


def test_missing_files_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(DataError) as e:
        load_split(DataConfig(dataset="mnist", root=str(tmp_path), download=False))
    assert "MNIST/raw" in str(e.value) and str(tmp_path) in str(e.value)


def test_offline_download_failure_is_a_clear_message(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as mnist

    def offline(self):
        raise OSError("Name or service not known")

    monkeypatch.setattr(mnist.MNIST, "download", offline)
    with pytest.raises(DataError) as e:
        load_split(DataConfig(dataset="mnist", root=str(tmp_path), download=True))
    assert "Offline?" in str(e.value) and "MNIST/raw" in str(e.value)


def test_normal_class_not_in_dataset_is_refused(tmp_path):
    make_mnist(tmp_path, n_classes=5)  # files with classes 0..4 only
    with pytest.raises(DataError, match=r"\[7\] are not in mnist"):
        load_split(DataConfig(dataset="mnist", root=str(tmp_path), download=False, normal_classes=(0, 7)))


def test_digits_split_is_stratified_and_normal_only():
    s = load_split(DataConfig(dataset="digits", normal_classes=(2, 5)), seed=0)
    assert s.input_shape == (64,)
    assert set(s.y_train.tolist()) == {2, 5}
    assert set(s.y_test.tolist()) == set(range(10))
    assert abs(len(s.x_test) - 1797 / 2) <= 1


def test_gcn_l1_zero_mean_unit_mean_abs():
    x = torch.rand(5, 1, 4, 4) * 7 + 3
    g = global_contrast_normalization(x).flatten(1)
    assert torch.allclose(g.mean(1), torch.zeros(5), atol=1e-6)
    assert torch.allclose(g.abs().mean(1), torch.ones(5), atol=1e-6)


def test_preprocessor_uses_training_statistics_only():
    train = torch.rand(20, 8)
    test = torch.rand(7, 8) * 100
    prep = Preprocessor().fit(train)
    t = prep(train)
    assert t.min().item() == pytest.approx(0.0, abs=1e-6) and t.max().item() == pytest.approx(1.0, abs=1e-6)
    g = global_contrast_normalization(test)
    assert torch.allclose(prep(test), (g - prep.lo) / (prep.hi - prep.lo))


def test_tensor_batches_cover_every_row_once_per_epoch():
    x = torch.arange(10.0)[:, None]
    y = torch.arange(10)
    batches = TensorBatches(x, y, batch_size=4, shuffle=True, seed=0)
    assert len(batches) == 3
    seen = torch.cat([idx for idx, xb, yb in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for idx, xb, yb in batches:
        assert torch.equal(xb[:, 0].long(), idx) and torch.equal(yb, idx)


def test_tensor_batches_fold_a_tiny_last_batch_into_the_one_before():
    batches = TensorBatches(torch.arange(9.0)[:, None], batch_size=4)
    assert [len(idx) for idx, _ in batches] == [4, 5] and len(batches) == 2


def test_ranks_split_each_global_batch_and_resume_draws_the_same_batches():
    x = torch.arange(23.0)[:, None]
    single = [idx.tolist() for idx, _ in TensorBatches(x, batch_size=6, shuffle=True, seed=3)]
    ranks = [
        [idx.tolist() for idx, _ in TensorBatches(x, batch_size=6, shuffle=True, seed=3, rank=r, world=2)]
        for r in range(2)
    ]
    for b, batch in enumerate(single):
        assert sorted(ranks[0][b] + ranks[1][b]) == sorted(batch)
    a = TensorBatches(x, batch_size=6, shuffle=True, seed=3)
    list(a)
    b = TensorBatches(x, batch_size=6, shuffle=True, seed=99)
    b.load_state_dict(a.state_dict())
    assert [i.tolist() for i, _ in a] == [i.tolist() for i, _ in b]


def test_feature_minmax_maps_each_training_column_to_0_1_without_inflating_near_constant_ones():
    """Per feature, the training minimum goes to 0 and the maximum to 1; a column that is almost always
    0 (a border pixel) stays within [0, 1] on the training data, where standardising would inflate it."""
    from toolkit.preprocessing import FeatureMinMax, Standardizer, build_preprocessor

    x = torch.zeros(100, 3)
    x[:, 0] = torch.linspace(-5.0, 15.0, 100)
    x[0, 1] = 16.0  # one pixel lit once
    prep = FeatureMinMax((3,)).fit(x)
    z = prep(x)
    assert torch.allclose(z.min(dim=0).values, torch.tensor([0.0, 0.0, 0.0]))
    assert torch.allclose(z.max(dim=0).values, torch.tensor([1.0, 1.0, 0.0]))  # a constant column stays 0
    assert float(Standardizer((3,)).fit(x)(x)[0, 1]) > 9.0  # standardised, that one pixel is about 10
    assert isinstance(build_preprocessor("minmax", (3,)), FeatureMinMax)
    loaded = Standardizer((3,))  # saved as the same shift and scale: a loaded detector scores the same
    loaded.load_state_dict(prep.state_dict())
    assert torch.equal(loaded(x), z)
