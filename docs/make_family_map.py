"""Regenerate the map of model families from the registry: docs/images/family-map.png and the
table of docs/families.md (between its ``family-map`` markers), so the page never drifts from
the code (tests/models/test_families.py fails when the table is stale).

Run: python docs/make_family_map.py
"""

from pathlib import Path

import torch

from probgen.models.families import PLACES, family_map
from probgen.plots import family_map as draw_family_map

DOCS = Path(__file__).resolve().parent
START, END = "<!-- family-map:start -->", "<!-- family-map:end -->"


def markdown_table(rows) -> str:
    """The rows of :func:`family_map` as a Markdown table."""
    lines = [
        "| model | class | place | family | density kind | `log_likelihood` reports | how |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.name}` | `{r.class_name}` | {r.place} | {r.family} | `{r.density}` | "
            f"`{r.reports}` ({r.method}) | {r.how} |"
        )
    return "\n".join(lines)


def main() -> None:
    torch.set_num_threads(1)
    rows = family_map()
    draw_family_map(rows, DOCS / "images" / "family-map.png", PLACES)
    page = DOCS / "families.md"
    text = page.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{START}\n{markdown_table(rows)}\n{END}{tail}")
    print(f"wrote {DOCS / 'images' / 'family-map.png'} and the table of {page} ({len(rows)} models)")


if __name__ == "__main__":
    main()
