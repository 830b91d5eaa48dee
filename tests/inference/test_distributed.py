"""Two CPU processes (gloo) fit and score exactly as one process does on the same global batches.

One spawn of two ranks (module fixture) runs every distributed case and saves what it finds;
the tests compare it with the same fits run here in one process. A stochastic ELBO draws
different noise on each rank (each has its own random stream, as it should), so parameter
equality is checked with a deterministic objective — the ELBO at the guide's mean, through
the model's own Pyro program, its data-plate scaling and the same DDP path — and the noisy
ELBO is checked for what must hold anyway: the ranks end with identical parameters.
"""

import os
import socket

import pyro
import pyro.poutine as poutine
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import probgen as pg
from probgen.inference.data import DataSource
from probgen.inference.distributed import Shard
from probgen.inference.importance import random_sites

WORLD = 2
FIT = dict(epochs=2, batch_size=30, lr=0.01, progress=False, seed=3)


def mean_latent_elbo(model, x, y):
    """The ELBO with every latent at its guide's mean: deterministic, and differentiable through
    the encoder as the reparameterized ELBO is."""
    args = (x,) if y is None else (x, y)
    guide = poutine.trace(model.guide).get_trace(*args)
    for site in random_sites(guide, latent_only=True):
        site["value"] = site["fn"].mean
    joint = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(*args)
    return -(joint.log_prob_sum() - guide.log_prob_sum())


def _data():
    train = pg.load_dataset("digits-binary")
    return train.x[:100].double(), pg.load_dataset("digits-binary", "val").x[:45].double()


def _iris():
    data = pg.load_dataset("iris")
    return data.x.double(), data.y


def _vae():
    pyro.set_rng_seed(0)
    return pg.models.VAE(64, "binary", latent_dim=2, hidden_features=(16,)).double()


def _gaussian():
    return pg.models.MODELS["independent-gaussian"].cls(4, "real")


def _state(model) -> dict:
    return {k: torch.empty_like(v).copy_(v) for k, v in model.state_dict().items()}


def _run_cases(rank: int, folder: str) -> dict:
    x, val = _data()
    out = {}
    model = _vae()
    ckpt = os.path.join(folder, "vae.safetensors")
    pg.fit(model, x, objective=mean_latent_elbo, distributed=True, checkpoint=ckpt, **FIT)
    out["vae"] = _state(model)
    out["vae_val_loss"] = pg.log_likelihood(model, val, method="elbo", num_samples=1, distributed=True)
    noisy = _vae()
    pg.fit(noisy, x, distributed=True, **FIT)
    out["noisy"] = _state(noisy)
    iris, labels = _iris()
    gaussian = _gaussian().double()
    pg.fit(gaussian, iris, batch_size=7, strategy="closed_form", distributed=True, progress=False)
    out["gaussian"] = {k: torch.empty_like(v).copy_(v) for k, v in gaussian.estimate().items()}
    out["gaussian_ll"] = pg.log_likelihood(gaussian, iris, batch_size=11, distributed=True)
    nb = pg.models.MODELS["gaussian-nb"].cls(4, "real", num_classes=3).double()
    pg.fit(nb, (iris, labels), batch_size=13, distributed=True, progress=False)
    out["nb"] = _state(nb)
    return out


def _worker(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    try:
        torch.save(_run_cases(rank, folder), os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    # fork: the ranks start with probgen imported (a spawned interpreter re-imports it, ~10 s)
    mp.start_processes(_worker, args=(_free_port(), str(folder)), nprocs=WORLD, start_method="fork")
    return folder, [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-9, atol=1e-10, msg=k)


def test_parts_cover_each_global_batch_once():
    source = DataSource(torch.arange(23.0)[:, None])
    order = torch.Generator().manual_seed(5)
    single = [p.x.flatten() for p in source.parts(10, shuffle=True, generator=torch.Generator().manual_seed(5))]
    parts = [list(source.parts(10, Shard(r, 3), shuffle=True, generator=order.manual_seed(5))) for r in range(3)]
    for step, batch in enumerate(single):
        joined = torch.cat([parts[r][step].x.flatten() for r in range(3)])
        assert torch.equal(joined, batch)
        assert sum(parts[r][step].weight for r in range(3)) == pytest.approx(3.0)
    padded = list(source.parts(2, Shard(2, 3), pad=True))  # 2-row batches: rank 2 gets padding
    assert [p.weight for p in padded][:2] == [0.0, 0.0] and len(padded) == 12


def test_two_processes_fit_a_vae_as_one_does(ranks):
    folder, found = ranks
    model = _vae()
    x, val = _data()
    pg.fit(model, x, objective=mean_latent_elbo, **FIT)
    start = _vae().state_dict()
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())  # it trained
    for rank in range(WORLD):
        _close(found[rank]["vae"], model.state_dict())
    saved = pg.load(folder / "vae.safetensors").state_dict()  # written by rank 0 alone, in float64
    assert saved.pop("fitted").item() is True  # saved after a trained epoch: the weights are fitted
    _close(saved, {k: v for k, v in model.state_dict().items() if k != "fitted"})
    single = pg.log_likelihood(model, val, method="elbo", num_samples=1)
    for rank in range(WORLD):  # the mean ELBO is random per example: compare counts and closeness
        assert found[rank]["vae_val_loss"].num_examples == single.num_examples == 45
    assert found[0]["vae_val_loss"].nats == found[1]["vae_val_loss"].nats  # reduced: one value


def test_noisy_elbo_ranks_stay_in_step(ranks):
    _, found = ranks
    start = _vae().state_dict()
    for k, v in found[0]["noisy"].items():
        assert torch.equal(v, found[1]["noisy"][k]), k  # DDP averaged the same gradients everywhere
    assert any(not torch.equal(start[k], v) for k, v in found[0]["noisy"].items())


def test_closed_form_statistics_reduced_over_ranks(ranks):
    _, found = ranks
    iris, labels = _iris()
    gaussian = _gaussian().double()
    pg.fit(gaussian, iris, batch_size=7, strategy="closed_form", progress=False)
    for rank in range(WORLD):
        _close(found[rank]["gaussian"], gaussian.estimate())
    nb = pg.models.MODELS["gaussian-nb"].cls(4, "real", num_classes=3).double()
    pg.fit(nb, (iris, labels), batch_size=13, progress=False)  # Moments merged across ranks
    for rank in range(WORLD):
        _close(found[rank]["nb"], nb.state_dict())


def test_sharded_log_likelihood_equals_one_process(ranks):
    _, found = ranks
    iris, _ = _iris()
    gaussian = _gaussian().double()
    pg.fit(gaussian, iris, batch_size=7, strategy="closed_form", progress=False)
    single = pg.log_likelihood(gaussian, iris, batch_size=11)
    for rank in range(WORLD):
        sharded = found[rank]["gaussian_ll"]
        assert sharded.num_examples == single.num_examples == len(iris)
        assert sharded.nats == pytest.approx(single.nats, rel=1e-12)
        assert sharded.stderr == pytest.approx(single.stderr, rel=1e-9)


def test_distributed_without_a_process_group_is_refused(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    x, _ = _data()
    with pytest.raises(ValueError, match="no process group"):
        pg.fit(_vae(), x, distributed=True, **FIT)
    with pytest.raises(ValueError, match="cannot run distributed"):
        pg.fit(_vae(), x, strategy="nuts", distributed=True, progress=False)


@pytest.mark.parametrize("device,backend", [("cpu", "gloo"), ("cuda", "cpu:gloo,cuda:nccl")])
def test_the_process_group_has_a_backend_for_cpu_tensors(monkeypatch, device, backend):
    """CUDA ranks still reduce CPU tensors (the epoch loss, closed-form statistics, RNG states):
    nccl alone would refuse them, so gloo serves the CPU beside it."""
    from probgen.inference.distributed import join_process_group

    chosen = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", chosen.append)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    join_process_group(torch.device(device))
    assert chosen == [backend]


@pytest.mark.parametrize("backend,expected", [("gloo", "cpu"), ("cpu:gloo,cuda:nccl", "cpu"), ("nccl", "cuda:0")])
def test_cpu_tensors_reduce_on_a_device_the_group_serves(monkeypatch, backend, expected):
    """A caller's group of nccl alone serves only GPUs: CPU tensors go to the rank's GPU for it."""
    from probgen.inference.distributed import collective_device

    monkeypatch.setattr(dist, "get_backend", lambda group=None: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert collective_device(torch.zeros(1)) == torch.device(expected)


def _with_batch_norm(model):
    body = model.encoder.body
    model.encoder.body = torch.nn.Sequential(body[0], torch.nn.BatchNorm1d(16, dtype=torch.float64), body[1])
    return model


@pytest.mark.parametrize(
    "make,syncs",
    [
        (_vae, False),  # buffers: the fitted flag, set alike on every rank
        (lambda: _with_batch_norm(_vae()), True),  # running statistics change with each rank's data
    ],
)
def test_buffers_are_broadcast_each_step_only_where_training_changes_them(make, syncs):
    from probgen.inference.distributed import ObjectiveModule, keeps_running_statistics, wrap_data_parallel
    from probgen.inference.objectives import make_objective

    module = ObjectiveModule(make(), make_objective("elbo"))
    assert keeps_running_statistics(module) is syncs
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert wrap_data_parallel(module, torch.device("cpu"), find_unused=False).broadcast_buffers is syncs
    finally:
        dist.destroy_process_group()


def test_norms_without_running_statistics_and_pyro_batch_norm():
    from pyro.distributions.transforms import BatchNorm

    from probgen.inference.distributed import keeps_running_statistics

    assert not keeps_running_statistics(torch.nn.BatchNorm1d(3, track_running_stats=False))
    assert not keeps_running_statistics(torch.nn.InstanceNorm1d(3))  # no running statistics by default
    assert keeps_running_statistics(torch.nn.InstanceNorm2d(3, track_running_stats=True))
    assert keeps_running_statistics(torch.nn.ModuleList([torch.nn.Linear(2, 2), BatchNorm(2)]))
