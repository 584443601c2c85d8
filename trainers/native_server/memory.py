"""Per-request memory inside a batch, for versions that carry one (`trainers.servable.StatefulVersion`).

A titans memory (memory/neural_memory.py) keeps one state per batch row, so rows never write into
each other's memory: the batch starts from the rows' own states stacked along the batch dimension,
and each row's state is read back, sliced, the moment that row finishes (later decoding steps of
the others feed it padding, which would otherwise complete its pending chunk early).

Chunks are counted from the start of each call's input, so a row left-padded by a whole number of
chunks is cut into the same chunks as alone (padding writes nothing), and one padded otherwise is
not. Hence `batch_key`: rows share a batch only when that holds for all of them: fresh memories
whose prompt lengths agree modulo the chunk size, or carried states with the same unwritten tail
and prompts of the same length.
"""

from dataclasses import replace
from typing import Any

import torch

from memory.neural_memory import NeuralMemoryState
from trainers.native_server.decoding import Row
from trainers.servable import StatefulVersion

__all__ = ["RowMemory", "batch_key"]

States = dict[str, NeuralMemoryState]  # by decoder layer index, as `StatefulVersion.memory_state` gives


def batch_key(state: States | None, prompt_tokens: int, chunk_size: int) -> tuple[Any, ...]:
    """Rows whose keys are equal are cut into the same chunks in one batch as alone."""
    if state is None:
        return ("fresh", prompt_tokens % chunk_size)
    pending = next(iter(state.values())).pending.shape[1] if state else 0
    if pending == 0:
        return ("carried", 0, prompt_tokens % chunk_size)
    return ("carried", pending, prompt_tokens)


class RowMemory:
    """`decoding.MemoryHooks` for a `StatefulVersion` whose states are `NeuralMemoryState`s."""

    def __init__(self, version: StatefulVersion) -> None:
        self.version = version

    def start(self, rows: list[Row]) -> None:
        """Every row starts from its own memory: all fresh, or all carried (see `batch_key`)."""
        if all(row.memory is None for row in rows):
            self.version.start_memory(None)
            return
        states: list[States] = [row.memory for row in rows]
        self.version.start_memory({key: _stack([s[key] for s in states]) for key in states[0]})

    def row_state(self, rows: list[Row], index: int) -> States:
        """Row `index`'s memory after all its tokens but the last (the state it would have alone)."""
        row = rows[index]
        started = 0 if row.memory is None else next(iter(row.memory.values())).position
        seen = started + len(row.prompt) + max(len(row.tokens) - 1, 0)
        return {key: _row(state, index, seen) for key, state in self.version.memory_state().items()}


def _stack(states: list[NeuralMemoryState]) -> NeuralMemoryState:
    return NeuralMemoryState(
        weights=[torch.cat(layer) for layer in zip(*(s.weights for s in states), strict=True)],
        momentum=[torch.cat(layer) for layer in zip(*(s.momentum for s in states), strict=True)],
        pending=torch.cat([s.pending for s in states]),
        pending_mask=torch.cat([s.pending_mask for s in states]),
        position=0,  # each row's own position is restored when it is read back
    )


def _row(state: NeuralMemoryState, index: int, position: int) -> NeuralMemoryState:
    """One row of a batched state, copied (the batch's tensors are shared), padding dropped from
    its unwritten tail."""
    real = state.pending_mask[index] > 0
    return replace(
        state,
        weights=[w[index : index + 1].clone() for w in state.weights],
        momentum=[s[index : index + 1].clone() for s in state.momentum],
        pending=state.pending[index : index + 1, real].clone(),
        pending_mask=state.pending_mask[index : index + 1, real].clone(),
        position=position,
    )
