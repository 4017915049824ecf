"""The span head's scoring layer: hidden states -> a score for every (start, width, label) (see :mod:`nerwheel.model.span`).

In its own torch-only module because two model classes build it: nerwheel's
:class:`~nerwheel.model.span.SpanClassifier` and the class a span-head model
folder gives ``transformers`` (:mod:`nerwheel.hf.modeling_nerwheel`), which is
copied into the folder with what it imports and must not pull in nerwheel's
training code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CONFIG_KEY", "NEG", "SpanScorer"]

#: The ``config.json`` entry with the head's shape: ``max_width``, ``size``, ``suffix_tokens``, ``dropout``.
CONFIG_KEY = "nerwheel_span"
NEG = -1e4  # the score of a span that cannot exist (ends on a special token or padding)


class SpanScorer(nn.Module):
    """Hidden states ``[B, S, H]`` -> span scores ``[B, S, max_width, labels]`` (see the module docstring)."""

    def __init__(self, hidden_size: int, num_labels: int, *, max_width: int, size: int, suffix_tokens: int,
                 init_std: float = 0.02) -> None:
        super().__init__()
        self.max_width = max_width
        self.num_labels = num_labels
        self.size = size
        self.suffix_tokens = suffix_tokens
        self.start = nn.Sequential(nn.Linear(hidden_size, size), nn.GELU())
        self.end = nn.Sequential(nn.Linear(hidden_size, size), nn.GELU())
        # U_l for every label, stored [size, labels * size] so the first product is one matrix multiply
        self.bilinear = nn.Parameter(torch.randn(size, num_labels * size) * init_std)
        self.start_linear = nn.Linear(size, num_labels)
        self.end_linear = nn.Linear(size, num_labels, bias=False)
        self.width = nn.Parameter(torch.zeros(max_width, num_labels))
        self.end_width = nn.Parameter(torch.randn(max_width, size) * init_std)
        for lin in (self.start[0], self.end[0], self.start_linear, self.end_linear):
            nn.init.normal_(lin.weight, std=init_std)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        bsz, seq = hidden.shape[0], hidden.shape[1]
        w, n, d = self.max_width, self.num_labels, self.size
        start = self.start(hidden)  # [B, S, d]
        end = self.end(hidden)
        band = torch.arange(seq, device=hidden.device)[:, None] + torch.arange(w, device=hidden.device)[None, :]
        left = torch.matmul(start, self.bilinear).reshape(bsz, seq, n, d)  # start_s^T U_l: [B, S, L, d]
        # start_s^T U_l end_e for every pair in one large product, then the band e = s + w (cheaper than
        # many small products over a gathered [B, S, W, d] copy of the end representations)
        pairs = torch.matmul(left.reshape(bsz, seq * n, d), end.transpose(1, 2)).reshape(bsz, seq, n, seq)
        pairs = torch.gather(nn.functional.pad(pairs, (0, w)), 3, band[None, :, None, :].expand(bsz, seq, n, w))
        bilinear = (pairs + torch.matmul(left, self.end_width.t())).transpose(2, 3)  # + start U_l width: [B, S, W, L]
        ends = nn.functional.pad(self.end_linear(end), (0, 0, 0, w))[:, band] + self.end_linear(self.end_width)
        scores = bilinear + self.start_linear(start)[:, :, None, :] + ends + self.width
        # a span may end on a content token only: attention_mask shifted past the suffix special tokens
        content = nn.functional.pad(attention_mask[:, self.suffix_tokens:], (0, self.suffix_tokens + w))[:, band]
        return torch.where(content[..., None] > 0, scores, torch.full_like(scores, NEG))

    def retarget(self, keep: Sequence[tuple[int, int]], num_labels: int, init_std: float) -> None:
        """New label rows: ``keep`` pairs (new index, old index) copy what the old labels learned."""
        d = self.size
        old_u = self.bilinear.detach().reshape(d, self.num_labels, d)
        new_u = torch.randn(d, num_labels, d, device=old_u.device) * init_std
        start_lin = nn.Linear(d, num_labels).to(old_u.device)
        end_lin = nn.Linear(d, num_labels, bias=False).to(old_u.device)
        nn.init.normal_(start_lin.weight, std=init_std)
        nn.init.zeros_(start_lin.bias)
        nn.init.normal_(end_lin.weight, std=init_std)
        width = torch.zeros(self.max_width, num_labels, device=old_u.device)
        with torch.no_grad():
            for new, old in keep:
                new_u[:, new] = old_u[:, old]
                start_lin.weight[new] = self.start_linear.weight[old]
                start_lin.bias[new] = self.start_linear.bias[old]
                end_lin.weight[new] = self.end_linear.weight[old]
                width[:, new] = self.width[:, old]
        self.bilinear = nn.Parameter(new_u.reshape(d, num_labels * d))
        self.start_linear, self.end_linear, self.width = start_lin, end_lin, nn.Parameter(width)
        self.num_labels = num_labels
