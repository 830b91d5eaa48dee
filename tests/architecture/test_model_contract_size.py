"""The model contract stays narrow (issue #25): ``GenerativeModel`` has at most 25 public members
of its own (beyond ``PyroModule``'s), and no family's hooks (the GAN's players, the RBM's Gibbs
chain) live on it. Helpers of every model are functions of ``probgen.models.base`` instead
(``scaled_to``, ``evaluating``, ``is_trained``, ``model_labels``, ``network``, ...)."""

from __future__ import annotations

import pyro.nn

from probgen.models.base import GenerativeModel

MAX_PUBLIC_MEMBERS = 25


def public_members(cls: type) -> list[str]:
    """The public names ``cls`` adds to ``PyroModule``'s."""
    inherited = set(dir(pyro.nn.PyroModule))
    return sorted(name for name in dir(cls) if not name.startswith("_") and name not in inherited)


def test_the_base_has_at_most_25_public_members():
    members = public_members(GenerativeModel)
    assert len(members) <= MAX_PUBLIC_MEMBERS, members


def test_no_family_hooks_on_the_base():
    family_words = ("generator", "discriminator", "player", "gibbs", "energy", "cd_", "adversar", "noise")
    assert not [m for m in public_members(GenerativeModel) if any(w in m for w in family_words)]


def test_the_count_sees_a_new_member():
    class Wider(GenerativeModel):
        def extra_hook(self) -> None: ...

    assert public_members(Wider) == sorted([*public_members(GenerativeModel), "extra_hook"])
