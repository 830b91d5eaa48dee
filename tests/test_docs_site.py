"""The documentation site: built from the repository (warnings as errors, tutorials executed)
into a temporary folder, then opened in headless Chromium. Every page loads, every image
decodes, every internal link (and its #anchor) resolves, and the numbers a tutorial page shows
are the numbers its executed notebook holds; a copy of the site broken on purpose is caught.

Needs the docs extra (``pip install -e ".[docs]"``), Playwright's Python package and Debian's
``chromium``; skips, saying which is missing, otherwise. The build executes the tutorials (about
a minute on two cores), once per session.

``python tests/test_docs_site.py SITE_DIR OUT_DIR`` writes the screenshots of the README
(front page, a tutorial page, an API page) from a built site.
"""

from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root, in a sandbox with no network: no Chromium sandbox, and none of its background calls.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_missing = [m for m in ("sphinx", "furo", "myst_nb", "jupytext", "sphinxarg") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.slow,  # ~90 s: builds the site, running three tutorials at their quick budgets
    pytest.mark.skipif(bool(_missing), reason=f"the docs extra is not installed (missing: {', '.join(_missing)})"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed"),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"),
]


# --------------------------------------------------------------------------- the checker
def _serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test's output is the problems, not the requests
        pass


def _ids(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8", errors="replace")
    return {html.unescape(m) for m in re.findall(r'\b(?:id|name)="([^"]+)"', text)}


def _numbers(text: str) -> list[str]:
    return NUMBER.findall(ANSI.sub("", text))


def notebook_outputs(notebook: Path) -> list[str]:
    """The text outputs of an executed notebook, in order: streams and results' text/plain (a
    figure's output is its image, counted apart)."""
    texts = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                texts.append("".join(output["text"]))
            elif output["output_type"] == "execute_result":
                texts.append("".join(output["data"].get("text/plain", "")))
    return texts


def notebook_images(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))


_PAGE_FACTS = """() => ({
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  outputs: Array.from(document.querySelectorAll('div.cell_output div.output pre')).map(p => p.innerText),
  outputImages: document.querySelectorAll('div.cell_output img').length,
  problematic: document.querySelectorAll('.problematic, .system-message').length,
  title: document.title,
})"""


def check_site(site: Path, executed: Path | None = None, pages: list[str] | None = None) -> list[str]:
    """Open the pages of a built site (all of them, or ``pages``, relative paths) in headless
    Chromium and return every problem found, one line each (empty: the site is whole)."""
    from playwright.sync_api import sync_playwright

    pages = pages or sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    problems: list[str] = []
    server, base = _serve(site)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            for rel in pages:
                errors.clear()
                response = page.goto(base + rel, wait_until="load")
                if response is None or response.status != 200:
                    problems.append(f"{rel}: does not load (HTTP {response and response.status})")
                    continue
                facts = page.evaluate(_PAGE_FACTS)
                problems += [f"{rel}: script error: {e}" for e in errors]
                if not facts["title"]:
                    problems.append(f"{rel}: no title")
                if facts["problematic"]:
                    problems.append(f"{rel}: {facts['problematic']} markup error(s) rendered on the page")
                problems += [f"{rel}: image does not decode: {i['src']}" for i in facts["images"] if not i["ok"]]
                problems += _link_problems(site, base, rel, facts["links"])
                notebook = executed and executed / Path(rel).with_suffix(".ipynb")
                if notebook and notebook.exists():
                    problems += _number_problems(rel, notebook, facts)
        finally:
            browser.close()
            server.shutdown()
    return problems


def _link_problems(site: Path, base: str, rel: str, links: list[str]) -> list[str]:
    problems = []
    for link in dict.fromkeys(links):
        if not link.startswith(base):
            continue  # another site (the inventories' links) or a mailto:
        parts = urlsplit(link)
        target = site / unquote(parts.path[len(urlsplit(base).path) :])
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"{rel}: link to a missing page: {link[len(base) :]}")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
            problems.append(f"{rel}: link to a missing anchor: {link[len(base) :]}")
    return problems


def _number_problems(rel: str, notebook: Path, facts: dict) -> list[str]:
    expected = [n for text in notebook_outputs(notebook) for n in _numbers(text)]
    shown = [n for text in facts["outputs"] for n in _numbers(text)]
    problems = []
    if shown != expected:
        first = next((i for i, (a, b) in enumerate(zip(shown, expected, strict=False)) if a != b), None)
        where = f"first difference at number {first}: page {shown[first]!r}, notebook {expected[first]!r}"
        problems.append(
            f"{rel}: the numbers shown differ from the notebook's ({len(shown)} vs {len(expected)}; {where})"
        )
    if facts["outputImages"] != notebook_images(notebook):
        problems.append(f"{rel}: {facts['outputImages']} figures shown, the notebook has {notebook_images(notebook)}")
    return problems


# --------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """The site built as `make -C docs html` builds it (warnings are errors), in a tmp folder."""
    build = tmp_path_factory.mktemp("docs-build")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q"]
    done = subprocess.run([*command, str(ROOT / "docs"), str(build / "html")], capture_output=True, text=True)
    assert done.returncode == 0, f"the docs build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    yield build / "html", build / "jupyter_execute"


def test_every_page_loads_with_its_images_links_and_numbers(site):
    html_dir, executed = site
    tutorials = sorted(p.stem for p in (html_dir / "tutorials").glob("*.html") if p.stem != "index")
    assert {"factorized", "naive_bayes", "vae"} <= set(tutorials)
    for name in tutorials:  # the comparison below has something to compare: numbers and figures
        notebook = executed / "tutorials" / f"{name}.ipynb"
        assert len([n for t in notebook_outputs(notebook) for n in _numbers(t)]) >= 10, name
        assert notebook_images(notebook) >= 1, name
    api_pages = list((html_dir / "api" / "generated").glob("*.html"))
    assert len(api_pages) >= 50  # a page per public name (the modules' __all__)
    assert check_site(html_dir, executed) == []


def test_a_broken_image_link_or_number_is_reported(site, tmp_path):
    html_dir, executed = site
    broken = tmp_path / "html"
    shutil.copytree(html_dir, broken)
    tutorial = broken / "tutorials" / "factorized.html"
    text = tutorial.read_text(encoding="utf-8")
    # 1. a figure whose file is damaged
    image = re.search(r'<img[^>]+src="([^"]+\.png)"', text).group(1)
    (tutorial.parent / image).write_bytes(b"not a png")
    # 2. a link to a page that does not exist, and one to an anchor that does not
    text = text.replace('href="../index.html"', 'href="../no-such-page.html"', 1)
    text = text.replace('href="../index.html', 'href="../index.html#no-such-anchor', 1)
    # 3. a number on the page that is not the notebook's
    first = re.search(r"\| svi posterior \| (\d+\.\d+) \|", text)  # the printed table, not the code
    assert first, "the factorized tutorial's table is not on its page"
    text = text[: first.start(1)] + "99.9999" + text[first.end(1) :]
    tutorial.write_text(text, encoding="utf-8")

    problems = check_site(broken, executed, pages=["tutorials/factorized.html"])
    assert any("image does not decode" in p and Path(image).name in p for p in problems), problems
    assert any("missing page: no-such-page.html" in p for p in problems), problems
    assert any("missing anchor: index.html#no-such-anchor" in p for p in problems), problems
    assert any("numbers shown differ" in p and "'99.9999'" in p for p in problems), problems
    assert len(problems) == 4, problems
    assert check_site(html_dir, executed, pages=["tutorials/factorized.html"]) == []


# --------------------------------------------------------------------------- screenshots
def screenshots(site: Path, out: Path) -> list[Path]:
    """PNG screenshots of the front page, a tutorial page and an API page of a built site."""
    from playwright.sync_api import sync_playwright

    shots = {
        "site-front.png": "index.html",
        "site-tutorial.png": "tutorials/vae.html#run",  # what it printed, then its figures
        "site-api.png": "api/generated/probgen.inference.fit.html",
    }
    server, base = _serve(site)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, rel in shots.items():
            path, _, anchor = rel.partition("#")
            page.goto(base + path, wait_until="load")
            if anchor:  # furo scrolls smoothly: jump instead, so the shot is not mid-scroll
                page.evaluate(
                    "a => { document.documentElement.style.scrollBehavior = 'auto';"
                    " document.getElementById(a).scrollIntoView(); }",
                    anchor,
                )
            page.screenshot(path=str(out / name))
        browser.close()
    server.shutdown()
    return [out / name for name in shots]


if __name__ == "__main__":
    print("\n".join(str(p) for p in screenshots(Path(sys.argv[1]), Path(sys.argv[2]))))
