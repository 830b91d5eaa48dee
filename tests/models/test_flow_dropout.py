"""Dropout in the flows' networks: in train mode only, so that ``fit`` trains with it while
``log_prob`` (eval mode, where ``fit`` leaves the flow) is the exact density of the weights."""

import pytest
import torch

import probgen as pg
from probgen.models import IAF, MAF, NAF, NSF, ConditionalMAF, Glow, NSFAutoregressive, RealNVP

FLOWS = {
    "RealNVP": lambda **k: RealNVP(6, **k),
    "MAF": lambda **k: MAF(6, **k),
    "IAF": lambda **k: IAF(6, **k),
    "NSF": lambda **k: NSF(6, **k),
    "NSF-AR": lambda **k: NSFAutoregressive(6, **k),
    "NAF": lambda **k: NAF(6, num_hidden=4, **k),
    "Glow": lambda **k: Glow((1, 4, 4), num_scales=1, **k),
}
SMALL = {"num_layers": 2, "hidden_features": (32,)}


def _perturbed(flow):
    with torch.no_grad():  # off the identity start, so that every network matters
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("name", FLOWS)
def test_dropout_acts_in_train_mode_only_and_eval_is_the_plain_flow(name, float64):
    torch.manual_seed(0)
    flow = _perturbed(FLOWS[name](dropout=0.5, **SMALL))
    plain = type(flow).from_config({**flow.config, "dropout": 0.0})
    plain.load_state_dict(flow.state_dict())
    x = torch.randn(5, *flow.event_shape, dtype=torch.float64)
    assert not flow.training  # a flow starts in eval mode
    assert torch.equal(flow.log_prob(x), flow.log_prob(x))
    assert torch.allclose(flow.log_prob(x), plain.log_prob(x), rtol=1e-12, atol=1e-12)
    flow.train()
    assert not torch.allclose(flow.log_prob(x), flow.log_prob(x))
    if name != "IAF":  # IAF's sampling inverts nothing; the others invert networks sequentially
        torch.manual_seed(3)
        drawn = flow.sample(4)  # sampling never drops, in either mode
        torch.manual_seed(3)
        assert torch.allclose(drawn, plain.sample(4), rtol=1e-8, atol=1e-8)
    assert flow.training  # sample gave the mode back


def test_fit_trains_with_dropout_and_returns_the_flow_in_eval_mode(float64):
    data = pg.load_dataset("moons")
    fits = {}
    for rate in (0.0, 0.5):
        torch.manual_seed(0)
        flow = RealNVP.from_dataset(data, dropout=rate, **SMALL)
        pg.fit(flow, data, epochs=2, batch_size=100, lr=1e-2, seed=0, progress=False)
        fits[rate] = flow
        assert not flow.training
        assert torch.equal(flow.log_prob(data.x[:8]), flow.log_prob(data.x[:8]))
    weights = [torch.cat([p.flatten() for p in f.parameters()]) for f in fits.values()]
    assert not torch.allclose(*weights)  # the same seed, so only dropout differs
    with torch.no_grad():
        side = torch.linspace(-6, 6, 241, dtype=torch.float64)
        grid = torch.cartesian_prod(side, side)
        mass = fits[0.5].log_prob(grid).exp().sum().item() * (side[1] - side[0]).item() ** 2
    assert abs(mass - 1) < 0.02  # a normalised density of its weights


def test_dropout_is_checked_saved_and_absent_from_old_configs():
    flow = MAF(4, dropout=0.25, **SMALL)
    assert flow.config["dropout"] == 0.25 and MAF.from_config(flow.config).dropout == 0.25
    for cls, name in ((MAF, "maf"), (RealNVP, "realnvp")):  # a config saved before the option: none
        old = {"name": name, "event_shape": [4], "support": "real", "num_layers": 2, "hidden_features": [8]}
        assert cls.from_config(old).dropout == 0.0
    assert ConditionalMAF(4, num_classes=3, dropout=0.1, **SMALL).dropout == 0.1
    for bad in (-0.1, 1.0, "0.5", None):
        with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
            RealNVP(4, dropout=bad)
