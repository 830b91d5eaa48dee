"""A static HTML page for a run directory: its results tables, every figure and how it was run.

``RUN/report.html`` reads like a results page:

- the per-variant and per-job tables (the cells of ``results.md``, made by the same functions of
  :mod:`probgen.experiments.tables` from ``results.json``), with units in the headers (nats per
  example, bits per dimension, seconds), each row's density kind as a labelled badge (an exact
  value, a lower bound on log p, an estimate, or no likelihood), and a diagnostics column when
  rows carry Monte-Carlo diagnostics (k̂, ESS; a failed one is footnoted with its warning);
  columns empty in every row are left out and named below the table, and a table wider than
  the page scrolls inside its own box with its first column kept in view;
- every PNG of the run directory as a numbered figure with its caption;
- "how this was run": the command, the versions (probgen, torch, pyro, Python, git) and start
  time from ``meta.json``, and the config itself.

Images are referenced by paths relative to the page, and the page loads nothing from elsewhere
(inline CSS, no scripts), so the folder can be copied, zipped or opened from disk as it is. All
text is escaped.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "results.json").write_text(json.dumps({"jobs": [], "summary": []}))
    >>> write_report(run).name
    'report.html'
"""

from __future__ import annotations

import html
import json
import math
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import quote

from probgen._io import write_text
from probgen.experiments.tables import jobs_table, summary_table

__all__ = ["write_report", "render_report", "figure_caption", "REPORT_FILE", "COLUMN_LABELS", "KIND_LABELS"]

REPORT_FILE = "report.html"

#: captions of the run-level plots (``plots/``) and of the per-job figures (``jobs/<job>/``)
RUN_CAPTIONS = {
    "likelihood.png": "Negative log-likelihood in bits/dim per model variant (lower is better), coloured by "
    "density kind; error bars: sd over seeds, else the standard error over test examples",
    "loss_curves.png": "Training (solid) and validation (dashed) loss per epoch of every job",
}
JOB_CAPTIONS = {"loss.png": "training (and validation) loss per epoch", "samples.png": "samples from the fitted model"}
LINKED_FILES = ("results.json", "results.csv", "results.md", "az_compare.csv", "config.toml", "meta.json")
#: the config shown in "how this was run": the file as written, else the resolved one
CONFIG_FILES = ("config.toml", "config.resolved.json")

#: the page's headers of the table columns (with their units) by the header of
#: :func:`~probgen.experiments.tables.summary_table` / :func:`~probgen.experiments.tables.jobs_table`
COLUMN_LABELS = {
    "nll_nats": "NLL (nats)",
    "± stderr": "± stderr (nats)",
    "stderr_nats": "± stderr (nats)",
    "bits_per_dim": "bits/dim",
    "num_samples": "K",
    "num_params": "params",
    "train": "train time",
    "train_seconds": "train time",
    "eval": "eval time",
    "eval_seconds": "eval time",
    "epochs_run": "epochs",
    "num_examples": "examples",
    "mmd2": "MMD²",
    "mmd_p_value": "MMD p",
    "c2st_accuracy": "C2ST acc",
    "c2st_p_value": "C2ST p",
    "parzen_nats (weak)": "Parzen log p (nats, weak)",
}
#: what a header means, shown as its tooltip
COLUMN_NOTES = {
    "NLL (nats)": "negative log-likelihood per test example, in nats (lower is better)",
    "± stderr (nats)": "standard error of the mean NLL over test examples, in nats",
    "bits/dim": "NLL per dimension in bits: nats / (D ln 2)",
    "K": "importance samples or AIS chains per example",
    "kind": "exact, lower bound (ELBO/IWAE: NLL is an upper bound), estimate, or implicit (no likelihood)",
    "diagnostics": "Monte-Carlo diagnostics of the estimate: Pareto k̂ (reliable below 0.7), ESS, run spread",
}
#: the badge text of each density kind
KIND_LABELS = {
    "exact": "exact",
    "lower_bound": "lower bound",
    "estimate": "estimate",
    "unnormalized": "unnormalized",
    "implicit": "implicit",
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 90em; color: #222;
  line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
.scroll { overflow-x: auto; max-width: 100%; margin-bottom: 0.5em; border: 1px solid #ddd; }
table { border-collapse: separate; border-spacing: 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; border-right: 1px solid #eee; padding: 0.25em 0.5em; text-align: right;
  white-space: nowrap; background: #fff; }
th { background: #f3f3f3; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; position: sticky; left: 0; z-index: 1;
  border-right: 2px solid #ccc; }
th:first-child { z-index: 2; }
tbody tr:nth-child(even) td { background: #fafafa; }
td.text { text-align: left; white-space: normal; min-width: 12em; }
.kind { display: inline-block; padding: 0 0.4em; border-radius: 0.6em; font-size: 0.85em; }
.kind-exact { background: #dff0d8; } .kind-lower_bound { background: #fcf0d0; }
.kind-estimate { background: #d9e8f6; } .kind-implicit, .kind-unnormalized { background: #eee; }
td.warn { background: #fde2e1 !important; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(24em, 1fr)); gap: 1em; }
figure { margin: 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; font-size: 0.9em; }
dl.how { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dl.how dt { font-weight: bold; } dl.how dd { margin: 0; }
pre { background: #f6f6f6; padding: 0.5em; overflow: auto; max-height: 40em; font-size: 0.85em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def figure_caption(relative: Path) -> str:
    """The caption of a PNG at ``relative`` (a path inside the run directory)."""
    parts = relative.parts
    if len(parts) == 3 and parts[0] == "jobs" and parts[2] in JOB_CAPTIONS:
        return f"{parts[1]}: {JOB_CAPTIONS[parts[2]]}"
    if len(parts) == 2 and parts[0] == "plots" and parts[1] in RUN_CAPTIONS:
        return RUN_CAPTIONS[parts[1]]
    return relative.as_posix()


def _figures(run_dir: Path) -> list[Path]:
    """Every PNG under ``run_dir`` (no hidden files or folders): the run's plots first, then by job."""
    found = [p.relative_to(run_dir) for p in run_dir.rglob("*.png") if p.is_file()]
    found = [p for p in found if not any(part.startswith(".") for part in p.parts)]
    return sorted(found, key=lambda p: (p.parts[0] != "plots", p.parts))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _diagnostic(row: dict[str, Any]) -> tuple[str, str | None]:
    """A row's diagnostics cell (its one-line summary, else k̂ and ESS from its keys) and its warning."""
    details = row.get("diagnostics") if isinstance(row.get("diagnostics"), dict) else {}
    text = row.get("diagnostic") or details.get("summary") or ""
    if not text:
        khat = _number(row.get("k_hat_max", row.get("khat_max", details.get("khat_max"))))
        ess = _number(row.get("ess", details.get("ess")))
        parts = [f"k̂ max {khat:.2f}" if khat is not None and math.isfinite(khat) else ""]
        parts.append(f"ESS {ess:.1f}" if ess is not None and math.isfinite(ess) else "")
        text = ", ".join(p for p in parts if p)
    warning = row.get("diagnostic_warning") or details.get("warning")
    return str(text), (str(warning) if warning else None)


class _Table:
    """A table's headers and cells as the page shows them: headers relabelled with their units,
    columns empty in every row left out, a diagnostics column where rows carry one."""

    def __init__(self, headers: list[str], cells: list[list[str]], rows: list[dict[str, Any]]) -> None:
        self.headers = [COLUMN_LABELS.get(h, h) for h in headers]
        self.cells = [list(c) for c in cells]
        self.kinds = [r.get("kind") for r in rows]
        self.warnings: list[tuple[str, str]] = []  # (row's first cell, warning)
        self.marks: list[int | None] = [None] * len(rows)
        diagnostics = [_diagnostic(r) for r in rows]
        if any(text or warning for text, warning in diagnostics):
            self.headers.append("diagnostics")
            for i, (text, warning) in enumerate(diagnostics):
                self.cells[i].append(text)
                if warning:
                    self.warnings.append((self.cells[i][0], warning))
                    self.marks[i] = len(self.warnings)
        keep = [j for j in range(len(self.headers)) if j == 0 or any(row[j] for row in self.cells)]
        self.left_out = [h for j, h in enumerate(self.headers) if j not in keep] if self.cells else []
        self.headers = [self.headers[j] for j in keep]
        self.cells = [[row[j] for j in keep] for row in self.cells]

    def _cell(self, header: str, text: str, i: int, prefix: str) -> str:
        if header == "kind" and text:
            return f'<td><span class="kind kind-{_e(text)}">{_e(KIND_LABELS.get(text, text))}</span></td>'
        if header == "diagnostics" and self.marks[i] is not None:
            mark = f' <a href="#{prefix}-warning-{self.marks[i]}">⚠ {self.marks[i]}</a>'
            return f'<td class="text warn">{_e(text)}{mark}</td>'
        if header in ("note", "error", "diagnostics", "stopped") and text:
            return f'<td class="text">{_e(text)}</td>'
        return f"<td>{_e(text)}</td>"

    def html(self, prefix: str) -> str:
        head = "".join(
            f'<th scope="col" title="{_e(COLUMN_NOTES[h])}">{_e(h)}</th>'
            if h in COLUMN_NOTES
            else f'<th scope="col">{_e(h)}</th>'
            for h in self.headers
        )
        body = [
            f'<tr data-kind="{_e(kind or "")}">'
            + "".join(self._cell(h, c, i, prefix) for h, c in zip(self.headers, row, strict=True))
            + "</tr>"
            for i, (row, kind) in enumerate(zip(self.cells, self.kinds, strict=True))
        ]
        parts = [f'<div class="scroll">\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>']
        parts += [*body, "</tbody>\n</table>\n</div>"]
        if self.warnings:
            items = "".join(
                f'<li id="{prefix}-warning-{n}"><b>{_e(name)}</b>: {_e(text)}</li>'
                for n, (name, text) in enumerate(self.warnings, 1)
            )
            parts.append(f'<ol class="note">{items}</ol>')
        if self.left_out:
            parts.append(f'<p class="note">columns empty in every row, left out: {_e(", ".join(self.left_out))}</p>')
        return "\n".join(parts)


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    if not run_dir.is_dir() or not path.is_file():
        raise ValueError(f"{str(run_dir)!r} holds no results.json; expected a run directory made by `probgen run`")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); expected the results of a run") from None
    if not (isinstance(results, dict) and isinstance(results.get("jobs"), list) and "summary" in results):
        raise ValueError(f"{str(path)!r} has no 'jobs' and 'summary' lists; expected the results of a run")
    return results


def _meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        meta = {}
    return meta if isinstance(meta, dict) else {}


def _header(run_dir: Path, meta: dict[str, Any]) -> str:
    facts = [f"{key} {meta[key]}" for key in ("probgen", "torch", "pyro", "started") if meta.get(key)]
    links = [f'<a href="{_e(quote(name))}">{_e(name)}</a>' for name in LINKED_FILES if (run_dir / name).is_file()]
    lines = [f"<h1>{_e(run_dir.name)}</h1>"]
    if facts:
        lines.append(f'<p class="note">{_e(", ".join(facts))} (<a href="#how">how this was run</a>)</p>')
    if links:
        lines.append(f'<p class="note">files: {", ".join(links)}</p>')
    return "\n".join(lines)


def _how(run_dir: Path, meta: dict[str, Any]) -> str:
    """The command, the versions and the config of the run."""
    rows = []
    command = meta.get("command")
    if isinstance(command, list) and command:
        command = shlex.join(str(c) for c in [Path(str(command[0])).name, *command[1:]])
    if command:
        rows.append(("command", f"<code>{_e(command)}</code>"))
    versions = [f"{key} {meta[key]}" for key in ("probgen", "torch", "pyro", "python") if meta.get(key)]
    if versions:
        rows.append(("versions", _e(", ".join(versions))))
    for key in ("git", "started", "executor"):
        if meta.get(key):
            value = meta[key] if isinstance(meta[key], str) else json.dumps(meta[key])
            rows.append((key, f"<code>{_e(value)}</code>" if key == "git" else _e(value)))
    parts = ['<h2 id="how">How this was run</h2>']
    if rows:
        parts.append('<dl class="how">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>")
    else:
        parts.append('<p class="note">no meta.json: the command and versions are unknown</p>')
    for name in CONFIG_FILES:
        path = run_dir / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(f"<details><summary>the config ({_e(name)})</summary><pre>{_e(text)}</pre></details>")
            break
    return "\n".join(parts)


def _figure_list(run_dir: Path) -> str:
    figures = []
    for n, relative in enumerate(_figures(run_dir), 1):
        src, caption = quote(relative.as_posix(), safe="/=,"), figure_caption(relative)
        figures.append(
            f'<figure id="figure-{n}"><img src="{_e(src)}" alt="{_e(caption)}" loading="eager">'
            f"<figcaption><b>Figure {n}.</b> {_e(caption)}</figcaption></figure>"
        )
    return '<div class="figures">\n' + "\n".join(figures) + "\n</div>" if figures else '<p class="note">no figures</p>'


NOTE = (
    "NLL: negative log-likelihood per test example in nats (bits/dim: per dimension in bits), lower is better. "
    "Kind: exact; lower bound (IWAE/ELBO: the NLL shown is an upper bound on the true NLL); estimate "
    "(Monte-Carlo, e.g. AIS or a posterior predictive); implicit models have no likelihood: they are "
    "scored by samples (MMD², classifier two-sample test, precision/recall; Parzen log p is a weak "
    "estimate, higher is better, not comparable with the NLL column). Times: wall-clock."
)


def render_report(run_dir: str | Path) -> str:
    """The HTML text of :func:`write_report` (nothing written)."""
    run_dir = Path(run_dir)
    results = _read_results(run_dir)
    summary, jobs = results["summary"], results["jobs"]
    meta = _meta(run_dir)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"\n<title>{_e(run_dir.name)}: probgen run report</title>",
        f"<style>{STYLE}</style>\n</head>",
        "<body>",
        _header(run_dir, meta),
        "<h2>Summary (mean ± sd over seeds)</h2>",
        f'<p class="note">{_e(NOTE)}</p>',
        _Table(*summary_table(summary), summary).html("summary"),
        "<h2>Jobs</h2>",
        _Table(*jobs_table(jobs), jobs).html("jobs"),
        "<h2>Figures</h2>",
        _figure_list(run_dir),
        _how(run_dir, meta),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` into a run directory (atomically) and return its path.

    Args:
        run_dir: a directory made by ``probgen run`` (it holds ``results.json``).

    Returns:
        The path of ``run_dir/report.html``.

    Raises:
        ValueError: ``run_dir`` is not a run directory (no readable ``results.json``).

    Example:
        >>> write_report("runs/digits-comparison")  # doctest: +SKIP
        PosixPath('runs/digits-comparison/report.html')
    """
    run_dir = Path(run_dir)
    return write_text(run_dir / REPORT_FILE, render_report(run_dir))
