"""DeepSDF decoder f_θ(z, x) ≈ SDF (Park et al. 2019, Sec. 5 and Fig. 3 / supplementary).

A fully connected network on the concatenation [z, x] of a shape latent z (L,) and a query point
x (3,) in the deepsdf frame (unit sphere). Hidden layers are Linear → ReLU → Dropout, with weight
normalisation; the input [z, x] is concatenated again to the input of each skip layer ("latent
re-injection"); the output layer is Linear(·, 1) followed by tanh. The paper's network is
8 × 512, latent 256, dropout 0.2, skip at layer 4 (`conf/model/deepsdf_paper.yaml`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm


def inverted_dropout(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout: zero each value with probability p, scale the kept ones by 1/(1-p) (as F.dropout).

    On CPU the keep mask is drawn 16 random bits per value (four per int64 from ``torch.randint``),
    with p rounded to a multiple of 2^-16 (0.2 -> 0.199997) and the kept values scaled by the exact
    1/(1 - p_rounded), so the expectation is unchanged. F.dropout's ``bernoulli_`` is about 8x slower
    on CPU in torch 2.14 and dominated the non-matmul cost of a paper-preset training step
    (bench/train_throughput.py). Other devices use F.dropout (fused on CUDA).
    """
    if not training or p == 0:
        return h
    if h.device.type != "cpu":
        return F.dropout(h, p, training=True)
    threshold = round(p * 65536)
    count = h.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64)
    keep = words.view(torch.int16)[:count].view(h.shape) >= threshold - 32768
    return h * (keep * (65536.0 / (65536 - threshold))).to(h.dtype)


class DeepSDFDecoder(nn.Module):
    """MLP decoder of the DeepSDF auto-decoder.

    Args:
        latent_size: L, length of the shape code z.
        hidden_dim: width of every hidden layer.
        num_layers: number of hidden layers.
        skip_layers: indices (0-based) of hidden layers whose input is [h, z, x]; the layer before
            each of them outputs ``hidden_dim - (L + 3)`` features so that every hidden layer
            input keeps width ``hidden_dim`` (as the original).
        dropout: dropout probability after every hidden ReLU (0 disables it).
        weight_norm: weight normalisation (Salimans & Kingma 2016) on every hidden layer (True), none
            (False), or on the hidden layers listed (the released specs' ``norm_layers``; MeshSDF: [0, 1, 2, 3]).
        final_tanh: tanh on the output, as the paper.
    """

    def __init__(
        self,
        latent_size: int,
        hidden_dim: int,
        num_layers: int,
        skip_layers: Sequence[int],
        dropout: float,
        weight_norm: bool | Sequence[int],
        final_tanh: bool,
    ):
        super().__init__()
        input_dim = latent_size + 3
        skip_layers = tuple(skip_layers)
        if any(not 0 < k < num_layers for k in skip_layers):
            raise ValueError(f"skip_layers {skip_layers} must lie in 1..{num_layers - 1}")
        if skip_layers and hidden_dim <= input_dim:
            raise ValueError(f"hidden_dim {hidden_dim} must exceed latent_size + 3 = {input_dim} with skips")
        self.latent_size = latent_size
        self.skip_layers = skip_layers
        self.final_tanh = final_tanh
        self.hidden = nn.ModuleList()
        normed = set(range(num_layers)) if weight_norm is True else set(weight_norm or ())
        in_dim = input_dim
        for k in range(num_layers):
            out_dim = hidden_dim - input_dim if k + 1 in skip_layers else hidden_dim
            layer = nn.Linear(in_dim, out_dim)
            self.hidden.append(apply_weight_norm(layer) if k in normed else layer)
            in_dim = hidden_dim
        self.output = nn.Linear(in_dim, 1)
        self.dropout = dropout

    def linear_layer_shapes(self) -> list[tuple[int, int]]:
        """(in_features, out_features) of every linear layer: the model's FLOPs, 2·in·out per sample."""
        layers = [*self.hidden, self.output]
        return [(layer.in_features, layer.out_features) for layer in layers]

    def executed_flops_per_sample(self) -> int:
        """Forward multiply-add FLOPs per sample as computed: the z columns of the first and skip
        layers run once per shape, not per sample (``_input_layer``)."""
        input_layers = {0, *self.skip_layers}
        return sum(2 * (i - self.latent_size * (k in input_layers)) * o
                   for k, (i, o) in enumerate(self.linear_layer_shapes()))

    def forward(self, latents: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        """SDF at query points.

        Args:
            latents: (B, L) one code per shape.
            xyz: (B, S, 3) query points of each shape, deepsdf frame.
        Returns:
            (B, S) predicted signed distances (negative inside), in (-1, 1) with ``final_tanh``.
        """
        h = None
        for k, layer in enumerate(self.hidden):
            if k == 0 or k in self.skip_layers:
                h = self._input_layer(layer, h, latents, xyz)
            else:
                h = layer(h)
            h = inverted_dropout(torch.relu(h), self.dropout, self.training)
        sdf = self.output(h)
        if self.final_tanh:
            sdf = torch.tanh(sdf)
        return sdf.squeeze(-1)

    def _input_layer(
        self, layer: nn.Linear, h: torch.Tensor | None, latents: torch.Tensor, xyz: torch.Tensor
    ) -> torch.Tensor:
        """``layer([h, z, x])`` for the first layer (no h) and the skip layers, (B, S, out).

        The same maths as concatenating z to every sample, but the z columns of the weight are
        applied once per shape (B rows instead of B·S): it saves 2·L·out FLOPs per sample and
        layer and the (B, S, L) copy of the codes.
        """
        weight = layer.weight  # normalised when weight norm is on
        width = 0 if h is None else h.shape[-1]
        w_h, w_z, w_x = weight.split([width, self.latent_size, 3], dim=1)
        per_shape = F.linear(latents, w_z, layer.bias)[:, None, :]
        per_sample = xyz if h is None else torch.cat([h, xyz], dim=-1)
        w_sample = w_x if h is None else torch.cat([w_h, w_x], dim=1)
        return torch.baddbmm(per_shape, per_sample, w_sample.t().expand(len(latents), -1, -1))
