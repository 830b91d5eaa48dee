"""Each strategy's interface is a Protocol beside it, checked once before fitting: a model that
lacks it is refused with a TypeError naming what it lacks, and the base class carries none of it."""

import pytest
import torch

import probgen as pg
from probgen.inference.strategies.adversarial import Adversarial
from probgen.inference.strategies.closed_form import ClosedForm
from probgen.inference.strategies.contrastive import ContrastiveDivergence
from probgen.models import GenerativeModel

PROTOCOLS = {"adversarial": Adversarial, "contrastive_divergence": ContrastiveDivergence, "closed_form": ClosedForm}


def _hooks(protocol):
    return [n for n in vars(protocol) if not n.startswith("_") and callable(vars(protocol)[n])]


@pytest.mark.parametrize("strategy", sorted(PROTOCOLS))
def test_the_base_class_carries_no_strategy_hooks(strategy):
    assert not [n for n in _hooks(PROTOCOLS[strategy]) if hasattr(GenerativeModel, n)]


@pytest.mark.parametrize(
    "name, strategy",
    [("gan", "adversarial"), ("rbm", "contrastive_divergence"), ("independent-bernoulli", "closed_form")],
)
def test_the_models_of_each_strategy_implement_its_protocol(name, strategy):
    model = pg.models.build_model(name, pg.get_data("digits-binary", "val"))
    assert isinstance(model, PROTOCOLS[strategy])
    others = [s for s in PROTOCOLS if s != strategy]
    assert not any(isinstance(model, PROTOCOLS[s]) for s in others)


@pytest.mark.parametrize("strategy", sorted(PROTOCOLS))
def test_a_model_without_the_interface_is_refused_naming_it(strategy):
    model = pg.models.VAE(4, "binary", latent_dim=2, hidden_features=(8,))
    with pytest.raises(
        TypeError, match=f"{strategy}.*{PROTOCOLS[strategy].__name__}.*{_hooks(PROTOCOLS[strategy])[0]}"
    ):
        pg.fit(model, torch.ones(6, 4), strategy=strategy, epochs=1, progress=False)


def test_nuts_on_a_model_without_a_posterior_object_says_what_to_do_instead():
    model = pg.models.VAE(4, "binary", latent_dim=2, hidden_features=(8,))
    with pytest.raises(ValueError, match="no posterior object.*draws="):
        pg.fit(model, torch.ones(6, 4), strategy="nuts", progress=False)
