"""DataPlate is pyro.plate without the no-op expand: the same sites, shapes, scales and frames."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen.models.plates import DataPlate


def _program(plate):
    def run():
        with plate("data", 10, subsample=torch.arange(4)):
            a = pyro.sample("scalar", dist.Normal(0.0, 1.0))  # broadcast to (4,)
            b = pyro.sample("in_shape", dist.Normal(torch.zeros(4, 3), 1.0).to_event(1))  # left alone
            c = pyro.sample("ones", dist.Normal(torch.zeros(1), 1.0))  # broadcast from (1,)
            with pyro.plate("inner", 2, dim=-2):
                d = pyro.sample("nested", dist.Normal(torch.zeros(4), 1.0))  # (4,) -> (2, 4)
                e = pyro.sample("nested_in_shape", dist.Normal(torch.zeros(2, 4), 1.0))
        return a, b, c, d, e

    return run


def test_sites_match_pyro_plate_and_in_shape_sites_keep_their_distribution():
    ours = pyro.poutine.trace(_program(DataPlate)).get_trace()
    theirs = pyro.poutine.trace(_program(pyro.plate)).get_trace()
    for name in ("scalar", "in_shape", "ones", "nested", "nested_in_shape"):
        mine, pyros = ours.nodes[name], theirs.nodes[name]
        assert mine["fn"].batch_shape == pyros["fn"].batch_shape, name
        assert mine["fn"].event_shape == pyros["fn"].event_shape, name
        assert mine["value"].shape == pyros["value"].shape, name
        assert mine["scale"] == pyros["scale"] == 2.5, name
        assert [f.name for f in mine["cond_indep_stack"]] == [f.name for f in pyros["cond_indep_stack"]]
    assert ours.nodes["scalar"]["fn"].batch_shape == (4,)
    assert ours.nodes["nested"]["fn"].batch_shape == (2, 4)
    assert ours.nodes["in_shape"]["fn"].base_dist.loc.shape == (4, 3)


def test_a_site_of_the_wrong_size_is_refused_as_by_pyro():
    with pytest.raises(ValueError, match="Shape mismatch inside plate"):
        with DataPlate("data", 10, subsample=torch.arange(4)):
            pyro.sample("bad", dist.Normal(torch.zeros(3), 1.0))
