"""A lineage's replay buffer: a bounded sample of every row the lineage was trained on.

Reservoir sampling (Vitter's algorithm R) keeps each row seen so far with equal probability
`capacity / seen`, whatever the order and number of jobs. Two refinements:

- **Per-job quotas.** A replacement never takes the buffer's rows of a job below
  `floor(job_quota * capacity / jobs seen)`: a job with few rows after many large ones does not
  vanish from memory. The victim is then drawn among the rows of jobs above their quota.
- **Surprise priority** (`priority="surprise"`, after SuRe, Hazard et al., arXiv 2511.22367):
  the buffer keeps the rows with the highest surprise (the parent model's mean token NLL on
  them) and samples rows in proportion to it.

Rows are token ids plus labels (the trainer's rendering), and metadata: the job that trained
on them and their surprise. Every random choice is seeded by `(seed, what, counter)`, so the
same stream gives the same buffer and the same samples, also across a save/load (a resumed job).
Pure Python: usable and testable without a trainer.
"""

import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

__all__ = ["FILE_NAME", "ReplayBuffer", "ReplayItem"]

FILE_NAME = "replay.json"
Priority = Literal["uniform", "surprise"]


@dataclass(frozen=True)
class ReplayItem:
    """One stored training row.

    Attributes:
        input_ids: Token ids of the rendered row.
        labels: Same length; -100 where the row carries no loss.
        job_id: The fine-tuning job that trained on the row.
        surprise: The parent model's mean token NLL on the row (0 when not measured).
    """

    input_ids: list[int]
    labels: list[int]
    job_id: str
    surprise: float = 0.0


class ReplayBuffer:
    """Bounded memory of training rows with reservoir (or surprise) replacement.

    Args:
        capacity: Most rows kept.
        seed: Seeds every random choice of the buffer.
        job_quota: Share of a fair split (`capacity / jobs`) that each job keeps at least; 0 turns
            quotas off.
        priority: `"uniform"` (reservoir, uniform sampling) or `"surprise"` (keep and sample
            high-surprise rows more).
    """

    def __init__(self, capacity: int, seed: int = 0, job_quota: float = 0.5, priority: Priority = "uniform"):
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.seed = seed
        self.job_quota = job_quota
        self.priority = priority
        self.items: list[ReplayItem] = []
        self.seen_per_job: dict[str, int] = {}  # insertion-ordered: the lineage's jobs in order

    @property
    def seen(self) -> int:
        """Rows offered to the buffer so far, over all jobs."""
        return sum(self.seen_per_job.values())

    def __len__(self) -> int:
        return len(self.items)

    def quota(self) -> int:
        """Fewest rows a job keeps once it has them: `floor(job_quota * capacity / jobs)`."""
        return math.floor(self.job_quota * self.capacity / max(1, len(self.seen_per_job)))

    def add(self, item: ReplayItem) -> None:
        """Offer one row; it is kept or dropped by the buffer's policy."""
        self.seen_per_job[item.job_id] = self.seen_per_job.get(item.job_id, 0) + 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        rng = random.Random(f"{self.seed}:add:{self.seen}")
        counts = Counter(kept.job_id for kept in self.items)
        quota = self.quota()

        def evictable(index: int) -> bool:
            job = self.items[index].job_id
            return job == item.job_id or counts[job] > quota

        if self.priority == "surprise":
            candidates = [i for i in range(self.capacity) if evictable(i)]
            victim = min(candidates, key=lambda i: self.items[i].surprise, default=None)
            if victim is None or self.items[victim].surprise >= item.surprise:
                return
        else:
            victim = rng.randrange(self.seen)
            if victim >= self.capacity:
                return  # kept with probability capacity / seen
            if not evictable(victim):
                victim = rng.choice([i for i in range(self.capacity) if evictable(i)])
        self.items[victim] = item

    def sample(self, n: int, key: str, exclude_job: str | None = None) -> list[ReplayItem]:
        """Draw up to `n` distinct rows, the same ones for the same buffer and `key`.

        Args:
            n: Rows wanted; fewer come back when fewer are eligible.
            key: Names the draw (e.g. job id and step); seeds it together with the buffer's seed.
            exclude_job: Leave this job's rows out (the job being trained replays earlier jobs only).

        Returns:
            The rows, uniformly drawn without replacement, or in proportion to surprise
            (Efraimidis-Spirakis keys `u ** (1 / weight)`) in surprise mode.
        """
        eligible = [item for item in self.items if item.job_id != exclude_job]
        rng = random.Random(f"{self.seed}:sample:{key}")
        if self.priority == "uniform":
            return rng.sample(eligible, min(n, len(eligible)))
        keys = [rng.random() ** (1.0 / max(item.surprise, 1e-6)) for item in eligible]
        ranked = sorted(range(len(eligible)), key=lambda i: keys[i], reverse=True)
        return [eligible[i] for i in ranked[:n]]

    def save(self, directory: Path) -> None:
        """Write the buffer to `directory/replay.json` (written aside, then renamed)."""
        state = {
            "capacity": self.capacity,
            "seed": self.seed,
            "job_quota": self.job_quota,
            "priority": self.priority,
            "seen_per_job": self.seen_per_job,
            "items": [asdict(item) for item in self.items],
        }
        tmp = directory / f".{FILE_NAME}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.rename(directory / FILE_NAME)

    @classmethod
    def load(cls, directory: Path) -> "ReplayBuffer":
        """Read what `save` wrote; the buffer continues exactly where it was."""
        state = json.loads((directory / FILE_NAME).read_text())
        buffer = cls(state["capacity"], state["seed"], state["job_quota"], state["priority"])
        buffer.seen_per_job = dict(state["seen_per_job"])
        buffer.items = [ReplayItem(**item) for item in state["items"]]
        return buffer
