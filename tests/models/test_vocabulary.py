"""One vocabulary of constructor arguments: every registered model speaks it, the names of before
still work for one release (with a DeprecationWarning naming the new one), old configs still
load, and the table in docs/architecture.md is the one the code generates."""

import pathlib
import warnings

import pytest
import torch

import probgen as pg
from probgen.classifiers import GaussianNB
from probgen.models import accepted_parameters
from probgen.models.vocabulary import RENAMED, VOCABULARY, argument_table, renamed_for, vocabulary_table

MODELS = pg.models.MODELS
SHAPE = (1, 4, 4)  # suits every family (as in test_constructor_checks)
ARCHITECTURE = pathlib.Path(__file__).parents[2] / "docs" / "architecture.md"

#: a valid value, other than the default, for each new name that replaces an old one
VALUES = {
    "hidden_features": (7,),
    "num_hidden": 5,
    "hidden_channels": 4,
    "embed_dim": 8,
    "num_layers": 1,
    "num_heads": 2,
    "num_scales": 1,
    "flow_num_layers": 2,
    "flow_hidden_features": (6,),
    "method": "map",
    "dequantization": "importance",
    "num_samples": 7,
    "num_gibbs_steps": 3,
    "num_ais_steps": 9,
}
RENAMES = [(name, old, new) for name in sorted(MODELS) for old, new in sorted(renamed_for(MODELS[name].cls).items())]


def _support(cls) -> str:
    return "binary" if "binary" in cls.supports else "real"


def _labels(cls) -> dict:
    return {"num_classes": 3} if "num_classes" in accepted_parameters(cls) else {}


def test_every_registered_models_arguments_come_from_the_vocabulary():
    outside = {
        name: sorted(set(accepted_parameters(spec.cls)) - set(VOCABULARY)) for name, spec in sorted(MODELS.items())
    }
    assert {name: args for name, args in outside.items() if args} == {}


def test_every_renamed_name_belongs_to_a_class_and_maps_into_the_vocabulary():
    classes = {klass.__name__ for spec in MODELS.values() for klass in spec.cls.__mro__}
    assert set(RENAMED) <= classes
    for renames in RENAMED.values():
        assert set(renames.values()) <= set(VOCABULARY)
        assert not set(renames) & set(VOCABULARY) - {"method"}  # only Dequantized's method moved
    # every mapping of RENAMED is in force for some registered model (none is dead)
    in_force = {(old, new) for _, old, new in RENAMES}
    assert {(o, n) for renames in RENAMED.values() for o, n in renames.items()} == in_force


def test_the_same_old_name_maps_by_family():
    assert renamed_for(pg.models.NADE)["hidden"] == "num_hidden"
    assert renamed_for(pg.models.MAF)["hidden"] == "hidden_features"
    assert renamed_for(pg.models.Dequantized) == {"method": "dequantization"}
    assert renamed_for(pg.models.IndependentBernoulli) == {"estimator": "method"}
    assert "method" not in renamed_for(pg.models.GaussianNaiveBayes)  # the classifiers' method stays
    assert "estimator" not in renamed_for(pg.models.GaussianNaiveBayes)  # never theirs: still refused


@pytest.mark.parametrize(("name", "old", "new"), RENAMES, ids=[f"{n}-{o}" for n, o, _ in RENAMES])
def test_each_old_name_works_with_one_warning_naming_the_new_one(name, old, new):
    cls = MODELS[name].cls
    value, support = VALUES[new], _support(cls)
    assert value != accepted_parameters(cls)[new].default
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = cls(SHAPE, support, **_labels(cls), **{old: value})
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in deprecations]
    message = str(deprecations[0].message)
    assert repr(old) in message and repr(new) in message, message
    assert deprecations[0].filename == __file__  # it points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        torch.manual_seed(0)
        same = cls(SHAPE, support, **_labels(cls), **{new: value})
    assert model.config == same.config and model.config[new] == same.config[new]
    assert old not in model.config
    assert model.config[new] != cls(SHAPE, support, **_labels(cls)).config[new]  # the value was used
    for key, tensor in same.state_dict().items():  # the same networks, weight for weight
        assert torch.equal(model.state_dict()[key], tensor), key


def test_several_old_names_in_one_call_give_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae = pg.models.VAE(4, "binary", hidden=(5,), flow_length=2, posterior_flow="iaf")
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1 and "'hidden_features'" in messages[0] and "'flow_num_layers'" in messages[0]
    assert (vae.config["hidden_features"], vae.config["flow_num_layers"]) == ([5], 2)


def test_an_old_and_a_new_name_together_are_a_type_error():
    with pytest.raises(TypeError, match="both 'hidden' and its new name 'hidden_features'"):
        pg.models.MAF(4, hidden=(8,), hidden_features=(8,))


def test_from_dataset_takes_an_old_name_and_warns():
    data = pg.load_dataset("digits-binary")
    with pytest.warns(DeprecationWarning, match="'hidden' is deprecated; use 'num_hidden'"):
        model = pg.models.NADE.from_dataset(data, hidden=9)
    assert model.config["num_hidden"] == 9


def test_an_old_config_loads_without_a_warning_and_saves_new_names():
    """Configs as checkpoints saved them before the one vocabulary (written out by hand, as the
    SHA-256 of a checkpoint's header makes editing a saved one hard)."""
    old_configs = [
        {
            "name": "nade",
            "event_shape": [16],
            "support": "binary",
            "hidden": 9,
            "components": 5,
            "output": "categorical",
        },
        {"name": "independent-gaussian", "event_shape": [3], "support": "real", "estimator": "mle", "prior_loc": 0.0},
        {"name": "rbm", "event_shape": [16], "support": "binary", "hidden": 4, "gibbs_steps": 2, "ais_steps": 30},
        {
            "name": "gaussian-nb",
            "event_shape": [4],
            "support": "real",
            "num_classes": 3,
            "method": "map",
            "num_posterior_samples": 11,
        },
        {
            "name": "dequantized",
            "event_shape": [4],
            "support": "discrete(17)",
            "method": "importance",
            "num_samples": 8,
            "base": {"name": "maf", "event_shape": [4], "support": "real", "num_layers": 1, "hidden": [6]},
        },
    ]
    expected = [
        {"num_hidden": 9},
        {"method": "mle"},
        {"num_hidden": 4, "num_gibbs_steps": 2, "num_ais_steps": 30},
        {"method": "map", "num_samples": 11},
        {"dequantization": "importance", "num_samples": 8},
    ]
    for config, new in zip(old_configs, expected, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a checkpoint load does not warn
            model = pg.models.model_class(config["name"]).from_config(config)
        assert {k: model.config[k] for k in new} == new, config["name"]
        renamed = renamed_for(type(model))
        assert not set(renamed) & set(model.config), model.config
        assert pg.models.model_class(config["name"]).from_config(model.config).config == model.config
    assert model.base.config["hidden_features"] == [6]  # a nested base config is renamed too


def test_num_classes_is_keyword_only_everywhere():
    for name, spec in sorted(MODELS.items()):
        param = accepted_parameters(spec.cls).get("num_classes")
        if param is not None:
            assert param.kind is param.KEYWORD_ONLY, name
    # passed by position, as before, it still works for one release, with a warning
    with pytest.warns(DeprecationWarning, match="passing num_classes by position is deprecated"):
        old = pg.models.LinearDiscriminantAnalysis(4, "real", 3)
    assert old.config == pg.models.LinearDiscriminantAnalysis(4, "real", num_classes=3).config
    assert old.num_classes == 3
    with pytest.raises(TypeError):  # one positional too many is still the constructor's own error
        pg.models.GaussianNaiveBayes(4, "real", 3, 1.0)


def test_the_sklearn_estimators_pass_the_new_names():
    x = torch.randn(30, 2, dtype=torch.float64).numpy()
    y = (x[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        est = GaussianNB(num_posterior_samples=13).fit(x, y)
    assert est.model_.config["num_samples"] == 13 and est.model_.num_classes == 2


def test_the_tables_in_architecture_md_are_the_generated_ones():
    text = ARCHITECTURE.read_text()
    assert vocabulary_table() in text
    assert argument_table(MODELS) in text
