"""Quality: held-out IWAE bounds of digits VAEs against the numbers they must reach.

1. Binarized digits (the standard split: train = first 1000, val = next 350, test = last 447),
   a 64-200-8 Bernoulli VAE in the style of Pyro's VAE example (softplus MLPs, Adam 1e-3,
   batch 100), early-stopped on the validation ELBO:
   test NLL from IWAE with K=5000 must be at most 19.7 nats.
2. 17-level digits, the same VAE with a categorical decoder: it must beat the independent
   categorical baseline (the closed-form posterior predictive, about 106.5 nats) by a wide
   margin: we ask for at least 10 nats (about 10%).
3. ``--flows``: richer posteriors and priors on binarized digits, the same 64-200-8 networks,
   Adam 1e-3, batch 100, 1000 epochs, patience 100, seeds 0-2, test NLL by IWAE with K=5000:
   the Gaussian posterior, a 4-layer IAF posterior (Kingma et al. 2016) and the VampPrior
   (Tomczak & Welling 2018, K=50 pseudo-inputs), trained on the one-sample ELBO or on IWAE-5,
   early-stopped on the training objective at the validation data or on the validation
   IWAE-50 bound (``val_objective="iwae", val_num_samples=50``), with or without encoder
   dropout (``encoder_dropout``). Targets: (1) the IAF's mean test NLL below the Gaussian's
   (same objective and budget); (2) the best model, chosen by its mean validation IWAE-1000
   NLL, at most 17.3 nats.

   Measured (scratch runs of this protocol, 2 shared CPU cores; per seed: best epoch, val
   IWAE-1000 NLL, test IWAE-5000 NLL, wall seconds incl. scoring):

   ===================== ======= ======= ================================================
   variant               val     test    seed 0 / 1 / 2: best epoch, val, test, seconds
   ===================== ======= ======= ================================================
   gaussian              19.51   17.98   641 19.47 17.99 29s / 581 19.57 18.00 20s / 543 19.49 17.96 19s
   iaf-4                 19.73   18.02   523 19.72 18.02 57s / 573 19.72 17.96 75s / 456 19.76 18.09 50s
   gaussian-iwae5        19.42   17.80   388 19.52 17.84 25s / 418 19.20 17.80 25s / 647 19.53 17.76 33s
   iaf-4-iwae5           19.41   17.78   494 19.45 17.78 87s / 422 19.34 17.77 85s / 454 19.44 17.80 89s
   vampprior             18.99   17.45   314 19.05 17.47 33s / 280 19.02 17.48 30s / 385 18.91 17.40 37s
   vamp [0,1]            19.02   17.42   325 19.06 17.46 30s / 280 19.06 17.49 28s / 422 18.95 17.31 36s
   vamp [0,1], IWAE-5    18.96   17.37   233 19.00 17.41 51s / 229 18.84 17.36 46s / 144 19.05 17.34 35s
   vamp [0,1], IWAE-10   18.98   17.38   187 19.03 17.48 73s / 175 18.82 17.39 61s / 137 19.07 17.27 55s
   vamp, stop IWAE-50    18.84   17.36   519 18.84 17.36 112s / 386 18.86 17.37 161s / 404 18.83 17.33 75s
   vamp01-iwae5-s50      18.84   17.33   255 18.94 17.38 92s / 232 18.79 17.37 89s / 176 18.79 17.24 55s
   vamp01-iwae5-s200     18.77   17.31   191 18.89 17.37 159s / 297 18.65 17.29 190s / 222 18.77 17.26 163s
   gaussian-iwae5-drop   19.27   17.71   527 19.18 17.75 48s / 553 19.26 17.70 48s / 612 19.37 17.68 52s
   iaf-4-iwae5-drop      19.19   17.64   539 19.28 17.69 120s / 630 19.12 17.60 126s / 767 19.15 17.64 145s
   vamp01-...-s200-drop  18.54   17.21   663 18.59 17.29 426s / 506 18.56 17.27 378s / 402 18.48 17.07 385s
   ...-s200-drop0.2      18.51   17.23   789 18.57 17.25 531s / 668 18.48 17.26 552s / 636 18.48 17.16 768s
   ===================== ======= ======= ================================================

   ("vamp [0,1]": ``bounded_pseudo_inputs=True``; "stop IWAE-50": ``val_objective="iwae",
   val_num_samples=50``; "-drop": ``encoder_dropout=0.1``, "drop0.2": 0.2, the encoder's inputs
   dropped in training epochs (the denoising criterion); the "-drop" rows ran 3-4 to the 2 cores,
   so their seconds are about twice a lone run's.) This script's own run of the first six
   ``FLOW_VARIANTS`` (17 min) reproduced their rows exactly; their test -ELBO means: gaussian
   18.89, iaf-4 18.74, vampprior 18.70, gaussian-iwae5 20.19, iaf-4-iwae5 19.61, vamp01-iwae5-s50
   20.26.

   Tried and dropped (test means): KL warm-up (beta 0 -> 1 linearly over 100 epochs in a first
   fit, then the early-stopped fit at beta = 1): Gaussian 18.14, IAF-4 18.16, VampPrior 17.52;
   IAF-4 with two 128-unit MADE layers (``flow_hidden_features=(128, 128)``) 17.99; VampPrior with an
   IAF-4 posterior 17.58; VampPrior with Adam weight decay 1 / 10: 17.44 / 17.78; with
   ``lr_decay=0.995``: 17.72; bounded pseudo-inputs initialised as pythae's (hardtanh of
   U(-1/sqrt(K), 1/sqrt(K))) instead of training examples: 17.53; vamp01-iwae5-s50 with
   patience 200: the same best epochs (no later improvement on validation IWAE-50); the same
   with 100 pseudo-inputs: val 18.94, test 17.36 (seeds 17.36, 17.37, 17.34); with IWAE-20
   training: seed 0 val 19.02, test 17.57 (stopped there); with lr 5e-4: val 18.99, test 17.33.
   Encoder dropout 0.1 with the ELBO: Gaussian val 19.65, test 18.00; IAF-4 val 19.92, test
   18.24 (seeds 18.06, 18.47, 18.18: seed 1 stalled at epoch 319). Also tried: Polyak averaging
   of the weights (EMA 0.998, Gaussian 17.98: no gain); decoder dropout 0.2 / 0.5 on the
   VampPrior (seeds 0-1: 17.56 / 17.93); encoder-input dropout 0.2 with the ELBO (VampPrior
   17.77); dropout on the data's encoder input only, not the pseudo-inputs (seed 0: val 18.72
   against 18.59); batch 50 (seed 0: 17.45); an IAF shared by all x, as pythae's VAE_IAF
   (hidden 80: 17.90, val 19.59; three 128-unit layers: seed 1 stalled, 18.50); the flow prior
   (ELBO 17.54, IWAE-5 17.47); DReG gradients for IWAE-5 (Tucker et al. 2018; seed 0 17.39).

   Verdict: target 1 is met: against the strongest Gaussian setting by validation (IWAE-5
   training with encoder dropout 0.1, val 19.27), the same VAE with a 4-layer IAF posterior is
   lower on every seed (17.69 / 17.60 / 17.64 against 17.75 / 17.70 / 17.68, mean -0.07 nats;
   validation agrees, 19.19). Seeds 3-5 (this script, ``--seeds 3 4 5``): 17.76 / 17.63 / 17.65
   against 17.70 / 17.73 / 17.67, mean -0.02; over the six seeds -0.04 nats (lower on 5 of 6,
   paired t about 1.8) with the validation bound level (19.23 against 19.24): a small gain.
   Without dropout the IWAE-5 pair is level (IAF lower by 0.02, inside the seeds' spread), and
   on the ELBO the IAF is not better (+0.04; with dropout +0.24): the gain needs IWAE training
   and the regularised encoder together.
   Target 2 is met: the best model by validation, the bounded VampPrior on IWAE-5 with encoder
   dropout 0.2, stopped on validation IWAE-200 (val 18.51), is at 17.23 (dropout 0.1: val
   18.54, test 17.21; pythae's VampPrior 17.34); on seeds 3-5 (this script) 17.19 / 17.19 / 17.17,
   mean 17.18 (val 18.52). Encoder dropout was the largest single gain
   (17.31 -> 17.21/17.23), then early stopping on a low-variance validation bound (17.45 -> 17.36).
   This script's own run of the three "-drop" rows (seeds 0-2) reproduced them exactly.

Run: python benchmarks/vae_quality.py [--epochs 1000] [--k 5000] [--flows [--seeds 0 1 2] [--variants ...]]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

import probgen as pg
from probgen.models import VAE, IndependentCategorical


def fit_and_score(name: str, epochs: int, k: int) -> tuple[float, float]:
    train, val, test = (pg.load_dataset(name, s) for s in ("train", "val", "test"))
    vae = VAE(train.event_shape, train.support, latent_dim=8, hidden_features=(200,))
    start = time.perf_counter()
    result = pg.fit(vae, train, val_data=val, epochs=epochs, batch_size=100, lr=1e-3, progress=False)
    score = pg.log_likelihood(vae, test, method="iwae", num_samples=k)
    print(f"{name}: VAE 64-200-8, best epoch {result.best_epoch}, {time.perf_counter() - start:.0f}s; test {score}")
    return score.nll, score.stderr


@dataclass(frozen=True)
class Variant:
    """One model of ``--flows``: VAE keyword arguments besides the shared 64-200-8 networks, and
    fit options besides the shared budget (Adam 1e-3, batch 100, the epochs and patience)."""

    model: dict[str, Any]
    fit: dict[str, Any] = field(default_factory=dict)


#: the models of ``--flows``
IWAE5 = {"objective": "iwae", "num_samples": 5}
FLOW_VARIANTS = {
    "gaussian": Variant({}),
    "iaf-4": Variant({"posterior_flow": "iaf", "flow_num_layers": 4}),
    "vampprior": Variant({"prior": "vamp"}),
    "gaussian-iwae5": Variant({}, IWAE5),
    "iaf-4-iwae5": Variant({"posterior_flow": "iaf", "flow_num_layers": 4}, IWAE5),
    "vamp01-iwae5-s50": Variant(
        {"prior": "vamp", "bounded_pseudo_inputs": True}, {**IWAE5, "val_objective": "iwae", "val_num_samples": 50}
    ),
    "vamp01-iwae5-s200": Variant(
        {"prior": "vamp", "bounded_pseudo_inputs": True}, {**IWAE5, "val_objective": "iwae", "val_num_samples": 200}
    ),
    "gaussian-iwae5-drop": Variant({"encoder_dropout": 0.1}, IWAE5),
    "iaf-4-iwae5-drop": Variant({"posterior_flow": "iaf", "flow_num_layers": 4, "encoder_dropout": 0.1}, IWAE5),
    "vamp01-iwae5-s200-drop": Variant(
        {"prior": "vamp", "bounded_pseudo_inputs": True, "encoder_dropout": 0.1},
        {**IWAE5, "val_objective": "iwae", "val_num_samples": 200},
    ),
    "vamp01-iwae5-s200-drop0.2": Variant(
        {"prior": "vamp", "bounded_pseudo_inputs": True, "encoder_dropout": 0.2},
        {**IWAE5, "val_objective": "iwae", "val_num_samples": 200},
    ),
}
#: target 1 compares these pairs (the same VAE and budget, Gaussian and IAF posteriors); the
#: pair whose Gaussian has the best mean validation NLL decides (the IAF against the strongest
#: Gaussian setting), the others are reported
IAF_PAIRS = (("gaussian", "iaf-4"), ("gaussian-iwae5", "iaf-4-iwae5"), ("gaussian-iwae5-drop", "iaf-4-iwae5-drop"))
#: importance samples of the validation IWAE bound that chooses the best model for target 2
VAL_K = 1000


def flow_comparison(epochs: int, k: int, seeds: list[int], patience: int, names: list[str]) -> None:
    torch.set_num_threads(1)
    train, val, test = (pg.load_dataset("digits-binary", s) for s in ("train", "val", "test"))
    nll: dict[str, list[float]] = {name: [] for name in names}
    val_nll: dict[str, list[float]] = {name: [] for name in names}
    elbo_nll: dict[str, list[float]] = {name: [] for name in names}
    for seed in seeds:
        for name in names:
            variant = FLOW_VARIANTS[name]
            torch.manual_seed(seed)
            vae = VAE(train.event_shape, train.support, latent_dim=8, hidden_features=(200,), **variant.model)
            start = time.perf_counter()
            budget = {"epochs": epochs, "batch_size": 100, "lr": 1e-3, "patience": patience, "seed": seed}
            result = pg.fit(vae, train, val_data=val, progress=False, **budget, **variant.fit)
            torch.manual_seed(seed)
            val_nll[name].append(pg.log_likelihood(vae, val, method="iwae", num_samples=VAL_K).nll)
            torch.manual_seed(seed)
            score = pg.log_likelihood(vae, test, method="iwae", num_samples=k)
            elbo = pg.log_likelihood(vae, test, method="elbo", num_samples=100).nll
            nll[name].append(score.nll)
            elbo_nll[name].append(elbo)
            seconds = time.perf_counter() - start
            run = f"seed {seed} {name:22s} best epoch {result.best_epoch:4d}, {seconds:4.0f}s"
            chosen = f"val loss {result.best_loss:.3f}, val IWAE-{VAL_K} NLL {val_nll[name][-1]:.3f}"
            print(f"{run}; {chosen}; test -ELBO {elbo:.3f}, {score}", flush=True)
    means = {name: statistics.mean(values) for name, values in nll.items()}
    val_means = {name: statistics.mean(values) for name, values in val_nll.items()}
    print(f"IWAE-{k} test NLL (nats), mean over seeds {seeds}:")
    for name, values in nll.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        each = ", ".join(f"{v:.2f}" for v in values)
        tail = f"-ELBO {statistics.mean(elbo_nll[name]):.2f}; val IWAE-{VAL_K} {val_means[name]:.2f}"
        print(f"  {name:22s} {means[name]:.2f} (sd {spread:.2f}; {each}); {tail}")
    pairs = [pair for pair in IAF_PAIRS if set(pair) <= set(names)]
    deciding = min(pairs, key=lambda pair: val_means[pair[0]]) if pairs else None
    for gaussian, iaf in pairs:
        gain = means[gaussian] - means[iaf]
        wins = sum(g > i for g, i in zip(nll[gaussian], nll[iaf], strict=True))
        verdict = "PASS" if gain > 0 else "FAIL"
        label = "target" if (gaussian, iaf) == deciding else "also (not the target)"
        tail = f"{gain:+.2f} nats, lower on {wins} of {len(seeds)} seeds"
        print(f"  {label}: {iaf} better than {gaussian} on average -> {verdict} ({tail})")
    best = min(val_means, key=val_means.get)  # chosen on validation data, scored on test
    verdict = "PASS" if means[best] <= 17.3 else f"FAIL by {means[best] - 17.3:.2f}"
    print(f"  target: best VAE-family model (by validation) <= 17.3 nats -> {verdict} ({best}: {means[best]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--flows", action="store_true", help="only section 3: flow posteriors and priors")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--patience", type=int, default=100, help="early-stopping patience (--flows)")
    parser.add_argument("--variants", nargs="+", choices=list(FLOW_VARIANTS), default=list(FLOW_VARIANTS))
    args = parser.parse_args()
    if args.flows:
        flow_comparison(args.epochs, args.k, args.seeds, args.patience, args.variants)
        return

    nll, _ = fit_and_score("digits-binary", args.epochs, args.k)
    print(f"  target: IWAE-{args.k} test NLL <= 19.7 nats -> {'PASS' if nll <= 19.7 else 'FAIL'} ({nll:.2f})")

    nll, _ = fit_and_score("digits", args.epochs, args.k)
    train, test = pg.load_dataset("digits"), pg.load_dataset("digits", "test")
    baseline = pg.log_likelihood(IndependentCategorical(64, "discrete(17)").fit_closed_form(train.x), test).nll
    margin = baseline - nll
    print(f"  independent categorical baseline: {baseline:.2f} nats; the VAE is {margin:.2f} nats better")
    print(f"  target: at least 10 nats better -> {'PASS' if margin >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
