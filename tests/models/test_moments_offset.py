"""Moments and the Gaussian classifiers at full precision for data far from the origin.

A float32 fit of data at offset c is compared with the float64 fit of the same float32 numbers.
Both see the same data, so the only difference is float32 arithmetic. The mean and scatter are
worked out from rows shifted by a training row, and at these offsets that subtraction is exact.
So what is left is ordinary float32 rounding, eps = 2^-23 ~ 1.2e-7 per operation, on numbers no
larger than the spread.

- Moments: the shifted rows are exact and no bigger than R = max |x - shift|. torch's blocked sums
  lose at most about log2(N) eps relative. So the mean is within 4 log2(N) eps R, and the scatter
  (a sum of positive terms) within 4 log2(N) eps of itself.
- Predictive log-densities: the Student-t normaliser sums terms as large as
  lgamma((N + D) / 2) ~ 260 nats for 150 rows, and those terms cancel. Rounding each one by eps
  gives errors of about 3e-5 nats. The tolerance is 1e-4 (1 + |log p|). Below that, float32 is as
  good as float64 gets on these numbers. It applies at every offset, so 1e7 is held to it too,
  much tighter than 2 nats. Before the fix, at 1e7 the errors were 10-17 nats and p(y | x) was
  off by up to 1.
"""

import math

import pytest
import torch

import probgen as pg
from probgen.models import GaussianNaiveBayes, LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from probgen.models.moments import Moments

EPS32 = torch.finfo(torch.float32).eps
OFFSETS = [1e3, 1e5, 1e7]
CLASSIFIERS = [GaussianNaiveBayes, LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis]


def _reference(x: torch.Tensor, labels: torch.Tensor, num_groups: int, full: bool):
    """Counts, means and centred scatter of each group, in float64 by the two-pass formula."""
    x = x.double()
    counts, means, scatters = [], [], []
    for g in range(num_groups):
        rows = x[labels == g]
        mean = rows.mean(0) if len(rows) else x.new_zeros(x.shape[1])
        dev = rows - mean
        counts.append(len(rows))
        means.append(mean)
        scatters.append(dev.T @ dev if full else (dev**2).sum(0))
    return torch.tensor(counts, dtype=torch.float64), torch.stack(means), torch.stack(scatters)


def _assert_matches(moments: Moments, x: torch.Tensor, labels: torch.Tensor, num_groups: int, full: bool) -> None:
    counts, means, scatters = _reference(x, labels, num_groups, full)
    tol = 4 * math.log2(len(x)) * EPS32
    spread = (x.double() - x[0].double()).abs().max()  # R, up to a factor 2
    assert torch.equal(moments.count.double(), counts)
    assert torch.isfinite(moments.offset).all() and torch.isfinite(moments.scatter).all()
    # the exact mean, from shift + offset added in float64: its error is the offset's
    mean = moments.shift.double() + moments.offset.double()
    assert (mean - means).abs().max() <= tol * spread
    if full:
        scale = scatters.diagonal(dim1=-2, dim2=-1)
        scale = (scale[:, :, None] * scale[:, None, :]).sqrt()  # bounds |off-diagonal| (Cauchy-Schwarz)
    else:
        scale = scatters
    assert ((moments.scatter.double() - scatters).abs() <= tol * scale + 1e-30).all()


def _sample(offset: float, n: int = 600, d: int = 3, groups: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, groups, (n,), generator=generator)
    centres = torch.randn(groups, d, generator=generator, dtype=torch.float64)
    x = offset + centres[labels] + torch.randn(n, d, generator=generator, dtype=torch.float64)
    return x.float(), labels  # at 1e7 float32 keeps whole units: the spread ~1 is coarsely rounded


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("offset", OFFSETS)
def test_merged_batches_equal_the_float64_moments_of_the_whole_data(offset, full):
    x, labels = _sample(offset)
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    merged = None
    for start in range(0, len(x), 70):  # uneven batches, the last one short
        part = Moments.of(x[start : start + 70], onehot[start : start + 70], full=full)
        merged = part if merged is None else merged + part
    _assert_matches(merged, x, labels, 3, full)
    _assert_matches(Moments.of(x, onehot, full=full), x, labels, 3, full)
    # pooled: all rows as one group
    _assert_matches(merged.pooled(), x, torch.zeros_like(labels), 1, full)


def test_uncentred_sums_would_miss_the_float32_scatter_at_1e7():
    """The property the test above relies on: at 1e7 a float32 mean from a plain sum is off by
    units, so a scatter about it is off by n * delta^2, far outside the tolerance."""
    x, _ = _sample(1e7)
    naive_mean = x.sum(0) / len(x)
    naive = ((x - naive_mean) ** 2).sum(0).double()
    exact = ((x.double() - x.double().mean(0)) ** 2).sum(0)
    assert ((naive - exact).abs() / exact).max() > 4 * math.log2(len(x)) * EPS32
    pooled = Moments.of(x)
    assert ((pooled.scatter[0].double() - exact).abs() / exact).max() <= 4 * math.log2(len(x)) * EPS32


@pytest.mark.parametrize("offset", OFFSETS)
def test_merge_is_associative(offset):
    x, labels = _sample(offset, n=300)
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    a, b, c = (Moments.of(x[s], onehot[s], full=True) for s in (slice(0, 50), slice(50, 200), slice(200, 300)))
    left, right = (a + b) + c, a + (b + c)
    tol = 4 * math.log2(len(x)) * EPS32
    spread = (x - x[0]).abs().max()
    assert torch.equal(left.count, right.count)
    # the same means, as exact centred numbers and as rounded absolute ones
    assert (left.offset_from(x[0]) - right.offset_from(x[0])).abs().max() <= tol * spread
    assert (left.mean - right.mean).abs().max() <= EPS32 * left.mean.abs().max() + tol * spread
    scale = left.scatter.diagonal(dim1=-2, dim2=-1).max()
    assert (left.scatter - right.scatter).abs().max() <= tol * scale


def test_groups_with_no_rows_are_harmless():
    """Class 1 is absent from the first batch, class 2 from all of them; an empty batch merges as
    nothing. The classes lie far apart, so an empty group's stand-in shift (another class's row)
    would ruin the precision if it entered the merge."""
    x, labels = _sample(0.0, n=200, groups=2)
    x = x + torch.tensor([0.0, 1e7])[labels][:, None]  # class 0 near 0, class 1 near 1e7
    order = torch.argsort(labels, stable=True)  # class 0 first: the first batch has no class 1
    x, labels = x[order], labels[order]
    onehot = torch.nn.functional.one_hot(labels, 3).float()  # 3 groups, the last always empty
    empty = Moments.of(x[:0], onehot[:0])
    assert torch.equal(empty.count, torch.zeros(3)) and torch.isfinite(empty.offset).all()
    merged = empty
    for start in range(0, len(x), 40):
        merged = merged + Moments.of(x[start : start + 40], onehot[start : start + 40]) + empty
    assert merged.count[2] == 0 and torch.equal(merged.offset[2], torch.zeros(3))
    assert torch.equal(merged.scatter[2], torch.zeros(3))
    for g in range(2):  # each class alone, to the tolerance of its own spread
        rows = labels == g
        _assert_matches(merged.group(g), x[rows], torch.zeros(int(rows.sum()), dtype=torch.long), 1, False)


# ---------------------------------------------------------------------------- the classifiers


@pytest.fixture(scope="module")
def iris():
    data = pg.load_dataset("iris", "all")
    return data.x.double(), data.y


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.__name__)
def test_float32_fit_far_from_the_origin_matches_float64(cls, offset, iris):
    x, y = iris
    x32 = (x + offset).float()  # the data as float32 stores them
    x64 = x32.double()  # the same numbers
    single = cls(4, "real", 3).double().fit_closed_form(x64, y)
    streamed = cls(4, "real", 3)  # float32, merged over uneven batches
    pg.fit(streamed, (x32, y), batch_size=40, progress=False)
    joint32, joint64 = streamed.joint_log_prob(x32).double(), single.joint_log_prob(x64)
    log_p32, log_p64 = joint32.gather(1, y[:, None]), joint64.gather(1, y[:, None])  # log p(x_n, y_n)
    assert ((log_p32 - log_p64).abs() <= 1e-4 * (1 + log_p64.abs())).all()
    proba32 = streamed.predict_log_proba(x32).exp().double()
    proba64 = single.predict_log_proba(x64).exp()
    assert (proba32 - proba64).abs().max() <= 1e-4
    # the class means, as a reader sees them: within half a unit in the last place at the offset
    assert (streamed.post_loc.double() - single.post_loc).abs().max() <= offset * EPS32
