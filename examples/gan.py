"""Tutorial: a GAN on eight Gaussians, scored without a likelihood.

A GAN's generator is an implicit model: it samples, but has no density to report in nats. We
train one by the adversarial strategy (discriminator and generator in turn) and score its
samples against held-out data with likelihood-free metrics — kernel MMD with a permutation
p-value, a classifier two-sample test, k-NN precision/recall, mode coverage — beside a
clearly wrong generator (untrained) and the held-out data itself. The Parzen-window number is a
weak estimate, shown only to say so. ``pg.compare`` puts the GANs (metric columns) and a density
model (nats) in one table. Last, a DCGAN (transposed convolutions with batch norm) on the 8x8
digits as they are, 17 grey levels: it generates in [-1, 1] and its samples are rounded onto the
levels, so it sits in one table beside a density model of the same digits.

Run: python examples/gan.py [--out DIR] [--quick]
"""

import argparse
import math
from pathlib import Path

import torch
from _summary import print_summary

import probgen as pg
from probgen.inference.sample_metrics import mmd_test, mode_coverage, precision_recall, sample_metrics
from probgen.plots import image_grid, loss_curve, scatter_2d

CENTRES = 2 * torch.stack([torch.cos(torch.arange(8) * math.pi / 4), torch.sin(torch.arange(8) * math.pi / 4)], -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-gan")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 500 if args.quick else 5000
    train = pg.load_dataset("8gaussians", "train", n=2 * n)
    val, test = pg.load_dataset("8gaussians", "val", n=n), pg.load_dataset("8gaussians", "test", n=n)

    torch.manual_seed(0)
    untrained = pg.models.GAN(2, "real", hidden_features=(64, 64), latent_dim=2)
    untrained.init_from_data(train.x)
    torch.manual_seed(0)
    gan = pg.models.GAN(2, "real", hidden_features=(64, 64), latent_dim=2)
    epochs = 20 if args.quick else 200
    result = pg.fit(gan, train, epochs=epochs, batch_size=50, lr=3e-3 if args.quick else 1e-3)

    print("likelihood-free metrics against held-out data (never nats):")
    summary = {}
    for name, model in (("GAN", gan), ("untrained generator", untrained)):
        metrics = sample_metrics(model, test, val=val, num_samples=len(test))
        coverage = mode_coverage(model.sample(2000), CENTRES, radius=0.3, min_count=20)
        summary[name] = {k: metrics[k] for k in ("mmd2", "c2st_accuracy", "precision", "recall")}
        summary[name]["modes_hit"] = coverage["modes_hit"]
        print(f"  {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if not isinstance(v, str)))
        print(f"    modes hit {coverage['modes_hit']}/8, samples within 3 sd of a mode {coverage['high_quality']:.2f}")
    same = mmd_test(test.x, val.x)
    summary["held-out"] = {"mmd2": same.mmd2}
    print(f"  held-out vs held-out: MMD² {same.mmd2:.3g}, p {same.p_value:.3g}; "
          f"precision/recall {precision_recall(test.x, val.x)}")  # fmt: skip
    print("  (parzen_* is a weak estimate with a bandwidth chosen on validation data, not a likelihood)")

    gaussian = pg.models.IndependentGaussian.from_dataset(train, method="mle").fit_closed_form(train.x)
    models = {"GAN": gan, "untrained generator": untrained, "diagonal Gaussian": gaussian}
    print(pg.compare(models, test, val=val))  # metric columns for the GANs, nats for the Gaussian

    digits, digits_val, digits_test = (pg.load_dataset("digits", split) for split in ("train", "val", "test"))
    torch.manual_seed(0)
    dcgan = pg.models.GAN.from_dataset(digits, latent_dim=16)  # a DCGAN: the digits are 8x8 images
    print(f"{dcgan.architecture} on {digits.name} ({digits.support}), seen as {dcgan.image_shape} images")
    pg.fit(dcgan, digits, epochs=2 if args.quick else 200, batch_size=100, lr=1e-3, progress=not args.quick)
    draws = dcgan.sample(64)  # integers 0..16, as the data
    print(f"samples on the levels: {bool((draws == draws.round()).all())}, range {draws.min():.0f}..{draws.max():.0f}")
    pixels = pg.models.IndependentCategorical.from_dataset(digits).fit_closed_form(digits.x)  # exact posterior
    num_samples = 100 if args.quick else len(digits_test)
    table = pg.compare({"DCGAN": dcgan, "independent pixels": pixels}, digits_test, val=digits_val,
                       metric_kwargs={"num_samples": num_samples})  # fmt: skip
    print(table)  # metric columns for the DCGAN, exact nats for the independent pixels
    rows = {row["model"]: row for row in table.rows}
    summary["digits"] = {"independent pixels nll": rows["independent pixels"]["nll_nats"],
                         "DCGAN mmd2": rows["DCGAN"]["mmd2"]}  # fmt: skip
    print_summary(summary)
    plot_figures(result.history, gan, test.x, draws, out)
    print(f"plots in {out}/")


def plot_figures(history: list[dict], gan: pg.models.GAN, held_out: torch.Tensor, draws: torch.Tensor, out: Path):
    """Both players' losses per epoch, the GAN's samples beside held-out data (the same axes), and
    the DCGAN's samples of the digits."""
    players = {"discriminator_loss": "discriminator", "generator_loss": f"generator ({gan.loss.replace('_', '-')})"}
    paths = [loss_curve(history, out / "loss.png", title="GAN on eight Gaussians", series=players,
                        ylabel="cross-entropy (nats / example)")]  # fmt: skip
    paths.append(scatter_2d(gan.sample(2000), out / "samples.png", title="GAN: 2,000 samples"))
    paths.append(scatter_2d(held_out, out / "data.png", title=f"held-out data: {len(held_out):,} points"))
    title = "DCGAN: 64 samples (17 grey levels)"
    paths.append(image_grid(draws, (8, 8), out / "dcgan-samples.png", vmax=16, title=title))
    return paths


if __name__ == "__main__":
    main()
