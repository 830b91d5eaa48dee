"""Benchmark: variational dequantization (Flow++) against uniform dequantization, the same flow
and budget, on 17-level digits.

For each flow and seed, ``Dequantized(flow, dequantization=...)`` is fitted twice from the same
initial weights: with uniform noise, and with a learned noise flow q(u | x) (2 affine
autoregressive layers of [128] units) trained jointly. The budget is the flows' own (Adam 1e-3,
batch 100, at most ``--epochs`` epochs, early stopping on the validation bound with patience
20); the logit pre-transform is Dequantized's default. Both are scored on the test split with
32-draw importance-weighted dequantization, from q for the variational model and from the
uniform noise for the other (each an estimate of the same discrete log-likelihood; in nats per
example), with its standard error over examples. The validation numbers are printed beside
them: they, not the test numbers, are what a choice between the two would use.

The flow and q default to the ones above; ``--layers``, ``--dequantizer LAYERS WIDTH``,
``--dropout`` (in the flow's networks, in training) and ``--patience`` run another configuration,
e.g. the frontier's best flow (benchmarks/frontier.py): ``--flows realnvp --layers 4
--dequantizer 4 256 --dropout 0.3 --patience 40``.

Run: python benchmarks/variational_dequantization.py [--flows naf maf] [--seeds 0 1 2] [--layers 5]
[--dequantizer 2 128] [--dropout 0] [--patience 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import probgen as pg
from probgen.models import MAF, NAF, NSF, Dequantized, NSFAutoregressive, RealNVP

FLOWS = {"maf": MAF, "realnvp": RealNVP, "nsf": NSF, "nsf-ar": NSFAutoregressive, "naf": NAF}


def fitted(
    name: str, dequantization: str, seed: int, splits, args: argparse.Namespace
) -> tuple[Dequantized, int, float]:
    """The flow of ``args`` (layers of [256, 256]) under ``dequantization``, fitted; its epochs and seconds."""
    train, val, _ = splits
    torch.manual_seed(seed)
    spline = {"bound": 5.0} if name.startswith("nsf") else {}  # as in flows_vs_zuko.py
    base = FLOWS[name](64, num_layers=args.layers, hidden_features=[256, 256], dropout=args.dropout, **spline)
    layers, width = args.dequantizer
    extra = {"dequantizer_num_layers": layers, "dequantizer_hidden_features": (width,)}
    extra = extra if dequantization == "variational" else {}
    model = Dequantized.from_dataset(train, base=base, dequantization=dequantization, **extra)
    start = time.perf_counter()
    result = pg.fit(model, train, val_data=val, seed=seed, epochs=args.epochs, lr=1e-3, batch_size=100,
                    patience=args.patience, progress=False)  # fmt: skip
    return model, len(result.history), time.perf_counter() - start


def scored(model: Dequantized, data, seed: int) -> pg.inference.LogLikelihood:
    """The 32-draw importance-weighted estimate of the discrete log-likelihood."""
    torch.manual_seed(seed)
    if model.dequantization == "variational":
        return pg.log_likelihood(model, data, method="iwae", num_samples=32)
    scorer = Dequantized.from_dataset(data, base=model.base, logit_alpha=model.logit_alpha,
                                      dequantization="importance", num_samples=32)  # fmt: skip
    return pg.log_likelihood(scorer, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", nargs="+", default=["naf", "maf"], choices=sorted(FLOWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=1000, help="at most; early stopping ends sooner")
    parser.add_argument("--layers", type=int, default=5, help="flow layers, each of [256, 256]")
    parser.add_argument("--dequantizer", nargs=2, type=int, default=[2, 128], metavar=("LAYERS", "WIDTH"))
    parser.add_argument("--dropout", type=float, default=0.0, help="in the flow's networks, in training")
    parser.add_argument("--patience", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)  # k-hat of the IW estimates: printed, not warned
    splits = tuple(pg.load_dataset("digits", s) for s in ("train", "val", "test"))
    q = f"q(u | x) {args.dequantizer[0]} x [{args.dequantizer[1]}]"
    print(f"17-level digits; {args.layers} layers of [256, 256], dropout {args.dropout}; {q}; Adam 1e-3, batch 100, "
          f"patience {args.patience}; 32-draw IW test NLL (nats)")  # fmt: skip
    header = f"{'flow':8} {'seed':>4} {'noise':12} {'test NLL':>9} {'stderr':>7} {'val NLL':>8} {'epochs':>6}"
    print(f"{header} {'fit s':>6}")
    for name in args.flows:
        gains = []
        for seed in args.seeds:
            nll = {}
            for dequantization in ("uniform", "variational"):
                model, epochs, seconds = fitted(name, dequantization, seed, splits, args)
                test, val = scored(model, splits[2], seed), scored(model, splits[1], seed)
                nll[dequantization] = test.nll
                print(f"{name:8} {seed:4d} {dequantization:12} {test.nll:9.2f} {test.stderr:7.2f} {val.nll:8.2f} "
                      f"{epochs:6d} {seconds:6.0f}", flush=True)  # fmt: skip
            gains.append(nll["uniform"] - nll["variational"])
        spread = statistics.stdev(gains) if len(gains) > 1 else float("nan")
        print(f"{name}: variational lowers the test NLL by {statistics.mean(gains):.2f} nats on average "
              f"(per seed {', '.join(f'{g:.2f}' for g in gains)}; sd {spread:.2f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
