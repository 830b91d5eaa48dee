"""Encoder and decoder networks for latent-variable models: MLPs and small convnets; the
identity start of a network that parametrises an affine transform."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pyro.nn import ConditionalAutoRegressiveNN, ConditionalDenseNN
from torch import Tensor, nn

__all__ = [
    "GaussianEncoder",
    "make_encoder",
    "make_decoder",
    "MLP",
    "ConvEncoderBody",
    "ConvDecoder",
    "hidden_dropout",
    "identity_start",
    "one_hot_concat",
]


class MLP(nn.Sequential):
    """``in -> hidden[0] -> ... -> out`` with the given activation between layers."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.Softplus):
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), activation()]
            in_dim = width
        layers.append(nn.Linear(in_dim, out_dim))
        super().__init__(*layers)


class ConvEncoderBody(nn.Module):
    """Two 3x3 convolutions (the second with stride 2) on a one-channel image, flattened."""

    def __init__(self, image_shape: tuple[int, int], channels: int = 32) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        h, w = self.image_shape
        self.out_dim = 2 * channels * ((h + 1) // 2) * ((w + 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[:-1]
        h = x.reshape(-1, 1, *self.image_shape)
        h = F.relu(self.conv2(F.relu(self.conv1(h))))
        return h.reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """``z -> linear -> 4x4-transposed conv (x2 upsampling) -> 3x3 conv`` to per-pixel parameters."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int], params_per_dim: int, channels: int = 32):
        super().__init__()
        self.image_shape, self.params = tuple(image_shape), params_per_dim
        h, w = self.image_shape
        self.base = ((h + 1) // 2, (w + 1) // 2)
        self.channels = 2 * channels
        self.fc = nn.Linear(latent_dim, self.channels * self.base[0] * self.base[1])
        self.up = nn.ConvTranspose2d(self.channels, channels, 4, stride=2, padding=1)
        self.out = nn.Conv2d(channels, params_per_dim, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        batch = z.shape[:-1]
        h = F.relu(self.fc(z)).reshape(-1, self.channels, *self.base)
        h = self.out(F.relu(self.up(h)))[..., : self.image_shape[0], : self.image_shape[1]]
        # [n, P, H, W] -> [n, H*W*P] with each pixel's P parameters contiguous per parameter block
        h = h.reshape(h.shape[0], self.params, -1)
        if self.params == 2:  # (loc block, scale block), as Likelihood expects
            return h.reshape(*batch, -1)
        return h.transpose(1, 2).reshape(*batch, -1)


class GaussianEncoder(nn.Module):
    """``x (, y) -> (loc, scale)`` of a diagonal Gaussian q(z | x (, y)), scale via softplus.

    With ``num_classes > 0`` a one-hot label joins the body's features before the head. With
    ``input_dropout > 0`` each input is dropped (inverted dropout) in train mode.
    """

    def __init__(
        self, body: nn.Module, body_dim: int, latent_dim: int, num_classes: int = 0, input_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.num_classes, self.input_dropout = num_classes, float(input_dropout)
        self.body, self.head = body, nn.Linear(body_dim + num_classes, 2 * latent_dim)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The input of the head: the body's features of ``x`` (and the one-hot label)."""
        if self.input_dropout:
            x = F.dropout(x, self.input_dropout, self.training)
        h = self.body(x)
        return one_hot_concat(h, y, self.num_classes) if self.num_classes else h

    def gaussian(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)`` from the features ``h`` (the head, scale via softplus)."""
        loc, raw = self.head(h).chunk(2, -1)
        return loc, F.softplus(raw) + 1e-4

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.gaussian(self.features(x, y))


def make_encoder(
    architecture: str,
    in_dim: int,
    hidden: Sequence[int],
    latent_dim: int,
    image_shape: tuple[int, int] | None,
    num_classes: int = 0,
    input_dropout: float = 0.0,
) -> GaussianEncoder:
    """An MLP (``in -> hidden... ->`` head) or conv encoder of q(z | x)."""
    if architecture == "conv":
        conv = ConvEncoderBody(image_shape)
        return GaussianEncoder(conv, conv.out_dim, latent_dim, num_classes, input_dropout)
    widths = list(hidden)
    if not widths:
        return GaussianEncoder(nn.Identity(), in_dim, latent_dim, num_classes, input_dropout)
    body = nn.Sequential(MLP(in_dim, widths[:-1], widths[-1]), nn.Softplus())
    return GaussianEncoder(body, widths[-1], latent_dim, num_classes, input_dropout)


def make_decoder(
    architecture: str, latent_dim: int, hidden: Sequence[int], out_dim: int, image_shape, params_per_dim: int
) -> nn.Module:
    if architecture == "mlp":
        return MLP(latent_dim, list(reversed(hidden)), out_dim)
    return ConvDecoder(latent_dim, image_shape, params_per_dim)


def one_hot_concat(h: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Append a one-hot label to the last dimension, broadcasting over leading particle dims."""
    onehot = F.one_hot(y, num_classes).to(h.dtype)
    onehot = onehot.expand(*h.shape[:-1], num_classes)
    return torch.cat([h, onehot], -1)


def identity_start(net: nn.Module) -> nn.Module:
    """``net`` with its last linear layer zeroed, so that an affine layer it parametrises (shift
    and log-scale zero) starts as the identity: a flow of such layers starts as its base, and
    trains from the data-initialised actnorm rather than from a random chain of couplings.

    Chosen for the flows on validation data (17-level digits, 5 layers of [256, 256], means of
    3 seeds, 32-draw importance-weighted NLL): RealNVP 95.15 validation nats against 95.97 from
    the default initialisation (test 92.40 against 93.23), MAF 97.57 against 98.11 (test 94.86
    against 95.34). The variational dequantizer's q(u | x) starts the same way.

    Example:
        >>> from pyro.nn import DenseNN
        >>> net = identity_start(DenseNN(2, [8], [1, 1]))
        >>> [t.abs().max().item() for t in net(torch.randn(3, 2))]
        [0.0, 0.0]
    """
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return net


def hidden_dropout(module: nn.Module, rate: float) -> nn.Module:
    """``module`` with dropout of ``rate`` after the activation of every hidden layer of each
    Pyro dense or masked autoregressive network inside it (``DenseNN``, ``AutoRegressiveNN`` and
    their conditional forms): their activation ``f`` becomes ``f`` then ``nn.Dropout(rate)``.

    The dropout follows PyTorch's mode: active in train mode only (``fit`` trains in train mode
    and evaluates in eval mode). It adds no parameters, so saved weights load either way.

    Example:
        >>> from pyro.nn import DenseNN
        >>> net = hidden_dropout(DenseNN(2, [64], [1]), 0.5)
        >>> x = torch.randn(4, 2)
        >>> torch.equal(net.eval()(x), net(x)), torch.equal(net.train()(x), net(x))
        (True, False)
    """
    if rate:
        for net in module.modules():
            if isinstance(net, (ConditionalDenseNN, ConditionalAutoRegressiveNN)):
                net.f = nn.Sequential(net.f, nn.Dropout(rate))
    return module
