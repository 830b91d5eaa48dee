"""Every Monte-Carlo number carries its diagnostic into the tables: pg.compare's, and probgen
run's per-job and per-variant tables; an exact number has none."""

import warnings

import pytest
import torch

import probgen as pg
from probgen.experiments.tables import jobs_table, summarize, summary_table


@pytest.fixture(scope="module")
def table():
    torch.manual_seed(0)
    test = pg.load_dataset("digits-binary", "test").x[:40]
    models = {
        "exact": pg.models.IndependentBernoulli(64).fit_closed_form(pg.load_dataset("digits-binary").x),
        "bound": pg.models.VAE(64, "binary", latent_dim=2),
    }
    models["bound"].fitted.fill_(True)  # scored as it is: its weights are not what is tested
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an untrained VAE's k-hat fails, and says so
        return pg.compare(models, test, num_samples=30)


def test_compare_shows_a_diagnostic_column_for_monte_carlo_rows_only(table):
    assert "diagnostic" in table.columns
    rows = {r["model"]: r for r in table.rows}
    assert rows["exact"].get("diagnostic") is None
    assert "k̂ max" in rows["bound"]["diagnostic"] and "ESS" in rows["bound"]["diagnostic"]
    assert "diagnostic" in table.to_markdown().splitlines()[0]


def test_run_tables_carry_the_diagnostic_and_the_worst_seed_wins(table):
    bound = next(r for r in table.rows if r["model"] == "bound")
    rows = [
        {**bound, "job": "bound-seed=0", "seed": 0, "diagnostic": "k̂ max 0.30, 0% > 0.7, ESS 28/30"},
        {**bound, "job": "bound-seed=1", "seed": 1, "diagnostic": "k̂ max 0.95, 5% > 0.7, ESS 3/30 [FAILED]"},
    ]
    summary = summarize(rows)
    assert summary[0]["diagnostic"].endswith("[FAILED]")
    headers, cells = summary_table(summary)
    assert cells[0][headers.index("diagnostic")].endswith("[FAILED]")
    headers, cells = jobs_table(rows)
    assert [c[headers.index("diagnostic")] for c in cells] == [r["diagnostic"] for r in rows]
