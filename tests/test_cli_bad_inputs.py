"""Every bad input to the ``probgen`` command is one line on stderr, exit status 2, no traceback.

Each case runs ``probgen.cli.main`` in-process; files are made once per module.
"""

import fcntl
import gzip
import io
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest

from probgen.cli import main, sample
from probgen.models import accepted_parameters

PRIVATE = re.compile(r"(?<![\w/\\.\-])_[A-Za-z]")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A directory of good and bad inputs, and a fitted checkpoint of the good one."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    np.save(d / "good.npy", (rng.random((40, 6)) < 0.3).astype(np.float32))
    np.save(d / "other_shape.npy", (rng.random((10, 5)) < 0.3).astype(np.float32))
    np.save(d / "labels.npy", np.arange(40) % 3)
    np.save(d / "short_labels.npy", np.arange(7) % 3)
    np.save(d / "frac_labels.npy", np.linspace(0, 1, 40))
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "text.npy").write_text("1,2,3\n4,5,6\n")
    (d / "pickled.npy").write_bytes(pickle.dumps([[1, 2], [3, 4]]))
    (d / "empty.npy").write_bytes(b"")
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,c\n")
    (d / "words.csv").write_text("a,b\n1,x\n2,3\n")
    (d / "ragged.csv").write_text("1,2,3\n4,5\n")
    (d / "inf.csv").write_text("1,2\n3,inf\n")
    np.save(d / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    np.save(d / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(d / "scalar.npy", np.float32(3))
    np.save(d / "no_rows.npy", np.zeros((0, 3)))
    np.save(d / "two_rows.npy", np.eye(2, dtype=np.float32))
    (d / "data.txt").write_text("1 2 3\n")
    (d / "fake.npz").write_text("not a zip")
    (d / "huge-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 100000, 100000, 100000) + b"\0" * 10)
    with gzip.open(d / "huge-idx3-ubyte.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 2]) + struct.pack(">2I", 4_000_000_000, 4_000_000_000) + b"\0" * 100)
    (d / "bad-magic-idx1-ubyte").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x07")
    (d / "short-header-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 10)})
    (d / "liar.npy").write_bytes(header.getvalue() + b"\0" * 80)
    with zipfile.ZipFile(d / "liar.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 80)
    np.savez(d / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    np.save(d / "cut.npy", np.ones((5, 3)))
    (d / "cut.npy").write_bytes((d / "cut.npy").read_bytes()[:-8])
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    from probgen.data import write_idx

    write_idx(d / "train-labels-idx1-ubyte", (np.arange(40) % 10).astype(np.uint8))
    (d / "a_file").write_text("I am a file")
    (d / "adir").mkdir()
    # a fitted checkpoint, and damaged copies of it
    assert main(["fit", "independent-bernoulli", "--data", str(d / "good.npy"), "--out", str(d / "run")]) == 0
    raw = (d / "run" / "model.safetensors").read_bytes()
    (d / "empty.safetensors").write_bytes(b"")
    (d / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    (d / "weights.safetensors").write_bytes(bytes(flipped))
    edited = raw.replace(b'\\"prior_a\\": 1.0', b'\\"prior_a\\": 9.0')
    assert edited != raw
    (d / "config.safetensors").write_bytes(edited)
    (d / "pickle.safetensors").write_bytes(pickle.dumps({"weights": [1.0]}))
    return d


def fit(data, *extra):
    return ["fit", "independent-bernoulli", "--data", data, "--out", "{d}/out", *extra]


CASES = [
    # data files
    (fit("{d}/adir"), ["directory", "expected"]),
    (fit("{d}/missing.npy"), ["missing.npy", "does not exist"]),
    (fit("{d}/text.npy"), ["not a NumPy", "numpy.save"]),
    (fit("{d}/pickled.npy"), ["not a NumPy"]),
    (fit("{d}/obj.npy"), ["object array", "refuses"]),
    (fit("{d}/empty.npy"), ["empty", "0 bytes"]),
    (fit("{d}/empty.csv"), ["empty"]),
    (fit("{d}/header_only.csv"), ["header", "no rows"]),
    (fit("{d}/words.csv"), ["'x'", "line 2", "not a number"]),
    (fit("{d}/ragged.csv"), ["line 2", "2 cells", "3"]),
    (fit("{d}/inf.csv"), ["inf", "finite"]),
    (fit("{d}/nan.npy"), ["NaN", "[0, 1]"]),
    (fit("{d}/strings.npy"), ["dtype", "expected numbers"]),
    (fit("{d}/scalar.npy"), ["single number", "(N, D)"]),
    (fit("{d}/no_rows.npy"), ["(0, 3)", "no values"]),
    (fit("{d}/labels.npy"), ["1-D", "looks like labels"]),
    (fit("{d}/train-labels-idx1-ubyte"), ["1-D", "looks like labels"]),
    (fit("{d}/good.npy", "--labels", "{d}/good.npy"), ["shape (40, 6)", "one label per example"]),
    (["eval", "{d}/run", "--labels", "{d}/labels.npy"], ["--labels", "--data"]),
    (fit("{d}/liar.npy"), ["promises shape (100000000000, 10)", "holds 80 bytes"]),
    (fit("{d}/liar.npz"), ["promises shape", "truncated"]),
    (fit("{d}/cut.npy"), ["(5, 3)", "120 bytes", "112"]),
    (fit("{d}/obj.npz"), ["object array", "refuses"]),
    (fit("{d}/binary.csv"), ["not a text CSV"]),
    (fit("{d}/data.txt"), ["unsupported", ".npy"]),
    (fit("{d}/fake.npz"), ["not a NumPy .npz"]),
    (fit("{d}/huge-idx3-ubyte"), ["promises", "holds 10 bytes"]),
    (fit("{d}/huge-idx3-ubyte.gz"), ["promises", "truncated"]),
    (fit("{d}/bad-magic-idx1-ubyte"), ["not an IDX file"]),
    (fit("{d}/short-header-idx3-ubyte"), ["truncated IDX header"]),
    (fit("{d}/good.npy", "--labels", "{d}/short_labels.npy"), ["7 labels", "40 examples"]),
    (fit("{d}/good.npy", "--labels", "{d}/frac_labels.npy"), ["labels", "integers"]),
    (fit("{d}/good.npy", "--labels", "{d}/missing.npy"), ["labels file", "does not exist"]),
    (fit("{d}/good.npy", "--test", "{d}/other_shape.npy"), ["--test", "(5,)", "(6,)"]),
    (fit("{d}/two_rows.npy"), ["too few", "2 examples"]),
    (fit("mnist"), ["unknown dataset 'mnist'", "digits"]),
    # --model-args
    (fit("{d}/good.npy", "--model-args", "{estimator: map}"), ["not valid JSON", "JSON object"]),
    (fit("{d}/good.npy", "--model-args", "[1, 2]"), ["JSON object", "list"]),
    (fit("{d}/good.npy", "--model-args", '{"latent_dim": 4}'), ["'latent_dim'", "method", "prior_a"]),
    (fit("{d}/good.npy", "--model-args", '{"method": 3}'), ["method", "a string", "3"]),
    (fit("{d}/good.npy", "--model-args", '{"method": "bogus"}'), ["bogus", "map"]),
    (fit("{d}/good.npy", "--model-args", '{"prior_a": -1}'), ["prior_a", "-1"]),
    (fit("{d}/good.npy", "--model-args", '{"prior_a": NaN}'), ["prior_a", "finite"]),
    (["fit", "vae", "--data", "{d}/good.npy", "--out", "{d}/out", "--model-args", '{"latent_dim": 0}'], ["positive"]),
    (
        ["fit", "vae", "--data", "{d}/good.npy", "--out", "{d}/out", "--model-args", '{"hidden_features": [0]}'],
        ["hidden_features"],
    ),
    (
        ["fit", "vae", "--data", "{d}/good.npy", "--out", "{d}/out", "--model-args", '{"encoder_dropout": 1.5}'],
        ["encoder_dropout", "[0, 1)", "1.5"],
    ),
    (["fit", "gaussian-nb", "--data", "iris", "--out", "{d}/out", "--model-args", '{"x": 1}'], ["method", "'x'"]),
    # numeric flags and options
    (fit("{d}/good.npy", "--epochs", "0"), ["--epochs", "positive integer", "'0'"]),
    (fit("{d}/good.npy", "--epochs", "-3"), ["--epochs", "'-3'"]),
    (fit("{d}/good.npy", "--epochs", "ten"), ["--epochs", "'ten'"]),
    (fit("{d}/good.npy", "--batch-size", "1.5"), ["--batch-size", "'1.5'"]),
    (fit("{d}/good.npy", "--lr", "abc"), ["--lr", "positive number", "'abc'"]),
    (fit("{d}/good.npy", "--lr", "nan"), ["--lr", "'nan'"]),
    (fit("{d}/good.npy", "--lr", "inf"), ["--lr", "finite"]),
    (fit("{d}/good.npy", "--lr-decay", "2"), ["--lr-decay", "(0, 1]"]),
    (fit("{d}/good.npy", "--seed", "-1"), ["--seed", "non-negative"]),
    (fit("{d}/good.npy", "--val-frac", "1.5"), ["--val-frac", "[0, 1)"]),
    (fit("{d}/good.npy", "--val-frac", "0.5", "--test-frac", "0.5"), ["--val-frac", "--test-frac", "below 1"]),
    (fit("{d}/good.npy", "--val-labels", "{d}/labels.npy"), ["--val-labels", "--val"]),
    (fit("{d}/good.npy", "--val", "{d}/good.npy", "--val-frac", "0.1"), ["--val", "--val-frac"]),
    (fit("digits-binary", "--test-frac", "0.3"), ["--test-frac", "fixed split"]),
    (fit("{d}/good.npy", "--objective", "nope"), ["objective 'nope'", "elbo"]),
    (fit("{d}/good.npy", "--device", "cuda"), ["--device 'cuda'", "no CUDA"]),
    (fit("{d}/good.npy", "--device", "cuda:7"), ["'cuda:7'", "CUDA"]),
    (fit("{d}/good.npy", "--device", "tpu"), ["'tpu'", "cpu"]),
    (fit("{d}/good.npy", "--device", "banana"), ["'banana'", "cpu"]),
    (["fit", "nope", "--data", "digits", "--out", "{d}/out"], ["unknown model 'nope'", "vae"]),
    (["fit", "independent-gaussian", "--data", "digits", "--out", "{d}/out"], ["does not suit", "real"]),
    (["fit", "gaussian-nb", "--data", "{d}/good.npy", "--out", "{d}/out"], ["does not suit", "labels"]),
    (["fit", "independent-bernoulli", "--data", "{d}/good.npy"], ["required", "--out"]),
    # --out
    (["fit", "independent-bernoulli", "--data", "{d}/good.npy", "--out", "{d}/a_file"], ["existing file", "directory"]),
    (["fit", "independent-bernoulli", "--data", "{d}/good.npy", "--out", "{d}/a_file/x"], ["is a file"]),
    # checkpoints
    (["eval", "{d}/no/such/run"], ["does not exist"]),
    (["eval", "{d}/adir"], ["holds no checkpoint"]),
    (["eval", "{d}/empty.safetensors"], ["empty", "0 bytes"]),
    (["eval", "{d}/truncated.safetensors"], ["not a readable safetensors"]),
    (["eval", "{d}/weights.safetensors"], ["checksum", "weights check"]),
    (["eval", "{d}/config.safetensors"], ["checksum", "header check"]),
    (["eval", "{d}/pickle.safetensors"], ["never unpickles"]),
    (["eval", "{d}/run", "--data", "{d}/other_shape.npy"], ["shape (5,)", "(6,)"]),
    (["eval", "{d}/run", "--data", "{d}/good.npy", "--split", "val"], ["--split val", "whole"]),
    (["eval", "{d}/run", "--num-samples", "0"], ["--num-samples", "'0'"]),
    # sample
    (["sample", "{d}/run", "--out", "{d}/s.jpg"], [".png or .npy", "'s.jpg'"]),
    (["sample", "{d}/run", "-n", "0", "--out", "{d}/s.npy"], ["-n", "positive integer"]),
    (["sample", "{d}/run", "-n", "100000000000000", "--out", "{d}/s.npy"], ["would need", "available"]),
    (["sample", "{d}/run", "-n", "20000", "--out", "{d}/s.png"], ["PNG", ".npy"]),
    (["sample", "{d}/run", "--out", "{d}/s.png"], ["PNG", ".npy"]),
    (["sample", "{d}/adir", "--out", "{d}/s.npy"], ["holds no checkpoint"]),
    # compare
    (["compare", "--models", "nope", "--data", "iris"], ["unknown model 'nope'"]),
    (["compare", "--data", "{d}/missing.csv"], ["does not exist"]),
    (["compare", "--data", "iris", "--device", "tpu"], ["'tpu'"]),
    (["compare", "--data", "iris", "--out", "{d}/a_file"], ["existing file"]),
    (["bogus-command"], ["invalid choice", "bogus-command"]),
]


def _format(argv, d):
    return [a.replace("{d}", str(d)) for a in argv]


@pytest.mark.parametrize("argv,needles", CASES, ids=[" ".join(a[:1] + a[3:4] + a[5:]) for a, _ in CASES])
def test_bad_input_is_one_clear_line(files, capsys, argv, needles):
    code = main(_format(argv, files))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("probgen: error: "), err
    assert "Traceback" not in err and not PRIVATE.search(err), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (files / "out").exists()  # a failed fit leaves no directory it created


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


def test_a_failed_fit_keeps_a_directory_it_did_not_create(files, capsys):
    out = files / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(fit(str(files / "nan.npy"))[:-1] + [str(out)]) == 2
    assert (out / "notes.txt").read_text() == "keep me"
    assert main(fit(str(files / "nan.npy"))[:-1] + [str(files / "new" / "deeper")]) == 2
    assert not (files / "new").exists()
    capsys.readouterr()


def test_a_second_fit_into_a_locked_out_is_refused(files, capsys, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    with open(out / ".lock", "a") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(fit(str(files / "good.npy"))[:-1] + [str(out), "--epochs", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert "another probgen command is writing into" in err and ".lock" in err
    assert not (out / "model.safetensors").exists()
    assert main(fit(str(files / "good.npy"))[:-1] + [str(out), "--epochs", "1", "--quiet"]) == 0  # lock released


def test_interrupt_exits_130_with_one_line_and_keeps_the_checkpoint(files, capsys, monkeypatch, tmp_path):
    import probgen as pg

    def interrupted(model, data, *, checkpoint, **kwargs):
        pg.save(model, checkpoint, extra={"epoch": 0, "history": [{"epoch": 0, "train_loss": 1.0}]})
        raise KeyboardInterrupt

    monkeypatch.setattr("probgen.fit", interrupted)
    code = main(fit(str(files / "good.npy"))[:-1] + [str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    assert pg.load_checkpoint(tmp_path / "r").extra["epoch"] == 0  # the directory it created stays, for --resume


def test_out_of_memory_is_a_user_error(files, capsys, monkeypatch, tmp_path):
    def too_big(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("probgen.fit", too_big)
    code = main(fit(str(files / "good.npy"))[:-1] + [str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "out of memory" in err
    assert not (tmp_path / "r").exists()


def test_an_internal_error_is_one_line_exit_1(capsys, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("division by zero in _secret_helper")

    monkeypatch.setattr("probgen.cli.list.run", broken)
    code = main(["list"])
    _, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("probgen: internal error: ZeroDivisionError") and "report" in err
    assert not PRIVATE.search(err) and "Traceback" not in err


def test_model_args_keys_come_from_the_constructor():
    from probgen.models import MODELS

    for spec in MODELS.values():
        accepted = accepted_parameters(spec.cls)
        assert "event_shape" not in accepted and "support" not in accepted
    assert {"latent_dim", "hidden_features"} <= set(accepted_parameters(MODELS["vae"].cls))
    assert "method" in accepted_parameters(MODELS["gaussian-nb"].cls)
    assert "method" in accepted_parameters(MODELS["independent-bernoulli"].cls)


def test_sample_memory_limit_falls_back_without_proc(monkeypatch):
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise OSError("no /proc here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert sample.available_memory() == sample.FALLBACK_AVAILABLE_BYTES


def test_untrained_checkpoint_warns(capsys, tmp_path):
    import probgen as pg

    pg.save(pg.models.IndependentBernoulli(64), tmp_path)
    code = main(["eval", str(tmp_path), "--data", "digits-binary"])
    out, err = capsys.readouterr()
    assert code == 0 and "warning" in err and "no fit" in err and "test NLL" in out
