"""Memory: fitting and scoring from a ``numpy.memmap`` larger than the memory it may use.

Makes 1,000,000 x 784 binary rows as uint8 on disk (784 MB; 3.1 GB as float32), then, reading
them batch by batch: the closed-form fit of the independent Bernoulli model, its exact
``log_likelihood``, one VAE epoch (784-400-20) and the VAE's ELBO on the first 100,000 rows. A
thread samples ``RssAnon`` from /proc/self/status (resident anonymous memory, which leaves out
the memmap's file pages) every 20 ms; the target is a peak under 1 GB.

Run: python benchmarks/memmap_scale.py [--rows 1000000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import probgen as pg


class PeakRssAnon:
    """Samples RssAnon (kB in /proc/self/status) in a background thread; ``peak_mb`` after exit."""

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.peak_kb, self._stop = every, 0, threading.Event()

    @staticmethod
    def read_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.read_kb())
            time.sleep(self.every)

    def __enter__(self) -> PeakRssAnon:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.read_kb())

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def make_rows(path: Path, rows: int, dims: int = 784, chunk: int = 50_000) -> np.memmap:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, dims))
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.02, 0.3, size=dims)
    for start in range(0, rows, chunk):
        stop = min(rows, start + chunk)
        array[start:stop] = rng.random((stop - start, dims)) < probs
    array.flush()
    return np.load(path, mmap_mode="r")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where to write the memmap (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t0 = time.perf_counter()
        x = make_rows(Path(tmp) / "rows.npy", args.rows)
        print(f"made {x.shape[0]:,} x {x.shape[1]} uint8 rows on disk in {time.perf_counter() - t0:.1f} s")
        print(f"RssAnon before fitting: {PeakRssAnon.read_kb() / 1024:.0f} MB")
        with PeakRssAnon() as rss:
            t0 = time.perf_counter()
            bernoulli = pg.models.IndependentBernoulli(784)
            pg.fit(bernoulli, x, strategy="closed_form", batch_size=10_000, progress=False)
            score = pg.log_likelihood(bernoulli, x, batch_size=10_000)
            print(f"closed-form fit + exact score: {time.perf_counter() - t0:.1f} s; {score}")
            t0 = time.perf_counter()
            vae = pg.models.VAE(784, "binary", latent_dim=20, hidden_features=(400,))
            pg.fit(vae, x, epochs=1, batch_size=100, lr=1e-3, objective="analytic_kl", progress=False)
            elbo = pg.log_likelihood(vae, x[:100_000], method="elbo", num_samples=1, batch_size=1000)
            print(f"VAE epoch + ELBO on 100,000 rows: {time.perf_counter() - t0:.1f} s; {elbo}")
        as_float = x.nbytes * 4 / 2**30
        print(f"peak RssAnon: {rss.peak_mb:.0f} MB (target < 1024 MB; the data are {as_float:.1f} GB as float32)")
        del x  # release the memmap before its directory goes


if __name__ == "__main__":
    main()
