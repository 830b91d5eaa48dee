"""compare with implicit models: a GAN beside a density model in one table, the likelihood-free
metrics on the implicit rows only, and the two-sample statistics telling a clearly wrong
generator from an exact sampler of the data."""

import csv
import io
import math

import pytest
import torch

import probgen as pg
from probgen.inference.compare import COLUMNS, METRIC_COLUMNS
from probgen.models import GAN, GenerativeModel, IndependentGaussian

TEST, VAL = pg.load_dataset("8gaussians", "test", n=300), pg.load_dataset("8gaussians", "val", n=300)
NUMBERS = [c for c in METRIC_COLUMNS if c != "parzen_kind"]


class ExactSampler(GenerativeModel):
    """An implicit model whose draws are fresh draws of the eight-Gaussians data themselves."""

    density = "implicit"
    supports = ("real",)

    def __init__(self) -> None:
        super().__init__((2,), "real")
        self.seed = 10

    def sample(self, n: int) -> torch.Tensor:
        self.seed += 1
        return pg.load_dataset("8gaussians", n=n, seed=self.seed).x


def _wrong_gan():
    """Untrained, at the data's mean and scale: right first two moments, wrong shape."""
    torch.manual_seed(0)
    gan = GAN(2, "real", hidden_features=(16,))
    gan.init_from_data(TEST.x)
    return gan


def test_a_gan_and_a_density_model_share_one_table_with_metrics_only_on_the_gan():
    gaussian = IndependentGaussian.from_dataset(TEST, method="mle").fit_closed_form(VAL.x)
    models = {"gaussian": gaussian, "gan": _wrong_gan()}
    table = pg.compare(models, TEST, val=VAL, metric_kwargs={"classifier": "logistic"})
    density, gan = table.rows
    assert density["kind"] == "exact" and math.isfinite(density["nll_nats"])
    assert all(density[c] is None for c in METRIC_COLUMNS)
    assert gan["kind"] == "implicit" and gan["method"] == "sample_metrics"
    assert gan["nll_nats"] is None and gan["bits_per_dim"] is None and gan["stderr_nats"] is None
    assert all(isinstance(gan[c], float) and math.isfinite(gan[c]) for c in NUMBERS)
    assert gan["num_samples"] == gan["num_examples"] == len(TEST)
    assert "weak" in gan["parzen_kind"]
    assert table.columns == COLUMNS + METRIC_COLUMNS
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert rows[0]["mmd2"] == "" and rows[1]["nll_nats"] == "" and float(rows[1]["mmd2"]) == gan["mmd2"]
    assert "| gan | — | — | — | implicit |" in table.to_markdown()


def test_two_sample_statistics_separate_a_wrong_generator_from_an_exact_sampler():
    """The same statistics, the same data: the wrong generator is rejected (p < 0.01 by MMD and by
    the classifier, which tells it apart), the exact sampler is not (p > 0.05)."""
    table = pg.compare({"wrong": _wrong_gan(), "exact sampler": ExactSampler()}, TEST)
    wrong, exact = table.rows
    assert wrong["mmd_p_value"] < 0.01 and wrong["c2st_p_value"] < 0.01 and wrong["c2st_accuracy"] > 0.6
    assert exact["mmd_p_value"] > 0.05 and exact["c2st_p_value"] > 0.05
    assert wrong["mmd2"] > 10 * abs(exact["mmd2"])
    assert wrong["precision"] < 0.5 < 0.9 < exact["precision"]
    assert wrong["parzen_nats"] is None  # no validation data, no Parzen estimate
    with pytest.raises(ValueError, match="no model in the table has a likelihood"):
        table.plot("unused.png")


def test_density_only_tables_keep_their_columns_and_mixing_conditional_is_refused():
    gaussian = IndependentGaussian.from_dataset(TEST, method="mle").fit_closed_form(VAL.x)
    assert pg.compare({"gaussian": gaussian}, TEST).columns == COLUMNS
    digits = pg.load_dataset("digits")
    conditional = pg.models.ConditionalVAE(64, "discrete(17)", num_classes=10)
    plain = pg.models.IndependentCategorical.from_dataset(digits)
    with pytest.raises(ValueError, match="separate tables"):
        pg.compare({"cvae": conditional, "categorical": plain}, digits)
    with pytest.raises(ValueError, match="separate tables"):  # an implicit model is unconditional
        pg.compare({"cvae": conditional, "gan": GAN(64, "real")}, digits)
