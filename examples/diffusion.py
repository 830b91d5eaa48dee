"""Tutorial: a DDPM, its variational bound, and its forward and reverse chains.

A diffusion model is a hierarchical latent-variable model: the fixed forward process (the guide)
adds Gaussian noise over T steps, the learned reverse process (the model) removes it, with
variances it learns. We train with the hybrid loss (noise prediction plus a small share of the
bound, which trains the variances) and evaluate with the full variational bound — a LOWER bound
on log p(x), in nats and bits/dim. On a 1-D mixture, where the true log density is known in
closed form, the bound stays below it and tightens as training goes on. On 17-level digits the
denoiser predicts each pixel's level by Bayes' rule over the levels (its logits plus the
Gaussian likelihood of each level), and the decoder p(x_0 | x_1) is that categorical. Figures
show both chains.

Run: python examples/diffusion.py [--out DIR] [--quick]
"""

import argparse
import math
from pathlib import Path

import torch
from _summary import print_summary

import probgen as pg
from probgen.plots import image_grid, save_figure

MEANS, SCALES = torch.tensor([-2.0, 0.5, 2.5]), torch.tensor([0.3, 0.5, 0.3])


def mixture(n: int, seed: int) -> torch.Tensor:
    """n draws of an equal-weight 1-D mixture of three Gaussians."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 3, (n,), generator=g)
    return (MEANS[k] + SCALES[k] * torch.randn(n, generator=g))[:, None]


def true_log_density(x: torch.Tensor) -> torch.Tensor:
    components = torch.distributions.Normal(MEANS, SCALES).log_prob(x)  # [n, 3]
    return torch.logsumexp(components, -1) - math.log(3)


def chain_figure(rows: list[list[torch.Tensor]], titles: list[str], steps: list[list[int]], path: Path) -> Path:
    """One row of images per chain, each image titled by its step t (each scaled to its own range
    of grey levels: the noisy steps live on the diffusion scale, x_0 on the data's)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(1.2 * len(rows[0]), 1.5 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            axes[r, c].imshow(image.reshape(8, 8).numpy(), cmap="gray")
            axes[r, c].axis("off")
            axes[r, c].set_title(f"{titles[r]}\nt = {steps[r][c]}" if c == 0 else f"t = {steps[r][c]}", fontsize=7)
    fig.suptitle("DDPM chains, one row per digit (each image on its own grey scale)", fontsize=9)
    return save_figure(fig, path)


def plot_figures(ddpm: pg.models.DDPM, held_out: torch.Tensor, out: Path, every: int = 10) -> list[Path]:
    """The forward (noising) chain of two held-out digits, two reverse (sampling) chains, and 64
    samples."""
    forward = ddpm.forward_chain(held_out[:2], every=every)
    reverse = ddpm.reverse_chain(2, every=every)
    rows = [[step[i] for step in forward] for i in range(2)] + [[step[i] for step in reverse] for i in range(2)]
    titles = ["forward"] * 2 + ["reverse"] * 2
    T = ddpm.steps
    steps = [list(range(0, T + 1, every))] * 2 + [[T, *(s for s in range(T - 1, 0, -1) if s % every == 0), 0]] * 2
    paths = [chain_figure(rows, titles, steps, out / "chains.png")]
    title = f"64 samples of the DDPM ({T} reverse steps)"
    paths.append(image_grid(ddpm.sample(64).reshape(64, -1), (8, 8), out / "samples.png", vmax=16, title=title))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-diffusion")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1-D: the bound against the true log density, as training goes on
    train, test = mixture(2000, 0), mixture(1000, 1)
    truth = true_log_density(test).mean().item()
    torch.manual_seed(0)
    toy = pg.models.DDPM(1, "real", steps=50, hidden_features=(64, 64))
    rounds, per_round = (2, 3) if args.quick else (6, 100)
    print(f"1-D mixture: true mean log density of the test points {truth:.3f} nats")
    bounds = []
    for r in range(rounds):
        pg.fit(toy, train, epochs=per_round, batch_size=100, lr=2e-3, init_from_data=r == 0, progress=False)
        bound = pg.log_likelihood(toy, test, method="elbo", num_samples=4)
        bounds.append({"epochs": (r + 1) * per_round, "nll": bound.nll, "stderr": bound.stderr})
        print(f"  after {(r + 1) * per_round:4d} epochs: bound {bound.nats:.3f} ± {bound.stderr:.3f} "
              f"(below the truth by {truth - bound.nats:.3f})")  # fmt: skip

    # 17-level digits: the bound in nats and bits/dim, and the chains
    digits, val, held_out = (pg.load_dataset("digits", s) for s in ("train", "val", "test"))
    torch.manual_seed(0)
    ddpm = pg.models.DDPM.from_dataset(digits, steps=50, hidden_features=(256, 256))
    epochs = 3 if args.quick else 400
    pg.fit(ddpm, digits, val_data=val, epochs=epochs, batch_size=100, lr=1e-3, progress=not args.quick)
    print("digits (17 levels), variational bound on held-out log p(x):")
    digits_bound = pg.log_likelihood(ddpm, held_out, method="elbo", num_samples=1 if args.quick else 10)
    print("  ", digits_bound)
    terms = ddpm.variational_bound(held_out.x)
    print("   terms (nats/example): " + ", ".join(f"{k} {v.mean().item():.2f}" for k, v in terms.items()))
    baseline = pg.models.IndependentCategorical.from_dataset(digits).fit_closed_form(digits.x)
    independent = pg.log_likelihood(baseline, held_out)
    print("   independent categorical (exact):", independent)

    plot_figures(ddpm, held_out.x, out)
    print_summary({
        "mixture": {"true_nll": -truth, "bound_nll": bounds},
        "digits": {"bound_nll": digits_bound.nll, "bound_stderr": digits_bound.stderr,
                   "bits_per_dim": digits_bound.bits_per_dim, "independent_nll": independent.nll},
    })  # fmt: skip
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
