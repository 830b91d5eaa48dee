"""PixelCNN with gated blocks: masked convolutions over an image in raster order.

Each block has a vertical stack (a ``k x k`` convolution masked to the rows at or above the
current one, then shifted down a row, so it sees only rows above) and a horizontal stack (a
``1 x k`` convolution masked to the pixels left of the current one: type A in the first block,
which excludes the current pixel, type B after it, which includes the current position of the
hidden features) joined as ``h += 1x1(shifted v)``. Gates are ``tanh(a) * sigmoid(b)`` with a
residual on the horizontal stack. The split removes the blind spot of the original PixelCNN's
stacked masked ``k x k`` convolutions: pixel (i, j) sees every pixel in the rows above within
the receptive field and every pixel to its left in its row.

Images are ``event_shape=(1, H, W)``; a flat ``(D,)`` event is taken as a ``1 x D`` image (a
causal one-dimensional convolution without a vertical stack).

References:
    van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks" (2016), ICML,
    arXiv:1601.06759 — masked convolutions of type A and B.
    van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, "Conditional Image
    Generation with PixelCNN Decoders" (2016), NeurIPS, arXiv:1606.05328 — gated blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probgen._checks import check_dropout, check_int
from probgen.models.autoregressive.base import Autoregressive
from probgen.models.base import network
from probgen.models.registry import register

__all__ = ["PixelCNN", "GatedBlock", "MaskedConv2d"]


class MaskedConv2d(nn.Conv2d):
    """A same-size convolution whose kernel is multiplied by a fixed 0/1 mask."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], mask: Tensor) -> None:
        super().__init__(cin, cout, kernel, padding=(kernel[0] // 2, kernel[1] // 2))
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def _gate(a: Tensor) -> Tensor:
    value, gate = a.chunk(2, 1)
    return torch.tanh(value) * torch.sigmoid(gate)


class GatedBlock(nn.Module):
    """One gated block: vertical and horizontal stacks (type A when ``first``)."""

    def __init__(self, cin: int, channels: int, kernel: int, first: bool, vertical: bool) -> None:
        super().__init__()
        self.first, c = first, channels
        v_mask = torch.zeros(kernel, kernel)
        v_mask[: kernel // 2 + 1] = 1  # rows at or above the centre
        h_mask = torch.zeros(1, kernel)
        h_mask[0, : kernel // 2 + (0 if first else 1)] = 1  # type A: left only; type B: and centre
        self.v = MaskedConv2d(cin, 2 * c, (kernel, kernel), v_mask) if vertical else None
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1) if vertical else None
        self.h = MaskedConv2d(cin, 2 * c, (1, kernel), h_mask)
        self.h_out = nn.Conv2d(c, c, 1)

    def forward(self, v: Tensor, h: Tensor, dropout: float = 0.0) -> tuple[Tensor, Tensor]:
        h_pre = self.h(h)
        if self.v is not None:
            v_pre = self.v(v)
            h_pre = h_pre + self.v_to_h(F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1])  # shifted: rows above only
            v = _gate(v_pre)
        gated = _gate(h_pre)
        if dropout:  # before the residual's last convolution, as PixelCNN++ drops in its blocks
            gated = F.dropout(gated, dropout, training=True)
        out = self.h_out(gated)
        return v, out if self.first else h + out


class PixelCNNNet(nn.Module):
    """Gated blocks then two 1x1 convolutions to ``P`` parameters per pixel: ``[N, H*W, P]``."""

    def __init__(self, image: tuple[int, int], params: int, channels: int, blocks: int, kernel: int, cin: int = 1):
        super().__init__()
        self.image, vertical = image, image[0] > 1
        self.blocks = nn.ModuleList(
            GatedBlock(cin if i == 0 else channels, channels, kernel, i == 0, vertical) for i in range(blocks)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, params, 1)
        )

    def forward(self, u: Tensor, dropout: float = 0.0) -> Tensor:
        v = h = u.transpose(1, 2).reshape(len(u), -1, *self.image)  # [N, D, E] -> [N, E, H, W]
        for block in self.blocks:
            v, h = block(v, h, dropout)
        out = self.head(h)
        return out.permute(0, 2, 3, 1).reshape(len(u), -1, out.shape[1])


@register(
    "pixelcnn",
    description="gated PixelCNN: masked convolutions (type A, then B), raster order (exact)",
    fit_defaults={"epochs": 200, "batch_size": 100, "lr": 3e-3, "patience": 20},
    compare_budget={"epochs": 30},
)
class PixelCNN(Autoregressive):
    """A gated PixelCNN on one-channel images.

    Args:
        event_shape: ``(1, H, W)``, or ``(D,)`` for a ``1 x D`` image.
        support: "binary", "discrete(k)" or "real".
        hidden_channels: feature maps per stack.
        num_layers: gated blocks (the first is type A).
        kernel: odd kernel width.
        components: mixture components per pixel for real data.
        output: for k-level data, \"categorical\" or \"logistic\" (a discretized logistic
            mixture of ``components``; see :class:`OutputHead`).
        dropout: probability in [0, 1) of dropping each gated feature of the horizontal stack in
            the training Pyro program only; ``log_prob``, sampling and inpainting never drop.

    Raises:
        ValueError: a bad shape, kernel or size, or ``dropout`` not a number in [0, 1).

    Example:
        >>> import probgen as pg
        >>> d = pg.load_dataset("digits-binary")
        >>> images = pg.data.Dataset(d.x.reshape(-1, 1, 8, 8), d.y, d.support)
        >>> model = PixelCNN.from_dataset(images, hidden_channels=8, num_layers=2)
        >>> _ = pg.fit(model, images, epochs=1, progress=False)
        >>> model.sample(2).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        hidden_channels: int = 32,
        num_layers: int = 4,
        kernel: int = 3,
        components: int = 5,
        output: str = "categorical",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(event_shape, support, components=components, output=output)
        shape = self.event_shape
        if len(shape) == 1:
            shape = (1, 1, shape[0])
        if len(shape) != 3 or shape[0] != 1:
            raise ValueError(f"PixelCNN models one-channel images: event_shape (1, H, W) or (D,), got {shape}")
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd width >= 3, got {kernel}")
        self.hidden_channels = check_int("hidden_channels", hidden_channels)
        self.num_layers = check_int("num_layers", num_layers)
        self.kernel = kernel
        self.dropout = check_dropout("dropout", dropout)
        p, e = self.head.params_per_dim, self.head.input_width
        self.pixelcnn = PixelCNNNet(shape[1:], p, self.hidden_channels, self.num_layers, kernel, e)

    def _params(self, x: Tensor, dropout: float = 0.0) -> Tensor:
        return network(self, "pixelcnn")(self.head.inputs(x), dropout)

    def _log_prob_flat(self, x: Tensor, training: bool = False) -> Tensor:
        return self.head.log_prob(self._params(x, self.dropout if training else 0.0), x)

    def _config_kwargs(self) -> dict:
        extra = {"hidden_channels": self.hidden_channels, "num_layers": self.num_layers, "kernel": self.kernel}
        extra["dropout"] = self.dropout
        return {**super()._config_kwargs(), **extra}
