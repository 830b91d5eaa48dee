"""Tutorial: a variational autoencoder on binarized digits, and the bounds it gives.

A VAE is a Pyro model p(z) p(x | z) with an amortised guide q(z | x), fitted by maximising the
ELBO with SVI. Its likelihood is intractable, so we report lower bounds: the ELBO and the
importance-weighted bounds IWAE_K, which tighten as K grows. We then look at samples,
reconstructions, the latent space and an interpolation. Last, a richer VAE: the guide's Gaussian
pushed through an inverse autoregressive flow, and a VampPrior.

Run: python examples/vae.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import torch
from _summary import print_summary

import probgen as pg
from probgen.plots import image_grid, image_rows, latent_scatter, loss_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-vae")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test = (pg.load_dataset("digits-binary", s) for s in ("train", "val", "test"))

    # 64 -> 200 -> 2 latent dimensions, so the latent space can be drawn directly.
    vae = pg.models.VAE(64, "binary", latent_dim=2, hidden_features=(200,))
    epochs = 3 if args.quick else 400
    result = pg.fit(vae, train, val_data=val, epochs=epochs, batch_size=100, lr=1e-3, patience=40)

    print("held-out bounds on log p(x) (each a lower bound; larger K is tighter):")
    bounds = {"elbo": pg.log_likelihood(vae, test, method="elbo", num_samples=100)}
    print("  ELBO     ", bounds["elbo"])
    for k in (1, 10, 100) if args.quick else (1, 10, 100, 1000):
        bounds[f"iwae_{k}"] = pg.log_likelihood(vae, test, method="iwae", num_samples=k)
        print(f"  IWAE_{k:<4d}", bounds[f"iwae_{k}"])
    subset = test.x[:20] if args.quick else test.x[:100]
    steps = 20 if args.quick else 300
    print(f"  AIS ({steps} steps, 16 chains, first {len(subset)} test digits):")
    subset_scores = {"ais_16": pg.log_likelihood(vae, subset, method="ais", num_samples=16, ais_steps=steps)}
    print("           ", subset_scores["ais_16"])
    subset_scores["iwae_16"] = pg.log_likelihood(vae, subset, method="iwae", num_samples=16)
    print("  IWAE_16 on the same digits:", subset_scores["iwae_16"])
    baseline = pg.models.IndependentBernoulli(64).fit_closed_form(train.x)
    bounds["independent"] = pg.log_likelihood(baseline, test)
    print("  independent Bernoulli (exact):", bounds["independent"])

    plot_figures(vae, result.history, test, out)

    # The same networks with q(z | x) pushed through 4 IAF layers that read the encoder's
    # features, and p(z) a mixture of q(z | u_k) over 50 learned pseudo-inputs (the VampPrior).
    # log q(z | x) includes the flow's log-determinant, so the bounds stay lower bounds.
    rich = pg.models.VAE(
        64, "binary", latent_dim=2, hidden_features=(200,), posterior_flow="iaf", flow_num_layers=4, prior="vamp"
    )
    pg.fit(rich, train, val_data=val, epochs=epochs, batch_size=100, lr=1e-3, patience=40)
    k = 100 if args.quick else 1000
    for label, model in (("Gaussian posterior, standard prior", vae), ("IAF posterior, VampPrior", rich)):
        bounds[f"iwae_{k}, {label}"] = pg.log_likelihood(model, test, method="iwae", num_samples=k)
        print(f"IWAE_{k}, {label:35s}", bounds[f"iwae_{k}, {label}"])
    plot_rich_samples(rich, out / "samples-iaf-vampprior.png")
    nll = {name: {"nll": s.nll, "stderr": s.stderr} for name, s in bounds.items()}
    on_subset = {name: {"nll": s.nll, "stderr": s.stderr, "n": len(subset)} for name, s in subset_scores.items()}
    print_summary({"test_nll": nll, "first_digits_nll": on_subset})
    print(f"plots in {out}/")


def plot_rich_samples(rich: pg.models.VAE, path: Path) -> Path:
    title = "IAF posterior, VampPrior: 64 samples\n(decoder means of p(x | z), z ~ p(z))"
    return image_grid(rich.sample(64, mean=True), (8, 8), path, vmax=1, title=title)


def plot_figures(vae: pg.models.VAE, history: list[dict], test: pg.data.Dataset, out: Path) -> list[Path]:
    """The VAE's loss per epoch, samples, reconstructions (each row of 8 test digits above its
    reconstructions), latent space and an interpolation between two test digits."""
    paths = [
        loss_curve(history, out / "loss.png", title="VAE on binarized digits", ylabel="negative ELBO (nats / example)")
    ]
    title = "64 samples (decoder means of p(x | z), z ~ p(z))"
    paths.append(image_grid(vae.sample(64, mean=True), (8, 8), out / "samples.png", vmax=1, title=title))
    originals = test.x[:16]
    reconstructions = vae.reconstruct(originals)
    rows, labels = [], []
    for start in (0, 8):  # a block of two rows per 8 digits: the originals, then their reconstructions
        rows += [originals[start : start + 8], reconstructions[start : start + 8]]
        labels += [
            f"test digits {start + 1}-{start + 8}: original",
            "reconstruction (decoder mean at the mean of q(z | x))",
        ]
    paths.append(image_rows(rows, labels, (8, 8), out / "reconstructions.png", vmax=1, title="VAE reconstructions"))
    codes = vae.encode(test.x)[0].detach()
    paths.append(latent_scatter(codes, test.y, out / "latent.png", title="q(z | x) means, test digits"))
    path = vae.interpolate(test.x[0], test.x[1], steps=10)
    labels = ["decoder means along the line from the code of test digit 1 (left) to that of digit 2 (right)"]
    paths.append(image_rows([path], labels, (8, 8), out / "interpolation.png", vmax=1, title="latent interpolation"))
    return paths


if __name__ == "__main__":
    main()
