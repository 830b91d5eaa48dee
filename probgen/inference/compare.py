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

from probgen.inference.evaluate import log_likelihood
from probgen.inference.svi import fit

__all__ = ["compare", "ComparisonTable"]

COLUMNS = ("model", "nll", "stderr", "bits_per_dim", "kind", "method", "num_samples", "seconds")


@dataclass
class ComparisonTable:
    """Rows of ``{model, nll, stderr, bits_per_dim, kind, method, num_samples, seconds, ...}``."""

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
        from probgen.plots import _pyplot, save_figure

        plt = _pyplot()

        names = [r["model"] for r in self.rows]
        bpd = [r["bits_per_dim"] for r in self.rows]
        err = [r["stderr"] / (r["num_dims"] * 0.6931471805599453) for r in self.rows]
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.5))
        ax.bar(names, bpd, yerr=err, color="tab:blue", capsize=4)
        for i, row in enumerate(self.rows):
            if row["kind"] != "exact":
                ax.text(i, bpd[i], row["kind"], ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("test NLL (bits/dim, lower is better)")
        ax.set_title(f"probgen compare: {self.dataset}")
        ax.tick_params(axis="x", rotation=30)
        return save_figure(fig, path)

    def __str__(self) -> str:
        return self.to_markdown()


def compare(
    models: Mapping[str, Any],
    data: Any,
    *,
    train: Any = None,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    dataset: str = "",
    **eval_kwargs: Any,
) -> ComparisonTable:
    """Score every model on ``data`` (fitting each on ``train`` first when given).

    Args:
        models: name -> model.
        data: the evaluation data (Dataset, tensor or (x, y)).
        train: optional training data; each model is first fitted with
            ``fit(model, train, **fit_kwargs[name])``.
        fit_kwargs: per-model keyword arguments for :func:`~probgen.inference.fit`.
        dataset: a name for the table.
        **eval_kwargs: passed to :func:`~probgen.inference.log_likelihood`.

    Example:
        >>> import probgen as pg
        >>> tr, te = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
        >>> m = pg.models.IndependentBernoulli(64).fit_conjugate(tr.x)
        >>> print(pg.compare({"bernoulli": m}, te).rows[0]["kind"])
        exact
    """
    if not models:
        raise ValueError("compare needs at least one model")
    table = ComparisonTable(dataset=dataset or getattr(data, "name", ""))
    for name, model in models.items():
        t0 = time.perf_counter()
        if train is not None:
            fit(model, train, **dict((fit_kwargs or {}).get(name, {})))
        result = log_likelihood(model, data, **eval_kwargs)
        table.rows.append({"model": name, **result.as_dict(), "seconds": round(time.perf_counter() - t0, 2)})
    return table
