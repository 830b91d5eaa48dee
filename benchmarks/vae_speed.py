"""Speed: one ``probgen.fit`` step of the digits VAE against a hand-written PyTorch step.

Both train the same 64-200-8 Bernoulli VAE (the same encoder/decoder modules, Adam 1e-3,
batch 100, single-sample ELBO with the Monte-Carlo KL, minibatches reshuffled every epoch)
on binarized digits, in the same process, alternating, so machine noise hits both. Prints
seconds per step and the ratio; the target is a ratio of at most 1.25.

Run: python benchmarks/vae_speed.py [--epochs 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

import probgen as pg
from probgen.models import VAE


def handwritten(model: VAE, x: torch.Tensor, epochs: int, batch_size: int = 100) -> float:
    """A plain PyTorch VAE loop on the model's own networks; returns seconds per step."""
    enc, dec = model.encoder, model.decoder
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    n, steps = len(x), 0
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(n).split(batch_size):
            xb = x[idx]
            loc, scale = enc(xb)
            q = torch.distributions.Normal(loc, scale)
            z = q.rsample()
            log_lik = torch.distributions.Bernoulli(logits=dec(z)).log_prob(xb).sum(-1)
            log_w = log_lik + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
            loss = -log_w.sum() * (n / len(xb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    return (time.perf_counter() - start) / steps


def probgen_fit(model: VAE, x: torch.Tensor, epochs: int, objective: str) -> float:
    result = pg.fit(model, x, epochs=epochs, batch_size=100, lr=1e-3, objective=objective, progress=False, seed=None)
    return result.seconds / (epochs * ((len(x) + 99) // 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = pg.load_dataset("digits-binary").x
    hand, fits = [], {"elbo": [], "analytic_kl": []}
    for _ in range(args.repeats):
        hand.append(handwritten(VAE(64, "binary"), x, args.epochs))
        for objective in fits:
            fits[objective].append(probgen_fit(VAE(64, "binary"), x, args.epochs, objective))
    ref = min(hand)
    print(f"hand-written PyTorch step: {1e3 * ref:.3f} ms")
    for objective, times in fits.items():
        print(f"probgen fit step ({objective:11s}): {1e3 * min(times):.3f} ms   ratio {min(times) / ref:.2f}")


if __name__ == "__main__":
    main()
