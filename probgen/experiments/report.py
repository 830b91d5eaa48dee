"""A static HTML page for a run directory: its results tables and every figure, no server needed.

``RUN/report.html`` holds the per-variant and per-job tables (the cells of ``results.md``, made
by the same functions of :mod:`probgen.experiments.tables` from ``results.json``) and every PNG
of the run directory with a caption. Images are referenced by paths relative to the page, and
the page loads nothing from elsewhere (inline CSS, no scripts), so the folder can be copied,
zipped or opened from disk as it is. All text is escaped.

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
from pathlib import Path
from typing import Any
from urllib.parse import quote

from probgen._io import write_text
from probgen.experiments.tables import jobs_table, summary_table

__all__ = ["write_report", "render_report", "figure_caption", "REPORT_FILE"]

REPORT_FILE = "report.html"

#: captions of the run-level plots (``plots/``) and of the per-job figures (``jobs/<job>/``)
RUN_CAPTIONS = {
    "likelihood.png": "Negative log-likelihood in bits/dim per model variant (lower is better), coloured by "
    "density kind; error bars: sd over seeds, else the standard error over test examples",
    "loss_curves.png": "Training (solid) and validation (dashed) loss per epoch of every job",
}
JOB_CAPTIONS = {"loss.png": "training (and validation) loss per epoch", "samples.png": "samples from the fitted model"}
LINKED_FILES = ("results.json", "results.csv", "results.md", "az_compare.csv", "config.toml", "meta.json")

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 45em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; font-size: 0.9em; }
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


def _table(headers: list[str], cells: list[list[str]], kinds: list[Any]) -> str:
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = [
        f'<tr data-kind="{_e(kind or "")}">' + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
        for row, kind in zip(cells, kinds, strict=True)
    ]
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


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


def _header(run_dir: Path) -> str:
    meta_path = run_dir / "meta.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            meta = {}
    facts = [f"{key} {meta[key]}" for key in ("probgen", "torch", "pyro", "started", "git") if meta.get(key)]
    links = [f'<a href="{_e(quote(name))}">{_e(name)}</a>' for name in LINKED_FILES if (run_dir / name).is_file()]
    lines = [f"<h1>{_e(run_dir.name)}</h1>"]
    if facts:
        lines.append(f'<p class="note">{_e(", ".join(facts))}</p>')
    if links:
        lines.append(f'<p class="note">files: {", ".join(links)}</p>')
    return "\n".join(lines)


def render_report(run_dir: str | Path) -> str:
    """The HTML text of :func:`write_report` (nothing written)."""
    run_dir = Path(run_dir)
    results = _read_results(run_dir)
    summary, jobs = results["summary"], results["jobs"]
    figures = []
    for relative in _figures(run_dir):
        src, caption = quote(relative.as_posix(), safe="/=,"), figure_caption(relative)
        figures.append(
            f'<figure><img src="{_e(src)}" alt="{_e(caption)}" loading="eager">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    note = (
        "NLL: negative log-likelihood per example in nats (bits/dim: per dimension in bits), lower is better; "
        "kind: exact, lower_bound (IWAE/ELBO) or estimate. Implicit models have no likelihood: they are "
        "scored by samples (MMD², classifier two-sample test, precision/recall; Parzen log p is a weak "
        "estimate, higher is better, not comparable with the NLL column)."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head>\n<meta charset="utf-8">\n<title>{_e(run_dir.name)}: probgen run report</title>',
        f"<style>{STYLE}</style>\n</head>",
        "<body>",
        _header(run_dir),
        "<h2>Summary (mean ± sd over seeds)</h2>",
        f'<p class="note">{_e(note)}</p>',
        _table(*summary_table(summary), [r.get("kind") for r in summary]),
        "<h2>Jobs</h2>",
        _table(*jobs_table(jobs), [r.get("kind") for r in jobs]),
        "<h2>Figures</h2>",
        "\n".join(figures) if figures else '<p class="note">no figures</p>',
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
