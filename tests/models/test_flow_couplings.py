"""Coupling layouts and identity starts of the flows.

A coupling flow's halves are the two colours of a checkerboard (for a flat event of square size,
the checkerboard of the square it flattens), so that one layer conditions each pixel on its
neighbours; a config saved before the option loads with the halves it had. The affine flows
start as the identity, so a fresh flow is the data-initialised actnorm's Gaussian.
"""

import pytest
import torch

from probgen.models import IAF, MAF, NSF, RealNVP
from probgen.models.flows.base import checkerboard_order

SMALL = {"num_layers": 1, "hidden_features": (16,)}


def _colours(order: torch.Tensor) -> torch.Tensor:
    """The colour (0: first half of the order, 1: second) of each flattened coordinate."""
    colour = torch.empty(len(order), dtype=torch.long)
    colour[order] = (torch.arange(len(order)) >= len(order) // 2).long()
    return colour


def test_checkerboard_order_colours_neighbours_apart_and_views_a_flat_square_as_an_image():
    flat, image, channels = checkerboard_order((64,)), checkerboard_order((8, 8)), checkerboard_order((1, 8, 8))
    assert torch.equal(flat, image) and torch.equal(flat, channels)
    colour = _colours(flat).reshape(8, 8)
    assert (colour[:, 1:] != colour[:, :-1]).all() and (colour[1:] != colour[:-1]).all()
    assert colour.sum() == 32
    assert checkerboard_order((5,)).tolist() == [0, 2, 4, 1, 3]  # not square: alternate positions
    assert sorted(checkerboard_order((3, 4)).tolist()) == list(range(12))


@pytest.mark.parametrize("cls", [RealNVP, NSF], ids=["RealNVP", "NSF"])
@pytest.mark.parametrize("coupling", ["checkerboard", "halves"])
def test_one_coupling_layer_conditions_one_colour_on_the_other(cls, coupling, float64):
    """The Jacobian of a single coupling layer: each transformed coordinate depends on itself
    and on coordinates of the other half only."""
    flow = cls((4, 4), coupling=coupling, **SMALL)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    order = checkerboard_order((4, 4)) if coupling == "checkerboard" else torch.arange(16)
    colour = _colours(order)
    x = torch.randn(16, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow.to_base(v.reshape(1, 4, 4))[0].reshape(-1), x)
    depends = jacobian[torch.argsort(order)].abs() > 1e-12  # row j of z is coordinate order[j] of x
    same_colour = colour[:, None] == colour[None, :]
    off_diagonal = ~torch.eye(16, dtype=torch.bool)
    assert not (depends & same_colour & off_diagonal).any()  # no coordinate reads its own half
    assert (depends & ~same_colour).sum() > 16  # the network reads the other half
    assert (colour == 1).sum() == 8


def test_a_config_saved_before_the_option_loads_with_the_halves_it_had():
    for cls, name in ((RealNVP, "realnvp"), (NSF, "nsf")):
        old = {"name": name, "event_shape": [6], "support": "real", "num_layers": 2, "hidden_features": [8]}
        assert cls.from_config(old).coupling == "halves"
        assert cls.from_config(cls(6).config).coupling == "checkerboard"
    with pytest.raises(ValueError, match="coupling must be one of 'checkerboard', 'halves', got 'rows'"):
        RealNVP(6, coupling="rows")


@pytest.mark.parametrize("cls", [RealNVP, MAF, IAF], ids=["RealNVP", "MAF", "IAF"])
def test_affine_flows_start_as_the_actnorm_gaussian(cls, float64):
    x = torch.randn(200, 5, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5]) + 2
    flow = cls(5, num_layers=3, hidden_features=(16,)).double()
    flow.init_from_data(x)
    gaussian = torch.distributions.Normal(x.mean(0), x.std(0))
    with torch.no_grad():
        assert torch.allclose(flow.log_prob(x), gaussian.log_prob(x).sum(-1), atol=1e-10)
