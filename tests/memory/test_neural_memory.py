"""The neural long-term memory: chunked updates against a token-by-token reference, causality,
streaming, padding, surprise, state save/restore."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from memory.neural_memory import NeuralMemory, NeuralMemoryState

DIM = 24


def _memory(chunk_size: int, depth: int = 2, seed: int = 0) -> NeuralMemory:
    torch.manual_seed(seed)
    memory = NeuralMemory(DIM, heads=2, head_dim=8, depth=depth, expansion=2, chunk_size=chunk_size)
    with torch.no_grad():  # a busier memory than at init, so every term of the update matters
        memory.to_momentum.bias.fill_(0.5)
        memory.to_decay.bias.fill_(-2.0)
    return memory


def _inputs(seq: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, seq, DIM, generator=torch.Generator().manual_seed(seed))


def _reference(memory: NeuralMemory, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The paper's recurrence, one token at a time, gradients by autograd at the chunk's start weights.

    Returns:
        The reads (batch, seq, heads * head_dim) and the final memory weights.
    """
    heads, head_dim = memory.heads, memory.head_dim

    def split(projected: torch.Tensor) -> torch.Tensor:  # (batch, dim') -> (batch, heads, head_dim)
        return projected.view(x.shape[0], heads, head_dim)

    def mlp(weights: list[torch.Tensor], z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """M(z) for z (batch, heads, head_dim), and each layer's input."""
        hidden, inputs = z, []
        for i, weight in enumerate(weights):
            inputs.append(hidden)
            hidden = torch.einsum("bhi,bhio->bho", hidden, weight)
            hidden = F.gelu(hidden) if i < len(weights) - 1 else hidden
        return z + hidden, inputs

    weights = [w.detach().unsqueeze(0).expand(x.shape[0], -1, -1, -1).clone() for w in memory.initial_weights]
    momentum = [torch.zeros_like(w) for w in weights]
    reads = []
    for t in range(x.shape[1]):
        x_t = x[:, t]  # (batch, dim)
        if t % memory.chunk_size == 0:
            chunk_start = [w.clone().requires_grad_(True) for w in weights]
        query = F.normalize(F.silu(split(memory.to_queries(x_t))), dim=-1)
        key = F.normalize(F.silu(split(memory.to_keys(x_t))), dim=-1)
        value = F.normalize(F.silu(split(memory.to_values(x_t))), dim=-1)
        eta = torch.sigmoid(memory.to_momentum(x_t))[..., None, None]  # (batch, heads, 1, 1)
        theta = memory.max_step_size * torch.sigmoid(memory.to_step_size(x_t))[..., None, None] * (1 - eta)
        theta = theta / memory.chunk_size  # the chunk's loss is its tokens' mean surprise
        alpha = torch.sigmoid(memory.to_decay(x_t))[..., None, None]
        reads.append(mlp(chunk_start, query)[0].reshape(x.shape[0], -1).detach())
        # Summed over (batch, head), each with its own weights: the per-head gradients.
        recalled, inputs = mlp(chunk_start, key)
        gradients = torch.autograd.grad(((recalled - value) ** 2).sum(), chunk_start)
        # Normalised LMS: a layer's gradient over its input's squared norm, when above 1.
        gradients = tuple(
            g / (z.detach() ** 2).sum(-1).clamp(min=1)[..., None, None]
            for g, z in zip(gradients, inputs, strict=True)
        )
        momentum = [eta * s - theta * g for s, g in zip(momentum, gradients, strict=True)]
        weights = [(1 - alpha) * w + s for w, s in zip(weights, momentum, strict=True)]
    return torch.stack(reads, dim=1), [w.detach() for w in weights]


@pytest.mark.parametrize(("chunk_size", "depth"), [(1, 2), (4, 2), (8, 3)])
def test_chunked_update_equals_the_token_by_token_reference(chunk_size: int, depth: int) -> None:
    memory = _memory(chunk_size, depth)
    x = _inputs(16)
    with torch.no_grad():
        out = memory(x)
    reads, weights = _reference(memory, x)
    torch.testing.assert_close(out.retrieved, reads, rtol=1e-4, atol=1e-5)
    for chunked, token_by_token in zip(out.state.weights, weights, strict=True):
        torch.testing.assert_close(chunked, token_by_token, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out.state.weights[0], memory.initial_weights[0].expand_as(weights[0]))


def test_no_read_sees_a_write_from_its_own_future() -> None:
    memory = _memory(chunk_size=4)
    x = _inputs(12, batch=1)
    with torch.no_grad():
        reads = memory(x).retrieved
        for j in range(12):
            changed = x.clone()
            changed[:, j] += 3.0
            other = memory(changed).retrieved
            assert torch.equal(other[:, :j], reads[:, :j]), f"a read before {j} saw the change at {j}"
            assert not torch.equal(other[:, j:], reads[:, j:])  # the changed token itself reads its query


def test_writes_reach_reads_of_later_chunks_only() -> None:
    memory = _memory(chunk_size=4)
    x = _inputs(12, batch=1).requires_grad_(True)
    reads = memory(x).retrieved  # (1, 12, 16)
    (gradient,) = torch.autograd.grad(reads[0, 5].sum(), x)  # position 5 is in the chunk 4..7
    touched = gradient[0].abs().sum(-1) > 0  # (12,)
    assert touched.tolist() == [True] * 4 + [False, True] + [False] * 6


def test_a_stream_fed_in_pieces_equals_one_call() -> None:
    memory = _memory(chunk_size=4)
    x = _inputs(19)
    with torch.no_grad():
        whole = memory(x)
        state, reads, surprises = None, [], []
        for piece in torch.split(x, [3, 1, 6, 2, 7], dim=1):
            out = memory(piece, state)
            state = out.state
            reads.append(out.retrieved)
            surprises.append(out.surprise)
    assert state is not None
    torch.testing.assert_close(torch.cat(reads, dim=1), whole.retrieved)
    torch.testing.assert_close(torch.cat(surprises, dim=1), whole.surprise)
    for piecewise, at_once in zip(state.weights, whole.state.weights, strict=True):
        torch.testing.assert_close(piecewise, at_once)
    assert state.pending.shape[1] == 19 % 4 and state.position == 19


def test_surprise_falls_when_the_same_content_is_written_twice() -> None:
    torch.manual_seed(0)
    memory = NeuralMemory(DIM, heads=2, head_dim=8, depth=2, expansion=2, chunk_size=4)
    x = _inputs(16)
    with torch.no_grad():
        memory.to_step_size.bias.fill_(4.0)  # write at (almost) the largest step
        first = memory(x)
        second = memory(x, first.state)
    assert second.surprise.mean() < 0.6 * first.surprise.mean()


def test_padding_writes_nothing() -> None:
    memory = _memory(chunk_size=4)
    with torch.no_grad():
        state = memory(_inputs(8)).state
        padded = memory(_inputs(8, seed=2), state, mask=torch.zeros(2, 8)).state
    for before, after in zip(state.weights + state.momentum, padded.weights + padded.momentum, strict=True):
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_state_save_and_load_round_trips(tmp_path: Path) -> None:
    memory = _memory(chunk_size=4)
    x, more = _inputs(10), _inputs(9, seed=3)
    with torch.no_grad():
        state = memory(x).state
        state.save(tmp_path / "state.safetensors")
        restored = NeuralMemoryState.load(tmp_path / "state.safetensors")
        expected, got = memory(more, state), memory(more, restored)
    assert restored.position == 10 and restored.pending.shape == (2, 2, DIM)
    assert torch.equal(got.retrieved, expected.retrieved)
    for a, b in zip(got.state.weights, expected.state.weights, strict=True):
        assert torch.equal(a, b)


def test_runs_in_fp32_whatever_the_input_dtype() -> None:
    memory = _memory(chunk_size=4)
    x = _inputs(8).to(torch.bfloat16)
    with torch.no_grad():
        low, full = memory(x), memory(x.float())
    assert low.retrieved.dtype == torch.float32
    assert torch.equal(low.retrieved, full.retrieved)


@pytest.mark.parametrize("spread", [1.0, 0.05])
def test_writes_stay_finite_at_the_largest_step_the_gates_allow(spread: float) -> None:
    # Gates saturated at the largest step and a long momentum, over random keys (spread 1) and
    # near-identical ones (spread 0.05, like a trained model's hidden states): summed chunk
    # gradients without normalisation went to NaN here.
    torch.manual_seed(0)
    memory = NeuralMemory(DIM, heads=2, head_dim=8, depth=2, expansion=4, chunk_size=16)
    with torch.no_grad():
        memory.to_step_size.bias.fill_(10.0)
        memory.to_momentum.bias.fill_(3.0)
        x = _inputs(1, batch=1) + spread * _inputs(1024, batch=1, seed=2)
        out = memory(x)
    assert all(torch.isfinite(w).all() and w.norm() < 100 for w in out.state.weights)
    assert torch.isfinite(out.retrieved).all()
