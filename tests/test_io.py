"""One atomic write for every file probgen writes, and the user's umask on each of them."""

import os
import re
import stat
from pathlib import Path

import pytest

from probgen._io import DirectoryLocked, atomic_path, locked, write_text
from probgen.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "probgen"


def test_exactly_one_implementation_of_an_atomic_write():
    replacing = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if re.search(r"os\.replace\(|mkstemp\(", p.read_text())
    ]
    assert replacing == ["_io.py"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_second_writer_is_refused_and_stale_temporaries_removed(tmp_path):
    (tmp_path / ".x.json.abc.tmp").write_text("left by a killed writer")
    with locked(tmp_path):
        assert not (tmp_path / ".x.json.abc.tmp").exists()
        with pytest.raises(DirectoryLocked, match="another probgen command"), locked(tmp_path):
            pass


def test_every_file_a_fit_and_a_sample_write_has_the_users_umask(tmp_path, capsys):
    previous = os.umask(0o027)
    try:
        out = tmp_path / "fit"
        assert main(["fit", "independent-bernoulli", "--data", "digits-binary", "--out", str(out), "--quiet"]) == 0
        assert main(["sample", str(out), "-n", "4", "--out", str(out / "s.npy")]) == 0
        assert main(["sample", str(out), "-n", "4", "--out", str(out / "s.png")]) == 0
    finally:
        os.umask(previous)
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"]
    assert {p.suffix for p in files} >= {".safetensors", ".json", ".npy", ".png"}
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {oct(0o640)}, modes
