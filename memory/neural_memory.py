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

Two normalisations keep a write's gain bounded whatever the inputs (both are ours; the paper sums
raw gradients). A chunk's loss is the mean, not the sum, of its tokens' surprise, as in mini-batch
gradient descent: summed, b near-identical keys (as a trained model's hidden states often are)
act as one write b times too large. And each token's gradient on a layer is divided by its
input's squared norm when above 1 (normalised LMS): a layer's curvature grows with its input, and
the hidden layer's input grows with the weights. Without them, one 40-step job on
SmolLM2-135M-Instruct left a memory that went to NaN within 96 tokens (docs/methods.md, titans).

Chunked parallel form (the paper's mini-batch gradient descent, as in TTT): the sequence is cut
into chunks of `chunk_size` tokens; every gradient of a chunk is taken at the weights W_c the
chunk starts from, so all of them come from one batched forward and backward pass (closed form:
each per-token weight gradient is an outer product, and only their weighted sums are formed).
The momentum and decay recurrences inside a chunk are linear, so they are solved in closed form
by cumulative products (a (chunk, chunk) matrix per head), for all chunks at once before any is
written, and the chunk's end weights and momentum are exact. What stays sequential is one step
per chunk: its queries and keys through the MLP together, the keys' gradients, and one matrix
product per layer that writes them into weights and momentum side by side.
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
        max_step_size: Upper bound of the effective step size theta_t / (1 - eta_t) of a
            token's normalised write (module docstring). With the default shape, chunks of 16
            and gates held at their largest step and momentum, 1.0 stayed finite over 1024
            tokens of random and of near-identical inputs and 2.0 diverged on the latter; the
            default keeps half of that margin (measured for this module).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        head_dim: int = 64,
        depth: int = 2,
        expansion: int = 4,
        chunk_size: int = 16,
        max_step_size: float = 0.5,
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
        p, total, size = state.pending.shape[1], seq.shape[1], self.chunk_size
        complete = total - total % size  # tokens in whole chunks: these are written

        # Batch and heads share the leading dimension from here on: (batch * heads, total, ...).
        queries, keys, values = (self._heads(f(seq)) for f in (self.to_queries, self.to_keys, self.to_values))
        real = seq_mask.repeat_interleave(self.heads, dim=0)  # (batch * heads, total)
        momentum_logits = self._per_head(self.to_momentum(seq))
        log_momentum = F.logsigmoid(momentum_logits) * real
        # theta_t = max * sigmoid(.) * (1 - eta_t): see the module docstring.
        step_size = self.max_step_size * torch.sigmoid(self._per_head(self.to_step_size(seq)))
        step_size = step_size * torch.sigmoid(-momentum_logits) * real
        log_keep = F.logsigmoid(-self._per_head(self.to_decay(seq))) * real  # log(1 - alpha)
        gates = (step_size, log_momentum, log_keep, real)
        keep, carry, gradient_factors = _chunk_coefficients(
            *(gate[:, :complete].unflatten(1, (-1, size)) for gate in gates)
        )

        # Per layer, weights and momentum side by side, [W | S] (batch * heads, d_in, 2 d_out).
        pairs = zip(state.weights, state.momentum, strict=True)
        memory = [torch.cat(pair, dim=-1).flatten(0, 1) for pair in pairs]
        # A chunk's queries and keys read the same weights, so they go through the MLP together.
        both = torch.stack([t[:, :complete].unflatten(1, (-1, size)) for t in (queries, keys)], dim=2)
        both = both.flatten(2, 3)  # (batch * heads, chunks, 2 size, head_dim): queries, then keys
        outputs = []  # per chunk, mlp(q) and mlp(k) at the weights the chunk starts from
        for c in range(complete // size):
            inputs, pre_activations, output = _mlp(memory, both[:, c])
            outputs.append(output)
            chunk = slice(c * size, (c + 1) * size)
            # Backpropagate the keys' surprise: d_i = d surprise / d (layer i's output) / 2.
            deltas = [output[:, size:] + keys[:, chunk] - values[:, chunk]]  # M(k) - v
            for i in range(len(memory) - 1, 0, -1):
                back = deltas[0] @ _weights(memory[i]).transpose(-1, -2)
                deltas.insert(0, torch.ops.aten.gelu_backward(back, pre_activations[i - 1][:, size:]))
            memory = [
                _write(layer, layer_input[:, size:], delta, keep[:, c], carry[:, c], gradient_factors[:, c])
                for layer, layer_input, delta in zip(memory, inputs, deltas, strict=True)
            ]
        if complete < total:  # the unwritten tail reads the weights the whole chunks left
            outputs.append(_mlp(memory, torch.cat([queries[:, complete:], keys[:, complete:]], dim=1))[2])
        halves = [output.chunk(2, dim=1) for output in outputs]
        retrieved = queries + torch.cat([read for read, _ in halves], dim=1)  # M(q)
        error = keys + torch.cat([key for _, key in halves], dim=1) - values  # M(k) - v
        retrieved = retrieved.unflatten(0, (batch, self.heads))[:, :, p:].transpose(1, 2).flatten(2)
        surprise = (error**2).sum(-1).unflatten(0, (batch, self.heads)).mean(1)[:, p:]
        split = [layer.unflatten(0, (batch, self.heads)).chunk(2, dim=-1) for layer in memory]
        weights, momentum = [w for w, _ in split], [s for _, s in split]
        tail, tail_mask = seq[:, complete:], seq_mask[:, complete:]
        after = NeuralMemoryState(weights, momentum, tail, tail_mask, state.position + n)
        return MemoryOutput(retrieved, after, surprise)

    def _heads(self, projected: torch.Tensor) -> torch.Tensor:
        """SiLU, l2-normalised per head: (batch, seq, heads * head_dim) -> (batch * heads, seq, head_dim)."""
        batch, seq, _ = projected.shape
        per_head = F.normalize(F.silu(projected.view(batch, seq, self.heads, self.head_dim)), dim=-1)
        return per_head.transpose(1, 2).flatten(0, 1)

    def _per_head(self, gate: torch.Tensor) -> torch.Tensor:
        """(batch, seq, heads) -> (batch * heads, seq)."""
        return gate.transpose(1, 2).flatten(0, 1)


def _weights(layer: torch.Tensor) -> torch.Tensor:
    """W of a layer's [W | S] (a view)."""
    return layer[..., : layer.shape[-1] // 2]


def _mlp(
    memory: list[torch.Tensor], z: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """The memory MLP without its residual, mlp(z), at the weights of `memory` ([W | S] per layer).

    Returns:
        Each layer's input, each hidden pre-activation (for the closed-form gradients) and mlp(z).
    """
    inputs, pre_activations = [], []
    hidden = z
    for i, layer in enumerate(memory):
        inputs.append(hidden)
        hidden = hidden @ _weights(layer)  # (batch * heads, rows, d_out)
        if i < len(memory) - 1:
            pre_activations.append(hidden)
            hidden = F.gelu(hidden)
    return inputs, pre_activations, hidden


def _chunk_coefficients(
    step_size: torch.Tensor, log_momentum: torch.Tensor, log_keep: torch.Tensor, real: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The momentum and decay recurrences of every chunk, solved in closed form all at once.

    Inside a chunk of b tokens the recurrences are linear. With E_t = prod_{r<=t} eta_r and
    D_t = prod_{r<=t} (1 - alpha_r), a chunk takes the weights and momentum (W_0, S_0) to

        S_b = E_b S_0 - sum_s (E_b / E_s) theta_s g_s
        W_b = D_b W_0 + sum_t (D_b / D_t) m_t S_t
            = D_b W_0 + c S_0 - sum_s gamma_s theta_s g_s,
        c = sum_t (D_b / D_t) m_t E_t,  gamma_s = sum_{t>=s} (D_b / D_t) m_t (E_t / E_s),

    where m_t is 0 on padding (whose eta is 1, alpha and theta 0, so it changes nothing). Every
    ratio is a product over a range of tokens, taken as the exponential of a difference of
    cumulative log sums that is never positive: nothing is divided by a small product and
    nothing overflows. gamma sums a masked (b, b) matrix of such products over t.

    Args:
        step_size, log_momentum, log_keep, real: theta_t, log eta_t, log(1 - alpha_t) and m_t,
            each (batch * heads, chunks, b).

    Returns:
        Per chunk (D_b, E_b) (batch * heads, chunks, 2) and c (batch * heads, chunks); per token
        the factors of x_s^T d_s in W_b and S_b, (-2 gamma_s theta_s, -2 (E_b / E_s) theta_s)
        (batch * heads, chunks, b, 2), where g_s = 2 x_s^T d_s for each layer (`_write`).
    """
    # The chunk's loss is the mean of its tokens' surprise, as in mini-batch gradient descent.
    step_size = step_size / real.sum(-1, keepdim=True).clamp(min=1)
    cum_momentum = log_momentum.cumsum(-1)  # log E_t
    cum_keep = log_keep.cumsum(-1)  # log D_t
    total_momentum, total_keep = cum_momentum[..., -1:], cum_keep[..., -1:]
    carried_from = total_keep - cum_keep + cum_momentum  # log((D_b / D_t) E_t)
    # log((D_b / D_t) (E_t / E_s)) for s <= t, as a (t, s) matrix.
    pairs = carried_from.unsqueeze(-1) - cum_momentum.unsqueeze(-2)
    causal = torch.ones(pairs.shape[-2:], dtype=torch.bool, device=pairs.device).tril()
    pairs = pairs.masked_fill(~causal, -math.inf).exp() * real.unsqueeze(-1)
    gamma = pairs.sum(-2)
    momentum_carried = (total_momentum - cum_momentum).exp()  # E_b / E_s
    carry = (carried_from.exp() * real).sum(-1)
    keep = torch.cat([total_keep, total_momentum], dim=-1).exp()
    gradient_factors = -2 * step_size.unsqueeze(-1) * torch.stack([gamma, momentum_carried], dim=-1)
    return keep, carry, gradient_factors


def _write(
    layer: torch.Tensor,
    layer_input: torch.Tensor,
    delta: torch.Tensor,
    keep: torch.Tensor,
    carry: torch.Tensor,
    gradient_factors: torch.Tensor,
) -> torch.Tensor:
    """A layer's [W | S] after a chunk (`_chunk_coefficients`), without forming per-token gradients.

    [W_b | S_b] = [D_b W_0 + c S_0 | E_b S_0] + x^T [f_W d | f_S d]: one matrix product writes the
    chunk's gradients into both. Without autograd the update runs in place.

    Args:
        layer: [W_0 | S_0] (batch * heads, d_in, 2 d_out).
        layer_input, delta: The layer's inputs x_s (batch * heads, b, d_in) and half its output
            gradients d_s (batch * heads, b, d_out) for the chunk's keys.
        keep, carry, gradient_factors: The chunk's (D_b, E_b) (batch * heads, 2), c
            (batch * heads,) and (f_W, f_S) per token (batch * heads, b, 2).
    """
    weights, momentum = layer.chunk(2, dim=-1)
    # Normalised LMS: each token's step on this layer is divided by its input's squared norm (when
    # above 1), the curvature of its surprise in this layer's weights.
    delta = delta / layer_input.pow(2).sum(-1, keepdim=True).clamp(min=1)
    gradients = (delta.unsqueeze(-2) * gradient_factors.unsqueeze(-1)).flatten(-2)  # [f_W d | f_S d]
    if torch.is_grad_enabled():  # autograd keeps `layer` for the backward pass: write a new one
        decayed_weights = torch.addcmul(weights * keep[:, :1, None], momentum, carry[:, None, None])
        decayed = torch.cat([decayed_weights, momentum * keep[:, 1:, None]], dim=-1)
        return torch.baddbmm(decayed, layer_input.transpose(-1, -2), gradients)
    weights.mul_(keep[:, :1, None]).addcmul_(momentum, carry[:, None, None])
    momentum.mul_(keep[:, 1:, None])
    return layer.baddbmm_(layer_input.transpose(-1, -2), gradients)
