"""Neural long-term memory: an MLP whose weights are the memory, written at test time by surprise.

Titans (Behrouz, Zhong, Mirrokni, arXiv 2501.00663, section 3; docs/methods.md). For
each token t of the input x (per head; keys and queries l2-normalised, SiLU on all three):

    k_t, v_t, q_t = x_t W_K, x_t W_V, x_t W_Q
    surprise_t    = || M_W(k_t) - v_t ||^2                          momentary surprise
    S_t           = eta_t * S_{t-1} - theta_t * grad_W surprise_t    surprise with momentum
    W_t           = (1 - alpha_t) * W_{t-1} + S_t                    forgetting gate
    y_t           = M_W(q_t)                                         read, no update

with data-dependent step size theta_t, momentum eta_t and decay alpha_t (sigmoids of linear maps
of x_t). M is a residual MLP, `M(z) = z + mlp(z)`, of depth >= 2; values are l2-normalised too.

One restriction of the paper's free theta_t: theta_t = max_step_size * sigmoid(.) * (1 - eta_t).
A momentum eta carries a write on for 1 / (1 - eta) tokens, so the paper's form multiplies the
effective step by that, and the memory diverges to NaN as soon as the outer loss pushes eta_t
toward 1 (as users of lucidrains/titans-pytorch see, its issue #53; docs/methods.md).
Tied, the effective step stays below `max_step_size` whatever momentum is learned.

Chunked parallel form (the paper's mini-batch gradient descent, as in TTT): the sequence is cut
into chunks of `chunk_size` tokens; every gradient of a chunk is taken at the weights W_c the
chunk starts from, so all of them come from one batched forward and backward pass (closed form:
each per-token weight gradient is an outer product, and only their weighted sums are formed).
The momentum and decay recurrences inside a chunk are linear, so they are solved by cumulative
products (a (chunk, chunk) matrix per head), and the chunk's end weights and momentum are exact.
With `chunk_size=1` this is the token-by-token recurrence itself.

Reads are causal: every token of chunk c reads W_c, which holds the writes of earlier chunks
only. Streaming keeps that: a call's trailing incomplete chunk is read now and kept in the state
(`pending`) to be written once the chunk completes, so feeding a sequence in pieces gives what
one call on the whole of it gives. Padding (mask 0) writes nothing and leaves weights and
momentum as they were. Everything inside runs in fp32.

Unlike lucidrains/titans-pytorch (docs/methods.md, titans): no memory is ever updated from a
sequence shorter than a chunk without it being kept and written later (its issue #59), gradients
are closed-form rather than `vmap(grad)`, and the state carries the unwritten tail.
"""

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["MemoryOutput", "NeuralMemory", "NeuralMemoryState"]


@dataclass
class NeuralMemoryState:
    """Where a memory stands after some tokens: carried across calls, saved and restored.

    Attributes:
        weights: The memory MLP's weights, per layer (batch, heads, d_in, d_out).
        momentum: The surprise momentum S, shaped like `weights`.
        pending: Inputs of the current incomplete chunk, read but not yet written (batch, p, dim).
        pending_mask: Their mask (batch, p), 1 on real tokens.
        position: Tokens seen so far.
    """

    weights: list[torch.Tensor]
    momentum: list[torch.Tensor]
    pending: torch.Tensor
    pending_mask: torch.Tensor
    position: int

    def detach(self) -> "NeuralMemoryState":
        """The same state cut from the autograd graph."""
        return NeuralMemoryState(
            [w.detach() for w in self.weights],
            [s.detach() for s in self.momentum],
            self.pending.detach(),
            self.pending_mask.detach(),
            self.position,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The state as named tensors (the form `save` writes)."""
        named = {f"weights.{i}": w for i, w in enumerate(self.weights)}
        named |= {f"momentum.{i}": s for i, s in enumerate(self.momentum)}
        named |= {"pending": self.pending, "pending_mask": self.pending_mask}
        return named | {"position": torch.tensor(self.position)}

    @classmethod
    def from_tensors(cls, named: dict[str, torch.Tensor]) -> "NeuralMemoryState":
        """Rebuild a state from `tensors()`."""
        depth = sum(name.startswith("weights.") for name in named)
        return cls(
            [named[f"weights.{i}"] for i in range(depth)],
            [named[f"momentum.{i}"] for i in range(depth)],
            named["pending"],
            named["pending_mask"],
            int(named["position"]),
        )

    def save(self, path: Path) -> None:
        """Write the state to a safetensors file."""
        save_file({name: t.detach().contiguous() for name, t in self.tensors().items()}, path)

    @classmethod
    def load(cls, path: Path) -> "NeuralMemoryState":
        """Read what `save` wrote."""
        return cls.from_tensors(load_file(path))


class MemoryOutput(NamedTuple):
    """What one call of the memory returns.

    Attributes:
        retrieved: The reads y_t of the call's tokens (batch, seq, heads * head_dim), fp32.
        state: The memory after the call.
        surprise: Per token, the memory loss || M_W(k_t) - v_t ||^2 at the weights its gradient is
            taken at, averaged over heads (batch, seq).
    """

    retrieved: torch.Tensor
    state: NeuralMemoryState
    surprise: torch.Tensor


class NeuralMemory(nn.Module):
    """Titans' neural long-term memory over a stream of input vectors.

    Args:
        dim: Width of the inputs.
        heads: Independent memories, each over its own slice of the projections.
        head_dim: Width of a head's keys, values and queries.
        depth: Layers of the memory MLP (at least 2: the paper's deep memory).
        expansion: Hidden width of the MLP, in multiples of `head_dim`.
        chunk_size: Tokens whose gradients share one chunk's starting weights.
        max_step_size: Upper bound of the effective step size theta_t / (1 - eta_t). A chunk's
            gradients all act at once, so larger chunks need smaller steps: 0.2 is the largest
            that stayed finite on random inputs with chunks of 16 for every step size and
            momentum the gates can produce; 0.5 diverged (measured for this module).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        head_dim: int = 64,
        depth: int = 2,
        expansion: int = 4,
        chunk_size: int = 16,
        max_step_size: float = 0.2,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"the memory MLP needs depth >= 2, got {depth}")
        self.heads, self.head_dim = heads, head_dim
        self.chunk_size, self.max_step_size = chunk_size, max_step_size
        self.to_queries = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_keys = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_values = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_step_size = nn.Linear(dim, heads)
        self.to_momentum = nn.Linear(dim, heads)
        self.to_decay = nn.Linear(dim, heads)
        widths = [head_dim] + [expansion * head_dim] * (depth - 1) + [head_dim]
        # The initial memory weights are parameters: the outer loss meta-learns them (as in TTT).
        self.initial_weights = nn.ParameterList(
            nn.Parameter(torch.randn(heads, d_in, d_out) / math.sqrt(d_in))
            for d_in, d_out in itertools.pairwise(widths)
        )
        with torch.no_grad():
            # Start with a long memory: momentum ~0.9, decay ~1e-3 per token (half-life ~700
            # tokens); docs/methods.md, titans.
            self.to_momentum.bias.fill_(2.2)
            self.to_decay.bias.fill_(-7.0)

    def initial_state(self, batch: int, device: torch.device | None = None) -> NeuralMemoryState:
        """A fresh memory: the learned initial weights, no momentum, nothing pending."""
        weights = [w.float().unsqueeze(0).expand(batch, -1, -1, -1) for w in self.initial_weights]
        if device is not None:
            weights = [w.to(device) for w in weights]
        device = weights[0].device
        return NeuralMemoryState(
            weights=weights,
            momentum=[torch.zeros_like(w) for w in weights],
            pending=torch.zeros(batch, 0, self.to_keys.in_features, device=device),
            pending_mask=torch.zeros(batch, 0, device=device),
            position=0,
        )

    def forward(
        self, x: torch.Tensor, state: NeuralMemoryState | None = None, mask: torch.Tensor | None = None
    ) -> MemoryOutput:
        """Read every token of `x`, then write it (reads never see their own chunk's writes).

        Args:
            x: Inputs (batch, seq, dim).
            state: Where the memory stands; a fresh memory when None.
            mask: (batch, seq), 1 on real tokens, 0 on padding (which writes nothing).

        Returns:
            The reads, the state after the call and each token's surprise.
        """
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.float(), state, mask)

    def _forward(
        self, x: torch.Tensor, state: NeuralMemoryState | None, mask: torch.Tensor | None
    ) -> MemoryOutput:
        batch, n, _ = x.shape
        state = state if state is not None else self.initial_state(batch, x.device)
        mask = torch.ones(batch, n, device=x.device) if mask is None else mask.float()
        seq = torch.cat([state.pending, x], dim=1)  # (batch, p + n, dim)
        seq_mask = torch.cat([state.pending_mask, mask], dim=1)  # (batch, p + n)
        p, total = state.pending.shape[1], seq.shape[1]

        # (batch, heads, total, head_dim)
        queries = F.normalize(F.silu(self._heads(self.to_queries(seq))), dim=-1)
        keys = F.normalize(F.silu(self._heads(self.to_keys(seq))), dim=-1)
        values = F.normalize(F.silu(self._heads(self.to_values(seq))), dim=-1)
        real = seq_mask.unsqueeze(1)  # (batch, 1, total)
        momentum_logits = self.to_momentum(seq).transpose(1, 2)  # (batch, heads, total)
        log_momentum = F.logsigmoid(momentum_logits) * real
        # theta_t = max * sigmoid(.) * (1 - eta_t): see the module docstring.
        step_size = self.max_step_size * torch.sigmoid(self.to_step_size(seq)).transpose(1, 2)
        step_size = step_size * torch.sigmoid(-momentum_logits) * real
        log_keep = F.logsigmoid(-self.to_decay(seq)).transpose(1, 2) * real  # log(1 - alpha)

        weights, momentum = state.weights, state.momentum
        reads, surprises = [], []
        complete = total - total % self.chunk_size
        for start in range(0, total, self.chunk_size):
            chunk = slice(start, min(start + self.chunk_size, total))
            reads.append(_mlp(weights, queries[:, :, chunk])[0])
            predicted, inputs, pre_activations = _mlp(weights, keys[:, :, chunk])
            error = predicted - values[:, :, chunk]  # (batch, heads, chunk, head_dim)
            surprises.append((error**2).sum(-1).mean(1))  # (batch, chunk)
            if chunk.stop <= complete:
                deltas = _output_gradients(weights, 2 * error, pre_activations)
                weights, momentum = _write(
                    weights,
                    momentum,
                    inputs,
                    deltas,
                    step_size[:, :, chunk],
                    log_momentum[:, :, chunk],
                    log_keep[:, :, chunk],
                    real[:, :, chunk],
                )
        retrieved = torch.cat(reads, dim=2)[:, :, p:]  # (batch, heads, n, head_dim)
        retrieved = retrieved.transpose(1, 2).reshape(batch, n, self.heads * self.head_dim)
        after = NeuralMemoryState(
            weights, momentum, seq[:, complete:], seq_mask[:, complete:], state.position + n
        )
        return MemoryOutput(retrieved, after, torch.cat(surprises, dim=1)[:, p:])

    def _heads(self, projected: torch.Tensor) -> torch.Tensor:
        """(batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim)."""
        batch, seq, _ = projected.shape
        return projected.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)


def _mlp(
    weights: list[torch.Tensor], z: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The residual memory MLP at `weights` on `z` (batch, heads, seq, head_dim).

    Returns:
        The output `z + mlp(z)`, each layer's input and each hidden pre-activation (for the
        closed-form gradients).
    """
    inputs, pre_activations = [], []
    hidden = z
    for i, weight in enumerate(weights):
        inputs.append(hidden)
        hidden = hidden @ weight  # (batch, heads, seq, d_out)
        if i < len(weights) - 1:
            pre_activations.append(hidden)
            hidden = F.gelu(hidden)
    return z + hidden, inputs, pre_activations


def _output_gradients(
    weights: list[torch.Tensor], delta: torch.Tensor, pre_activations: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Per token, d surprise / d (each layer's matmul output), by backpropagation in closed form.

    The gradient of token s's surprise for layer i's weight is `inputs[i][s]^T deltas[i][s]`.

    Args:
        weights: Per layer (batch, heads, d_in, d_out).
        delta: d surprise / d output, `2 * (M(k) - v)` (batch, heads, seq, head_dim).
        pre_activations: The hidden pre-activations of `_mlp`.
    """
    deltas = [delta]
    for i in range(len(weights) - 1, 0, -1):
        delta = (delta @ weights[i].transpose(-1, -2)) * _gelu_derivative(pre_activations[i - 1])
        deltas.append(delta)
    return deltas[::-1]


def _gelu_derivative(z: torch.Tensor) -> torch.Tensor:
    """d gelu(z) / dz for the exact (erf) GELU: Phi(z) + z * phi(z)."""
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return cdf + z * pdf


def _write(
    weights: list[torch.Tensor],
    momentum: list[torch.Tensor],
    inputs: list[torch.Tensor],
    deltas: list[torch.Tensor],
    step_size: torch.Tensor,
    log_momentum: torch.Tensor,
    log_keep: torch.Tensor,
    real: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run the momentum and decay recurrences over one chunk in closed form.

    With E_t = prod_{r<=t} eta_r and D_t = prod_{r<=t} (1 - alpha_r), over the chunk's b tokens:

        S_b = E_b S_0 - sum_s (E_b / E_s) theta_s g_s
        W_b = D_b W_0 + sum_t (D_b / D_t) m_t S_t
            = D_b W_0 + c S_0 - sum_s gamma_s theta_s g_s,
        c = sum_t (D_b / D_t) m_t E_t,  gamma_s = sum_{t>=s} (D_b / D_t) m_t (E_t / E_s),

    where m_t is 0 on padding (whose eta is 1, alpha and theta 0, so it changes nothing).

    Args:
        weights, momentum: Per layer (batch, heads, d_in, d_out), at the chunk's start.
        inputs, deltas: Per layer, the tokens' layer inputs (batch, heads, b, d_in) and output
            gradients (batch, heads, b, d_out); token s's gradient is their outer product.
        step_size, log_momentum, log_keep, real: theta_t, log eta_t, log(1 - alpha_t), m_t, each
            (batch, heads, b).
    """
    cum_momentum = log_momentum.cumsum(-1)  # log E_t
    cum_keep = log_keep.cumsum(-1)  # log D_t
    total_momentum, total_keep = cum_momentum[..., -1:], cum_keep[..., -1:]  # (batch, heads, 1)
    carried_from = total_keep - cum_keep + cum_momentum  # log((D_b / D_t) E_t), (batch, heads, b)
    # log((D_b / D_t) (E_t / E_s)) for s <= t, as a (t, s) matrix.
    pairs = carried_from.unsqueeze(-1) - cum_momentum.unsqueeze(-2)  # (batch, heads, b, b)
    causal = torch.ones(pairs.shape[-2:], dtype=torch.bool, device=pairs.device).tril()
    pairs = pairs.masked_fill(~causal, float("-inf")).exp() * real.unsqueeze(-1)
    gamma = pairs.sum(-2)  # (batch, heads, b)
    initial_momentum_share = (carried_from.exp() * real).sum(-1)  # c, (batch, heads)
    momentum_share = (total_momentum - cum_momentum).exp()  # E_b / E_s, (batch, heads, b)

    new_weights, new_momentum = [], []
    for weight, velocity, layer_input, delta in zip(weights, momentum, inputs, deltas, strict=True):
        new_weights.append(
            total_keep.exp().unsqueeze(-1) * weight
            + initial_momentum_share[..., None, None] * velocity
            - _weighted_gradient_sum(gamma * step_size, layer_input, delta)
        )
        new_momentum.append(
            total_momentum.exp().unsqueeze(-1) * velocity
            - _weighted_gradient_sum(momentum_share * step_size, layer_input, delta)
        )
    return new_weights, new_momentum


def _weighted_gradient_sum(
    coefficient: torch.Tensor, layer_input: torch.Tensor, delta: torch.Tensor
) -> torch.Tensor:
    """sum_s coefficient_s * x_s^T d_s without forming the per-token gradients.

    Args:
        coefficient: (batch, heads, b).
        layer_input: (batch, heads, b, d_in).
        delta: (batch, heads, b, d_out).

    Returns:
        (batch, heads, d_in, d_out).
    """
    return (layer_input * coefficient.unsqueeze(-1)).transpose(-1, -2) @ delta
