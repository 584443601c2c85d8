"""TRC² modules injected into a frozen decoder: cortical columns, thalamic router, hippocampal read.

Per target linear layer W0 (docs/methods.md, trc), with `s = alpha / r`:

    y = W0 x + s * (B_0 A_0 x + sum_k g_k B_k A_k x)

Column 0 (`stable_A`, `stable_B`) is consolidated, never trained by SGD; columns 1..K
(`lora_A`, `lora_B`) are plastic. The gates g come from the decoder layer's thalamic router,
computed once per layer from the layer's input and shared by its columns:

    c_t = RMSNorm(mean of h over the chunks before t's) ++ RMSNorm(h_t)   (past-only + current)
    z = U c_t  (rank `router_rank`);  logits = W_g z
    p_k = softplus(logit_k) / (eps + sum_{j in group(k)} softplus(logit_j))   (divisive normalisation)
    g = p on the top-k columns, renormalised to sum 1; 0 elsewhere

so routing at position t depends on positions <= t only. At the injection layer the
hippocampal read adds, before the layer runs,

    F_hip = sigmoid(W_f [sg(h_t); r_t]) * W_o r_t,   r_t = read(normalize(mean_{tau<=t} sg(h_tau)))

with W_o = up @ down and `up` zero-initialised. B_k, B_0 and `up` start at zero, so at
initialisation the model is exactly the base model. The means skip padding (either side): the
model's `attention_mask` reaches them through a `Prefix` set by a pre-hook on the model.

Both means run over every position <= t, which a key-value cache does not hold: while the model
decodes with one, the router and the read keep their own input at earlier positions
(`EarlierInput`), so a decoding step that sees only the new token gives what a pass over the whole
sequence would.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from memory.hippocampus import Hippocampus

__all__ = [
    "ColumnLinear",
    "EarlierInput",
    "HippocampalRead",
    "Prefix",
    "RoutingSlot",
    "ThalamicRouter",
    "causal_mean",
    "past_chunk_mean",
]

NORMALISATION_EPS = 1e-6  # the eps of the divisive normalisation


@dataclass
class RoutingSlot:
    """The gates a router computed for the current forward pass, read by its layer's columns.

    Attributes:
        gates: (batch, seq, columns), or None before the first forward pass.
    """

    gates: torch.Tensor | None = None


@dataclass
class Prefix:
    """What the current forward pass tells the router and the hippocampal read about its positions.

    Attributes:
        mask: (batch, prefix + seq), 1 on real tokens, over the cached prefix too; None when the
            caller passed none (no padding).
        cached: The pass decodes with a key-value cache, which later passes continue.
        continuing: The pass continues a cached prefix: its hidden states are of new positions only.
    """

    mask: torch.Tensor | None = None
    cached: bool = False
    continuing: bool = False


class EarlierInput:
    """A module's (detached) input at earlier positions, kept while the model decodes with a cache.

    Args:
        prefix: The model's current pass.
    """

    def __init__(self, prefix: Prefix) -> None:
        self.prefix = prefix
        self.kept: torch.Tensor | None = None  # (batch, prefix, d)

    def extend(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, seq, d) -> (batch, prefix + seq, d): this pass's input after the kept one."""
        if self.prefix.continuing and self.kept is not None:
            hidden = torch.cat([self.kept, hidden], dim=1)
        self.kept = hidden if self.prefix.cached else None
        return hidden


class ColumnLinear(nn.Module):
    """A frozen linear layer plus one stable and `columns` routed plastic low-rank columns.

    Args:
        base: The frozen layer.
        columns: Number of plastic columns K.
        r: Rank of each plastic column.
        stable_r: Rank of the stable column.
        alpha: Scaling numerator (`alpha / r`).
        dropout: Dropout on the columns' input during training.
        slot: Where the layer's router leaves the gates.
    """

    def __init__(
        self,
        base: nn.Linear,
        columns: int,
        r: int,
        stable_r: int,
        alpha: float,
        dropout: float,
        slot: RoutingSlot,
    ) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / r
        self.dropout = nn.Dropout(dropout)
        self.slot = slot
        lora_A = torch.empty(columns, r, base.in_features)
        for column in lora_A:  # as peft initialises lora_A
            nn.init.kaiming_uniform_(column, a=math.sqrt(5))
        self.lora_A = nn.Parameter(lora_A)  # (columns, r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, columns, r))  # (out, columns, r)
        # Consolidation writes the stable column; the method keeps it in memory/, so it stays
        # out of the module's state dict (and of the trainable weights checkpoints hold).
        self.register_buffer("stable_A", torch.zeros(stable_r, base.in_features), persistent=False)
        self.register_buffer("stable_B", torch.zeros(base.out_features, stable_r), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, in) -> (batch, seq, out)."""
        gates = self.slot.gates  # (batch, seq, columns)
        assert gates is not None, "the layer's router runs before its columns"
        columns, r, _ = self.lora_A.shape
        # Every column in one wide linear each way, on views of the weights (no copies).
        down = F.linear(self.dropout(x), self.lora_A.view(columns * r, -1))  # (batch, seq, columns * r)
        gated = down.unflatten(-1, (columns, r)) * gates.unsqueeze(-1)  # (batch, seq, columns, r)
        plastic = F.linear(gated.flatten(-2), self.lora_B.view(-1, columns * r))  # (batch, seq, out)
        stable = F.linear(F.linear(x, self.stable_A), self.stable_B)  # (batch, seq, out)
        return self.base(x) + self.scale * (plastic + stable)

    def update_factors(self, usage: torch.Tensor, rate: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The stable column plus `rate` of the plastic ones averaged by routing usage, as one
        product `B @ A = B_0 A_0 + rate * sum_k usage_k B_k A_k` (without the `alpha / r` scale).

        Args:
            usage: (columns,) mean gate of each column.
            rate: The plastic columns' share.

        Returns:
            B (out, stable_r + columns * r) and A (stable_r + columns * r, in).
        """
        plastic_B = (self.lora_B * (rate * usage)[:, None]).flatten(1)  # (out, columns * r)
        B = torch.cat([self.stable_B, plastic_B], dim=1)
        A = torch.cat([self.stable_A, self.lora_A.flatten(0, 1)], dim=0)
        return B, A


class ThalamicRouter(nn.Module):
    """Causal chunk-level routing of one decoder layer's tokens over its plastic columns.

    Args:
        hidden: The decoder's hidden size.
        columns: Number of plastic columns K.
        rank: Size of the compressed context z.
        top_k: Columns each token uses.
        group_size: Columns per divisive-normalisation group (divides `columns`).
        chunk_size: The past context is pooled per chunk of this many positions.
        uniform: Ablation: every column gets gate 1/K, no parameters.
        slot: Where the gates go.
        prefix: The forward pass's positions: padding is left out of the pooled past.
    """

    def __init__(
        self,
        hidden: int,
        columns: int,
        rank: int,
        top_k: int,
        group_size: int,
        chunk_size: int,
        uniform: bool,
        slot: RoutingSlot,
        prefix: Prefix,
    ) -> None:
        super().__init__()
        self.columns, self.top_k, self.group_size, self.chunk_size = columns, top_k, group_size, chunk_size
        self.uniform = uniform
        self.slot = slot
        self.prefix, self.earlier = prefix, EarlierInput(prefix)
        self.logits: torch.Tensor | None = None  # of the last forward pass, for the auxiliary losses
        self.probabilities: torch.Tensor | None = None
        if not uniform:
            self.diffuse_norm = nn.RMSNorm(hidden)
            self.focal_norm = nn.RMSNorm(hidden)
            self.compress = nn.Linear(2 * hidden, rank, bias=False)
            self.gate = nn.Linear(rank, columns, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Gates for each position, also left in the slot.

        Args:
            hidden: (batch, seq, hidden), the decoder layer's input; routing does not
                backpropagate into it.

        Returns:
            (batch, seq, columns): non-negative, summing to 1 over each position's top-k columns.
        """
        batch, seq, _ = hidden.shape
        if self.uniform:
            self.slot.gates = hidden.new_full((batch, seq, self.columns), 1 / self.columns)
            return self.slot.gates
        hidden = hidden.detach()
        past = past_chunk_mean(self.earlier.extend(hidden), self.chunk_size, self.prefix.mask)[:, -seq:]
        context = torch.cat(
            [self.diffuse_norm(past), self.focal_norm(hidden)], dim=-1
        )  # (batch, seq, 2 * hidden)
        logits = self.gate(self.compress(context))  # (batch, seq, columns)
        strength = F.softplus(logits).view(batch, seq, -1, self.group_size)  # (batch, seq, groups, group)
        probabilities = (strength / (NORMALISATION_EPS + strength.sum(-1, keepdim=True))).view(batch, seq, -1)
        top = probabilities.topk(self.top_k, dim=-1).indices  # (batch, seq, top_k)
        chosen = torch.zeros_like(probabilities).scatter(-1, top, 1.0)  # (batch, seq, columns)
        gates = probabilities * chosen
        self.slot.gates = gates / gates.sum(-1, keepdim=True).clamp(min=NORMALISATION_EPS)
        self.logits, self.probabilities = logits, probabilities
        return self.slot.gates

    def auxiliary_losses(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Load balance (Switch style) and router z-loss of the last forward pass, over real tokens.

        Args:
            mask: (batch, seq), 1 on real tokens.

        Returns:
            `K * sum_k f_k P_k` (1 when balanced; f_k: share of top-k slots given to column k,
            P_k: its mean normalised probability) and `mean(logsumexp(logits) ** 2)`.
        """
        assert self.logits is not None and self.probabilities is not None and self.slot.gates is not None
        weights = mask.unsqueeze(-1).to(self.logits.dtype)  # (batch, seq, 1)
        tokens = weights.sum().clamp(min=1)
        chosen = (self.slot.gates > 0).to(self.logits.dtype)
        share = (chosen * weights).sum((0, 1)) / (tokens * self.top_k)  # (columns,)
        groups = self.columns // self.group_size
        probability = (self.probabilities * weights).sum((0, 1)) / (tokens * groups)  # (columns,)
        balance = self.columns * (share.detach() * probability).sum()
        z = ((torch.logsumexp(self.logits, dim=-1) ** 2) * weights.squeeze(-1)).sum() / tokens
        return balance, z


class HippocampalRead(nn.Module):
    """Adds the gated readout of the hippocampal store to a decoder layer's input.

    Args:
        hidden: The decoder's hidden size (keys and values are hidden states).
        rank: Rank of the output map W_o.
        store: The lineage's store (its committed entries are read).
        top_k: Entries per read.
        temperature: Softmax temperature over cosine similarities.
        prefix: The forward pass's positions: padding is left out of the query's mean.
    """

    def __init__(
        self, hidden: int, rank: int, store: Hippocampus, top_k: int, temperature: float, prefix: Prefix
    ) -> None:
        super().__init__()
        self.store = store
        self.prefix, self.earlier = prefix, EarlierInput(prefix)
        self.top_k, self.temperature = top_k, temperature
        self.gate = nn.Linear(2 * hidden, 1)
        self.down = nn.Linear(hidden, rank, bias=False)
        self.up = nn.Linear(rank, hidden, bias=False)
        nn.init.zeros_(self.up.weight)  # F_hip = 0 at initialisation

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (batch, seq, hidden) -> the same plus F_hip."""
        state = hidden.detach()
        seq = state.shape[1]
        query = F.normalize(
            causal_mean(self.earlier.extend(state), self.prefix.mask)[:, -seq:], dim=-1
        )  # (batch, seq, hidden)
        readout = self.store.read(query, self.top_k, self.temperature).to(
            hidden.dtype
        )  # (batch, seq, hidden)
        gate = torch.sigmoid(self.gate(torch.cat([state, readout], dim=-1)))  # (batch, seq, 1)
        return hidden + gate * self.up(self.down(readout))


def causal_mean(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, seq, d) -> (batch, seq, d): the mean over real positions <= t at each t (0 if none).

    Args:
        hidden: (batch, seq, d).
        mask: (batch, seq), 1 on real tokens; None for no padding.
    """
    weights = _weights(hidden, mask)  # (batch, seq, 1)
    return (hidden * weights).cumsum(1) / weights.cumsum(1).clamp(min=1)


def past_chunk_mean(hidden: torch.Tensor, chunk_size: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, seq, d) -> (batch, seq, d): the mean over the chunks before t's (0 in the first chunk).

    Chunks are counted in real tokens from a row's first one, so padding on either side changes nothing.

    Args:
        hidden: (batch, seq, d).
        chunk_size: Real tokens per chunk.
        mask: (batch, seq), 1 on real tokens; None for no padding.
    """
    batch, _, d = hidden.shape
    weights = _weights(hidden, mask)  # (batch, seq, 1)
    sums = torch.cat(
        [hidden.new_zeros(batch, 1, d), (hidden * weights).cumsum(1)], dim=1
    )  # (batch, seq + 1, d)
    seen = weights.squeeze(-1).cumsum(1)  # (batch, seq): real tokens at positions <= t
    past = (
        torch.div(seen - weights.squeeze(-1), chunk_size, rounding_mode="floor") * chunk_size
    )  # (batch, seq)
    # The positions holding the first `past` real tokens end where `seen` first reaches `past`.
    end = torch.searchsorted(seen.contiguous(), past.contiguous()) + 1  # (batch, seq)
    end = torch.where(past > 0, end, torch.zeros_like(end))
    return sums.gather(1, end.unsqueeze(-1).expand(-1, -1, d)) / past.clamp(min=1).unsqueeze(-1)


def _weights(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return hidden.new_ones(*hidden.shape[:2], 1)
    return mask.to(hidden.dtype).unsqueeze(-1)
