"""The map of families: every registered model has a place, and the map says what the models say.

The density kinds of the map are compared with instances this test builds itself (for the data
the contract suite uses), and the "reports" column with what :func:`probgen.log_likelihood`
actually returns (or refuses) on a few rows of those data.
"""

import importlib.util
import warnings
from pathlib import Path

import pytest

import probgen as pg
from probgen.models import MODELS, GenerativeModel, build_model
from probgen.models.families import (
    DENSITIES_OF_PLACE,
    FAMILIES,
    PLACES,
    family_map,
    family_of,
    format_family_map,
)
from probgen.plots import family_map as draw_family_map

DATA_FOR = {"binary": "digits-binary", "discrete": "digits", "real": "iris"}


@pytest.fixture(scope="module")
def rows():
    return {row.name: row for row in family_map()}


def _data_for(name, n=40):
    """The contract suite's data for the model: a bundled set of the first support it accepts."""
    cls = MODELS[name].cls
    data = pg.load_dataset(DATA_FOR[next(s for s in ("binary", "discrete", "real") if s in cls.supports)])
    return pg.data.Dataset(data.x[:n], data.y[:n], data.support, name=data.name)


def test_every_registered_model_has_a_place(rows):
    assert set(rows) == set(MODELS)
    declared = {family for _, family, _, _ in FAMILIES}
    for name, row in rows.items():
        assert row.place in PLACES, name
        assert row.family in declared, f"{name} ({row.class_name}) is in no declared family: add its base to FAMILIES"
        assert row.class_name == MODELS[name].cls.__name__


def test_map_density_kinds_equal_the_models_own(rows):
    for name, row in rows.items():
        model = build_model(name, _data_for(name))
        assert row.density == model.density, name
        # and the place admits it: an exact model is never "approximate", a bound never "tractable"
        assert model.density in DENSITIES_OF_PLACE[row.place], f"{name}: {model.density} in {row.place}"


def test_a_place_admits_every_variant_of_the_model():
    """The density of a classifier depends on its posterior; it stays in its family's place."""
    data = _data_for("gaussian-nb")
    for method in ("conjugate", "map", "vi"):
        model = build_model("gaussian-nb", data, method=method)
        assert model.density in DENSITIES_OF_PLACE[family_of(type(model))[0]], method
    for method in ("uniform", "importance"):
        model = build_model("dequantized", _data_for("dequantized"), dequantization=method)
        assert model.density in DENSITIES_OF_PLACE[family_of(type(model))[0]], method


def test_reports_column_is_what_log_likelihood_reports(rows):
    for name, row in rows.items():
        data = _data_for(name, n=6)
        model = build_model(name, data)
        if model.fit_strategy == "closed_form":  # a posterior to predict with (others: scored untrained)
            pg.fit(model, data, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scoring untrained models warns that it does
            if row.reports == "refused":
                with pytest.raises(ValueError, match="implicit"):
                    pg.log_likelihood(model, data, num_samples=2)
                continue
            result = pg.log_likelihood(model, data, num_samples=2)
        assert (result.kind, result.method) == (row.reports, row.method), name


def test_places_follow_goodfellows_taxonomy(rows):
    expected = {
        "fvbn": ("tractable explicit", "autoregressive"),
        "nade": ("tractable explicit", "autoregressive"),
        "made": ("tractable explicit", "autoregressive"),
        "pixelcnn": ("tractable explicit", "autoregressive"),
        "realnvp": ("tractable explicit", "flow"),
        "vae": ("approximate explicit", "VAE"),
        "rbm": ("approximate explicit", "energy-based"),
        "ddpm": ("approximate explicit", "diffusion"),
        "gan": ("implicit", "GAN"),
    }
    assert {n: (rows[n].place, rows[n].family) for n in expected} == expected


def test_outside_every_family_and_bad_input():
    class Mine(GenerativeModel):
        pass

    assert family_of(Mine) == (None, "unlisted")
    with pytest.raises(TypeError, match="GenerativeModel subclass, got 'vae'"):
        family_of("vae")
    with pytest.raises(ValueError, match="unknown model names \\['no-such-model'\\]"):
        family_map(["no-such-model"])


def test_table_and_figure(rows, tmp_path):
    table = format_family_map(list(rows.values())).splitlines()
    assert len(table) == len(rows) + 1 and table[0].split()[:4] == ["name", "class", "place", "family"]
    assert any(line.split()[0] == "rbm" and "log_normalizer" in line for line in table[1:])
    spec = importlib.util.spec_from_file_location("figure_checks", Path(__file__).parents[1] / "test_figures.py")
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    seen = {}
    savefig = checks.Figure.savefig

    def inspecting(fig, fname, *args, **kwargs):
        seen[str(fname)] = checks.figure_problems(fig)
        return savefig(fig, fname, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checks.Figure, "savefig", inspecting)
        path = draw_family_map(list(rows.values()), tmp_path / "family-map.png", PLACES)
    assert path.is_file() and path.stat().st_size > 20_000
    assert seen and all(problems == [] for problems in seen.values()), seen


def test_docs_page_table_is_the_registry(rows):
    """docs/families.md holds the table docs/make_family_map.py writes from the registry: a model
    added, moved or re-kinded without regenerating the page fails here."""
    root = Path(__file__).parents[2]
    spec = importlib.util.spec_from_file_location("make_family_map", root / "docs" / "make_family_map.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    page = (root / "docs" / "families.md").read_text()
    table = page.split(maker.START, 1)[1].split(maker.END, 1)[0].strip()
    ordered = list(rows.values())  # family_map()'s order, as the generator writes it
    assert table == maker.markdown_table(ordered), "docs/families.md is stale: run python docs/make_family_map.py"
    assert (root / "docs" / "images" / "family-map.png").is_file()
