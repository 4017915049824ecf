"""A mixture-of-experts feed-forward block: top-k gating, a load-balancing loss, one residual connection.

``y = LayerNorm(x + sum_{e in topk(x)} g_e(x) * expert_e(x))`` where the router
``softmax(x W_r)`` scores every expert, the ``top_k`` best are kept and their
gates renormalised to sum to 1 (as in Mixtral), and each expert is a two-layer
GELU feed-forward network.

The experts are held as stacked tensors and evaluated densely (every expert on
every token, weighted by a gate that is zero outside the top k): two matrix
products as wide as all experts together, which export to ONNX as plain
MatMuls. For the few experts a tagger uses that is cheaper than gathering
per-token weights; its cost grows with the number of experts, which
``benchmarks/model_speed.py`` measures.

Load balancing (Switch Transformer, Fedus et al. 2021, eq. 4):
``aux = N * sum_e f_e * P_e`` over the non-padding tokens, where ``f_e`` is the
share of top-k assignments that went to expert ``e`` and ``P_e`` the mean
router probability of ``e``. It is 1 for a perfectly even router and ``N``
when one expert takes everything; training adds ``coef * aux`` to the loss.

Imports torch only: this file travels into Hugging Face model folders.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MoEBlock", "balancing_loss"]


def balancing_loss(probs: torch.Tensor, chosen: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``N * sum_e f_e * P_e`` for router ``probs [..., N]``, top-k expert ids ``chosen [..., k]``, valid ``mask [...]``."""
    n = probs.shape[-1]
    probs = probs.reshape(-1, n).float()
    chosen = chosen.reshape(-1, chosen.shape[-1])
    keep = torch.ones(probs.shape[0], dtype=torch.bool, device=probs.device) if mask is None else mask.reshape(-1).bool()
    w = keep.to(probs.dtype)
    tokens = w.sum().clamp(min=1.0)
    counts = torch.zeros(probs.shape[0], n, device=probs.device, dtype=probs.dtype)
    counts.scatter_add_(1, chosen, torch.ones_like(chosen, dtype=probs.dtype))
    share = (counts * w[:, None]).sum(0) / (tokens * chosen.shape[-1])  # f_e
    mean_prob = (probs * w[:, None]).sum(0) / tokens  # P_e
    return n * (share * mean_prob).sum()


class MoEBlock(nn.Module):
    """``num_experts`` feed-forward experts behind a top-``top_k`` router, residual + LayerNorm around them.

    ``forward`` returns the new hidden states; after a forward pass in training
    mode :attr:`aux_loss` holds the load-balancing loss of that batch (None in
    eval mode, so the exported graph carries no loss).
    """

    def __init__(self, hidden_size: int, *, num_experts: int, top_k: int, expert_size: int, dropout: float = 0.1,
                 layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k={top_k} must be between 1 and num_experts={num_experts}")
        self.num_experts, self.top_k = num_experts, top_k
        self.router = nn.Linear(hidden_size, num_experts, bias=False)
        self.w_in = nn.Parameter(torch.empty(num_experts, hidden_size, expert_size))
        self.b_in = nn.Parameter(torch.zeros(num_experts, expert_size))
        self.w_out = nn.Parameter(torch.empty(num_experts, expert_size, hidden_size))
        self.b_out = nn.Parameter(torch.zeros(num_experts, hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.aux_loss: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        nn.init.normal_(self.router.weight, std=std)
        nn.init.normal_(self.w_in, std=std)
        nn.init.normal_(self.w_out, std=std / math.sqrt(2))
        nn.init.zeros_(self.b_in)
        nn.init.zeros_(self.b_out)
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router probabilities ``[..., N]``, the chosen experts ``[..., k]`` and the gate of every expert ``[..., N]``.

        Gates are the chosen experts' probabilities renormalised to sum to 1;
        every other expert's gate is exactly 0.
        """
        probs = torch.softmax(self.router(x).float(), dim=-1)
        top, chosen = torch.topk(probs, self.top_k, dim=-1)
        gates = torch.zeros_like(probs).scatter(-1, chosen, top / top.sum(dim=-1, keepdim=True))
        return probs, chosen, gates.to(x.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        probs, chosen, gates = self.gates(x)
        n, width, inner = self.w_in.shape
        # Every expert's first layer in one product: [B, S, H] x [H, N*F].
        hidden = nn.functional.gelu(x @ self.w_in.permute(1, 0, 2).reshape(width, n * inner) + self.b_in.reshape(-1))
        # sum_e g_e (h_e W_e + b_e) = [g_e h_e]_e x [W_e]_e + g b: the gated mixture is one more product.
        gated = (hidden.unflatten(-1, (n, inner)) * gates.unsqueeze(-1)).flatten(-2)
        mixed = gated @ self.w_out.reshape(n * inner, width) + gates @ self.b_out
        self.aux_loss = balancing_loss(probs, chosen, mask) if self.training else None
        return self.norm(x + self.dropout(mixed))
