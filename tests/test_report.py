"""report.html of a run directory, and the likelihood-free columns of implicit models in its tables.

One tiny run (iris: a GAN, an implicit model, and an independent Gaussian with an exact density,
two epochs each) is shared by the tests of this file.
"""

import csv
import json
import math
import re
import shlex
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from probgen.experiments import run_experiment, validate_config
from probgen.experiments.report import (
    COLUMN_LABELS,
    KIND_LABELS,
    REPORT_FILE,
    figure_caption,
    render_report,
    write_report,
)
from probgen.experiments.tables import JOB_COLUMNS, SAMPLE_COLUMNS, SAMPLE_HEADERS, SAMPLE_KEYS

#: a model label with characters HTML must escape
ODD_LABEL = 'gauss<b>&"x"'
TINY = {
    "name": "tiny",
    "seeds": [0],
    "samples": 16,
    "data": {"name": "iris"},
    "fit": {"epochs": 2, "batch_size": 45},
    "models": [
        {"name": "gan", "args": {"hidden_features": [16, 16], "latent_dim": 2}},
        {"name": "independent-gaussian", "label": ODD_LABEL},
    ],
}
#: numbers in the two tables: per variant the GAN's sample columns and the Gaussian's NLL, stderr and
#: bits/dim; per job the same plus parameters, epochs and examples for both
NUMBERS = (len(SAMPLE_COLUMNS) + 3) + (len(SAMPLE_COLUMNS) + 3 + 6)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    done = run_experiment(validate_config(TINY), out, progress=False, log=lambda line: None)
    assert out / REPORT_FILE in done["files"]
    return out


class _Page(HTMLParser):
    """The tables (rows of cell texts), images (src, alt) and captions of a page, and the text
    and attributes of every element (``elements``: (tag, attrs, text), text nested inside)."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.captions, self.tags = [], [], [], set()
        self.elements, self._open = [], []
        self._cell = self._caption = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        if tag not in ("img", "meta", "br"):  # void elements have no end tag
            self._open.append([tag, attrs, ""])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "figcaption":
            self._caption = ""

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            self.elements.append(tuple(self._open.pop()))
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag == "figcaption":
            self.captions.append(self._caption)
            self._caption = None

    def handle_data(self, data):
        for element in self._open:
            element[2] += data
        if self._cell is not None:
            self._cell += data
        if self._caption is not None:
            self._caption += data

    def find(self, tag, **attrs):
        """The elements of ``tag`` whose attributes include ``attrs``."""
        return [e for e in self.elements if e[0] == tag and all(e[1].get(k) == v for k, v in attrs.items())]


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _number(cell: str) -> float:
    """The number of a cell: "3.4079 ± 0.0123" -> 3.4079; "4.811e-153" -> 4.811e-153."""
    return float(cell.split(" ± ")[0])


def _job_id(run_dir: Path, i: int) -> str:
    return json.loads((run_dir / "results.json").read_text())["jobs"][i]["job"]


#: the page's column headers (with units) back to the keys of results.json
JOB_KEYS = {label: key for key, label in COLUMN_LABELS.items() if key in JOB_COLUMNS}
JOB_KEYS["Parzen log p (nats, weak)"] = "parzen_nats"
SUMMARY_KEYS = {"NLL (nats)": "nll_nats", "bits/dim": "bits_per_dim", "± stderr": "stderr_nats"}
SUMMARY_KEYS |= {"± stderr (nats)": "stderr_nats"} | dict(zip(SAMPLE_HEADERS, SAMPLE_COLUMNS, strict=True))


def _check_tables(tables: list[list[list[str]]], results: dict, page: bool = False) -> int:
    """Each table's cells against results.json: every number to the printed precision (4 decimals,
    or 4 significant digits for MMD² and p-values), blanks (or, on the page, a column left out)
    where the value is None, and the density kind of each row (on the page, its label). Returns
    how many numbers were compared."""
    summary, jobs = tables
    kind = (lambda k: KIND_LABELS[k]) if page else (lambda k: k)
    compared = 0
    head = summary[0]
    assert [row[0] for row in summary[1:]] == [r["model"] for r in results["summary"]]
    for row, expected in zip(summary[1:], results["summary"], strict=True):
        cells = {SUMMARY_KEYS.get(h, h): c for h, c in zip(head, row, strict=True)}
        assert cells["kind"] == kind(expected["kind"])
        for key in set(SUMMARY_KEYS.values()):
            if expected[key] is None:
                assert cells.get(key, "") == "", (key, cells[key])
            else:
                assert _number(cells[key]) == pytest.approx(expected[key], rel=5e-4, abs=5e-5), key
                compared += 1
    head = [JOB_KEYS.get(h, h.removesuffix(" (weak)")) for h in jobs[0]]
    numeric = ["nll_nats", "stderr_nats", "bits_per_dim", "num_params", "epochs_run", "num_examples"]
    for row, expected in zip(jobs[1:], results["jobs"], strict=True):
        cells = dict(zip(head, row, strict=True))
        assert (cells["job"], cells["model"]) == (expected["job"], expected["model"])
        assert cells["kind"] == kind(expected["kind"])
        for key in [*numeric, *SAMPLE_COLUMNS]:
            if expected[key] is None:
                assert cells.get(key, "") == ""
            else:
                assert _number(cells[key]) == pytest.approx(expected[key], rel=5e-4, abs=5e-5), key
                compared += 1
    return compared


# ----------------------------------------------------------------------------- likelihood-free columns


def test_implicit_rows_get_sample_metrics_and_no_nats(run_dir):
    import probgen as pg
    from probgen.experiments.runner import METRIC_SAMPLES
    from probgen.inference.sample_metrics import sample_metrics

    results = json.loads((run_dir / "results.json").read_text())
    gan, gauss = results["jobs"]
    assert gan["kind"] == "implicit" and gauss["kind"] == "exact"
    assert gan["nll_nats"] is None and gan["bits_per_dim"] is None
    assert math.isfinite(gauss["nll_nats"]) and all(gauss[key] is None for key in SAMPLE_KEYS)
    assert all(math.isfinite(gan[key]) for key in SAMPLE_COLUMNS)
    assert 0 <= gan["c2st_accuracy"] <= 1 and 0 < gan["mmd_p_value"] <= 1 and 0 <= gan["recall"] <= 1
    # the numbers are those of sample_metrics for the saved model, the job's seed and the split
    model = pg.load(run_dir / "jobs" / gan["job"] / "model.safetensors")
    test, val = pg.load_dataset("iris", "test"), pg.load_dataset("iris", "val")
    expected = sample_metrics(model, test.x, val=val.x, num_samples=METRIC_SAMPLES, seed=gan["model_seed"])
    numbers = {k: v for k, v in expected.items() if not isinstance(v, str)}
    assert {k: gan[k] for k in numbers} == pytest.approx(numbers, rel=1e-12, abs=0)
    assert all(gan[k] == v for k, v in expected.items() if k not in numbers)  # labels such as parzen_kind
    summary = {s["model"]: s for s in results["summary"]}
    assert summary["gan"]["nll_nats"] is None and summary["gan"]["mmd2"] == gan["mmd2"]
    with open(run_dir / "results.csv") as fh:
        rows = {r["job"]: r for r in csv.DictReader(fh)}
    assert rows[gan["job"]]["nll_nats"] == "" and float(rows[gan["job"]]["mmd2"]) == gan["mmd2"]
    assert all(rows[gauss["job"]][key] == "" for key in SAMPLE_COLUMNS)


def test_markdown_tables_show_the_metric_columns_for_the_gan_only(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    text = (run_dir / "results.md").read_text()
    tables = [[[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines() if "---|" not in line]
              for block in text.split("\n\n") if block.startswith("|")]  # fmt: skip
    assert len(tables) == 2
    assert "Parzen log p (nats, weak)" in tables[0][0] and "parzen_nats (weak)" in tables[1][0]
    assert _check_tables(tables, results) == NUMBERS


# ----------------------------------------------------------------------------- report.html, parsed


def test_report_tables_equal_results_json(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    page = _parse((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    assert len(page.tables) == 2
    assert _check_tables(page.tables, results, page=True) == NUMBERS


def test_report_shows_every_figure_from_relative_paths(run_dir):
    from PIL import Image

    page = _parse((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    sources = [img["src"] for img in page.images]
    assert all(not urlparse(s).scheme and not urlparse(s).netloc and not s.startswith("/") for s in sources)
    files = [run_dir / unquote(s) for s in sources]
    assert sorted(files) == sorted(run_dir.rglob("*.png")) and len(files) >= 4  # 2 run plots, a loss per job
    for path in files:
        with Image.open(path) as image:
            image.load()  # decodes the whole file
            assert image.width > 0 and image.height > 0
    numbered = [re.fullmatch(r"Figure (\d+)\. (.+)", c) for c in page.captions]
    assert [int(m[1]) for m in numbered] == list(range(1, len(files) + 1))
    captions = [m[2] for m in numbered]
    assert captions == [figure_caption(f.relative_to(run_dir)) for f in files]
    assert f"{_job_id(run_dir, 0)}: training (and validation) loss per epoch" in captions
    assert captions[0].startswith("Negative log-likelihood in bits/dim")  # the run's plots first


def test_report_is_self_contained_and_escaped(run_dir):
    text = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    page = _parse(text)
    assert "http:" not in text and "https:" not in text and "//" not in text.replace("<!DOCTYPE html>", "")
    assert not {"script", "link", "iframe"} & page.tags
    assert ODD_LABEL not in text and "gauss&lt;b&gt;&amp;&quot;x&quot;" in text
    assert [row[0] for row in page.tables[0][1:]] == ["gan", ODD_LABEL]  # the text itself, unescaped once


def test_report_leaves_out_empty_columns_and_names_them(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    page = _parse((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    empty = [c for c in JOB_COLUMNS if all(r.get(c) is None for r in results["jobs"])]
    assert "error" in empty and "stopped" in empty  # nothing failed or was cut in the tiny run
    shown = [JOB_KEYS.get(h, h.removesuffix(" (weak)")) for h in page.tables[1][0]]
    assert shown == [c for c in JOB_COLUMNS if c not in empty]
    notes = [e[2] for e in page.find("p", **{"class": "note"}) if e[2].startswith("columns empty")]
    labels = [COLUMN_LABELS.get(c, c) for c in empty]
    assert notes[-1] == f"columns empty in every row, left out: {', '.join(labels)}"
    assert all(e[2] for e in page.find("th", scope="col"))
    titles = {e[2]: e[1].get("title") for e in page.find("th")}
    assert "nats" in titles["NLL (nats)"] and "lower bound" in titles["kind"]  # units and kinds explained


def test_report_says_how_the_run_was_made(run_dir):
    meta = json.loads((run_dir / "meta.json").read_text())
    page = _parse((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    facts = dict(zip([e[2] for e in page.find("dt")], [e[2] for e in page.find("dd")], strict=True))
    command = [Path(meta["command"][0]).name, *meta["command"][1:]]
    assert shlex.split(facts["command"]) == command
    assert facts["versions"] == f"probgen {meta['probgen']}, torch {meta['torch']}, pyro {meta['pyro']}, " + (
        f"python {meta['python']}"
    )
    assert facts["started"] == meta["started"]
    (config,) = page.find("pre")
    assert config[2] == (run_dir / "config.resolved.json").read_text()
    assert [e[1]["id"] for e in page.find("h2") if e[1].get("id")] == ["how"]
    assert page.find("a", href="#how")


def _results_with_diagnostics(folder: Path) -> dict:
    """A run directory whose job rows carry the evidence work's diagnostics: a summary line and a
    failed check with its warning, bare k-hat/ESS keys, and none."""
    row = {c: None for c in JOB_COLUMNS} | {"model": "vae", "seed": 0, "kind": "estimate", "method": "ais"}
    rows = [
        row | {"job": "vae-s0", "nll_nats": 41.5, "diagnostic": "k̂ max 0.91, ESS 3.2/100 [FAILED]",
               "diagnostic_warning": "k-hat above 0.7 for 40% of examples: raise num_samples"},
        row | {"job": "vae-s1", "seed": 1, "nll_nats": 41.25, "k_hat_max": 0.312, "ess": 87.06},
        row | {"job": "gauss-s0", "model": "gauss", "kind": "exact", "method": "exact", "nll_nats": 50.0},
    ]  # fmt: skip
    summary = [{"model": "vae", "seeds": 2, "nll_nats": 41.375, "kind": "estimate"}]
    (folder / "results.json").write_text(json.dumps({"jobs": rows, "summary": summary}))
    return {"jobs": rows, "summary": summary}


def test_report_shows_diagnostics_and_footnotes_failed_ones(tmp_path):
    _results_with_diagnostics(tmp_path)
    page = _parse(render_report(tmp_path))
    head, *rows = page.tables[1]
    cells = [dict(zip(head, row, strict=True)) for row in rows]
    assert head[-1] == "diagnostics"
    assert [c["diagnostics"] for c in cells] == ["k̂ max 0.91, ESS 3.2/100 [FAILED] ⚠ 1", "k̂ max 0.31, ESS 87.1", ""]
    assert [c["kind"] for c in cells] == ["estimate", "estimate", "exact"]
    (link,) = [e for e in page.find("a") if e[1].get("href", "").startswith("#jobs-warning")]
    (note,) = page.find("li", id=link[1]["href"][1:])
    assert note[2] == "vae-s0: k-hat above 0.7 for 40% of examples: raise num_samples"
    assert "diagnostics" not in page.tables[0][0]  # the summary rows carry none
    assert [e[1]["class"] for e in page.find("td") if "warn" in e[1].get("class", "")] == ["text warn"]
    assert page.find("p", **{"class": "note"})[-1][2] == "no meta.json: the command and versions are unknown"


def test_write_report_replaces_atomically_and_refuses_other_directories(run_dir, tmp_path):
    before = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert write_report(run_dir) == run_dir / REPORT_FILE
    assert (run_dir / REPORT_FILE).read_text(encoding="utf-8").count("<table>") == before.count("<table>") == 2
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    with pytest.raises(ValueError, match=r"holds no results.json; expected a run directory") as info:
        write_report(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected the results of a run"):
        write_report(tmp_path)
    assert not (tmp_path / REPORT_FILE).exists()


# ----------------------------------------------------------------------------- report.html, in a browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium or Chrome installed (e.g. `apt-get install chromium`)")


#: the page's width against the window's, and the jobs table's box scrolled to its right end:
#: its first cell's left edge (sticky) and the last header cell of the first screen's
LAYOUT = """() => {
  const box = document.querySelectorAll('.scroll')[1];
  const first = box.querySelector('tbody td');
  const second = box.querySelector('thead th:nth-child(2)');
  box.scrollLeft = box.scrollWidth;
  return {page: document.documentElement.scrollWidth, window: window.innerWidth, box: box.scrollWidth,
          visible: box.clientWidth, scrolled: box.scrollLeft,
          box_left: box.getBoundingClientRect().left + box.clientLeft,
          first_cell: first.getBoundingClientRect().left, last_cell: second.getBoundingClientRect().left};
}"""


def test_report_in_headless_chromium(run_dir):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    results = json.loads((run_dir / "results.json").read_text())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 800})
            page.goto((run_dir / REPORT_FILE).as_uri(), wait_until="load")
            layout = page.evaluate(LAYOUT)
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({src: e.getAttribute('src'), done: e.complete, width: e.naturalWidth}))"
            )
            tables = page.eval_on_selector_all(
                "table", "ts => ts.map(t => Array.from(t.rows, r => Array.from(r.cells, c => c.textContent)))"
            )
        finally:
            browser.close()
    assert len(images) == len(list(run_dir.rglob("*.png")))
    assert all(img["done"] and img["width"] > 0 for img in images), images
    assert _check_tables(tables, results, page=True) == NUMBERS
    # the page never scrolls sideways: the wide jobs table scrolls in its own box, first column in view
    assert layout["page"] <= layout["window"], layout
    assert layout["box"] > layout["visible"] and layout["scrolled"] > 0, layout
    assert abs(layout["first_cell"] - layout["box_left"]) <= 1 and layout["last_cell"] < layout["box_left"], layout
