"""Checkpoints: weights in safetensors, the model's JSON config in its header, written atomically.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's ``state_dict``
(``model.*``), optionally an optimizer's state (``optim.*``) and, for resuming a fit exactly
where it stopped, a training state (``train.*``: the last epoch's weights and the random number
generators' states); its metadata holds the JSON
config, the optimizer's hyper-parameters and a SHA-256 of every tensor and header entry, so a
tampered file is refused. Loading never unpickles anything.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from probgen._io import atomic_path

__all__ = ["save", "load", "load_checkpoint", "Checkpoint", "CHECKPOINT_NAME"]

FORMAT = "probgen-checkpoint-v1"
#: File name used when a checkpoint path is a directory.
CHECKPOINT_NAME = "model.safetensors"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    model: Any
    optimizer_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: what a fit needs to continue exactly where it stopped (``train.*`` tensors, prefix removed)
    training_state: dict[str, torch.Tensor] = field(default_factory=dict)


def _digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over every tensor and every header entry (config included) but the digests."""
    h = hashlib.sha256()
    for key in sorted(k for k in metadata if not k.startswith("sha256")):
        h.update(f"{key}={metadata[key]}|".encode())
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.state.{idx}.{key}"] = value
            else:
                plain[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim.state."):
            idx, name = key[len("optim.state.") :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["plain"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(
    model: Any,
    path: str | os.PathLike,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    weights: dict[str, torch.Tensor] | None = None,
    training_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (weights + config) to ``path`` atomically; return the file written.

    Args:
        model: a :class:`~probgen.models.base.GenerativeModel`.
        path: a file path, or an existing directory (then ``model.safetensors`` inside it).
        optimizer: also store its state, so training can resume.
        extra: JSON-able information to keep beside (epoch, losses, ...).
        weights: the state dict to store as the model's (default: ``model.state_dict()``), e.g. the
            best epoch's while the model holds the last one's.
        training_state: tensors a fit needs to resume exactly (stored as ``train.*``).

    Example:
        >>> import probgen as pg, tempfile
        >>> m = pg.models.IndependentBernoulli(4)
        >>> path = pg.save(m, tempfile.mkdtemp())
        >>> pg.load(path).config == m.config
        True
    """
    path = _resolve(path)
    weights = model.state_dict() if weights is None else weights
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in weights.items()}
    tensors.update({f"train.{k}": v.detach().cpu().contiguous() for k, v in (training_state or {}).items()})
    metadata: dict[str, str] = {
        "format": FORMAT,
        "config": json.dumps(model.config),
        "extra": json.dumps(extra or {}),
    }
    if optimizer is not None:
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        tensors.update({k: v.detach().cpu().contiguous() for k, v in opt_tensors.items()})
        metadata["optimizer"] = json.dumps(opt_meta)
    # one digest of everything, and one each of the header and of the weights to say which changed
    metadata["sha256_header"] = _digest({}, metadata)
    metadata["sha256_weights"] = _digest(tensors, {})
    metadata["sha256"] = _digest(tensors, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _tamper_message(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Say which integrity check a modified checkpoint fails: the header's, the weights' or the whole file's."""
    failed = []
    if "sha256_header" in metadata and metadata["sha256_header"] != _digest({}, metadata):
        failed.append("the header check (the JSON config/extra in its header was edited)")
    if "sha256_weights" in metadata and metadata["sha256_weights"] != _digest(tensors, {}):
        failed.append("the weights check (the tensor data were modified)")
    what = " and ".join(failed) if failed else "the whole-file check"
    return (
        f"{path} failed its SHA-256 checksum: {what}; the file was modified or corrupted after it was saved, "
        "so probgen refuses it"
    )


def _refuse_pickle(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[8:9] == b"{":  # safetensors: u64 header length, then the JSON header
        return
    if head[:2] == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise ValueError(
            f"{path} looks like a pickle/torch.save file; probgen loads only safetensors "
            "checkpoints and never unpickles (it could run arbitrary code)"
        )


def _read_verified(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header of the probgen checkpoint at ``path``, its checksums verified; a
    missing, empty, pickled, unreadable, foreign or tampered file is a ValueError."""
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is empty (0 bytes); expected a probgen .safetensors checkpoint")
    _refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {err}") from err
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a probgen checkpoint (format {metadata.get('format')!r})")
    if metadata.get("sha256") != _digest(tensors, metadata):
        raise ValueError(_tamper_message(path, tensors, metadata))
    return tensors, metadata


def load_checkpoint(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu", model: Any = None
) -> Checkpoint:
    """Read a checkpoint written by :func:`save` onto ``map_location`` (a device this machine
    has, else a ValueError); refuse truncated, tampered or pickle files.

    ``model``: a template to load the weights into (a copy of it; the template is left as it
    is) instead of a model rebuilt from the stored config by its registered name, for a model
    whose program a config cannot rebuild (a :class:`~probgen.models.PyroModel` of one's own
    functions). Its config must equal the stored one (name, shapes, program sites), and the
    weights must fit it exactly, else a ValueError says what differs.

    Example:
        >>> import probgen as pg, tempfile, torch
        >>> model = pg.models.IndependentBernoulli(4)
        >>> path = pg.save(model, tempfile.mkdtemp(), extra={"epoch": 3})
        >>> checkpoint = load_checkpoint(path)
        >>> checkpoint.extra, checkpoint.optimizer_state, type(checkpoint.model).__name__
        ({'epoch': 3}, None, 'IndependentBernoulli')
        >>> saved, loaded = model.state_dict(), checkpoint.model.state_dict()
        >>> saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
        True
        >>> data = bytearray(path.read_bytes())
        >>> data[-1] ^= 1  # one bit of the last weight flipped
        >>> _ = path.write_bytes(bytes(data))
        >>> load_checkpoint(path)
        Traceback (most recent call last):
        ...
        ValueError: ...model.safetensors failed its SHA-256 checksum: the weights check (the tensor data were ...
    """
    from probgen._checks import check_device

    device = check_device(map_location)
    path = _resolve(path)
    tensors, metadata = _read_verified(path)
    try:
        config = json.loads(metadata["config"])
        extra = json.loads(metadata.get("extra", "{}"))
        opt_meta = json.loads(metadata["optimizer"]) if "optimizer" in metadata else None
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} has a malformed header: {err}") from err
    template_given = model is not None
    model = _build(path, config, model)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    floating = [v.dtype for v in weights.values() if v.dtype.is_floating_point]
    if floating:  # a float64 model comes back as float64
        model = model.to(floating[0])
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        what = "the template model" if template_given else "the model its config describes"
        raise ValueError(f"{path}: weights do not fit {what}: {' '.join(str(err).split())}") from err
    optimizer_state = _join_optimizer(tensors, opt_meta) if opt_meta is not None else None
    training_state = {k[len("train.") :]: v for k, v in tensors.items() if k.startswith("train.")}
    return Checkpoint(model.to(device).eval(), optimizer_state, extra, training_state)


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", model: Any = None) -> Any:
    """Load the model stored at ``path`` (a file or a directory holding ``model.safetensors``), in
    eval mode (dropout off), ready to evaluate and sample.

    ``model``: a template whose program receives the stored weights (see :func:`load_checkpoint`),
    e.g. a :class:`~probgen.models.PyroModel` of the same functions; ``pg.load(path)`` needs a
    model known by name.

    Example:
        >>> import torch, pyro, pyro.distributions as dist, probgen as pg, tempfile
        >>> def gauss(x):
        ...     loc = pyro.param("loc", torch.zeros(2))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)
        >>> m = pg.models.PyroModel(gauss, event_shape=2, support="real")
        >>> with torch.no_grad():
        ...     _ = m.pyro_params["loc"].fill_(3.0)
        >>> path = pg.save(m, tempfile.mkdtemp())
        >>> template = pg.models.PyroModel(gauss, event_shape=2, support="real")
        >>> pg.load(path, model=template).pyro_params["loc"].tolist(), template.pyro_params["loc"].tolist()
        ([3.0, 3.0], [0.0, 0.0])
    """
    return load_checkpoint(path, map_location=map_location, model=model).model


def _build(path: Path, config: dict[str, Any], template: Any) -> Any:
    """The untrained model a checkpoint's weights go into: a copy of ``template``, checked against
    the stored config, or the registered model the config names."""
    from probgen.models import MODELS, GenerativeModel, PyroModel, model_class

    if template is None:
        if "pyro_program" in config and config.get("name") not in MODELS:
            raise ValueError(
                f"{path} holds PyroModel {config.get('name')!r}, a Python program that a checkpoint cannot rebuild; "
                "expected pg.load(path, model=<a PyroModel of the same program>) or a factory registered under "
                "that name (see docs/bring-your-own-model.md)"
            )
        return model_class(config.get("name")).from_config(config)
    if not isinstance(template, GenerativeModel):
        raise TypeError(f"model= must be a probgen model to load the weights into, got {type(template).__name__}")
    if isinstance(template, PyroModel):
        template.check_program(config, where=str(path))
    elif template.config != config:
        differ = sorted(k for k in set(config) | set(template.config) if config.get(k) != template.config.get(k))
        raise ValueError(f"{path} was saved from another model than the template (its config differs in {differ})")
    return copy.deepcopy(template)
