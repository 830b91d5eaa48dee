"""Every PNG the examples and the CLI write reads on its own.

Each figure is inspected, as a matplotlib ``Figure``, the moment it is saved: every axes that
shows data has an x and a y label (an image grid, axes turned off, has a title instead), several
series have a legend, no legend covers data (of any axes of the figure), a colour-mapped image
that encodes a value has a colour bar, points coloured by a value have a colour bar or a legend,
and an epoch axis has integer ticks. The examples' figures are drawn by their own plotting
functions, fed small models (untrained, or fitted for two epochs): running every tutorial's
``--quick`` main would cost minutes (tests/test_examples.py already does that once).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

import probgen as pg  # noqa: E402
from probgen import plots  # noqa: E402
from probgen.cli import main as cli  # noqa: E402

EXAMPLES = Path(__file__).parents[1] / "examples"
#: colormaps of pictures (grey levels of samples and digits), which need no colour bar
GREYS = {"gray", "gray_r", "Greys", "Greys_r", "binary", "binary_r"}


# --------------------------------------------------------------------------------------- the checks


def _inside(points: np.ndarray, box: Bbox) -> bool:
    """Whether any display point lies strictly inside ``box``."""
    points = points[np.isfinite(points).all(1)]
    x, y = points[:, 0], points[:, 1]
    return bool(((x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)).any())


def _along(vertices: np.ndarray, per_segment: int = 25) -> np.ndarray:
    """Points along a polyline (display coordinates), so a segment crossing a box is caught."""
    if len(vertices) < 2:
        return vertices.reshape(-1, 2)
    t = np.linspace(0, 1, per_segment)[None, :, None]
    return (vertices[:-1, None] * (1 - t) + vertices[1:, None] * t).reshape(-1, 2)


def _covers(box: Bbox, ax, renderer) -> list[str]:
    """What data of ``ax`` the (display) box ``box`` covers."""
    hits = []
    for line in ax.lines:
        if (
            line.get_visible()
            and len(line.get_xydata())
            and _inside(_along(line.get_transform().transform(line.get_xydata())), box)
        ):
            hits.append(f"line {line.get_label()!r}")
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):  # scatter points
            if _inside(coll.get_offset_transform().transform(coll.get_offsets()), box):
                hits.append(f"points {coll.get_label()!r}")
        elif getattr(coll, "filled", False):  # filled contours: areas
            if any(p.get_extents(coll.get_transform()).overlaps(box) for p in coll.get_paths()):
                hits.append("filled region")
        elif isinstance(coll, LineCollection) or hasattr(coll, "levels"):  # error bars, contour lines
            transform = coll.get_transform()
            if any(len(p.vertices) and _inside(_along(transform.transform(p.vertices)), box) for p in coll.get_paths()):
                hits.append("lines")
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_visible() and patch.get_height() and patch.get_width():
            if patch.get_window_extent(renderer).overlaps(box):
                hits.append("bar")
    for image in ax.images:
        if image.get_window_extent(renderer).overlaps(box):
            hits.append("image")
    return hits


def figure_problems(fig: Figure) -> list[str]:
    """What keeps ``fig`` from reading on its own (an empty list: nothing)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    mappables = [m for ax in fig.axes for m in (*ax.images, *ax.collections)]
    colorbar_axes = {m.colorbar.ax for m in mappables if m.colorbar is not None}
    data_axes = [
        ax for ax in fig.axes if ax not in colorbar_axes and (ax.lines or ax.collections or ax.images or ax.patches)
    ]
    has_suptitle = fig._suptitle is not None and fig._suptitle.get_text().strip()
    problems = []
    for i, ax in enumerate(data_axes):
        where = f"axes {i} ({ax.get_title() or ax.get_title(loc='left') or 'untitled'})"
        titled = has_suptitle or any(ax.get_title(loc=loc).strip() for loc in ("left", "center", "right"))
        if not ax.axison:
            if not ax.images:
                problems.append(f"{where}: axes turned off but showing non-image data")
            elif not titled:
                problems.append(f"{where}: an image grid with neither an axes title nor a figure title")
        else:
            twins = ax.get_shared_x_axes().get_siblings(ax)
            if not any(t.get_xlabel().strip() for t in twins):
                problems.append(f"{where}: no x label")
            if not ax.get_ylabel().strip():
                problems.append(f"{where}: no y label")
            for axis, (lo, hi) in (("x", ax.get_xlim()), ("y", ax.get_ylim())):
                scale = ax.get_xscale() if axis == "x" else ax.get_yscale()
                ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
                lo, hi = sorted((lo, hi))
                if scale in ("linear", "symlog") and sum(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks) < 2:
                    problems.append(f"{where}: fewer than two {axis} ticks in view, the scale cannot be read")
        legends = [lg for lg in (ax.get_legend(), *fig.legends) if lg is not None]
        _, labels = ax.get_legend_handles_labels()
        if len(labels) > 1 and not legends:
            problems.append(f"{where}: {len(labels)} series {labels} and no legend")
        for image in ax.images:
            if image.get_cmap().name not in GREYS and image.colorbar is None:
                problems.append(f"{where}: an image coloured by {image.get_cmap().name} without a colour bar")
        for coll in ax.collections:
            values = coll.get_array()
            coloured = isinstance(coll, PathCollection) and values is not None and len(np.unique(values)) > 1
            if coloured and coll.colorbar is None and not legends:
                problems.append(f"{where}: points coloured by a value, with neither a colour bar nor a legend")
        if "epoch" in ax.get_xlabel().lower():
            lo, hi = sorted(ax.get_xlim())
            ticks = [t for t in ax.get_xticks() if lo - 1e-9 <= t <= hi + 1e-9]
            if any(abs(t - round(t)) > 1e-9 for t in ticks):
                problems.append(f"{where}: fractional epoch ticks {[round(float(t), 3) for t in ticks]}")
    for legend in {id(lg): lg for ax in fig.axes for lg in (ax.get_legend(), *fig.legends) if lg is not None}.values():
        box = legend.get_window_extent(renderer)
        for j, ax in enumerate(data_axes):
            covered = _covers(box, ax, renderer)
            if covered:
                problems.append(f"a legend covers data of axes {j}: {covered[:3]}")
    return problems


@pytest.fixture
def figures(monkeypatch) -> dict[str, list[str]]:
    """The problems of every figure saved while the test runs, by path (as the file is finally
    named: save_figure writes ``.NAME.XXXXXXXX.tmp`` and renames it)."""
    seen: dict[str, list[str]] = {}
    savefig = Figure.savefig

    def inspecting(fig, fname, *args, **kwargs):
        path = Path(str(fname))
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            path = path.with_name(path.name[1:].rsplit(".", 2)[0])
        seen[str(path)] = figure_problems(fig)
        return savefig(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", inspecting)
    return seen


def _assert_readable(seen: dict[str, list[str]], expected: set[str], out: Path) -> None:
    """Every file of ``expected`` (paths under ``out``) was drawn and written, and every figure
    seen reads on its own."""
    drawn = {Path(p).relative_to(out).as_posix() for p in seen if Path(p).is_relative_to(out)}
    assert expected <= drawn, f"figures not drawn: {sorted(expected - drawn)}"
    assert all((out / name).is_file() for name in expected)
    bad = [f"{name}: {'; '.join(problems)}" for name, problems in seen.items() if problems]
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------------------- the checks, checked


def test_the_checks_catch_what_the_users_reported(tmp_path):
    """Each rule fails on the figure it is for (the figures as they were before the fix)."""
    plt = plots._pyplot()
    history = [{"epoch": e, "train_loss": 30.0 - e, "val_loss": 31.0 - e} for e in range(2)]

    fig, ax = plt.subplots()  # no labels, fractional epoch ticks, an inside legend over the lines
    ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], label="train")
    ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.legend(loc="upper left")  # where the validation curve starts
    problems = " | ".join(figure_problems(fig))
    assert "no y label" in problems and "fractional epoch ticks" in problems and "legend covers" in problems
    plt.close(fig)

    fig, ax = plt.subplots()  # two series, no legend; points coloured by class, no legend either
    ax.scatter([0, 1, 2], [0, 1, 2], c=[0, 1, 2], label="a")
    ax.plot([0, 1], [1, 0], label="b")
    ax.set(xlabel="x", ylabel="y")
    problems = " | ".join(figure_problems(fig))
    assert "and no legend" in problems and "neither a colour bar nor a legend" in problems
    plt.close(fig)

    fig, axes = plt.subplots(1, 2)  # a heatmap without its colour bar; an untitled image grid
    axes[0].imshow(np.random.default_rng(0).random((4, 4)), cmap="viridis")
    axes[0].set(xlabel="x", ylabel="y")
    axes[1].imshow(np.zeros((4, 4)), cmap="gray_r")
    axes[1].axis("off")
    problems = " | ".join(figure_problems(fig))
    assert "without a colour bar" in problems and "neither an axes title nor a figure title" in problems
    plt.close(fig)

    fig, ax = plt.subplots()  # a legend outside the axes covers nothing; a legend on the bars does
    ax.bar([0, 1], [3, 4], label="bars")
    ax.set_yscale("symlog")
    ax.set_ylim(20, 60)  # between two decades: no tick in view
    assert any("fewer than two y ticks" in p for p in figure_problems(fig))
    ax.set_yscale("linear")
    ax.set_ylim(0, 4.2)
    ax.set(xlabel="model", ylabel="bits/dim")
    plots.legend_outside(ax)
    assert figure_problems(fig) == []
    ax.legend(loc="lower left")
    assert any("legend covers data of axes 0: ['bar'" in p for p in figure_problems(fig))
    plt.close(fig)


# ------------------------------------------------------------------------------------ the examples


def _example(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the classifier tutorials import _boundary
    spec = importlib.util.spec_from_file_location(f"{name}_example_figures", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fit(model, data, epochs: int = 2, **options):
    options = {"lr": 1e-3, "batch_size": 100, "progress": False} | options
    return pg.fit(model, data, epochs=epochs, **options)


def _factorized(ex, out):
    train, val = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "val")
    result = _fit(pg.models.IndependentBernoulli(64), train, val_data=val, lr=0.05)
    ex.plot_figures(result.history, pg.models.IndependentBernoulli(64).fit_closed_form(train.x), out)
    return {"loss.png", "samples.png", "pixel-probabilities.png"}


def _classifiers(name):
    def draw(ex, out):
        from sklearn.datasets import load_iris, load_wine

        X, y = load_iris(return_X_y=True)
        if name == "naive_bayes":
            ex.plot_boundary(X[:, 2:], y, out / "boundary.png")
            return {"boundary.png"}
        if name == "qda":
            ex.plot_boundaries(X[:, :2], y, out)
            return {"boundary.png", "two-per-class.png"}
        ex.plot_boundary(X[:, :2], y, out / "boundary.png")
        wine, cultivar = load_wine(return_X_y=True)
        ex.plot_projection(ex.LDA().fit(wine, cultivar).transform(wine), cultivar, out / "projection.png")
        return {"boundary.png", "projection.png"}

    return draw


def _vae(ex, out):
    train, test = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
    vae = pg.models.VAE(64, "binary", latent_dim=2, hidden_features=(16,))
    result = _fit(vae, train, val_data=pg.load_dataset("digits-binary", "val"))
    ex.plot_figures(vae, result.history, test, out)
    rich = pg.models.VAE(
        64, "binary", latent_dim=2, hidden_features=(16,), posterior_flow="iaf", flow_num_layers=1, prior="vamp"
    )
    ex.plot_rich_samples(rich.eval(), out / "samples-iaf-vampprior.png")
    return {"loss.png", "samples.png", "reconstructions.png", "latent.png", "interpolation.png",
            "samples-iaf-vampprior.png"}  # fmt: skip


def _flows(ex, out):
    test = pg.load_dataset("moons", "test")
    maf = ex.MAF(2, "real", num_layers=1, hidden_features=(8,)).eval()
    results = {name: {"test": test, "models": {"MAF": maf}, "nats": {"MAF": -2.0}} for name in ("moons", "rings")}
    ex.plot_flow("MAF", results, out / "maf.png", grid=10)
    return {"maf.png"}


def _autoregressive(ex, out):
    data = pg.load_dataset("digits-binary", "test")
    pixelcnn = ex.PixelCNN((1, 8, 8), "binary", hidden_channels=4, num_layers=1, kernel=3).eval()
    made = ex.MADE.from_dataset(data, hidden_features=(16,), num_masks=8).eval()
    ex.plot_figures(pixelcnn, made, ex.NADE.from_dataset(data, num_hidden=4).eval(), data.x, out)
    return {"inpainting.png", "nade-samples.png"}


def _rbm(ex, out):
    train, val = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "val")
    rbm = pg.models.RBM(64, "binary", num_hidden=4, num_gibbs_steps=2)
    result = _fit(rbm, train, val_data=val, lr=0.01)
    ex.plot_loss(result.history, "CD-1", out / "loss-CD-1.png")
    ex.plot_samples(rbm, out / "samples.png")
    ex.plot_moons(ex.GaussianRBM(2, "real", num_hidden=4, num_gibbs_steps=2), out / "gaussian-rbm-samples.png")
    return {"loss-CD-1.png", "samples.png", "gaussian-rbm-samples.png"}


def _gan(ex, out):
    train = pg.load_dataset("8gaussians", "train", n=200)
    gan = pg.models.GAN(2, "real", hidden_features=(8,), latent_dim=2)
    result = _fit(gan, train, batch_size=50)
    dcgan = pg.models.GAN.from_dataset(pg.load_dataset("digits"), latent_dim=4).eval()
    ex.plot_figures(result.history, gan, pg.load_dataset("8gaussians", "test", n=200).x, dcgan.sample(64), out)
    return {"loss.png", "samples.png", "data.png", "dcgan-samples.png"}


def _diffusion(ex, out):
    digits = pg.load_dataset("digits", "test")
    ddpm = pg.models.DDPM.from_dataset(digits, steps=10, hidden_features=(8,)).eval()
    ex.plot_figures(ddpm, digits.x, out, every=5)
    return {"chains.png", "samples.png"}


def _generative_vs_discriminative(ex, out):
    problem = ex.synthetic_problem(5)
    models = ex.make_models(map_models=())
    curves = ex.learning_curves(ex.synthetic_splits(problem, 40, 200), (10, 40), models, draws=2)
    ex.plot_curves("synthetic", curves, out / "synthetic.png", problem.bayes_error)
    return {"synthetic.png"}


def _model_comparison(ex, out):
    budget = ex.Budget(ais_chains=16, ais_steps=5, mixture_smc_particles=16, mixture_smc_moves=1)
    found = ex.coin_bayes_factors([(10, 20), (17, 20)], budget, verbose=False)
    ex.plot_coin_bayes_factors(20, found, out / "coin-bayes-factor.png")
    x = ex.mixture_data(30)
    evidence = ex.mixture_study(x, (1, 2), budget, verbose=False)["evidence"]
    ex.plot_mixture_evidence(x, evidence, out / "mixture-evidence.png")
    return {"coin-bayes-factor.png", "mixture-evidence.png"}


DRAWN: dict[str, Callable] = {
    "model_comparison": _model_comparison,
    "generative_vs_discriminative": _generative_vs_discriminative,
    "factorized": _factorized,
    "naive_bayes": _classifiers("naive_bayes"),
    "lda": _classifiers("lda"),
    "qda": _classifiers("qda"),
    "vae": _vae,
    "flows": _flows,
    "autoregressive": _autoregressive,
    "rbm": _rbm,
    "gan": _gan,
    "diffusion": _diffusion,
}


def test_every_example_is_drawn_here():
    tutorials = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert tutorials == set(DRAWN), f"draw the figures of {sorted(tutorials - set(DRAWN))} in DRAWN"


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_example_figures_read_on_their_own(name, figures, tmp_path, monkeypatch):
    torch.manual_seed(0)
    expected = DRAWN[name](_example(name, monkeypatch), tmp_path)
    _assert_readable(figures, expected, tmp_path)


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_figures_read_on_their_own(figures, tmp_path, capsys):
    fit_dir, runs = tmp_path / "fit", tmp_path / "compare"
    args = ["--data", "digits-binary", "--epochs", "2", "--quiet"]
    assert cli(["fit", "independent-bernoulli", *args, "--out", str(fit_dir)]) == 0
    ckpt = next(fit_dir.glob("*.safetensors"))
    assert cli(["sample", str(ckpt), "-n", "16", "--out", str(tmp_path / "samples.png")]) == 0
    compare = ["compare", "--models", "independent-bernoulli", "fvbn", "--data", "digits-binary", "--epochs", "2"]
    assert cli([*compare, "--out", str(runs)]) == 0
    capsys.readouterr()
    run = runs / "digits-binary"  # the run directory of the experiment compare ran
    expected = {"plots/likelihood.png", "plots/loss_curves.png"}
    for job in ("independent-bernoulli-seed=0", "fvbn-seed=0"):
        expected |= {f"jobs/{job}/loss.png", f"jobs/{job}/samples.png"}
    written = {p.relative_to(run).as_posix() for p in run.rglob("*.png")}
    assert expected <= written, written
    _assert_readable(figures, expected, run)
    _assert_readable(figures, {"fit/loss.png", "samples.png", "compare/compare-digits-binary.png"}, tmp_path)
