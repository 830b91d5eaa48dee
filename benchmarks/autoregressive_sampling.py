"""Speed: cached sequential sampling of NADE and the causal Transformer against recomputation.

At D = 64 binary dimensions, ``model.sample(n)`` with the model's cache (NADE's running
pre-activation, the Transformer's keys and values) against the same model drawing each
dimension from a full network pass over all D (``Autoregressive._conditionals``). Prints the
median seconds of each and the ratio (target: at least 5x).

Run: python benchmarks/autoregressive_sampling.py [--n 100] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from probgen.models import NADE, Autoregressive, CausalTransformer


def seconds(model: Autoregressive, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.sample(n)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="samples per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "nade (H=500)": NADE(64, "binary", num_hidden=500),
        "causal-transformer (width 64, 2 layers)": CausalTransformer(64, "binary", embed_dim=64, num_layers=2),
    }
    for name, model in models.items():
        cached = seconds(model, args.n, args.repeats)
        model._conditionals = lambda x, start, m=model: Autoregressive._conditionals(m, x, start)
        naive = seconds(model, args.n, args.repeats)
        print(f"{name}: cached {cached:.4f} s, recomputed {naive:.4f} s, speed-up {naive / cached:.1f}x")


if __name__ == "__main__":
    main()
