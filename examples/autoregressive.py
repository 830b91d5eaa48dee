"""Tutorial: autoregressive models, p(x) = prod_i p(x_i | x_<i), exact likelihoods on digits.

The chain rule is exact for any distribution, but a table of every conditional of n binary
variables takes 2^n - 1 numbers. Autoregressive models share them: the fully visible sigmoid
belief net (one logistic regression per dimension, n(n+1)/2), NADE (shared hidden units, 2nH
+ n + H), MADE (masked autoencoders over orderings), a gated PixelCNN and a causal
Transformer. Each gives an exact log p(x) in one network pass and samples one pixel at a
time; conditioning on observed pixels gives inpainting.

Run: python examples/autoregressive.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import torch
from _summary import print_summary

import probgen as pg
from probgen.models import FVBN, MADE, NADE, CausalTransformer, PixelCNN
from probgen.plots import image_grid, image_rows


def parameter_table(sizes=(4, 8, 16, 32, 64), num_hidden: int = 50) -> list[dict]:
    """Parameters of n binary variables: full chain rule, FVBN, NADE (H hidden), independent."""
    rows = []
    for n in sizes:
        rows.append(
            {
                "n": n,
                "full chain rule": 2**n - 1,
                "fvbn": FVBN(n, "binary").num_free_parameters(),
                f"nade (H={num_hidden})": NADE(n, "binary", num_hidden=num_hidden).num_free_parameters(),
                "independent": n,
            }
        )
    return rows


def family(data: pg.data.Dataset, quick: bool) -> dict:
    """The models, shaped for ``data``; PixelCNN sees the digits as 1 x 8 x 8 images."""
    small = quick
    return {
        "fvbn": FVBN.from_dataset(data),
        "nade": NADE.from_dataset(data, num_hidden=20 if small else 100),
        "made": MADE.from_dataset(data, hidden_features=(50,) if small else (500,)),
        "made (8 orderings)": MADE.from_dataset(data, hidden_features=(50,) if small else (500, 500), num_masks=8),
        "pixelcnn": PixelCNN(
            (1, 8, 8), data.support, hidden_channels=8 if small else 32, num_layers=2 if small else 5, kernel=3
        ),
        "causal-transformer": CausalTransformer.from_dataset(
            data, embed_dim=16 if small else 64, num_layers=1 if small else 2
        ),
    }


def as_images(data: pg.data.Dataset) -> pg.data.Dataset:
    return pg.data.Dataset(data.x.reshape(-1, 1, 8, 8), data.y, data.support, name=data.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-autoregressive")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print("parameters of a distribution over n binary variables:")
    table = parameter_table()
    print(" | ".join(f"{k:>20}" for k in table[0]))
    for row in table:
        print(" | ".join(f"{v:>20}" for v in row.values()))

    budget = {"epochs": 1 if args.quick else 300, "batch_size": 100, "patience": 30, "progress": False}
    rates = {"fvbn": 1e-2, "nade": 3e-3, "pixelcnn": 3e-3}
    fitted, nll = {}, {}
    for name in ("digits-binary",) if args.quick else ("digits-binary", "digits"):
        train, val, test = (pg.load_dataset(name, split) for split in ("train", "val", "test"))
        rows = []
        for model_name, model in family(train, args.quick).items():
            image = isinstance(model, PixelCNN)
            tr, va, te = (as_images(d) if image else d for d in (train, val, test))
            pg.fit(model, tr, val_data=va, lr=rates.get(model_name, 1e-3), **budget)
            rows += pg.compare({model_name: model}, te).rows
            nll[f"{name}/{model_name}"] = rows[-1]["nll_nats"]
            fitted[name, model_name] = model
        print(f"\n{name}: test NLL (exact)")
        print(pg.inference.ComparisonTable(rows=rows, dataset=name).to_markdown())

    models = (fitted["digits-binary", k] for k in ("pixelcnn", "made (8 orderings)", "nade"))
    plot_figures(*models, pg.load_dataset("digits-binary", "test").x, out)
    print_summary({"test_nll": nll})
    print(f"\nplots in {out}/ (inpainting.png: digits, halves and completions; nade-samples.png)")


def plot_figures(pixelcnn: PixelCNN, made: MADE, nade: NADE, digits: torch.Tensor, out: Path) -> list[Path]:
    """Inpainting and samples. The top half is observed (a prefix of the raster order: exact
    draws); the order-agnostic MADE also completes a left half, by an ordering that puts it first."""
    top = torch.zeros(8, 8, dtype=torch.bool)
    top[:4] = True
    left = top.T.clone()
    digits = digits[:7]
    unknown = 0.3  # the pixels to fill in, drawn light grey: neither on (black) nor off (white)
    rows = [digits, torch.where(top.reshape(-1), digits, unknown)]
    rows += list(pixelcnn.complete(digits.reshape(-1, 1, 8, 8), top[None], 2).reshape(2, 7, 64))
    rows += [torch.where(left.reshape(-1), digits, unknown), *made.complete(digits, left.reshape(-1), 2)]
    labels = ["test digits", "observed: top half (grey: to fill in)", "PixelCNN completion 1", "PixelCNN completion 2",
              "observed: left half (grey: to fill in)", "MADE (8 orderings) completion 1",
              "MADE (8 orderings) completion 2"]  # fmt: skip
    title = "inpainting: exact conditional draws of the unobserved pixels"
    paths = [image_rows(rows, labels, (8, 8), out / "inpainting.png", vmax=1, title=title)]
    paths.append(image_grid(nade.sample(36), (8, 8), out / "nade-samples.png", vmax=1, title="NADE: 36 samples"))
    return paths


if __name__ == "__main__":
    main()
