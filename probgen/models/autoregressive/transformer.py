"""A causal Transformer (GPT-style decoder) over the dimensions of x, with a key/value cache.

Token t is the value of dimension t - 1 (token 0 a start token) embedded linearly with a flag
for the start, plus a learned position; pre-norm blocks of causal multi-head self-attention
and an MLP; a linear head gives the parameters of p(x_t | x_<t). Sampling keeps each layer's
keys and values, so step t costs O(t) attention instead of a full pass over t tokens.

References:
    Vaswani et al., "Attention Is All You Need" (2017), NeurIPS, arXiv:1706.03762.
    Radford, Wu, Child, Luan, Amodei & Sutskever, "Language Models are Unsupervised Multitask
    Learners" (2019) — the decoder-only (GPT-2) layout with pre-norm blocks.
    Chen et al., "Generative Pretraining from Pixels" (2020), ICML — pixels as tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probgen._checks import check_int
from probgen.models.autoregressive.base import Autoregressive
from probgen.models.base import network
from probgen.models.registry import register

__all__ = ["CausalTransformer", "CausalTransformerNet"]

Cache = list[tuple[Tensor, Tensor] | None]


class Block(nn.Module):
    """Pre-norm causal self-attention and MLP; ``forward`` extends a (keys, values) cache."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: Tensor, cache: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        n, t, width = h.shape
        q, k, v = (z.reshape(n, t, self.heads, -1).transpose(1, 2) for z in self.qkv(self.norm1(h)).chunk(3, -1))
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        past = k.shape[2] - t  # new token i sits at position past + i and sees keys <= it
        allowed = torch.arange(k.shape[2], device=h.device) <= past + torch.arange(t, device=h.device)[:, None]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        h = h + self.proj(attended.transpose(1, 2).reshape(n, t, width))
        return h + self.mlp(self.norm2(h)), (k, v)


class CausalTransformerNet(nn.Module):
    """Embeddings, blocks and head; ``forward(tokens, start, cache)`` handles any span."""

    def __init__(self, num_dims: int, params: int, width: int, heads: int, layers: int, input_width: int = 1):
        super().__init__()
        self.embed = nn.Linear(input_width + 1, width)
        self.position = nn.Parameter(torch.randn(num_dims, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm, self.out = nn.LayerNorm(width), nn.Linear(width, params)

    def tokens(self, u: Tensor) -> Tensor:
        """Token t = (u_{t-1}, 0), token 0 = (0, 1): ``[N, D, E + 1]`` from ``u [N, D, E]``."""
        previous = F.pad(u[:, :-1], (0, 0, 1, 0))
        flag = torch.zeros_like(u[..., :1])
        flag[:, 0] = 1
        return torch.cat([previous, flag], -1)

    def forward(self, tokens: Tensor, start: int = 0, cache: Cache | None = None) -> tuple[Tensor, Cache]:
        h = self.embed(tokens) + self.position[start : start + tokens.shape[1]]
        cache = cache or [None] * len(self.blocks)
        new: Cache = []
        for block, layer_cache in zip(self.blocks, cache, strict=True):
            h, kv = block(h, layer_cache)
            new.append(kv)
        return self.out(self.norm(h)), new


@register(
    "causal-transformer",
    description="GPT-style causal Transformer over the dimensions, cached sampling (exact)",
    fit_defaults={"epochs": 200, "batch_size": 100, "lr": 1e-3, "patience": 20},
    compare_budget={"epochs": 12},
)
class CausalTransformer(Autoregressive):
    """A small decoder-only Transformer in the natural (raster) ordering.

    Args:
        event_shape, support: of the data ("binary", "discrete(k)" or "real").
        embed_dim: model width (a multiple of ``num_heads``).
        num_heads: attention heads.
        num_layers: blocks.
        components: mixture components per dimension for real data.
        output: for k-level data, \"categorical\" or \"logistic\" (a discretized logistic
            mixture of ``components``; see :class:`OutputHead`).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = CausalTransformer.from_dataset(data, embed_dim=16, num_layers=1)
        >>> _ = pg.fit(model, data, epochs=1, progress=False)
        >>> model.sample(2).shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        embed_dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        components: int = 5,
        output: str = "categorical",
    ) -> None:
        super().__init__(event_shape, support, components=components, output=output)
        self.embed_dim, self.num_heads = check_int("embed_dim", embed_dim), check_int("num_heads", num_heads)
        self.num_layers = check_int("num_layers", num_layers)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be a multiple of num_heads, got embed_dim={embed_dim}, num_heads={num_heads}"
            )
        p, e = self.head.params_per_dim, self.head.input_width
        self.transformer = CausalTransformerNet(self.num_dims, p, embed_dim, num_heads, num_layers, e)

    def _params(self, x: Tensor) -> Tensor:
        net = network(self, "transformer")
        return net(net.tokens(self.head.inputs(x)))[0]

    def _conditionals(self, x: Tensor, start: int) -> Iterator[tuple[int, Tensor]]:
        """One pass over the first ``start + 1`` tokens, then one token per step (cached)."""
        if start >= self.num_dims:
            return
        net = self.transformer
        out, cache = net(net.tokens(self.head.inputs(x))[:, : start + 1])  # token t holds x_{t-1}
        for d in range(start, self.num_dims):
            yield d, out[:, -1]
            if d + 1 < self.num_dims:
                value = self.head.inputs(x[:, d : d + 1])
                token = torch.cat([value, torch.zeros_like(value[..., :1])], -1)
                out, cache = net(token, d + 1, cache)

    def _config_kwargs(self) -> dict:
        extra = {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "num_layers": self.num_layers}
        return {**super()._config_kwargs(), **extra}
