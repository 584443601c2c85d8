"""A lineage's hippocampus: an episodic store with surprise-gated, delayed writes (TRC²; docs/methods.md).

Each entry is one training row seen by the lineage: a key (the unit-norm mean hidden state of
the row at the model's injection layer), a value (its mean hidden state at a deeper layer), the
row itself (token ids and labels, for replay) and metadata: the job that wrote it, the store's
clock when it did, and its surprise (the row's mean token NLL then).

- **Delayed writes.** `stash` collects the rows a forward pass found surprising; they become
  visible only when `commit` runs after the optimizer step. A read during step t therefore
  never sees what step t wrote (the paper's causal memory update).
- **Surprise** comes from a slow critic of per-row NLL (running mean and variance): `surprise`
  returns the z-score of a row's NLL against it; the critic too learns only at `commit`.
- **Reads** (`read`) are exact top-k cosine searches over committed keys; the result is the
  softmax-weighted mean of the matching values.
- **Eviction** when full drops the entry of lowest priority `p = surprise * exp(-age / age_scale)`,
  never taking a job below `floor(job_quota * capacity / jobs)` entries.
- **Replay** (`sample`) draws rows of earlier jobs with probability proportional to `p ** beta`.

A row already in the store (same token ids) is refreshed in place rather than stored twice.
Every random choice is seeded by `(seed, key)`, so a resumed job replays what the uninterrupted
one did. Usable and testable without a trainer.
"""

import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

__all__ = ["Episode", "Hippocampus"]

STATE_FILE = "hippocampus.json"
TENSOR_FILE = "hippocampus.safetensors"
SLOW_DECAY = 0.999  # the critic's slow statistics (the design's mu_s decay; docs/methods.md, trc)


@dataclass(frozen=True)
class Episode:
    """One stored (or stashed) training row.

    Attributes:
        input_ids: Token ids of the rendered row.
        labels: Same length; -100 where the row carries no loss.
        job_id: The job that wrote the row.
        surprise: The row's mean token NLL when written (positive).
        key: (key_dim,) unit-norm retrieval key.
        value: (value_dim,) what a read returns for this row.
        step: The store's clock when the row was committed (set by `commit`).
    """

    input_ids: list[int]
    labels: list[int]
    job_id: str
    surprise: float
    key: torch.Tensor
    value: torch.Tensor
    step: int = 0

    @cached_property
    def sample_id(self) -> str:
        """Identifies the row by its token ids."""
        return hashlib.sha1(json.dumps(self.input_ids).encode()).hexdigest()


class Hippocampus:
    """Bounded episodic memory of a lineage with delayed writes, top-k reads and replay.

    Args:
        capacity: Most entries kept.
        key_dim: Size of a key.
        value_dim: Size of a value.
        job_quota: Share of a fair split (`capacity / jobs`) every job keeps at least.
        age_scale: Steps over which an entry's priority falls by a factor e.
        seed: Seeds replay draws.
    """

    def __init__(
        self,
        capacity: int,
        key_dim: int,
        value_dim: int,
        job_quota: float = 0.5,
        age_scale: float = 1000.0,
        seed: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.job_quota = job_quota
        self.age_scale = age_scale
        self.seed = seed
        self.clock = 0  # commits so far over the lineage's life
        self.episodes: list[Episode] = []
        self.jobs: list[str] = []  # every job that wrote, in order
        self.nll_mean: float | None = None  # the slow critic
        self.nll_var = 0.0
        self.keys = torch.zeros(0, key_dim)  # (entries, key_dim), committed only
        self.values = torch.zeros(0, value_dim)  # (entries, value_dim)
        self._pending: list[Episode] = []
        self._pending_nll: list[float] = []

    def __len__(self) -> int:
        return len(self.episodes)

    def surprise(self, nll: torch.Tensor) -> torch.Tensor:
        """Z-scores of per-row NLLs against the critic's committed statistics.

        Args:
            nll: (rows,) mean token NLL of each row.

        Returns:
            (rows,) surprise; +inf for every row before the critic has seen any.
        """
        if self.nll_mean is None:
            return torch.full_like(nll, math.inf)
        return (nll - self.nll_mean) / (math.sqrt(self.nll_var) + 1e-6)

    def stash(self, episodes: list[Episode], nll: list[float]) -> None:
        """Hold rows to write and NLLs for the critic until `commit`; reads do not see them.

        Args:
            episodes: Rows chosen for writing (keys unit-norm).
            nll: Every row's NLL the forward pass saw, written or not, for the critic.
        """
        self._pending += episodes
        self._pending_nll += nll

    def commit(self) -> None:
        """Apply the stashed writes and critic updates: call after the optimizer step."""
        self.clock += 1
        for value in self._pending_nll:
            if self.nll_mean is None:
                self.nll_mean = value
                continue
            self.nll_mean = SLOW_DECAY * self.nll_mean + (1 - SLOW_DECAY) * value
            self.nll_var = SLOW_DECAY * self.nll_var + (1 - SLOW_DECAY) * (value - self.nll_mean) ** 2
        for episode in self._pending:
            self._write(
                Episode(
                    episode.input_ids,
                    episode.labels,
                    episode.job_id,
                    episode.surprise,
                    episode.key,
                    episode.value,
                    self.clock,
                )
            )
        self._pending, self._pending_nll = [], []
        self.keys = torch.stack([e.key for e in self.episodes]) if self.episodes else self.keys[:0]
        self.values = torch.stack([e.value for e in self.episodes]) if self.episodes else self.values[:0]

    def read(self, queries: torch.Tensor, top_k: int, temperature: float) -> torch.Tensor:
        """Softmax-weighted mean of the values of the `top_k` committed keys nearest each query.

        Args:
            queries: (..., key_dim) unit-norm queries.
            top_k: Entries per query (fewer when fewer are stored).
            temperature: Softmax temperature over cosine similarities.

        Returns:
            (..., value_dim) readouts; zeros when the store is empty.
        """
        if not self.episodes:
            return queries.new_zeros(*queries.shape[:-1], self.value_dim)
        keys = self.keys.to(queries)  # (entries, key_dim)
        values = self.values.to(queries)  # (entries, value_dim)
        similarity = queries @ keys.T  # (..., entries)
        best, index = similarity.topk(min(top_k, len(self.episodes)), dim=-1)  # (..., k)
        weights = torch.softmax(best / temperature, dim=-1)  # (..., k)
        return (weights.unsqueeze(-1) * values[index]).sum(dim=-2)  # (..., value_dim)

    def priority(self, episode: Episode) -> float:
        """`surprise * exp(-age / age_scale)`: what eviction keeps and replay favours."""
        return episode.surprise * math.exp(-(self.clock - episode.step) / self.age_scale)

    def quota(self) -> int:
        """Fewest entries a job keeps once it has them: `floor(job_quota * capacity / jobs)`."""
        return math.floor(self.job_quota * self.capacity / max(1, len(self.jobs)))

    def sample(self, n: int, key: str, exclude_job: str | None = None, beta: float = 1.0) -> list[Episode]:
        """Draw up to `n` distinct rows with probability proportional to `priority ** beta`.

        Args:
            n: Rows wanted; fewer come back when fewer are eligible.
            key: Names the draw (e.g. job id and step); the same key gives the same rows.
            exclude_job: Leave this job's rows out (a job replays earlier jobs only).
            beta: Sharpness of the preference for high-priority rows; 0 samples uniformly.

        Returns:
            The rows (Efraimidis-Spirakis keys `u ** (1 / weight)`), highest key first.
        """
        eligible = [e for e in self.episodes if e.job_id != exclude_job]
        rng = random.Random(f"{self.seed}:sample:{key}")
        keys = [rng.random() ** (1.0 / max(self.priority(e) ** beta, 1e-12)) for e in eligible]
        ranked = sorted(range(len(eligible)), key=lambda i: keys[i], reverse=True)
        return [eligible[i] for i in ranked[:n]]

    def save(self, directory: Path) -> None:
        """Write the store to `directory` (metadata JSON and a safetensors file of keys and values)."""
        if self._pending:
            raise RuntimeError("stashed writes must be committed before the store is saved")
        state = {
            "capacity": self.capacity,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "job_quota": self.job_quota,
            "age_scale": self.age_scale,
            "seed": self.seed,
            "clock": self.clock,
            "jobs": self.jobs,
            "nll_mean": self.nll_mean,
            "nll_var": self.nll_var,
            "episodes": [
                {
                    "input_ids": e.input_ids,
                    "labels": e.labels,
                    "job_id": e.job_id,
                    "surprise": e.surprise,
                    "step": e.step,
                }
                for e in self.episodes
            ],
        }
        save_file(
            {"keys": self.keys.contiguous(), "values": self.values.contiguous()}, directory / TENSOR_FILE
        )
        (directory / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> "Hippocampus":
        """Read what `save` wrote; the store continues exactly where it was."""
        state = json.loads((directory / STATE_FILE).read_text())
        tensors = load_file(directory / TENSOR_FILE)
        store = cls(
            state["capacity"],
            state["key_dim"],
            state["value_dim"],
            state["job_quota"],
            state["age_scale"],
            state["seed"],
        )
        store.clock, store.jobs = state["clock"], list(state["jobs"])
        store.nll_mean, store.nll_var = state["nll_mean"], state["nll_var"]
        store.keys, store.values = tensors["keys"], tensors["values"]
        store.episodes = [
            Episode(key=key, value=value, **meta)
            for meta, key, value in zip(state["episodes"], store.keys, store.values, strict=True)
        ]
        return store

    def _write(self, episode: Episode) -> None:
        """Insert or refresh one entry, evicting the lowest-priority evictable entry when full."""
        if episode.job_id not in self.jobs:
            self.jobs.append(episode.job_id)
        ids = [e.sample_id for e in self.episodes]
        if episode.sample_id in ids:
            self.episodes[ids.index(episode.sample_id)] = episode
            return
        if len(self.episodes) < self.capacity:
            self.episodes.append(episode)
            return
        counts = Counter(e.job_id for e in self.episodes)
        quota = self.quota()
        evictable = [
            i for i, e in enumerate(self.episodes) if e.job_id == episode.job_id or counts[e.job_id] > quota
        ]
        victim = min(evictable, key=lambda i: self.priority(self.episodes[i]), default=None)
        if victim is None or self.priority(self.episodes[victim]) >= self.priority(episode):
            return
        self.episodes[victim] = episode
