"""Likelihood-free metrics: MMD and classifier two-sample tests at their level and power,
MMD² against its defining sums, precision/recall on constructed sets, Parzen against a known
density, mode coverage."""

import math

import pytest
import torch

from probgen.inference.sample_metrics import (
    classifier_two_sample_test,
    mmd_test,
    mode_coverage,
    parzen_log_likelihood,
    precision_recall,
)


def _normal(n, shift=0.0, seed=0, d=2):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_mmd2_equals_its_defining_sums():
    x, y, h = _normal(6, seed=1), _normal(5, 0.5, seed=2), 0.7

    def k(a, b):
        return math.exp(-((a - b) ** 2).sum().item() / (2 * h**2))

    kxx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / (6 * 5)
    kyy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / (5 * 4)
    kxy = sum(k(a, b) for a in x for b in y) / 30
    assert math.isclose(mmd_test(x, y, bandwidth=h).mmd2, kxx + kyy - 2 * kxy, rel_tol=1e-10)


def test_mmd_separates_a_shift_and_holds_its_level_over_repeats():
    shifted = mmd_test(_normal(100, seed=0), _normal(100, 0.7, seed=1), num_permutations=100)
    assert shifted.p_value < 0.02  # the smallest p-value 100 permutations allow is 1/101
    p_values = [mmd_test(_normal(100, seed=2 * r), _normal(100, seed=2 * r + 1), num_permutations=100, seed=r).p_value
                for r in range(20)]  # fmt: skip
    rejections = sum(p < 0.05 for p in p_values)
    assert rejections <= 3, p_values  # about 1 of 20 expected at level 0.05
    assert sum(p_values) / 20 > 0.3  # p-values of a true null are uniform: mean 1/2


def test_classifier_two_sample_test_power_and_level():
    far = classifier_two_sample_test(_normal(300, seed=0), _normal(300, 1.5, seed=1))
    assert far.accuracy > 0.8 and far.p_value < 1e-6 and far.num_test == 300
    rejections = [classifier_two_sample_test(_normal(200, seed=r), _normal(200, seed=r + 100), seed=r).p_value < 0.05
                  for r in range(10)]  # fmt: skip
    assert sum(rejections) <= 2


def test_precision_recall_on_identical_and_constructed_sets():
    real = torch.arange(10.0)[:, None]
    assert precision_recall(real, real.clone(), k=1) == (1.0, 1.0)
    # half the fakes copy reals 0..4, half sit far away: precision 5/10; the fake balls (radius
    # 1) cover reals 0..5: recall 6/10
    fake = torch.cat([real[:5], real[:5] + 100])
    assert precision_recall(real, fake, k=1) == (0.5, 0.6)


def test_parzen_estimate_is_near_the_true_density_and_labelled_weak():
    samples, val, test = _normal(4000, seed=0, d=1), _normal(500, seed=1, d=1), _normal(2000, seed=2, d=1)
    result = parzen_log_likelihood(samples, test, val=val)
    truth = -0.5 * math.log(2 * math.pi) - 0.5 * (test**2).mean().item()
    assert abs(result.nats - truth) < 0.05 and 0.05 < result.bandwidth < 1.0
    assert "weak" in result.kind and "not a likelihood" in result.kind


def test_mode_coverage_counts_samples_per_centre():
    centres = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    samples = torch.tensor([[0.1, 0.0], [5.0, 0.2], [4.9, 0.0], [2.5, 2.5]])
    got = mode_coverage(samples, centres, radius=0.5)
    assert got["counts"] == [1, 2, 0] and got["modes_hit"] == 2 and got["high_quality"] == 0.75


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="x has 2 dimensions per point, y has 3"):
        mmd_test(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="y holds NaN or inf"):
        precision_recall(torch.zeros(4, 2), torch.full((4, 2), math.nan))
    with pytest.raises(ValueError, match="unknown classifier 'svm'"):
        classifier_two_sample_test(torch.zeros(4, 2), torch.ones(4, 2), classifier="svm")


def test_one_metric_schema_behind_every_table():
    """sample_metrics reports exactly the schema's keys; pg.compare, probgen run's tables and the
    CLI all take their columns and sample count from it."""
    import importlib

    import probgen as pg
    import probgen.cli.scoring  # noqa: F401 - imports the schema it prints with
    from probgen.experiments import runner, tables

    compare = importlib.import_module("probgen.inference.compare")  # the module, not pg.compare
    from probgen.inference.sample_metrics import METRIC_COLUMNS, METRIC_KEYS, METRIC_SAMPLES, sample_metrics

    model = pg.models.IndependentGaussian(2).fit_closed_form(
        torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    )
    got = sample_metrics(model, torch.randn(40, 2), val=torch.randn(30, 2), num_samples=40, classifier="logistic")
    assert tuple(got) == METRIC_KEYS
    assert set(METRIC_COLUMNS) <= set(METRIC_KEYS)
    assert tables.SAMPLE_KEYS == METRIC_KEYS and tables.SAMPLE_COLUMNS == METRIC_COLUMNS
    assert compare.METRIC_COLUMNS[: len(METRIC_COLUMNS)] == METRIC_COLUMNS
    assert runner.METRIC_SAMPLES == compare.MAX_METRIC_SAMPLES == METRIC_SAMPLES
