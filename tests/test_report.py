"""report.html of a run directory, and the likelihood-free columns of implicit models in its tables.

One tiny run (iris: a GAN, an implicit model, and an independent Gaussian with an exact density,
two epochs each) is shared by the tests of this file.
"""

import csv
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from probgen.experiments import run_experiment, validate_config
from probgen.experiments.report import REPORT_FILE, write_report
from probgen.experiments.tables import SAMPLE_COLUMNS, SAMPLE_KEYS

#: a model label with characters HTML must escape
ODD_LABEL = 'gauss<b>&"x"'
TINY = {
    "name": "tiny",
    "seeds": [0],
    "samples": 16,
    "data": {"name": "iris"},
    "fit": {"epochs": 2, "batch_size": 45},
    "models": [
        {"name": "gan", "args": {"hidden": [16, 16], "latent_dim": 2}},
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
    """The tables (rows of cell texts), images (src, alt) and captions of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.captions, self.tags = [], [], [], set()
        self._cell = self._caption = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
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
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag == "figcaption":
            self.captions.append(self._caption)
            self._caption = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._caption is not None:
            self._caption += data


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


def _check_tables(tables: list[list[list[str]]], results: dict) -> int:
    """Each table's cells against results.json: every number to the printed precision (4 decimals,
    or 4 significant digits for MMD² and p-values), blanks where the value is None, and the
    density kind of each row. Returns how many numbers were compared."""
    summary, jobs = tables
    compared = 0
    head = summary[0]
    columns = {"NLL (nats)": "nll_nats", "bits/dim": "bits_per_dim", "± stderr": "stderr_nats"}
    columns |= dict(zip(head[-len(SAMPLE_COLUMNS) :], SAMPLE_COLUMNS, strict=True))
    assert [row[0] for row in summary[1:]] == [r["model"] for r in results["summary"]]
    for row, expected in zip(summary[1:], results["summary"], strict=True):
        cells = dict(zip(head, row, strict=True))
        assert cells["kind"] == expected["kind"]
        for header, key in columns.items():
            if expected[key] is None:
                assert cells[header] == "", (header, cells[header])
            else:
                assert _number(cells[header]) == pytest.approx(expected[key], rel=5e-4, abs=5e-5), header
                compared += 1
    head = [h.removesuffix(" (weak)") for h in jobs[0]]
    numeric = ["nll_nats", "stderr_nats", "bits_per_dim", "num_params", "epochs_run", "num_examples"]
    for row, expected in zip(jobs[1:], results["jobs"], strict=True):
        cells = dict(zip(head, row, strict=True))
        assert (cells["job"], cells["model"], cells["kind"]) == (expected["job"], expected["model"], expected["kind"])
        for key in [*numeric, *SAMPLE_COLUMNS]:
            if expected[key] is None:
                assert cells[key] == ""
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
    assert _check_tables(page.tables, results) == NUMBERS


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
    assert len(page.captions) == len(files) and all(page.captions)
    assert f"{_job_id(run_dir, 0)}: training (and validation) loss per epoch" in page.captions


def test_report_is_self_contained_and_escaped(run_dir):
    text = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    page = _parse(text)
    assert "http:" not in text and "https:" not in text and "//" not in text.replace("<!DOCTYPE html>", "")
    assert not {"script", "link", "iframe"} & page.tags
    assert ODD_LABEL not in text and "gauss&lt;b&gt;&amp;&quot;x&quot;" in text
    assert [row[0] for row in page.tables[0][1:]] == ["gan", ODD_LABEL]  # the text itself, unescaped once


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


def test_report_in_headless_chromium(run_dir):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    results = json.loads((run_dir / "results.json").read_text())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((run_dir / REPORT_FILE).as_uri(), wait_until="load")
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
    assert _check_tables(tables, results) == NUMBERS
