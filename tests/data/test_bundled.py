import pytest
import torch
from sklearn.datasets import load_digits

from probgen.data import get_data, load_dataset


@pytest.mark.parametrize("split,n", [("train", 1000), ("val", 350), ("test", 447), ("all", 1797)])
def test_digits_split_follows_design(split, n):
    data = load_dataset("digits", split)
    assert data.x.shape == (n, 64) and data.y.shape == (n,)
    assert data.support == "discrete(17)" and data.image_shape == (8, 8)
    raw = load_digits().data
    offset = {"train": 0, "val": 1000, "test": 1350, "all": 0}[split]
    assert torch.equal(data.x, torch.tensor(raw[offset : offset + n], dtype=torch.float32))


def test_binary_digits_threshold_at_eight():
    grey, binary = load_dataset("digits", "val"), load_dataset("digits-binary", "val")
    assert torch.equal(binary.x, (grey.x >= 8).float())
    assert binary.support == "binary"


@pytest.mark.parametrize("name", ["iris", "wine", "breast-cancer", "breast_cancer"])
def test_tabular_split_is_a_stratified_partition(name):
    parts = [load_dataset(name, s, seed=3) for s in ("train", "val", "test")]
    whole = load_dataset(name, "all")
    assert sum(len(p) for p in parts) == len(whole)
    rows = torch.cat([p.x for p in parts])
    assert torch.equal(rows.unique(dim=0), whole.x.unique(dim=0))
    share = torch.bincount(whole.y).double() / len(whole)
    train_share = torch.bincount(parts[0].y).double() / len(parts[0])
    assert torch.allclose(share, train_share, atol=0.03)
    other = load_dataset(name, "train", seed=4)
    assert not torch.equal(other.x, parts[0].x)


@pytest.mark.parametrize("name", ["moons", "8gaussians", "checkerboard", "rings"])
def test_synthetic_is_seeded_and_splits_differ(name):
    a = load_dataset(name, "train", n=500, seed=1)
    b = load_dataset(name, "train", n=500, seed=1)
    c = load_dataset(name, "test", n=500, seed=1)
    assert a.x.shape == (500, 2) and a.support == "real"
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.x.abs().max() < 5


def test_eight_gaussians_has_eight_modes():
    x = load_dataset("8gaussians", n=4000).x
    angles = torch.atan2(x[:, 1], x[:, 0])
    modes = torch.round(angles / (torch.pi / 4)) % 8
    counts = torch.bincount(modes.long(), minlength=8)
    assert (counts > 350).all()
    assert torch.allclose(x.norm(dim=1).mean(), torch.tensor(2.0), atol=0.05)


def test_unknown_names_and_splits_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_dataset("digits", "dev")
    with pytest.raises(ValueError, match="does not exist"):
        get_data("no/such/file.npy")
    with pytest.raises(ValueError, match="positive integer"):
        load_dataset("moons", n=0)
