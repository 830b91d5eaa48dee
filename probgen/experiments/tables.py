"""Results of a run: per-job and per-variant tables (JSON, CSV, Markdown), plots and ``az.compare``."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from probgen._io import write_text
from probgen.inference.sample_metrics import METRIC_COLUMNS, METRIC_KEYS

__all__ = [
    "summarize",
    "job_note",
    "write_reports",
    "summary_table",
    "jobs_table",
    "summary_markdown",
    "JOB_COLUMNS",
    "SUMMARY_COLUMNS",
    "SAMPLE_KEYS",
    "SAMPLE_COLUMNS",
]

#: what :func:`probgen.inference.sample_metrics.sample_metrics` reports for an implicit model (GAN,
#: autoencoder), kept in each job row (None for the other rows), and the columns the tables show of
#: it: the one metric schema of :mod:`probgen.inference.sample_metrics`
SAMPLE_KEYS = METRIC_KEYS
SAMPLE_COLUMNS = METRIC_COLUMNS
JOB_COLUMNS = (
    "job", "model", "seed", "nll_nats", "stderr_nats", "bits_per_dim", "kind", "method", "num_samples", "diagnostic",
    "num_params", "train_seconds", "eval_seconds", "epochs_run", "stopped", "error", "split", "num_examples",
    *SAMPLE_COLUMNS,
)  # fmt: skip
SUMMARY_COLUMNS = (
    "model", "seeds", "nll_nats", "nll_sd", "stderr_nats", "bits_per_dim", "bpd_sd", "kind", "method",
    "num_samples", "diagnostic", "num_params", "train_seconds", "eval_seconds", "note", *SAMPLE_COLUMNS,
)  # fmt: skip
#: headers of the sample columns in the per-variant table (Markdown and HTML)
SAMPLE_HEADERS = ("MMD²", "MMD p", "C2ST acc", "C2ST p", "precision", "recall", "Parzen log p (nats, weak)")
#: number formats other than 4 decimals: values that may be tiny (MMD², p-values)
FORMATS = {"mmd2": ".4g", "mmd_p_value": ".4g", "c2st_p_value": ".4g"}


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def job_note(row: dict[str, Any]) -> str | None:
    """What a reader must know before trusting a job's numbers: its error, or that a wall-clock
    time limit cut its fit (such a number depends on the machine's speed and load)."""
    if row.get("error"):
        return f"failed: {row['error']}"
    stopped = row.get("stopped") or ""
    return f"stopped: {stopped}" if stopped.startswith("time limit") else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model variant: means over its seeds and, with several seeds, their sd; its
    ``note`` names the seeds that failed or that a time limit cut.

    Example:
        >>> rows = [
        ...     {"model": "vae", "seed": 0, "nll_nats": 10.0, "bits_per_dim": 0.5, "kind": "lower_bound"},
        ...     {"model": "vae", "seed": 1, "nll_nats": 12.0, "bits_per_dim": 0.7, "kind": "lower_bound"},
        ...     {"model": "flow", "seed": 0, "nll_nats": None, "error": "ValueError: NaN loss"},
        ... ]
        >>> vae, flow = summarize(rows)
        >>> vae["seeds"], vae["nll_nats"], round(vae["nll_sd"], 4), vae["kind"]  # sd of 10 and 12: sqrt(2)
        (2, 11.0, 1.4142, 'lower_bound')
        >>> flow["nll_nats"], flow["note"]
        (None, 'failed: ValueError: NaN loss')
    """
    out = []
    for variant in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == variant]
        first = group[0]
        nll, nll_sd = _mean_sd([r.get("nll_nats") for r in group])
        bpd, bpd_sd = _mean_sd([r.get("bits_per_dim") for r in group])
        row = {"model": variant, "seeds": len(group), "nll_nats": nll, "nll_sd": nll_sd}
        row |= {"stderr_nats": _mean_sd([r.get("stderr_nats") for r in group])[0], "bits_per_dim": bpd}
        row |= {"bpd_sd": bpd_sd, "kind": first.get("kind"), "method": first.get("method")}
        row |= {"num_samples": first.get("num_samples"), "num_params": first.get("num_params")}
        row |= {"num_dims": first.get("num_dims"), "conditional": first.get("conditional")}
        for key in ("train_seconds", "eval_seconds", *SAMPLE_COLUMNS):
            row[key] = _mean_sd([r.get(key) for r in group])[0]
        # a Monte-Carlo number's diagnostic: the first seed's that failed, else the first seed's
        diagnostics = [r.get("diagnostic") for r in group if r.get("diagnostic")]
        failed = [d for d in diagnostics if "FAILED" in d]
        row["diagnostic"] = (failed or diagnostics or [None])[0]
        notes = [(r["seed"], job_note(r)) for r in group if job_note(r)]
        row["note"] = "; ".join(note if len(group) == 1 else f"seed {seed} {note}" for seed, note in notes) or None
        out.append(row)
    return out


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key.endswith("seconds"):
            from probgen.progress import format_seconds

            return format_seconds(value)
        return format(value, FORMATS.get(key, ".4f"))
    return str(value)


def _pm(row: dict[str, Any], key: str, sd: str) -> str:
    if row.get(key) is None:
        return ""
    spread = f" ± {row[sd]:.4f}" if row.get(sd) is not None else ""
    return f"{row[key]:.4f}{spread}"


def _has_samples(rows: list[dict[str, Any]]) -> bool:
    return any(r.get(key) is not None for r in rows for key in SAMPLE_COLUMNS)


def summary_table(summary: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of the per-variant table: NLL and bits/dim as mean ± sd over
    seeds (sd only with several), the density kind of each row, and the likelihood-free columns
    when some variant has them. The Markdown and HTML tables are made of these cells."""
    headers = ["model", "seeds", "NLL (nats)", "± stderr", "bits/dim", "kind", "method", "K", "params", "train"]
    headers.append("eval")
    diagnostics = any(r.get("diagnostic") for r in summary)  # Monte-Carlo numbers: k-hat, ESS, spread
    headers += ["diagnostic"] if diagnostics else []
    notes = any(r.get("note") for r in summary)
    headers += ["note"] if notes else []
    samples = _has_samples(summary)
    headers += list(SAMPLE_HEADERS) if samples else []
    cells = []
    for r in summary:
        row = [r["model"], str(r["seeds"]), _pm(r, "nll_nats", "nll_sd"), _cell(r, "stderr_nats")]
        row += [_pm(r, "bits_per_dim", "bpd_sd"), _cell(r, "kind"), _cell(r, "method"), _cell(r, "num_samples")]
        row += [_cell(r, "num_params"), _cell(r, "train_seconds"), _cell(r, "eval_seconds")]
        row += [_cell(r, "diagnostic")] if diagnostics else []
        row += [_cell(r, "note")] if notes else []
        row += [_cell(r, key) for key in SAMPLE_COLUMNS] if samples else []
        cells.append(row)
    return headers, cells


def jobs_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers (the column keys of results.csv; "parzen_nats (weak)") and formatted cells of the
    per-job table; the likelihood-free columns only when some job has them."""
    columns = JOB_COLUMNS if _has_samples(rows) else JOB_COLUMNS[: -len(SAMPLE_COLUMNS)]
    headers = [f"{c} (weak)" if c == "parzen_nats" else c for c in columns]
    return headers, [[_cell(r, c) for c in columns] for r in rows]


def _markdown(headers: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def summary_markdown(summary: list[dict[str, Any]]) -> str:
    """The per-variant table (:func:`summary_table`) in Markdown."""
    return _markdown(*summary_table(summary))


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def likelihood_chart(summary: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Bars of bits/dim per variant, coloured by density kind, with error bars (sd over seeds,
    else the standard error of the mean over test examples): :func:`probgen.plots.likelihood_bars`."""
    from probgen.plots import likelihood_bars

    rows = [r for r in summary if r.get("bits_per_dim") is not None]
    return likelihood_bars(rows, path, title=title) if rows else None


def loss_curves(out: Path, rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Training (solid) and validation (dashed) loss of every job fitted by epochs, one figure."""
    from probgen.plots import loss_curves as draw

    curves = []
    for r in rows:
        fit_file = out / "jobs" / r["job"] / "fit.json"
        if not fit_file.exists():  # a job that failed, or that its time limit cut before one epoch
            continue
        fit = json.loads(fit_file.read_text())
        if len(fit["history"]) > 1:
            curves.append((r["job"], fit["history"]))
    return draw(curves, path) if curves else None


def arviz_compare(out: Path, rows: list[dict[str, Any]]) -> Path | None:
    """``az.compare`` (PSIS-LOO elpd with standard errors) of the jobs that exported InferenceData
    with a pointwise log-likelihood (a MAP fit's: draws of its Laplace approximation).
    Points whose Pareto k says the LOO estimate is unreliable are named once per model, in the
    ``probgen.experiments`` log, instead of ArviZ's warnings."""
    import logging

    import arviz as az

    from probgen.models.posterior import loo_compare

    idatas = {}
    for r in rows:
        if r.get("inference_data"):
            idata = az.from_netcdf(str(out / "jobs" / r["job"] / r["inference_data"]))
            if "log_likelihood" in idata.groups():
                idatas[r["job"]] = idata
    if not idatas:
        return None
    table, notes = loo_compare(idatas)
    for note in notes:
        logging.getLogger("probgen.experiments").warning(note)
    return write_text(out / "az_compare.csv", table.to_csv())


def write_reports(out: Path, rows: list[dict[str, Any]], *, final: bool) -> tuple[list[dict[str, Any]], list[Path]]:
    """Write results.json/csv/md (atomically); with ``final``, also the plots and az.compare.

    Example:
        >>> import tempfile
        >>> rows = [
        ...     {"job": "vae-seed=0", "model": "vae", "seed": 0, "nll_nats": 10.0, "kind": "lower_bound"},
        ...     {"job": "vae-seed=1", "model": "vae", "seed": 1, "nll_nats": 12.0, "kind": "lower_bound"},
        ... ]
        >>> out = Path(tempfile.mkdtemp())
        >>> summary, files = write_reports(out, rows, final=False)
        >>> [path.name for path in files]
        ['results.json', 'results.csv', 'results.md']
        >>> json.loads((out / "results.json").read_text()) == {"jobs": rows, "summary": summary}
        True
        >>> summary_row = (out / "results.md").read_text().splitlines()[4]
        >>> summary_row.startswith("| vae | 2 | 11.0000 ± 1.4142 |")  # mean ± sd over the two seeds
        True
    """
    summary = summarize(rows)
    files = [write_text(out / "results.json", json.dumps({"jobs": rows, "summary": summary}, indent=1))]
    files.append(write_text(out / "results.csv", _csv(rows, JOB_COLUMNS)))
    text = f"## Summary (mean ± sd over seeds)\n\n{summary_markdown(summary)}\n\n## Jobs\n\n"
    files.append(write_text(out / "results.md", text + _markdown(*jobs_table(rows)) + "\n"))
    if final:
        (out / "plots").mkdir(exist_ok=True)
        made = [likelihood_chart(summary, out / "plots" / "likelihood.png", title=out.name)]
        made.append(loss_curves(out, rows, out / "plots" / "loss_curves.png"))
        made.append(arviz_compare(out, rows))
        files += [out / "plots"] if any(made[:2]) else []
        files += [made[2]] if made[2] else []
    return summary, files
