import os
import pickle

import pytest
import torch

import probgen as pg
import probgen._io


@pytest.fixture
def fitted():
    data = pg.load_dataset("digits-binary")
    model = pg.models.IndependentBernoulli(64)
    pg.fit(model, data, epochs=2, progress=False)
    return model, data


def test_round_trip_is_bit_identical(fitted, tmp_path):
    model, data = fitted
    path = pg.save(model, tmp_path)
    assert path == tmp_path / "model.safetensors"
    loaded = pg.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded.log_prob(data.x), model.log_prob(data.x))


def test_optimizer_state_is_kept(fitted, tmp_path):
    model, _ = fitted
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.estimate()["a"].sum().backward()
    opt.step()
    pg.save(model, tmp_path / "c.safetensors", optimizer=opt, extra={"epoch": 3})
    ckpt = pg.load_checkpoint(tmp_path / "c.safetensors")
    assert ckpt.extra == {"epoch": 3}
    assert torch.equal(ckpt.optimizer_state["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_truncated_and_tampered_files_are_refused(fitted, tmp_path):
    model, _ = fitted
    path = pg.save(model, tmp_path / "m.safetensors")
    raw = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        pg.load(tmp_path / "short.safetensors")
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum: the weights check") as weights:
        pg.load(tmp_path / "flip.safetensors")
    assert "header check" not in str(weights.value)
    with pytest.raises(ValueError, match="does not exist"):
        pg.load(tmp_path / "missing.safetensors")
    edited = raw.replace(b'\\"prior_a\\": 1.0', b'\\"prior_a\\": 9.0')
    assert edited != raw  # the config sits in the JSON header
    (tmp_path / "config.safetensors").write_bytes(edited)
    with pytest.raises(ValueError, match="checksum: the header check") as header:
        pg.load(tmp_path / "config.safetensors")
    assert "weights check" not in str(header.value)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        pg.load(tmp_path / "empty.safetensors")


def test_pickle_payloads_are_refused_without_being_run(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="never unpickles"):
        pg.load(tmp_path / "evil.safetensors")
    torch.save({"w": torch.zeros(2)}, tmp_path / "torch.pt")
    with pytest.raises(ValueError, match="never unpickles"):
        pg.load(tmp_path / "torch.pt")
    assert not (tmp_path / "pwned").exists()


def test_a_failed_save_leaves_the_old_file_and_no_temp(fitted, tmp_path, monkeypatch):
    model, _ = fitted
    path = pg.save(model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("probgen.checkpoint.save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        pg.save(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_keep_the_users_umask(fitted, tmp_path, umask, mode):
    model, _ = fitted
    previous = os.umask(umask)
    try:
        path = pg.save(model, tmp_path / "m.safetensors")
        assert probgen._io.current_umask() == umask
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("where,needle", [("gpu", "unknown device 'gpu'"), ("cuda:99", "cuda")])
def test_loading_onto_a_device_this_machine_lacks_is_a_value_error(fitted, tmp_path, where, needle):
    if where.startswith("cuda") and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    path = pg.save(fitted[0], tmp_path)
    with pytest.raises(ValueError, match=needle):
        pg.load(path, map_location=where)
    assert pg.load(path, map_location=torch.device("cpu")).device == torch.device("cpu")
