"""The MNIST dataset object, the transforms and the DataLoader over datasets, the way PyTorch users
hold data: items and batches are Tensors (1, 28, 28) in [0, 1], values against the raw arrays,
shuffle orders seeded from sv.manual_seed or a generator, drop_last, len, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.data import MNIST, DataLoader, datasets, default_collate, load_embedded, transforms, write_idx
from scratchvae.data.mnist import FILES


@pytest.fixture(scope="module")
def train_ds():
    return MNIST()


@pytest.fixture(scope="module")
def raw_train():
    return load_embedded("train")


def test_default_is_the_embedded_subset_as_tensors_in_0_1(train_ds, raw_train):
    images, labels = raw_train
    assert len(train_ds) == 10_000 and len(MNIST(train=False)) == 2_000
    assert datasets.MNIST is MNIST and train_ds.source == "embedded"
    np.testing.assert_array_equal(train_ds.data, images)
    np.testing.assert_array_equal(train_ds.targets, labels)
    for i in (0, 1, 9_999, -1):
        x, y = train_ds[i]
        assert isinstance(x, sv.Tensor) and x.shape == (1, 28, 28) and str(x.dtype) == "float32"
        assert isinstance(y, int) and y == int(labels[i])
        np.testing.assert_array_equal(x.numpy()[0], images[i].astype(np.float32) / np.float32(255))
    assert 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
    assert train_ds.classes[3] == "3 - three"


def test_items_are_placed_on_the_current_backend(bk):
    ds = MNIST(train=False)
    x, _ = ds[5]
    assert sv.get_backend() is bk.backend and x.backend is bk.backend
    xb, yb = ds.batch([5, 6])
    assert xb.backend is bk.backend and xb.shape == (2, 1, 28, 28)
    np.testing.assert_array_equal(bk.numpy(xb)[0], bk.numpy(x))
    np.testing.assert_array_equal(bk.numpy(yb), ds.targets[[5, 6]].astype(np.int64))


def test_index_errors_are_clear(train_ds):
    with pytest.raises(IndexError, match="index 10000 is out of range for a dataset of 10000"):
        train_ds[10_000]
    with pytest.raises(IndexError, match="out of range"):
        train_ds[-10_001]
    with pytest.raises(TypeError, match="integers.*ds.batch"):
        train_ds[1.5]
    with pytest.raises(IndexError, match="indices must be in"):
        train_ds.batch([0, 10_000])
    with pytest.raises(TypeError, match="1-d sequence of integer indices"):
        train_ds.batch([0.5])
    assert len(list(iter(MNIST(train=False)))) == 2_000  # the old iteration protocol stops at IndexError


def test_batch_is_the_stack_of_the_items(train_ds):
    idx = np.array([3, 0, 77, 3])
    xb, yb = train_ds.batch(idx)
    assert xb.shape == (4, 1, 28, 28) and yb.shape == (4,) and str(yb.dtype) == "int64"
    for k, i in enumerate(idx):
        x, y = train_ds[int(i)]
        np.testing.assert_array_equal(xb.numpy()[k], x.numpy())
        assert int(yb.numpy()[k]) == y


def test_to_tensor_is_torchvisions():
    t = transforms.ToTensor()
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = t(img)
    assert out.shape == (1, 3, 4) and str(out.dtype) == "float32"
    np.testing.assert_allclose(out.numpy()[0], img / 255.0, rtol=1e-6)
    hwc = np.random.default_rng(0).integers(0, 256, size=(2, 3, 3), dtype=np.uint8)
    np.testing.assert_allclose(t(hwc).numpy(), hwc.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    floats = np.full((2, 2), 0.25)
    np.testing.assert_array_equal(t(floats).numpy(), np.full((1, 2, 2), 0.25, np.float32))  # floats are not scaled
    x = sv.rand(1, 28, 28)
    assert t(x) is x  # an MNIST item already is what ToTensor makes
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        t(np.zeros(5))
    with pytest.raises(TypeError, match="transform 1 is a int"):
        transforms.Compose([t, 3])
    assert transforms.is_to_tensor(transforms.Compose([t])) and not transforms.is_to_tensor(lambda v: v)


def test_to_tensor_changes_nothing_and_other_transforms_see_items(train_ds):
    with_tt = MNIST(transform=transforms.ToTensor())
    np.testing.assert_array_equal(with_tt[4][0].numpy(), train_ds[4][0].numpy())
    calls = []

    def invert(x):
        calls.append(x.shape)
        return 1.0 - x

    inv = MNIST(train=False, transform=transforms.Compose([transforms.ToTensor(), invert]),
                target_transform=lambda y: y + 10)
    x, y = inv[2]
    np.testing.assert_allclose(x.numpy(), 1.0 - MNIST(train=False)[2][0].numpy())
    assert y == int(inv.targets[2]) + 10 and calls == [(1, 28, 28)]
    xb, yb = inv.batch([2, 3])  # per item through the transforms, then stacked
    np.testing.assert_allclose(xb.numpy()[0], x.numpy())
    assert yb.numpy().tolist() == [y, int(inv.targets[3]) + 10]


def _write_fake(folder, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / FILES[split][0][:-3], imgs)  # uncompressed names
        write_idx(folder / FILES[split][1][:-3], labs)
        out[split] = (imgs, labs)
    return out


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_a_root_folder_gives_the_files_in_it(tmp_path, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    arrays = _write_fake(folder)
    ds = MNIST(str(tmp_path), train=False, verify=False)  # fake files: not the published checksums
    imgs, labs = arrays["test"]
    assert len(ds) == 3 and ds.source == str(folder)
    np.testing.assert_array_equal(ds[1][0].numpy()[0], imgs[1] / np.float32(255))
    assert ds[1][1] == int(labs[1])
    assert len(MNIST(tmp_path, train=True, verify=False)) == 5


def test_a_root_without_the_files_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"neither in .* nor in .*MNIST.raw.*download=True.*embedded subset"):
        MNIST(tmp_path / "nowhere")


# -- the loader over a dataset ----------------------------------------------------------------------------


def _labels(loader):
    return np.concatenate([y.numpy() for _, y in loader])


def test_loader_yields_tensor_batches_and_knows_its_lengths(train_ds):
    loader = DataLoader(train_ds, batch_size=128, shuffle=True)
    assert len(loader) == 79 and len(loader.dataset) == 10_000 and loader.dataset is train_ds
    batches = list(loader)
    assert len(batches) == 79
    x, y = batches[0]
    assert isinstance(x, sv.Tensor) and x.shape == (128, 1, 28, 28) and y.shape == (128,)
    assert batches[-1][0].shape == (10_000 - 78 * 128, 1, 28, 28)
    assert sorted(_labels(batches)) == sorted(train_ds.targets.tolist())  # each example once
    dropped = DataLoader(train_ds, batch_size=128, drop_last=True)
    assert len(dropped) == 78 and all(xb.shape[0] == 128 for xb, _ in dropped)


def test_a_dataset_loader_is_sequential_unless_shuffled(train_ds):
    loader = DataLoader(MNIST(train=False), batch_size=500)  # PyTorch's default: shuffle=False
    assert not loader.shuffle
    np.testing.assert_array_equal(_labels(loader), MNIST(train=False).targets)
    x0, _ = next(iter(DataLoader(train_ds, batch_size=2)))
    np.testing.assert_array_equal(x0.numpy()[1], train_ds[1][0].numpy())
    assert DataLoader(100, 10).shuffle  # index and array loaders keep their default (the training loop's)


def test_shuffle_follows_manual_seed_or_a_generator():
    ds = MNIST(train=False)
    sv.manual_seed(3)
    a = _labels(DataLoader(ds, batch_size=64, shuffle=True))
    sv.manual_seed(3)
    b = _labels(DataLoader(ds, batch_size=64, shuffle=True))
    sv.manual_seed(4)
    c = _labels(DataLoader(ds, batch_size=64, shuffle=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    sv.manual_seed(3)
    g1 = _labels(DataLoader(ds, batch_size=64, shuffle=True, generator=sv.Generator(11)))
    g2 = _labels(DataLoader(ds, batch_size=64, shuffle=True, generator=sv.Generator(11)))
    np.testing.assert_array_equal(g1, g2)
    assert not np.array_equal(g1, a)
    g3 = _labels(DataLoader(ds, batch_size=64, shuffle=True, generator=np.random.default_rng(11)))
    assert sorted(g3) == sorted(g1)


def test_each_epoch_is_a_new_order_and_is_reproducible():
    ds = MNIST(train=False)
    sv.manual_seed(0)
    loader = DataLoader(ds, batch_size=100, shuffle=True)
    e0, e1 = _labels(loader), _labels(loader)
    assert loader.epoch == 2 and not np.array_equal(e0, e1)
    np.testing.assert_array_equal(_labels(loader.batches(0)), e0)


def test_the_loader_uses_the_datasets_batch_fast_path():
    class Counting(MNIST):
        items = 0

        def __getitem__(self, i):
            Counting.items += 1
            return super().__getitem__(i)

    ds = Counting(train=False)
    for _ in DataLoader(ds, batch_size=256, shuffle=True):
        pass
    assert Counting.items == 0  # one index of the host array per batch, no per-item work


class _Pairs:
    """A plain dataset with no batch(): ``len`` and ``ds[i]`` only."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        if not 0 <= i < 7:
            raise IndexError(i)
        return sv.tensor(np.full((2,), float(i), np.float32)), i, float(i) / 2


def test_plain_datasets_are_collated_like_pytorchs_default():
    loader = DataLoader(_Pairs(), batch_size=3)
    x, y, f = next(iter(loader))
    np.testing.assert_array_equal(x.numpy(), np.repeat(np.arange(3, dtype=np.float32)[:, None], 2, axis=1))
    assert str(y.dtype) == "int64" and y.numpy().tolist() == [0, 1, 2]
    np.testing.assert_allclose(f.numpy(), [0.0, 0.5, 1.0])
    # The loader resumes where it stopped (the training loop's checkpoints rely on it): the rest of the epoch.
    assert len(loader) == 3 and [len(b[1].numpy()) for b in loader] == [3, 1]
    got = DataLoader(_Pairs(), batch_size=4, collate_fn=lambda items: [it[1] for it in items])
    assert list(got) == [[0, 1, 2, 3], [4, 5, 6]]
    d = default_collate([{"a": 1, "b": np.zeros(2)}, {"a": 2, "b": np.ones(2)}])
    assert d["a"].numpy().tolist() == [1, 2] and d["b"].shape == (2, 2)
    with pytest.raises(TypeError, match="cannot collate items of type str"):
        default_collate(["a", "b"])
    with pytest.raises(ValueError, match="empty batch"):
        default_collate([])


def test_loader_dataset_for_index_and_array_data():
    assert len(DataLoader(12, 5).dataset) == 12
    x, y = np.arange(10.0), np.arange(10)
    assert DataLoader(x, 4).dataset is x
    rows = DataLoader((x, y), 4).dataset
    assert len(rows) == 10 and rows[3] == (3.0, 3)


def test_loader_argument_errors():
    ds = MNIST(train=False)
    with pytest.raises(ValueError, match="a seed or a generator, not both"):
        DataLoader(ds, 10, seed=1, generator=sv.Generator(1))
    with pytest.raises(TypeError, match="generator must be a scratchvae.Generator"):
        DataLoader(ds, 10, generator=5)
    with pytest.raises(ValueError, match="num_workers must be a non-negative int"):
        DataLoader(ds, 10, num_workers=-1)
    with pytest.raises(ValueError, match="collate_fn is for datasets"):
        DataLoader(10, 2, collate_fn=list)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(ds, batch_size=0)
    # PyTorch's performance options are accepted and change nothing.
    a = DataLoader(ds, 500, num_workers=1, pin_memory=True)
    np.testing.assert_array_equal(_labels(a), ds.targets)
