"""Tutorial: Bayesian model comparison — Bayes factors and LOO on problems one can check by hand.

Every model below is a plain Pyro program wrapped in ``pg.models.PyroModel``; ``pg.evidence``
gives its log evidence log p(D) (every latent integrated) with a standard error, a kind and
diagnostics, and ``pg.loo`` its PSIS-LOO expected log predictive density.

1. A coin. Beta(a, b)–Bernoulli has log p(D) = log B(a + heads, b + tails) - log B(a, b) in
   closed form; AIS and SMC estimate the same number. A fair coin has no latent, so its evidence
   is its (exact) likelihood, N log 1/2, and the Bayes factor fair : Beta(1, 1) is a ratio of
   Beta functions.
2. Eight schools (Rubin 1981): pooled (one effect mu) against hierarchical (school effects
   theta_j ~ N(mu, tau^2), integrated in closed form: y_j | mu, tau ~ N(mu, tau^2 + sigma_j^2)).
   The pooled evidence is a Gaussian integral; the hierarchical one is one-dimensional quadrature
   over tau, beside AIS and SMC. LOO of each: SVI with an AutoNormal guide, PSIS-corrected, and
   NUTS draws where the guide's Pareto k-hat says not to trust the corrected number.
3. A mixture of K = 1..4 unit-variance Gaussians (weights ~ Dirichlet(2), means ~ N(0, 20^2)) on
   300 points drawn from 3 of them: the mixture is marginalised over the assignments
   (``MixtureSameFamily``) so every latent is continuous; the evidence against K, its best K.

Every number is printed with its kind, standard error and diagnostics; a diagnostic that fails
is explained in one line where it appears.

Run: python examples/model_comparison.py [--out DIR] [--quick]
"""

import argparse
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from _summary import print_summary  # noqa: E402
from pyro.infer import MCMC, NUTS  # noqa: E402
from scipy import integrate, stats  # noqa: E402

import probgen as pg  # noqa: E402
from probgen.inference import BayesFactor, Evidence  # noqa: E402
from probgen.plots import legend_outside, save_figure  # noqa: E402

__all__ = [
    "Budget",
    "QUICK",
    "FULL",
    "SCHOOLS_Y",
    "SCHOOLS_SIGMA",
    "coin_model",
    "fair_coin_model",
    "coin_log_evidence",
    "coin_data",
    "coin_study",
    "coin_bayes_factors",
    "pooled_model",
    "hierarchical_model",
    "pooled_log_evidence",
    "hierarchical_log_evidence_quadrature",
    "eight_schools_study",
    "mixture_model",
    "mixture_data",
    "mixture_study",
    "plot_coin_bayes_factors",
    "plot_mixture_evidence",
]

#: the classic eight-schools data: estimated coaching effects and their standard errors
SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)
#: eight schools' priors (as in the Stan and PyMC tutorials): mu ~ N(0, 5^2), tau ~ HalfCauchy(5)
MU_SCALE, TAU_SCALE = 5.0, 5.0
#: the mixture's priors and its data: 3 components of unit variance, means -5, 0, 5
MIXTURE_LOC_SCALE, MIXTURE_CONCENTRATION, TRUE_MEANS = 20.0, 2.0, (-5.0, 0.0, 5.0)


@dataclass(frozen=True)
class Budget:
    """How much Monte Carlo each estimate gets (counted, never timed)."""

    ais_chains: int = 256
    ais_steps: int = 200
    smc_particles: int = 512
    smc_moves: int = 5
    mixture_smc_particles: int = 256
    mixture_smc_moves: int = 5
    svi_epochs: int = 1000
    loo_draws: int = 1000
    nuts_draws: int = 500


QUICK = Budget(ais_chains=128, ais_steps=60, smc_particles=256, smc_moves=3, mixture_smc_particles=128,
               mixture_smc_moves=2, svi_epochs=500, loo_draws=400, nuts_draws=150)  # fmt: skip
FULL = Budget()


# ---------------------------------------------------------------------------------- reading a number


def _explain(diagnostics: Any) -> str:
    """One line saying, in words, what a failed diagnostic means here."""
    reasons = []
    if diagnostics.khat_max is not None and diagnostics.khat_max > 0.7:
        reasons.append(
            f"k-hat {diagnostics.khat_max:.2f} > 0.7: a few chains carry almost all the weight (ESS "
            f"{diagnostics.ess:.1f}), so the mean of the weights, and its standard error, are not to be trusted"
        )
    if diagnostics.run_spread is not None and diagnostics.run_spread > 1.0:
        reasons.append(f"independent runs disagree by {diagnostics.run_spread:.2f} nats")
    what = "; ".join(reasons) or "a diagnostic failed"
    return f"  -> not trustworthy as it stands: {what}. Anneal longer (num_steps) or use SMC, then compare again."


def estimate(label: str, model: Any, x: torch.Tensor, *, verbose: bool = True, **options: Any) -> Evidence:
    """``pg.evidence(model, x, **options)`` printed as ``label: <Evidence>``; the warning of a
    failed diagnostic is caught and explained in one line instead."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pg.evidence(model, x, **options)
    if verbose:
        print(f"{label}: {result}")
        if result.diagnostics is not None and not result.diagnostics.ok:
            print(_explain(result.diagnostics))
    for w in caught:  # anything else than the diagnostics' own warning is passed on
        if result.diagnostics is None or str(w.message) != result.diagnostics.warning:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _difference(first: Evidence, second: Evidence) -> BayesFactor:
    """log BF of two evidences obtained by different methods (``pg.bayes_factor`` runs one method on
    both models, and a model without latents has no AIS or SMC evidence: its likelihood is exact)."""
    return BayesFactor(first.log_evidence - second.log_evidence, math.hypot(first.stderr, second.stderr), first, second)


# ---------------------------------------------------------------------------------- 1. a coin


def coin_log_evidence(x: torch.Tensor, a: float = 1.0, b: float = 1.0) -> torch.Tensor:
    """log p(D) = log B(a + heads, b + tails) - log B(a, b) of Beta(a, b)–Bernoulli."""
    heads = x.sum()
    tails = x.numel() - heads

    def log_beta(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(p) + torch.lgamma(q) - torch.lgamma(p + q)

    a, b = x.new_tensor(a), x.new_tensor(b)
    return log_beta(a + heads, b + tails) - log_beta(a, b)


def coin_model(a: float = 1.0, b: float = 1.0) -> pg.models.PyroModel:
    """A coin of unknown bias p ~ Beta(a, b), declaring its closed-form evidence."""

    def coin(x: torch.Tensor) -> None:
        p = pyro.sample("p", dist.Beta(x.new_tensor(a), x.new_tensor(b)))
        with pyro.plate("data", x.shape[0]):
            # p[..., None]: one flip per example (event shape (1,)), broadcasting against chains of p
            pyro.sample("x", dist.Bernoulli(p[..., None]).to_event(1), obs=x)

    closed_form = lambda x: coin_log_evidence(x, a, b)  # noqa: E731
    return pg.models.PyroModel(
        coin, event_shape=(1,), support="binary", log_evidence=closed_form, name=f"beta({a:g},{b:g}) coin"
    ).double()


def fair_coin_model() -> pg.models.PyroModel:
    """A fair coin: no latent, so its evidence is its likelihood, N log 1/2 (declared)."""

    def fair(x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(x.new_full((1,), 0.5)).to_event(1), obs=x)

    half = lambda x: x.shape[0] * x.new_tensor(0.5).log()  # noqa: E731
    return pg.models.PyroModel(fair, event_shape=(1,), support="binary", log_evidence=half, name="fair coin").double()


def coin_data(heads: int, flips: int) -> torch.Tensor:
    """``flips`` tosses with ``heads`` heads, as ``[flips, 1]`` float64 (the order does not matter)."""
    return (torch.arange(flips) < heads).double()[:, None]


def coin_study(x: torch.Tensor, budget: Budget, verbose: bool = True, seed: int = 0) -> dict[str, Evidence]:
    """The Beta(1, 1) coin's evidence on ``x``: closed form, AIS and SMC."""
    model = coin_model()
    return {
        "exact": estimate("closed form", model, x, method="exact", verbose=verbose),
        "ais": estimate(
            "AIS",
            model,
            x,
            method="ais",
            num_samples=budget.ais_chains,
            num_steps=budget.ais_steps,
            seed=seed,
            verbose=verbose,
        ),  # fmt: skip
        "smc": estimate(
            "SMC",
            model,
            x,
            method="smc",
            num_samples=budget.smc_particles,
            num_steps=budget.smc_moves,
            seed=seed,
            verbose=verbose,
        ),  # fmt: skip
    }


def coin_bayes_factors(
    data_sets: Sequence[tuple[int, int]], budget: Budget, verbose: bool = True, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """For each (heads, flips): log BF fair : Beta(1, 1) by the declared closed forms
    (``pg.bayes_factor``, method "exact"), by hand (Beta functions), and with the coin's evidence
    by AIS."""
    fair, coin = fair_coin_model(), coin_model()
    results = {}
    for heads, flips in data_sets:
        x = coin_data(heads, flips)
        exact = pg.bayes_factor(fair, coin, x, method="exact")
        by_hand = flips * math.log(0.5) - (
            math.lgamma(heads + 1) + math.lgamma(flips - heads + 1) - math.lgamma(flips + 2)
        )
        fair_exact = pg.evidence(fair, x, method="exact")
        ais = estimate("  Beta(1,1) coin by AIS", coin, x, method="ais", num_samples=budget.ais_chains,
                       num_steps=budget.ais_steps, seed=seed, verbose=False)  # fmt: skip
        with_ais = _difference(fair_exact, ais)
        if verbose:
            favours = "fair" if exact.log_bayes_factor > 0 else "biased (Beta(1,1))"
            print(f"{heads:3d} heads in {flips:3d}: {exact} [closed form; by hand {by_hand:.3f}]; "
                  f"with AIS {with_ais.log_bayes_factor:.3f} ± {with_ais.stderr:.3f} -> favours {favours}")  # fmt: skip
            if not ais.diagnostics.ok:
                print(_explain(ais.diagnostics))
        results[f"{heads}/{flips}"] = {"heads": heads, "flips": flips, "exact": exact, "by_hand": by_hand,
                                       "ais": with_ais}  # fmt: skip
    return results


def plot_coin_bayes_factors(flips: int, results: dict[str, dict[str, Any]], path: Path) -> Path:
    """log BF fair : Beta(1, 1) against the number of heads: the closed form as a curve, the
    AIS-based estimates of the data sets of ``results`` (with ``flips`` tosses) as points with
    error bars."""
    heads = np.arange(flips + 1)
    curve = [flips * math.log(0.5) - float(coin_log_evidence(coin_data(int(h), flips))) for h in heads]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(heads, curve, color="C0", label="closed form (ratio of Beta functions)")
    points = [r for r in results.values() if r["flips"] == flips]
    ax.errorbar([r["heads"] for r in points], [r["ais"].log_bayes_factor for r in points],
                yerr=[2 * r["ais"].stderr for r in points], fmt="o", color="C3", capsize=3,
                label="Beta(1,1) evidence by AIS (± 2 s.e.)")  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.8, ls=":", label="no preference")
    ax.set(xlabel=f"heads in {flips} flips", ylabel="log Bayes factor, fair : Beta(1,1) (nats)",
           title="A coin: is it fair?")  # fmt: skip
    legend_outside(ax)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------- 2. eight schools


def _sigma(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The known standard errors of the schools in the plate's ``index``, as ``[B, 1]``: a
    covariate of each example, indexed by the data plate (so a subsample reads its own)."""
    return torch.as_tensor(SCHOOLS_SIGMA, dtype=x.dtype, device=x.device)[index][:, None]


def pooled_model() -> pg.models.PyroModel:
    """One effect for every school: mu ~ N(0, 5^2), y_j ~ N(mu, sigma_j^2)."""

    def pooled(x: torch.Tensor) -> None:
        mu = pyro.sample("mu", dist.Normal(x.new_tensor(0.0), MU_SCALE))
        with pyro.plate("data", x.shape[0]) as school:
            pyro.sample("y", dist.Normal(mu[..., None], _sigma(x, school)).to_event(1), obs=x)

    return pg.models.PyroModel(pooled, event_shape=(1,), support="real", log_evidence=pooled_log_evidence).double()


def hierarchical_model(guide: str = "auto_normal") -> pg.models.PyroModel:
    """School effects theta_j ~ N(mu, tau^2), integrated: y_j | mu, tau ~ N(mu, tau^2 + sigma_j^2)."""

    def hierarchical(x: torch.Tensor) -> None:
        mu = pyro.sample("mu", dist.Normal(x.new_tensor(0.0), MU_SCALE))
        tau = pyro.sample("tau", dist.HalfCauchy(x.new_tensor(TAU_SCALE)))
        with pyro.plate("data", x.shape[0]) as school:
            scale = (tau[..., None] ** 2 + _sigma(x, school) ** 2).sqrt()
            pyro.sample("y", dist.Normal(mu[..., None], scale).to_event(1), obs=x)

    return pg.models.PyroModel(hierarchical, guide, event_shape=(1,), support="real").double()


def pooled_log_evidence(x: torch.Tensor) -> torch.Tensor:
    """y ~ N(0, diag(sigma^2) + 5^2 11^T): mu integrated out (rows of ``x``: the schools in order)."""
    sigma = torch.as_tensor(SCHOOLS_SIGMA[: len(x)], dtype=x.dtype)
    cov = torch.diag(sigma**2) + MU_SCALE**2
    return dist.MultivariateNormal(x.new_zeros(len(x)), cov).log_prob(x[:, 0])


def hierarchical_log_evidence_quadrature() -> float:
    """log of the integral over tau of N(y; 0, diag(sigma^2 + tau^2) + 5^2 11^T) HalfCauchy(tau; 5)
    (mu integrated in closed form), by adaptive quadrature."""
    y, sigma = np.array(SCHOOLS_Y), np.array(SCHOOLS_SIGMA)

    def integrand(tau: float) -> float:
        cov = np.diag(sigma**2 + tau**2) + MU_SCALE**2
        return stats.multivariate_normal(np.zeros(len(y)), cov).pdf(y) * stats.halfcauchy(scale=TAU_SCALE).pdf(tau)

    value, _ = integrate.quad(integrand, 0.0, np.inf, limit=200)
    return math.log(value)


def _loo(label: str, source: Any, x: torch.Tensor | None = None, verbose: bool = True, **options: Any) -> Any:
    """``pg.loo`` printed in one line; its warning about k-hat explained in one line."""
    with warnings.catch_warnings(record=True):  # explained below, in one line
        warnings.simplefilter("always")
        elpd = pg.loo(source, x, **options) if x is not None else pg.loo(source)
    khat = float(np.max(elpd["pareto_k"]))
    if verbose:
        method = elpd.get("method", "psis")
        extra = f", k-hat of q {float(elpd['khat_q']):.2f}" if "khat_q" in elpd else ""
        print(f"{label}: elpd_loo {float(elpd['elpd_loo']):.2f} ± {float(elpd['se']):.2f} [{method}; "
              f"max Pareto k {khat:.2f}{extra}]")  # fmt: skip
        bad_q = "khat_q" in elpd and float(elpd["khat_q"]) > 0.7
        if khat > 0.7 or bad_q:
            print("  -> not trustworthy: the draws' importance weights are heavy-tailed (k-hat > 0.7), here "
                  "because the Gaussian guide misfits the skewed posterior of tau; use draws from NUTS")  # fmt: skip
    return elpd


def eight_schools_study(budget: Budget, verbose: bool = True, seed: int = 0) -> dict[str, Any]:
    """Evidence (closed form / quadrature, AIS, SMC), log BF and PSIS-LOO of pooled and hierarchical."""
    x = torch.tensor(SCHOOLS_Y, dtype=torch.float64)[:, None]
    pooled, hier = pooled_model(), hierarchical_model()
    say = print if verbose else (lambda *a: None)
    say("pooled:")
    pooled_exact = estimate("  closed form", pooled, x, method="exact", verbose=verbose)
    pooled_ais = estimate("  AIS", pooled, x, method="ais", num_samples=budget.ais_chains,
                          num_steps=budget.ais_steps, seed=seed, verbose=verbose)  # fmt: skip
    quadrature = hierarchical_log_evidence_quadrature()
    say(f"hierarchical: quadrature over tau: log p(D) {quadrature:.3f} nats [exact up to quadrature error]")
    hier_ais = estimate("  AIS", hier, x, method="ais", num_samples=budget.ais_chains,
                        num_steps=budget.ais_steps, seed=seed, verbose=verbose)  # fmt: skip
    hier_smc = estimate("  SMC", hier, x, method="smc", num_samples=budget.smc_particles,
                        num_steps=budget.smc_moves, seed=seed, verbose=verbose)  # fmt: skip
    bf = _difference(hier_smc, pooled_exact)
    say(f"hierarchical : pooled, {bf} (SMC against the closed form); by quadrature "
        f"{quadrature - pooled_exact.log_evidence:.3f}")  # fmt: skip

    # LOO: a posterior is needed; SVI fits an AutoNormal guide of each, and PSIS corrects for it
    loo = {}
    for name, model in (("pooled", pooled), ("hierarchical", hier)):
        pg.fit(model, x, epochs=budget.svi_epochs, batch_size=len(x), lr=0.02, num_samples=8, seed=seed,
               progress=False)  # fmt: skip
        loo[name] = _loo(f"{name} LOO, SVI (AutoNormal)", model, x, verbose, num_samples=budget.loo_draws, seed=seed)
    # the remedy where k-hat says the corrected number cannot be trusted: posterior draws by NUTS
    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(hier.model), num_samples=budget.nuts_draws, warmup_steps=budget.nuts_draws,
                disable_progbar=True)  # fmt: skip
    mcmc.run(x)
    draws = {name: value[None] for name, value in mcmc.get_samples().items()}
    nuts_id = pg.to_inference_data(hier, x, draws=draws, num_chains=1)
    loo["hierarchical_nuts"] = _loo("hierarchical LOO, NUTS draws", nuts_id, verbose=verbose)
    # the difference and its standard error from the pointwise differences (as az.compare's dse)
    pointwise = np.asarray(loo["hierarchical_nuts"]["loo_i"]).ravel() - np.asarray(loo["pooled"]["loo_i"]).ravel()
    diff, diff_se = float(pointwise.sum()), float(math.sqrt(len(pointwise) * pointwise.var()))
    verdict = "no real difference" if abs(diff) < 2 * diff_se else "a difference of more than 2 standard errors"
    say(f"elpd_loo hierarchical (NUTS) - pooled: {diff:.2f} ± {diff_se:.2f} nats: {verdict}")
    loo["difference"] = {"elpd_diff": diff, "se": diff_se}
    return {"pooled_exact": pooled_exact, "pooled_ais": pooled_ais, "hierarchical_quadrature": quadrature,
            "hierarchical_ais": hier_ais, "hierarchical_smc": hier_smc, "log_bf": bf, "loo": loo}  # fmt: skip


# ---------------------------------------------------------------------------------- 3. a Gaussian mixture


def mixture_model(k: int) -> pg.models.PyroModel:
    """K unit-variance Gaussians, weights ~ Dirichlet(2), means ~ N(0, 20^2); the assignments summed
    out by ``MixtureSameFamily``, so the latents (weights, means) are continuous."""

    def mixture(x: torch.Tensor) -> None:
        weights = pyro.sample("weights", dist.Dirichlet(MIXTURE_CONCENTRATION * x.new_ones(k)))
        locs = pyro.sample("locs", dist.Normal(x.new_zeros(k, 1), MIXTURE_LOC_SCALE).to_event(2))
        with pyro.plate("data", x.shape[0]):
            components = dist.Normal(locs, 1.0).to_event(1)  # batch [..., K], event (1,)
            pyro.sample("x", dist.MixtureSameFamily(dist.Categorical(weights), components), obs=x)

    return pg.models.PyroModel(mixture, event_shape=(1,), support="real", name=f"mixture K={k}").double()


def mixture_data(n: int = 300, seed: int = 0) -> torch.Tensor:
    """``n`` points, ``[n, 1]``, from equal thirds of N(-5, 1), N(0, 1), N(5, 1)."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.tensor(TRUE_MEANS, dtype=torch.float64)[torch.arange(n) % len(TRUE_MEANS)]
    return (means + torch.randn(n, generator=generator, dtype=torch.float64))[:, None]


def mixture_study(
    x: torch.Tensor, ks: Sequence[int], budget: Budget, methods: Sequence[str] = ("smc", "ais"),
    verbose: bool = True, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The evidence of each K by SMC (the best K: its largest) and AIS."""
    found: dict[str, dict[int, Evidence]] = {m: {} for m in methods}
    for k in ks:
        model = mixture_model(k)
        for method in methods:
            if method == "smc":
                options = {"num_samples": budget.mixture_smc_particles, "num_steps": budget.mixture_smc_moves}
            else:
                options = {"num_samples": budget.ais_chains, "num_steps": budget.ais_steps}
            found[method][k] = estimate(f"K={k} {method.upper()}", model, x, method=method, seed=seed,
                                        verbose=verbose, **options)  # fmt: skip
    primary = found[methods[0]]
    best = max(primary, key=lambda k: primary[k].log_evidence)
    if verbose:
        print(f"best K by {methods[0].upper()} evidence: {best} (true K = {len(TRUE_MEANS)})")
    return {"evidence": found, "best_k": best}


def plot_mixture_evidence(x: torch.Tensor, found: dict[str, dict[int, Evidence]], path: Path) -> Path:
    """Left: the data. Right: log evidence against K (minus the largest), ± 2 standard errors, one
    series per method."""
    fig, (data_ax, ev_ax) = plt.subplots(1, 2, figsize=(11, 4))
    data_ax.hist(x[:, 0].numpy(), bins=30, color="C0", alpha=0.7)
    data_ax.set(xlabel="x", ylabel="count", title=f"{len(x)} points from {len(TRUE_MEANS)} Gaussians")
    # relative to the best estimate, on a symlog axis: K = 1 is thousands of nats below, the
    # difference that decides between K = 3 and 4 is a few nats
    best = max(e.log_evidence for by_k in found.values() for e in by_k.values())
    for i, (method, by_k) in enumerate(found.items()):
        ks = np.array(sorted(by_k), dtype=float)
        ev_ax.errorbar(ks + 0.06 * (i - (len(found) - 1) / 2), [by_k[int(k)].log_evidence - best for k in ks],
                       yerr=[2 * by_k[int(k)].stderr for k in ks], fmt="o-", capsize=3, color=f"C{i + 1}",
                       label=f"{method.upper()} (± 2 s.e.)")  # fmt: skip
    ev_ax.set_yscale("symlog", linthresh=1.0)
    ev_ax.axvline(len(TRUE_MEANS), color="grey", ls=":", lw=0.8, label="true K")
    ev_ax.set_xticks(sorted(next(iter(found.values()))))
    ev_ax.set(xlabel="number of components K", ylabel="log p(D) - largest estimate (nats, symlog)",
              title="Gaussian mixture: evidence against K")  # fmt: skip
    legend_outside(ev_ax)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------- the tutorial


def _number(e: Evidence) -> dict[str, float]:
    return {"log_evidence": e.log_evidence, "stderr": e.stderr}


def _elpd(elpd: Any) -> dict[str, float]:
    return {"elpd_loo": float(elpd["elpd_loo"]), "se": float(elpd["se"]), "max_k": float(np.max(elpd["pareto_k"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-model-comparison")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = QUICK if args.quick else FULL

    print("== 1. A coin: 14 heads in 20 flips, p ~ Beta(1, 1)")
    coin = coin_study(coin_data(14, 20), budget)
    sets = [(10, 20), (14, 20), (17, 20), (50, 100), (65, 100)]
    print("Bayes factor fair : Beta(1,1) (positive favours the fair coin)")
    bfs = coin_bayes_factors(sets, budget)
    plot_coin_bayes_factors(20, bfs, out / "coin-bayes-factor.png")

    print("\n== 2. Eight schools: pooled against hierarchical")
    schools = eight_schools_study(budget)

    print("\n== 3. A Gaussian mixture, K = 1..4")
    x = mixture_data()
    mixture = mixture_study(x, (1, 2, 3, 4), budget)
    plot_mixture_evidence(x, mixture["evidence"], out / "mixture-evidence.png")
    print(f"plots in {out}/")

    loo = schools["loo"]
    print_summary({
        "coin": {m: _number(e) for m, e in coin.items()},
        "coin_log_bf": {name: {"exact": r["exact"].log_bayes_factor, "by_hand": r["by_hand"],
                               "ais": r["ais"].log_bayes_factor, "ais_stderr": r["ais"].stderr}
                        for name, r in bfs.items()},
        "eight_schools": {
            "pooled": _number(schools["pooled_exact"]),
            "hierarchical": {"quadrature": schools["hierarchical_quadrature"],
                             "ais": _number(schools["hierarchical_ais"]), "smc": _number(schools["hierarchical_smc"])},
            "log_bf": {"hierarchical_vs_pooled": schools["log_bf"].log_bayes_factor,
                       "stderr": schools["log_bf"].stderr},
            "loo": {name: _elpd(v) for name, v in loo.items() if name != "difference"}
            | {"difference": loo["difference"]},
        },
        "mixture": {"best_k": mixture["best_k"], "true_k": len(TRUE_MEANS),
                    "log_evidence": {m: {str(k): _number(e) for k, e in by_k.items()}
                                     for m, by_k in mixture["evidence"].items()}},
    })  # fmt: skip


if __name__ == "__main__":
    main()
