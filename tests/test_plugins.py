"""Models from outside probgen: a user's file named by a ``probgen run`` config, and installed
packages' ``probgen.models`` entry points (shown by ``probgen list``; a broken one only warns)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import probgen as pg
from probgen.cli import main
from probgen.experiments import ConfigError, validate_config
from probgen.models.plugins import load_entry_points, load_file

#: a user's file: a linear-Gaussian latent-factor model as plain Pyro functions, its factory, and
#: a GenerativeModel subclass of the user's own
USER_FILE = '''
import pyro, pyro.distributions as dist, torch
from torch.distributions import constraints
import probgen as pg


def model(x, k=1):
    W = pyro.param("W", 0.5 * x.new_ones(x.shape[-1], k))
    b = pyro.param("b", x.new_zeros(x.shape[-1]))
    s = pyro.param("s", x.new_ones(()), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(k), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + b, s).to_event(1), obs=x)


def guide(x, k=1):
    A = pyro.param("A", x.new_zeros(k, x.shape[-1]))
    c = pyro.param("c", x.new_zeros(k))
    q = pyro.param("q", 0.5 * x.new_ones(k), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x @ A.T + c, q).to_event(1))


def LatentFactor(event_shape, support, *, k=1):
    """Linear-Gaussian latent factors, z ~ N(0, I_k) per example."""
    return pg.models.PyroModel(lambda x: model(x, k), lambda x: guide(x, k), event_shape=event_shape,
                               support=support)


class Gauss(pg.models.PyroModel):
    """A subclass is accepted too (here of PyroModel, with no arguments of its own)."""

    def __init__(self, event_shape, support):
        def gauss(x):
            loc = pyro.param("loc", x.new_zeros(x.shape[-1]))
            with pyro.plate("data", x.shape[0]):
                pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

        super().__init__(gauss, event_shape=event_shape, support=support, name="Gauss")

    @classmethod
    def from_config(cls, config):
        return cls(tuple(config["event_shape"]), config["support"])
'''

CONFIG = """
seeds = [0]
samples = 0
[data]
name = "moons"
[fit]
epochs = 2
batch_size = 500
[eval]
num_samples = 8
[[models]]
module = "mymodels.py"
name = "LatentFactor"
args = {k = 1}
[[models]]
module = "mymodels.py"
name = "Gauss"
"""


@pytest.fixture
def registered():
    before = set(dict.keys(pg.models.MODELS))
    yield
    for name in set(dict.keys(pg.models.MODELS)) - before:
        dict.__delitem__(pg.models.MODELS, name)


def test_probgen_run_with_the_model_in_a_user_file(tmp_path, capsys, registered):
    (tmp_path / "mymodels.py").write_text(USER_FILE)
    (tmp_path / "exp.toml").write_text(CONFIG)
    cwd = os.getcwd()
    os.chdir(tmp_path.parent)  # the module path is relative to the config, not to the working folder
    try:
        code = main(["run", str(tmp_path / "exp.toml"), "--out", str(tmp_path / "run"), "--quiet"])
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().err
    rows = {row["model"]: row for row in json.loads((tmp_path / "run" / "results.json").read_text())["jobs"]}
    assert rows["LatentFactor"]["kind"] == "lower_bound" and rows["LatentFactor"]["method"] == "iwae"
    assert rows["Gauss"]["kind"] == "exact" and rows["Gauss"]["num_params"] == 2
    assert all(row["nll_nats"] is not None and row["nll_nats"] == row["nll_nats"] for row in rows.values())
    # the saved model loads by its registered name (the file was imported by reading the config)
    loaded = pg.load(tmp_path / "run" / "jobs" / "LatentFactor-seed=0" / "model.safetensors")
    assert type(loaded).__name__ == "LatentFactor" and loaded.config["k"] == 1


def test_a_bad_user_file_entry_is_a_config_error_naming_it(tmp_path, registered):
    (tmp_path / "mymodels.py").write_text(USER_FILE)
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    data = {"name": "moons"}
    cases = [
        ({"module": "missing.py", "name": "LatentFactor"}, r"models\[0\]\.module = 'missing.py'.*does not exist"),
        ({"module": "mymodels.py", "name": "Nope"}, r"defines no 'Nope'.*it defines Gauss, LatentFactor"),
        ({"module": "broken.py", "name": "X"}, r"importing .*broken.py' failed: ModuleNotFoundError"),
        ({"module": "mymodels.py", "name": "LatentFactor", "args": {"kk": 2}}, r"has no argument 'kk'; it accepts"),
        ({"module": "mymodels.txt", "name": "LatentFactor"}, r"expected the path of a Python file"),
    ]
    for entry, match in cases:
        with pytest.raises(ConfigError, match=match):
            validate_config({"data": data, "models": [entry]}, base=tmp_path)


def test_load_file_refuses_what_is_not_a_model(tmp_path, registered):
    (tmp_path / "other.py").write_text("import probgen as pg\nvalue = 3\nclass Plain: ...\n")
    with pytest.raises(ValueError, match=r"'value' is int; expected a GenerativeModel subclass or a function"):
        load_file(tmp_path / "other.py", "value")
    with pytest.raises(ValueError, match=r"'Plain' is type; expected"):
        load_file(tmp_path / "other.py", "Plain")


def _install_plugins(folder):
    """A package and its distribution metadata on ``folder``: one working entry point and two
    broken ones (a module that fails to import, and a name taken by a built-in model)."""
    (folder / "goodplug.py").write_text(
        textwrap.dedent(
            """
            import probgen as pg, pyro, pyro.distributions as dist

            def coins(event_shape, support):
                \"\"\"Independent coins with learnable logits.\"\"\"
                def model(x):
                    logits = pyro.param("logits", x.new_zeros(x.shape[-1]))
                    with pyro.plate("data", x.shape[0]):
                        pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)
                return pg.models.PyroModel(model, event_shape=event_shape, support=support)
            """
        )
    )
    (folder / "badplug.py").write_text("raise RuntimeError('this plug-in is broken')\n")
    info = folder / "probgen_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probgen-test-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[probgen.models]\ntest-coins = goodplug:coins\ntest-broken = badplug:model\nvae = goodplug:coins\n"
    )


def test_entry_points_register_and_a_broken_one_only_warns(tmp_path, monkeypatch, registered):
    _install_plugins(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning) as caught:
        added = load_entry_points()
    assert added == ["test-coins"]
    messages = [str(w.message) for w in caught]
    assert any("'test-broken' (badplug:model from probgen-test-plugins)" in m and "broken" in m for m in messages)
    assert any("'vae'" in m and "already taken" in m for m in messages)
    assert pg.models.MODELS["vae"].cls is pg.models.VAE
    model = pg.models.build_model("test-coins", pg.load_dataset("digits-binary"))
    assert model.density == "exact" and model.event_shape == (64,)


def test_probgen_list_shows_installed_plugins_and_survives_a_broken_one(tmp_path):
    _install_plugins(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "probgen", "list"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "test-coins" in done.stdout and "Independent coins" in done.stdout
    assert "model plug-in 'test-broken'" in done.stderr
