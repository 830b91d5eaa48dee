"""Stacked: a mixture of fitted models normalizes, its fitted weights are the maximum-likelihood
weights on held-out data, and its components stay as they were."""

import itertools
import warnings

import pyro
import pytest
import torch

import probgen as pg
from probgen.models import FVBN, MADE, VAE, IndependentBernoulli, IndependentGaussian, PixelCNN, Stacked

CELLS = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))


def _data(n: int, seed: int, share: float = 1.0) -> torch.Tensor:
    """A ``share`` of correlated bits (x1 copies x0 with probability 0.9, x2 independent), the rest
    independent bits of other probabilities."""
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(n, generator=g) < 0.3).double()
    x1 = torch.where(torch.rand(n, generator=g) < 0.9, x0, 1 - x0)
    x2 = (torch.rand(n, generator=g) < 0.6).double()
    other = (torch.rand(n, 3, generator=g) < torch.tensor([0.8, 0.2, 0.1])).double()
    correlated = (torch.rand(n, 1, generator=g) < share).double()
    return correlated * torch.stack([x0, x1, x2], 1) + (1 - correlated) * other


def _fitted_parts() -> list:
    """An FVBN of the correlated bits, independent Bernoullis of the others."""
    torch.manual_seed(0)
    parts = [FVBN(3, "binary").double(), IndependentBernoulli(3).double()]
    pg.fit(parts[0], _data(300, 0), epochs=30, batch_size=50, lr=0.05, progress=False)
    pg.fit(parts[1], _data(300, 1, share=0.0), progress=False)
    return parts


def _adam_weights(stack: Stacked, x: torch.Tensor) -> torch.Tensor:
    """The weights plain Pyro SVI finds on the stack's own program from uniform weights."""
    fresh = Stacked(3, "binary", models=list(stack.components)).double()
    pyro.clear_param_store()
    svi = pyro.infer.SVI(fresh.model, fresh.guide, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
    for _ in range(1500):
        svi.step(x)
    return fresh.weights


def test_stack_normalizes_and_its_weights_are_the_held_out_maximum_likelihood():
    held = _data(400, 2, share=0.4)
    parts = _fitted_parts()
    before = [{k: v.clone() for k, v in p.state_dict().items()} for p in parts]
    stack = Stacked(3, "binary", models=parts).double()
    result = pg.fit(stack, held, progress=False)
    table = torch.stack([p.log_prob(held) for p in parts], 1).detach()
    assert 0.2 < float(stack.weights[0]) < 0.8  # a real mixture, not a vertex of the simplex
    logits = stack.mixture.logits.detach().clone().requires_grad_(True)  # the maximum: no gradient
    mean_log_likelihood = torch.logsumexp(torch.log_softmax(logits, 0) + table, 1).mean()
    (gradient,) = torch.autograd.grad(mean_log_likelihood, logits)
    assert gradient.abs().max() < 1e-6  # (from the uniform start it is of order 0.1)
    adam = _adam_weights(stack, held)  # plain Pyro SVI on the program: the same maximum
    assert torch.allclose(adam, stack.weights, atol=2e-3), (adam, stack.weights)
    assert torch.logsumexp(stack.log_prob(CELLS), 0).exp().item() == pytest.approx(1.0, abs=1e-12)
    nll = -stack.log_prob(held).mean().item()
    assert nll <= -table.mean(0).max().item() + 1e-9  # no worse than the best component alone
    assert result.history[0]["train_loss"] == pytest.approx(nll, abs=1e-9)  # the fit's record, from its table
    assert pg.log_likelihood(stack, held).kind == "exact"
    for part, state in zip(parts, before, strict=True):  # the caller's models: untouched, trainable
        assert all(torch.equal(part.state_dict()[k], v) for k, v in state.items())
        assert all(p.requires_grad for p in part.parameters())
    assert all(not p.requires_grad for p in stack.components.parameters())


def test_stack_samples_the_mixture_and_round_trips(tmp_path):
    stack = Stacked(3, "binary", models=_fitted_parts()).double()
    pg.fit(stack, _data(400, 2, share=0.4), progress=False)
    torch.manual_seed(1)
    draws = stack.sample(40000)
    frequency = (draws[:, None, :] == CELLS[None]).all(-1).double().mean(0)
    assert torch.allclose(frequency, stack.log_prob(CELLS).exp().detach(), atol=0.01)
    loaded = pg.load(pg.save(stack, tmp_path / "stack.safetensors"))
    assert isinstance(loaded, Stacked) and loaded.config == stack.config
    assert torch.equal(loaded.log_prob(CELLS), stack.log_prob(CELLS))


@pytest.mark.filterwarnings("ignore:.*never fitted")
def test_components_see_their_own_shapes():
    """A PixelCNN of 1 x 2 x 2 images and a MADE of 4-vectors stack over the same data."""
    torch.manual_seed(0)
    image, vector = PixelCNN((1, 2, 2), "binary", hidden_channels=8, num_layers=1), MADE(4, "binary")
    stack = Stacked(4, "binary", models=[image, vector])
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    with torch.no_grad():
        parts = torch.stack([image.log_prob(x.reshape(-1, 1, 2, 2)), vector.log_prob(x)], 1)
        expected = torch.logsumexp(parts + torch.tensor(0.5).log(), 1)
        assert torch.allclose(stack.log_prob(x), expected, atol=1e-6)
        assert torch.logsumexp(stack.log_prob(x), 0).exp().item() == pytest.approx(1.0, abs=1e-5)


def test_bad_components_are_refused_by_name():
    with pytest.raises(ValueError, match="at least one"):
        Stacked(3, "binary", models=[])
    with pytest.raises(ValueError, match=r"models\[1\] \(vae\) has density 'lower_bound'"):
        Stacked(3, "binary", models=[IndependentBernoulli(3), VAE(3, "binary")])
    with pytest.raises(ValueError, match=r"models\[0\] \(independent-gaussian\) models 3 values of support 'real'"):
        Stacked(3, "binary", models=[IndependentGaussian(3, "real")])
    with pytest.raises(ValueError, match="models 4 values"):
        Stacked(3, "binary", models=[IndependentBernoulli(4)])
    with pytest.raises(TypeError, match=r"models\[0\] must be a probgen model"):
        Stacked(3, "binary", models=["fvbn"])


def test_unfitted_components_are_named_in_a_warning(tmp_path):
    parts = _fitted_parts()
    with pytest.warns(UserWarning, match=r"^models\[1\] \(fvbn\): never fitted"):
        Stacked(3, "binary", models=[parts[1], FVBN(3, "binary")])
    stack = Stacked(3, "binary", models=parts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fitted parts, the default stack of one, a saved stack: no warning
        Stacked(3, "binary", models=parts)
        Stacked(3, "binary")
        pg.load(pg.save(stack, tmp_path / "stack.safetensors"))
        chosen = Stacked(3, "binary", models=parts)
        chosen.set_weights(torch.tensor([0.25, 0.75]))  # weights chosen by hand are a fit of the stack
        pg.log_likelihood(chosen, _data(20, 2))
