"""Configuration of LoRA with experience replay. Torch-free."""

from dataclasses import dataclass

from trainers.methods.checks import MethodConfigError, check_float, check_int
from trainers.methods.lora.config import LoraConfig

__all__ = ["ReplayConfig"]


@dataclass(frozen=True)
class ReplayConfig(LoraConfig):
    """LoRA's fields, plus the lineage's replay buffer and how much of it each batch replays.

    Attributes:
        replay_ratio: Replayed rows added to each batch, as a share of the batch size (jobs after
            the first; the first has nothing to replay).
        buffer_size: Most rows the lineage's buffer keeps.
        job_quota: Every earlier job keeps at least this share of a fair split of the buffer.
        priority: `"uniform"` reservoir, or `"surprise"`: keep and replay high-loss rows more.
        distill_weight: Weight of KL(parent || model) on the replayed rows' loss tokens, the parent
            being the adapter as the job started (LwF / DER++ style); 0 turns it off.
    """

    # Experience replay for LLMs mixes a fixed share of old rows into each batch: LLMCL's ER
    # concatenates an equal-size buffer batch (1.0), TRACE replays 10% of each past task; 0.5
    # is between them and keeps a step's cost at 1.5 batches.
    replay_ratio: float = 0.5
    # LLMCL: 500 (I-LoRA) and 1000 (ER) rows.
    buffer_size: int = 1000
    job_quota: float = 0.5
    priority: str = "uniform"
    # Off by default: plain experience replay is the baseline; `trc`'s lambda_0 is 0.5, DER++
    # (Buzzega et al., arXiv 2004.07211) weighs its logit term alpha in 0.1-1.0 (docs/methods.md).
    distill_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("replay_ratio", self.replay_ratio, 0.0, 4.0)
        check_float("distill_weight", self.distill_weight, 0.0, 1e3)
        check_int("buffer_size", self.buffer_size, 1, 1_000_000)
        check_float("job_quota", self.job_quota, 0.0, 1.0)
        if self.priority not in ("uniform", "surprise"):
            raise MethodConfigError("priority", f'must be "uniform" or "surprise", got {self.priority!r}')
