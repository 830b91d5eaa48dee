"""The generative-against-discriminative tutorial: Ng & Jordan's learning curves, checked.

The must-show runs the example's own functions on a small budget: on the synthetic problem where
the Naive Bayes assumption holds, Naive Bayes beats maximum-likelihood logistic regression at the
smallest size and ends within one point of the closed-form Bayes error; on breast cancer,
logistic regression overtakes Naive Bayes (a crossing). The smoke test runs the script and
checks the numbers it prints.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

EXAMPLE = Path(__file__).parents[1] / "examples" / "generative_vs_discriminative.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("generative_vs_discriminative_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pair(ex):
    """Naive Bayes (closed form) and maximum-likelihood logistic regression only: seconds."""
    models = ex.make_models(map_models=())
    return {name: models[name] for name in (ex.GENERATIVE, ex.BASELINE)}


def test_bayes_error_in_closed_form_equals_the_bayes_rule_on_samples(ex):
    problem = ex.synthetic_problem()
    X, y = problem.sample(200_000, np.random.default_rng(1))
    errors = problem.bayes_predict(X) != y
    se = errors.std() / np.sqrt(len(y))
    assert abs(errors.mean() - problem.bayes_error) < 4 * se
    assert problem.bayes_error == pytest.approx(0.1, abs=1e-12)  # as asked of synthetic_problem


def test_naive_bayes_learns_faster_and_reaches_the_bayes_error(ex):
    problem = ex.synthetic_problem()
    sizes = (ex.SIZES["synthetic"][0], ex.SIZES["synthetic"][-1])
    curves = ex.learning_curves(ex.synthetic_splits(problem, pool=sizes[-1], test=5000), sizes, _pair(ex), draws=4)
    nb, lr = curves.mean(ex.GENERATIVE), curves.mean(ex.BASELINE)
    assert nb[0] < lr[0], f"n={sizes[0]}: Naive Bayes {nb[0]:.3f}, logistic regression {lr[0]:.3f}"
    assert abs(nb[-1] - problem.bayes_error) < 0.01, f"n={sizes[-1]}: {nb[-1]:.4f} vs Bayes {problem.bayes_error:.4f}"


def test_logistic_regression_overtakes_naive_bayes_on_breast_cancer(ex):
    split = ex.real_splits(*load_breast_cancer(return_X_y=True))
    curves = ex.learning_curves(split, (12, 24, 48, 96, 192, 384), _pair(ex), draws=3)
    at = ex.crossing(curves)
    assert at is not None, {m: curves.mean(m).round(3).tolist() for m in curves.error}
    i = curves.sizes.index(at)
    assert curves.mean(ex.BASELINE)[-1] < curves.mean(ex.GENERATIVE)[-1]
    assert (curves.mean(ex.GENERATIVE)[:i] < curves.mean(ex.BASELINE)[:i]).any()


def test_crossing_rule(ex):
    def curves(nb, lr):
        return ex.Curves((10, 20, 40), error={"nb": np.array([nb]), "lr": np.array([lr])})

    assert ex.crossing(curves([0.2, 0.2, 0.2], [0.3, 0.1, 0.1]), "nb", "lr") == 20
    assert ex.crossing(curves([0.2, 0.2, 0.2], [0.1, 0.1, 0.1]), "nb", "lr") is None  # never behind
    assert ex.crossing(curves([0.2, 0.2, 0.2], [0.3, 0.3, 0.3]), "nb", "lr") is None  # never ahead
    assert ex.crossing(curves([0.2, 0.2, 0.2], [0.3, 0.1, 0.3]), "nb", "lr") is None  # does not stay ahead


def test_bad_budgets_are_refused(ex):
    with pytest.raises(ValueError, match="draws must be >= 1, got 0"):
        ex.learning_curves(ex.synthetic_splits(ex.synthetic_problem(), 20, 20), (10,), _pair(ex), draws=0)
    with pytest.raises(ValueError, match="sizes must be increasing"):
        ex.learning_curves(ex.synthetic_splits(ex.synthetic_problem(), 20, 20), (20, 10), _pair(ex), draws=1)
    with pytest.raises(ValueError, match=r"bayes_error must lie in \(0, 0.5\), got 0.7"):
        ex.synthetic_problem(bayes_error=0.7)
    with pytest.raises(ValueError, match="map_models: unknown \\['svm'\\]"):
        ex.make_models(map_models=("svm",))


def test_the_script_prints_its_numbers(ex, tmp_path):
    command = [sys.executable, str(EXAMPLE), "--quick", "--draws", "2", "--datasets", "synthetic", "breast-cancer"]
    proc = subprocess.run([*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    bayes = [float(line.split()[2]) for line in lines if line.startswith("bayes_error synthetic ")]
    assert bayes == [pytest.approx(ex.synthetic_problem().bayes_error, abs=1e-4)]
    pattern = re.compile(r"^(error|logloss) (\S+) (\S+) n=(\d+) mean=([\d.]+) sd=([\d.]+)$")
    found = {}
    for line in lines:
        match = pattern.match(line)
        if match:
            what, data, model, n, mean, sd = match.groups()
            found[what, data, model, int(n)] = (float(mean), float(sd))
    models = set(ex.make_models(map_models=()))
    for data in ("synthetic", "breast-cancer"):
        for what in ("error", "logloss"):
            for model in models:
                for n in ex.QUICK_SIZES[data]:
                    assert (what, data, model, n) in found, (what, data, model, n)
    errors = [v for k, v in found.items() if k[0] == "error"]
    assert all(0 <= mean <= 1 and sd >= 0 for mean, sd in errors)
    # the printed numbers say what the must-show says: NB at the Bayes error at the largest size
    largest = ex.QUICK_SIZES["synthetic"][-1]
    assert abs(found["error", "synthetic", ex.GENERATIVE, largest][0] - bayes[0]) < 0.01
    crossings = {line.split()[1]: line.split()[2] for line in lines if line.startswith("crossing ")}
    assert set(crossings) == {"synthetic", "breast-cancer"}
    assert all(v == "none" or re.fullmatch(r"n=\d+", v) for v in crossings.values())
    assert {p.name for p in tmp_path.glob("*.png")} == {"synthetic.png", "breast-cancer.png"}


def test_figure_reads_on_its_own(ex, tmp_path):
    spec = importlib.util.spec_from_file_location("figure_checks", Path(__file__).parent / "test_figures.py")
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    problem = ex.synthetic_problem(5)
    models = ex.make_models(map_models=())
    curves = ex.learning_curves(ex.synthetic_splits(problem, 40, 200), (10, 40), models, draws=2)
    seen = {}
    savefig = checks.Figure.savefig

    def inspecting(fig, fname, *args, **kwargs):
        seen[str(fname)] = checks.figure_problems(fig)
        return savefig(fig, fname, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checks.Figure, "savefig", inspecting)
        path = ex.plot_curves("synthetic", curves, tmp_path / "synthetic.png", problem.bayes_error)
    assert path.is_file()
    assert seen and all(problems == [] for problems in seen.values()), seen
