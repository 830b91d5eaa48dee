"""``compare``: one table of held-out likelihoods (and, for implicit models, likelihood-free
metrics) across models on one dataset."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probgen.data.dataset import Dataset
from probgen.inference.data import DataSource
from probgen.inference.evaluate import log_likelihood
from probgen.inference.fit import fit
from probgen.inference.sample_metrics import METRIC_COLUMNS as SCHEMA_COLUMNS
from probgen.inference.sample_metrics import METRIC_SAMPLES, sample_metrics

__all__ = ["compare", "ComparisonTable", "COLUMNS", "METRIC_COLUMNS", "MAX_METRIC_SAMPLES"]

COLUMNS = ("model", "nll_nats", "stderr_nats", "bits_per_dim", "kind", "method", "num_samples", "split", "seconds")
#: the likelihood-free columns, filled for implicit models only (None for density models): the
#: metric schema's columns, and the kind of the Parzen estimate beside them
METRIC_COLUMNS = (*SCHEMA_COLUMNS, "parzen_kind")
#: samples drawn from an implicit model by default: as many as evaluation examples, at most this
MAX_METRIC_SAMPLES = METRIC_SAMPLES
#: what an implicit model's row holds in the likelihood columns
_NO_LIKELIHOOD = {"nll_nats": None, "stderr_nats": None, "bits_per_dim": None, "predictive": None}


@dataclass
class ComparisonTable:
    """Rows of ``{model, nll_nats, stderr_nats, bits_per_dim, kind, method, num_samples, split,
    seconds, ...}`` (the fields of :meth:`LogLikelihood.as_dict`), and for implicit models the
    likelihood-free metrics of :func:`~probgen.inference.sample_metrics.sample_metrics` (their
    likelihood columns are None; a density model's metric columns are None).

    Example:
        >>> table = ComparisonTable(
        ...     [{"model": "bernoulli", "nll_nats": 33.9, "kind": "exact"},
        ...      {"model": "vae", "nll_nats": 25.1, "kind": "lower_bound"}],
        ...     dataset="digits-binary", shown=("model", "nll_nats", "kind"),
        ... )
        >>> print(table)
        | model | nll_nats | kind |
        |---|---|---|
        | bernoulli | 33.9000 | exact |
        | vae | 25.1000 | lower_bound |
        >>> ComparisonTable(table.rows).columns == COLUMNS  # no diagnostic, note or metric in any row
        True
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    dataset: str = ""
    #: the columns to show, in order (None: as :attr:`columns` chooses)
    shown: tuple[str, ...] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """:attr:`shown` if set; else :data:`COLUMNS`, ``note`` when some row has one (a failed
        job, a fit cut by a time limit), ``diagnostic`` when some row's number is a Monte-Carlo one
        with a diagnostic (k-hat, ESS), and :data:`METRIC_COLUMNS` when some row has metrics."""
        if self.shown is not None:
            return self.shown
        with_metrics = any(row.get(col) is not None for row in self.rows for col in METRIC_COLUMNS)
        notes = ("note",) if any(row.get("note") for row in self.rows) else ()
        # a Monte-Carlo number's diagnostic (k-hat, ESS, run spread) in a column of its own
        diagnostics = ("diagnostic",) if any(row.get("diagnostic") for row in self.rows) else ()
        return COLUMNS + diagnostics + notes + (METRIC_COLUMNS if with_metrics else ())

    def _formatted(self) -> list[list[str]]:
        out = []
        for row in self.rows:
            cells = []
            for col in self.columns:
                value = row.get(col, "")
                cells.append(f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value))
            out.append(cells)
        return out

    def to_markdown(self) -> str:
        header = "| " + " | ".join(self.columns) + " |"
        rule = "|" + "|".join("---" for _ in self.columns) + "|"
        body = ["| " + " | ".join(cells) + " |" for cells in self._formatted()]
        return "\n".join([header, rule, *body])

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps({"dataset": self.dataset, "rows": self.rows}, indent=2)

    def plot(self, path: str | Path) -> Path:
        """Save a bar chart of bits/dim (with standard errors) of the models with a likelihood."""
        from probgen.plots import likelihood_bars

        rows = [row for row in self.rows if row.get("bits_per_dim") is not None]
        if not rows:
            raise ValueError("nothing to plot: no model in the table has a likelihood (all are implicit)")
        return likelihood_bars(rows, path, title=f"probgen compare: {self.dataset}")

    def __str__(self) -> str:
        return self.to_markdown()


def _implicit_row(model: Any, data: Any, val: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The likelihood-free row of an implicit model: sample metrics, no nats."""
    num_examples = len(DataSource(data, "data"))
    options = {"num_samples": min(num_examples, MAX_METRIC_SAMPLES), **options}
    metrics = sample_metrics(model, data, val=val, **options)
    described = {"kind": "implicit", "method": "sample_metrics", "num_samples": options["num_samples"]}
    shape = {"num_examples": num_examples, "num_dims": model.num_dims, "conditional": False}
    return {**_NO_LIKELIHOOD, **described, **shape, **dict.fromkeys(METRIC_COLUMNS), **metrics}


def compare(
    models: Mapping[str, Any],
    data: Any,
    *,
    train: Any = None,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    dataset: str = "",
    split: str = "test",
    val: Any = None,
    metric_kwargs: Mapping[str, Any] | None = None,
    **eval_kwargs: Any,
) -> ComparisonTable:
    """Score every model on ``data`` (fitting each on ``train`` first when given).

    One table holds log p(x), or log p(x | y) when every model is conditional (mixtures of the
    two are refused). Implicit models (GANs) are scored by ``sample_metrics`` of their samples
    against ``data`` (MMD and its permutation p-value, a classifier two-sample test,
    precision/recall and, given ``val``, the Parzen log-likelihood, a weak estimate as
    ``parzen_kind`` says) in columns of their own, their nats columns None; density models
    leave the metric columns None.

    Args:
        models: name -> model.
        data: the evaluation data (Dataset, tensor or (x, y)).
        train: optional training data; each model is first fitted with
            ``fit(model, train, **fit_kwargs[name])``.
        fit_kwargs: per-model keyword arguments for :func:`~probgen.inference.fit`.
        dataset: a name for the table (default: the data's name).
        split: which split ``data`` is, recorded in every row.
        val: validation data for the Parzen bandwidth of implicit models (else no Parzen).
        metric_kwargs: for ``sample_metrics`` on implicit models: ``num_samples`` (default as
            many as ``data`` has, at most :data:`MAX_METRIC_SAMPLES`), ``classifier``, ``seed``.
        **eval_kwargs: passed to :func:`~probgen.inference.log_likelihood`.

    Example:
        >>> import probgen as pg
        >>> tr, te = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
        >>> m = pg.models.IndependentBernoulli(64).fit_closed_form(tr.x)
        >>> print(pg.compare({"bernoulli": m}, te).rows[0]["kind"])
        exact
    """
    if not models:
        raise ValueError("compare needs at least one model")
    conditional = {name for name, model in models.items() if model.conditional}
    if conditional and len(conditional) < len(models):
        raise ValueError(
            f"compare keeps log p(x | y) and log p(x) in separate tables; {sorted(conditional)} are conditional, "
            f"{sorted(set(models) - conditional)} are not"
        )
    table = ComparisonTable(dataset=dataset or (data.name if isinstance(data, Dataset) else ""))
    for name, model in models.items():
        t0 = time.perf_counter()
        if train is not None:
            fit(model, train, **dict((fit_kwargs or {}).get(name, {})))
        if model.density == "implicit":
            row = _implicit_row(model, data, val, metric_kwargs or {})
        else:
            row = {**log_likelihood(model, data, **eval_kwargs).as_dict(), **dict.fromkeys(METRIC_COLUMNS)}
        table.rows.append({"model": name, **row, "split": split, "seconds": round(time.perf_counter() - t0, 3)})
    return table
