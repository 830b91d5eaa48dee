"""BDMC on a small VAE against its true log p(x) by quadrature: the gap shrinks as the steps grow.

The VAE of tests/inference/test_bdmc_vae.py (imported from there, so that the benchmark and the
test measure one model): 2 latent dims, 16 binary pixels, one hidden layer of 16 units, its
decoder's random weights scaled by 8 so that the posterior is far from the prior. For each seed
``bdmc`` simulates N = 20 examples with their latents, runs forward AIS (stochastic lower
bound) and reverse AIS from the simulating latents (stochastic upper bound) with 16 chains each,
and the true log p(D) = sum_n log ∫ p(x_n | z) p(z) dz is the Riemann sum on a 201 x 201 grid
over [-6, 6]^2 (checked against 301 x 301 over [-7, 7]^2: the column ``quad err``).

Printed per seed and step count: lower ± se, upper ± se, gap, the quadrature log p(D), whether
it lies in [lower - 3 se, upper + 3 se], and the wall time of the bdmc call (one thread).

Run: python benchmarks/bdmc_vae.py [--steps 10 30 100 300 1000 3000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from _from_tests import test_module

from probgen.inference.diagnostics import bdmc

N, CHAINS = 20, 16


def _helpers():
    """The models, data and budgets of tests/inference/test_bdmc_vae.py (one definition of each)."""
    return test_module("inference/test_bdmc_vae.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 30, 100, 300, 1000, 3000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    helpers = _helpers()
    vae = helpers.small_vae()
    like = torch.zeros(N, helpers.EVENT, dtype=torch.float64)
    print(f"BDMC on a VAE (latent 2, 16 binary dims, decoder x{helpers.SCALE:g}), N={N}, {CHAINS} chains each way")
    header = f"{'seed':>4s} {'steps':>6s} {'lower':>9s} {'± se':>6s} {'upper':>9s} {'± se':>6s} {'gap':>8s}"
    print(header + f" {'quadrature':>11s} {'quad err':>9s} {'inside':>6s} {'wall s':>7s}", flush=True)
    for seed in args.seeds:
        truth = quad_err = None
        for steps in args.steps:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the gap warning of short schedules: the table says it
                r = bdmc(vae, like, num_chains=CHAINS, num_steps=steps, seed=seed)
            wall = time.perf_counter() - start
            if truth is None:  # one simulated data set per seed (bdmc seeds before simulating)
                truth = helpers.quadrature_log_p(vae, r.data).sum().item()
                quad_err = abs(truth - helpers.quadrature_log_p(vae, r.data, half=7.0, points=301).sum().item())
            inside = r.lower - 3 * r.lower_stderr <= truth <= r.upper + 3 * r.upper_stderr
            print(
                f"{seed:4d} {steps:6d} {r.lower:9.3f} {r.lower_stderr:6.3f} {r.upper:9.3f} {r.upper_stderr:6.3f} "
                f"{r.gap:8.3f} {truth:11.3f} {quad_err:9.1e} {'yes' if inside else 'NO':>6s} {wall:7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
