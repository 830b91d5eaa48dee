"""Quality numbers for the RBM, GAN and DDPM (slow; prints, asserts nothing).

- RBM on digits-binary: exact held-out NLL after CD-1 and PCD-1, and AIS log Z against the
  exact value for several numbers of temperatures (100 runs each; error and the runs' spread).
- Gaussian RBM on moons: exact held-out NLL after CD-1 and PCD-1 beside the diagonal Gaussian,
  and AIS log Z (from the base Gaussian) against the exact value.
- GAN on eight Gaussians: modes covered over seeds at the test's budget; a DCGAN on 8x8 digit
  images, its two-sample statistics against the test digits.
- DDPM: the bound against the true log density of a 1-D mixture as training goes on, and the
  bound on 17-level and binary digits (nats, bits/dim) for Ho et al.'s DDPM and the default.

  Measured on 17-level digits (T = 50, 256-256 denoiser, Adam 1e-3, batch 100, seed 0, the best
  epoch by validation, the bound on the test split; the independent categorical model's exact
  NLL is 106.8):
  - Ho et al. (eps prediction, sigma_t^2 = beta_t, L_simple, betas 1e-3..0.2): 166.4 nats (3.75
    bits/dim) after 300 epochs, 152.2 after 1500, 145.5 after 3000. Per step, the bound's terms
    at t = 2..6 alone are 116 of the 166 nats: the noise there is below the levels' spacing
    (0.125), where an eps-network cannot resolve which level a pixel is at. T = 1000 (betas
    1e-4..0.02): 206.2 after 3000 epochs; the posterior's variance instead of beta_t: 278.6.
  - Learned variances (Nichol & Dhariwal; hybrid loss), eps prediction: 164.4 (300 epochs),
    142.9 (1500); with betas 0.003..0.2, 129.0; with 0.01..0.2, 120.2 (1500 epochs each).
  - The cosine schedule at T = 50: 1490 (its last beta, 0.999, multiplies eps errors by 30).
  - Levels (Bayes' rule over each pixel's levels, categorical decoder), betas 0.03..0.2: 104.5
    with beta_t fixed, **98.1 (2.21 bits/dim)** with learned variances, the default (300 epochs;
    1500 epochs end at the same best epoch: the 1000 training digits are fitted by then);
    betas 0.1..0.3: 97.3. On binary digits the default gives 20.9 nats (0.47 bits/dim) after
    300 epochs (independent Bernoulli: 25.0).

Run: python benchmarks/gan_ddpm_rbm_quality.py [--quick]
"""

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import probgen as pg
from probgen.inference.sample_metrics import mode_coverage, sample_metrics
from probgen.models.energy import GaussianRBM

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
from diffusion import mixture, true_log_density  # noqa: E402

CENTRES = 2 * torch.stack([torch.cos(torch.arange(8) * math.pi / 4), torch.sin(torch.arange(8) * math.pi / 4)], -1)


def rbm(quick: bool) -> None:
    train, val, test = (pg.load_dataset("digits-binary", s) for s in ("train", "val", "test"))
    epochs = 5 if quick else 100
    for persistent in (False, True):
        torch.manual_seed(0)
        model = pg.models.RBM(64, "binary", num_hidden=20)
        t0 = time.perf_counter()
        pg.fit(model, train, val_data=val, epochs=epochs, batch_size=20, lr=0.01, progress=False,
               strategy_options={"k": 1, "persistent": persistent})  # fmt: skip
        score = pg.log_likelihood(model, test)
        name = "PCD-1" if persistent else "CD-1"
        print(f"RBM 20 hidden, {name}, {epochs} epochs ({time.perf_counter() - t0:.0f}s): {score}")
    exact = model.log_normalizer(method="exact")[0].item()
    for steps in (100, 500, 2000) if quick else (100, 500, 2000, 10000):
        torch.manual_seed(0)
        runs = model.ais_log_weights(100, steps)
        estimate = (torch.logsumexp(runs, 0) - math.log(100)).item()
        print(f"  AIS 100 runs x {steps:5d} temperatures: log Z {estimate:.3f} (exact {exact:.3f}, "
              f"error {estimate - exact:+.3f}, runs' sd {runs.std().item():.3f})")  # fmt: skip


def gaussian_rbm(quick: bool) -> None:
    train, test = pg.load_dataset("moons"), pg.load_dataset("moons", "test")
    gaussian = pg.models.IndependentGaussian.from_dataset(train, method="mle").fit_closed_form(train.x)
    print(f"moons, diagonal Gaussian: {pg.log_likelihood(gaussian, test)}")
    epochs = 5 if quick else 100
    for persistent in (False, True):
        torch.manual_seed(0)
        model = GaussianRBM(2, "real", num_hidden=12)
        t0 = time.perf_counter()
        pg.fit(model, train, epochs=epochs, batch_size=50, lr=0.1, progress=False,
               strategy_options={"k": 1, "persistent": persistent})  # fmt: skip
        name = "PCD-1" if persistent else "CD-1"
        score = pg.log_likelihood(model, test)
        print(f"Gaussian RBM 12 hidden, {name}, {epochs} epochs ({time.perf_counter() - t0:.0f}s): {score}")
    exact = model.log_normalizer(method="exact")[0].item()
    for steps in (100, 500, 2000):
        torch.manual_seed(0)
        runs = model.ais_log_weights(100, steps)
        estimate = (torch.logsumexp(runs, 0) - math.log(100)).item()
        print(f"  AIS 100 runs x {steps:5d} temperatures: log Z {estimate:.3f} (exact {exact:.3f}, "
              f"error {estimate - exact:+.3f}, runs' sd {runs.std().item():.3f})")  # fmt: skip


def dcgan(quick: bool) -> None:
    digits, test = pg.load_dataset("digits"), pg.load_dataset("digits", "test")
    images, test_images = (pg.data.Dataset(d.x.reshape(-1, 1, 8, 8), None, "real") for d in (digits, test))
    epochs = 2 if quick else 200
    for architecture in ("mlp", "dcgan"):
        torch.manual_seed(0)
        model = pg.models.GAN((1, 8, 8), "real", architecture=architecture, latent_dim=16, hidden_features=(256, 256))
        t0 = time.perf_counter()
        pg.fit(model, images, epochs=epochs, batch_size=50, lr=2e-4, progress=False)
        metrics = sample_metrics(model, test_images, num_samples=len(test_images))
        print(f"GAN {architecture} on 8x8 digits, {epochs} epochs ({time.perf_counter() - t0:.0f}s): "
              + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))  # fmt: skip


def gan(quick: bool) -> None:
    data = pg.load_dataset("8gaussians", n=1000)
    for seed in range(2 if quick else 5):
        torch.manual_seed(seed)
        model = pg.models.GAN(2, "real", hidden_features=(64, 64), latent_dim=2)
        pg.fit(model, data, epochs=20, batch_size=50, lr=3e-3, progress=False, seed=seed)
        torch.manual_seed(0)
        cover = mode_coverage(model.sample(2000), CENTRES, radius=0.3, min_count=20)
        print(f"GAN seed {seed}: modes hit {cover['modes_hit']}/8, within 3 sd {cover['high_quality']:.2f}")


#: Ho et al.'s DDPM (eps prediction, sigma_t^2 = beta_t, L_simple) and the default for levels
DDPM_VARIANTS = {
    "Ho et al.": {"parameterization": "noise", "reverse_variance": "beta", "beta_range": (1e-3, 0.2)},
    "default (levels, learned variances)": {},
}


def ddpm(quick: bool) -> None:
    train, test = mixture(2000, 0), mixture(1000, 1)
    truth = true_log_density(test).mean().item()
    torch.manual_seed(0)
    toy = pg.models.DDPM(1, "real", steps=50, hidden_features=(64, 64))
    for r in range(2 if quick else 6):
        pg.fit(toy, train, epochs=3 if quick else 100, batch_size=100, lr=2e-3, init_from_data=r == 0, progress=False)
        bound = pg.log_likelihood(toy, test, method="elbo", num_samples=4)
        print(f"DDPM 1-D mixture round {r}: bound {bound.nats:.3f} ± {bound.stderr:.3f}, truth {truth:.3f}")
    epochs = 5 if quick else 300
    for name in ("digits", "digits-binary"):
        train, val, test = (pg.load_dataset(name, s) for s in ("train", "val", "test"))
        for label, options in DDPM_VARIANTS.items():
            torch.manual_seed(0)
            model = pg.models.DDPM.from_dataset(train, steps=50, hidden_features=(256, 256), **options)
            t0 = time.perf_counter()
            pg.fit(model, train, val_data=val, epochs=epochs, batch_size=100, lr=1e-3, progress=False)
            score = pg.log_likelihood(model, test, method="elbo", num_samples=10)
            terms = {k: round(v.mean().item(), 1) for k, v in model.variational_bound(test.x).items()}
            print(f"DDPM {name}, {label}, {epochs} epochs ({time.perf_counter() - t0:.0f}s): {score}; terms {terms}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    rbm(quick)
    gaussian_rbm(quick)
    gan(quick)
    dcgan(quick)
    ddpm(quick)
