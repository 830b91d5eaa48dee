"""``compare``: one table of held-out likelihoods across models on one dataset."""

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
from probgen.inference.evaluate import log_likelihood
from probgen.inference.fit import fit

__all__ = ["compare", "ComparisonTable", "COLUMNS"]

COLUMNS = ("model", "nll_nats", "stderr_nats", "bits_per_dim", "kind", "method", "num_samples", "split", "seconds")


@dataclass
class ComparisonTable:
    """Rows of ``{model, nll_nats, stderr_nats, bits_per_dim, kind, method, num_samples, split,
    seconds, ...}`` (the fields of :meth:`LogLikelihood.as_dict`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    dataset: str = ""

    def _formatted(self) -> list[list[str]]:
        out = []
        for row in self.rows:
            cells = []
            for col in COLUMNS:
                value = row.get(col, "")
                cells.append(f"{value:.4f}" if isinstance(value, float) else str(value))
            out.append(cells)
        return out

    def to_markdown(self) -> str:
        header = "| " + " | ".join(COLUMNS) + " |"
        rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
        body = ["| " + " | ".join(cells) + " |" for cells in self._formatted()]
        return "\n".join([header, rule, *body])

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps({"dataset": self.dataset, "rows": self.rows}, indent=2)

    def plot(self, path: str | Path) -> Path:
        """Save a bar chart of bits/dim (with standard errors) as a PNG."""
        from probgen.plots import likelihood_bars

        return likelihood_bars(self.rows, path, title=f"probgen compare: {self.dataset}")

    def __str__(self) -> str:
        return self.to_markdown()


def compare(
    models: Mapping[str, Any],
    data: Any,
    *,
    train: Any = None,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    dataset: str = "",
    split: str = "test",
    **eval_kwargs: Any,
) -> ComparisonTable:
    """Score every model on ``data`` (fitting each on ``train`` first when given).

    One table holds numbers of one quantity: log p(x), or log p(x | y) when every model is
    conditional; implicit models (no density) and mixtures of the two are refused.

    Args:
        models: name -> model.
        data: the evaluation data (Dataset, tensor or (x, y)).
        train: optional training data; each model is first fitted with
            ``fit(model, train, **fit_kwargs[name])``.
        fit_kwargs: per-model keyword arguments for :func:`~probgen.inference.fit`.
        dataset: a name for the table (default: the data's name).
        split: which split ``data`` is, recorded in every row.
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
    implicit = [name for name, model in models.items() if model.density == "implicit"]
    if implicit:
        raise ValueError(f"compare scores likelihoods; {implicit} have no density (implicit models)")
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
        result = log_likelihood(model, data, **eval_kwargs)
        row = {"model": name, **result.as_dict(), "split": split}
        table.rows.append({**row, "seconds": round(time.perf_counter() - t0, 3)})
    return table
