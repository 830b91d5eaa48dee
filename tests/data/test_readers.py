import gzip
import pickle

import numpy as np
import pytest
import torch

from probgen.data import load_file, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.integers(0, 100, size=(5, 3, 4))).astype(dtype)
    path = tmp_path / ("a-idx3-ubyte" + (".gz" if compress else ""))
    write_idx(path, array)
    with open(path, "rb") as fh:
        assert (fh.read(2) == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_idx_header_matches_the_mnist_spec(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


def test_mnist_like_files_load_with_labels(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(6, 28, 28)).astype(np.uint8)
    labels = np.arange(6, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    data = load_file(tmp_path / "train-images-idx3-ubyte.gz", labels=tmp_path / "train-labels-idx1-ubyte.gz")
    assert data.x.shape == (6, 784) and data.image_shape == (28, 28)
    assert data.support == "discrete(256)"
    assert torch.equal(data.y, torch.arange(6))
    assert torch.equal(data.x[2], torch.tensor(images[2].reshape(-1), dtype=torch.float32))


def test_truncated_idx_is_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((4, 2, 2), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="promises 16"):
        read_idx(path)
    bad = tmp_path / "y-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(bad)


def test_npy_npz_csv(tmp_path):
    x = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.float64)
    np.save(tmp_path / "a.npy", x)
    assert load_file(tmp_path / "a.npy").support == "binary"
    np.savez(tmp_path / "b.npz", x=x * 0.5, y=np.array([0, 1]))
    b = load_file(tmp_path / "b.npz")
    assert b.support == "real" and torch.equal(b.y, torch.tensor([0, 1]))
    (tmp_path / "c.csv").write_text("f1,f2,label\n0.5,2,1\n1.5,3,0\n")
    c = load_file(tmp_path / "c.csv", label_column=-1)
    assert torch.equal(c.x, torch.tensor([[0.5, 2.0], [1.5, 3.0]]))
    assert torch.equal(c.y, torch.tensor([1, 0]))
    assert load_file(tmp_path / "c.csv").x.shape == (2, 3)


def test_bad_files_are_clear_errors(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        load_file(tmp_path / "obj.npy")
    (tmp_path / "p.npy").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError):
        load_file(tmp_path / "p.npy")
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n")
    with pytest.raises(ValueError, match="numeric CSV"):
        load_file(tmp_path / "bad.csv")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        load_file(tmp_path / "nan.npy")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ValueError, match="unsupported data file"):
        load_file(tmp_path / "x.txt")
    with gzip.open(tmp_path / "trunc-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="IDX"):
        load_file(tmp_path / "trunc-idx1-ubyte.gz")


def test_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeff1,2\n3,4\n".encode())
    assert torch.equal(load_file(tmp_path / "bom.csv").x, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_labels_from_a_separate_npy_travel_with_rows(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.float32).reshape(6, 2) * 0.5)
    np.save(tmp_path / "y.npy", np.array([3, 1, 4, 1, 5, 9]))
    data = load_file(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert data.y.tolist() == [3, 1, 4, 1, 5, 9] and data.x[2].tolist() == [2.0, 2.5]
