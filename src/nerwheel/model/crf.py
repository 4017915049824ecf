"""Linear-chain CRF in torch: batched forward algorithm for the loss, batched Viterbi for decoding.

Sequences are *packed*: position ``t`` of row ``b`` is valid while
``t < lengths[b]`` (the label-bearing heads of a window, gathered to the left;
see :func:`pack`). Keeping the CRF over heads only, instead of over every
sub-token with holes, is what lets the same transitions be applied by the
numpy decoder (:mod:`nerwheel.decode`) after ONNX Runtime.

Parameters are named like the saved ``crf.safetensors`` / ``crf.npz`` keys:
``transitions[i, j]`` scores tag i followed by tag j.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nerwheel.decode import backtrack
from nerwheel.model.encoding import IGNORE

__all__ = ["CRF", "IGNORE", "pack", "tagging_loss"]


def pack(values: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the positions where ``keep`` is true to the left of each row.

    ``values`` is ``[B, S, ...]``, ``keep`` ``[B, S]`` bool. Returns the packed
    values ``[B, L, ...]`` (``L`` = most kept positions in a row, padding
    zero-filled) and the validity mask ``[B, L]``.
    """
    lengths = keep.sum(dim=1)
    width = int(lengths.max().item()) if keep.numel() else 0
    # Stable sort puts kept positions first, in order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :width]
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    packed = torch.gather(values, 1, index)
    mask = torch.arange(width, device=keep.device)[None, :] < lengths[:, None]
    packed = packed.masked_fill(~mask.view(*mask.shape, *([1] * (values.dim() - 2))), 0)
    return packed, mask


class CRF(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood over the rows that have at least one position."""
        emissions = emissions.float()
        rows = mask[:, 0]
        if not bool(rows.any()):
            return emissions.sum() * 0.0
        emissions, tags, mask = emissions[rows], tags[rows], mask[rows]
        return (self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)).mean()

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised score of the given tag paths: ``[B]``."""
        m = mask.to(emissions.dtype)
        tags = tags.masked_fill(~mask, 0)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # [B, L]
        score = self.start_transitions[tags[:, 0]] + (emit * m).sum(dim=1)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # [B, L-1]
        score = score + (trans * m[:, 1:]).sum(dim=1)
        last = tags.gather(1, (mask.sum(dim=1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        return score + self.end_transitions[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` of each row by the forward algorithm: ``[B]``."""
        alpha = self.start_transitions[None, :] + emissions[:, 0]  # [B, T]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha[:, :, None] + self.transitions[None], dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.logsumexp(alpha + self.end_transitions[None, :], dim=1)

    @torch.no_grad()
    def decode(
        self,
        emissions: torch.Tensor,
        mask: torch.Tensor,
        constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> list[list[int]]:
        """Best path of each row (Viterbi), optionally under hard constraints (allowed trans/start/end, bool)."""
        trans, start, end = self.transitions, self.start_transitions, self.end_transitions
        if constraints is not None:
            ok_t, ok_s, ok_e = (c.to(emissions.device) for c in constraints)
            trans = trans.masked_fill(~ok_t, -1e4)
            start = start.masked_fill(~ok_s, -1e4)
            end = end.masked_fill(~ok_e, -1e4)
        emissions = emissions.float()
        bsz, length, _ = emissions.shape
        if length == 0:
            return [[] for _ in range(bsz)]
        score = start[None, :] + emissions[:, 0]
        history = []
        for t in range(1, length):
            cand = score[:, :, None] + trans[None]
            best, idx = cand.max(dim=1)
            score = torch.where(mask[:, t, None], best + emissions[:, t], score)
            history.append(idx)
        last = (score + end[None, :]).argmax(dim=1)
        hist = torch.stack(history, dim=1).cpu().numpy() if history else np.zeros((bsz, 0, self.num_tags), np.int64)
        return backtrack(hist, last.cpu().numpy(), mask.sum(dim=1).tolist())


def tagging_loss(emissions: torch.Tensor, labels: torch.Tensor, crf: CRF | None) -> torch.Tensor:
    """The training loss of a token classifier: CRF NLL over the packed head positions, or cross-entropy.

    Only positions with a label (``labels != IGNORE``) count. For the CRF they
    are packed to the left (:func:`pack`) so transitions link consecutive
    characters, not a character and its own sub-token.
    """
    if crf is None:
        return nn.functional.cross_entropy(emissions.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    keep = labels != IGNORE
    packed, mask = pack(emissions, keep)
    tags, _ = pack(labels.clamp(min=0), keep)
    return crf.nll(packed, tags, mask)
