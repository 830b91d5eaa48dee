"""Fit throughput (examples/s) of a VAE, a MAF and a PixelCNN on the CPU (and a GPU when there is
one), in full precision and under bf16 autocast, and the speed-up of a 2-process (gloo)
distributed VAE fit on the CPU.

    python benchmarks/scale.py [--epochs 3] [--threads 1]

The 2-process figures are examples/s of two ranks (one thread each) over one process with one
thread, on the same global batches, best of ``--repeats`` runs each: for the small VAE on
batches of 128 (steps of ~2 ms, where gloo's latency and DDP's per-step work dominate) and for a
VAE with two hidden layers of 1000 units on batches of 512 (compute-bound steps). On a machine
with fewer free cores than ranks both are < 1: the ranks and gloo's threads share the cores.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import probgen as pg
from probgen.models import build_model

MODELS = {"vae": {}, "maf": {}, "pixelcnn": {}}
#: the 2-process comparisons: (label, model options, batch size)
DISTRIBUTED = [("small steps", {}, 128), ("large steps", {"hidden_features": (1000, 1000)}, 512)]
DATA = {"vae": "digits-binary", "maf": "digits", "pixelcnn": "digits-binary"}


def _data(name: str) -> pg.data.Dataset:
    data = pg.load_dataset(DATA[name])
    if name == "maf":  # a continuous flow: dequantized pixel values
        x = (data.x.float() + torch.rand(data.x.shape, generator=torch.Generator().manual_seed(0))) / 17
        return pg.data.Dataset(x.reshape(len(x), -1), None, "real", name="digits-real")
    return data


def throughput(
    name: str,
    device: str,
    epochs: int,
    distributed: bool = False,
    precision: str | None = None,
    model_options: dict | None = None,
    batch_size: int = 128,
) -> float:
    """Training examples per second of ``epochs`` epochs (after one warm-up epoch)."""
    data = _data(name)
    model = build_model(name, data, **(MODELS[name] if model_options is None else model_options))
    options = dict(batch_size=batch_size, lr=1e-3, progress=False, device=device, distributed=distributed)
    options |= dict(precision=precision)
    pg.fit(model, data, epochs=1, **options)
    start = time.perf_counter()
    pg.fit(model, data, epochs=epochs, init_from_data=False, **options)
    return epochs * len(data) / (time.perf_counter() - start)


def _rank(rank: int, port: int, epochs: int, folder: str, model_options: dict, batch_size: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    rate = throughput("vae", "cpu", epochs, distributed=True, model_options=model_options, batch_size=batch_size)
    if rank == 0:
        with open(os.path.join(folder, "rate"), "w") as fh:
            fh.write(str(rate))
    dist.destroy_process_group()


def two_process_rate(epochs: int, model_options: dict, batch_size: int) -> float:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        args = (port, epochs, folder, model_options, batch_size)
        mp.start_processes(_rank, args=args, nprocs=2, start_method="fork")
        with open(os.path.join(folder, "rate")) as fh:
            return float(fh.read())


def speed_up(epochs: int, repeats: int) -> None:
    """Print the 2-process speed-ups (one thread per process, best of ``repeats`` each)."""
    for label, model_options, batch_size in DISTRIBUTED:
        one = max(
            throughput("vae", "cpu", epochs, model_options=model_options, batch_size=batch_size) for _ in range(repeats)
        )
        two = max(two_process_rate(epochs, model_options, batch_size) for _ in range(repeats))
        rates = f"1 process {one:8.0f}, 2 processes (gloo) {two:8.0f}"
        print(f"cpu   vae {label}, batch {batch_size}: {rates}  speed-up {two / one:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} thread(s); examples/s of fit")
    print(f"{'':15s} {'fp32':>10s} {'bf16':>10s}  bf16/fp32")
    for device in devices:
        for name in MODELS:
            full, low = (throughput(name, device, args.epochs, precision=p) for p in (None, "bf16"))
            print(f"{device:5s} {name:9s} {full:10.0f} {low:10.0f}  {low / full:.2f}x")
    if args.threads == 1:  # the ranks run one thread each: compare with one thread
        speed_up(args.epochs, args.repeats)


if __name__ == "__main__":
    main()
