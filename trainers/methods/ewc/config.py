"""Configuration of LoRA with online EWC (Kirkpatrick et al., arXiv 1612.00796; Schwarz et al.,
arXiv 1805.06370). Torch-free."""

from dataclasses import dataclass

from trainers.methods.checks import check_float, check_int
from trainers.methods.lora.config import LoraConfig

__all__ = ["EwcConfig"]


@dataclass(frozen=True)
class EwcConfig(LoraConfig):
    """LoRA's fields, plus the penalty that holds the adapter near the parent's.

    Attributes:
        ewc_weight: lambda in `lambda / 2 * sum_i F_i (theta_i - theta*_i)^2`, F being the
            lineage's per-token Fisher; 0 makes the method plain sequential LoRA.
        fisher_decay: gamma in `F <- gamma * F + F_job` after each job; 1.0 sums every job's.
        fisher_rows: Rows of a job (drawn by its seed) whose gradients estimate its Fisher.
    """

    # F is the per-token empirical Fisher, so `1/2 sum_i F_i (theta_i - theta*_i)^2` is the
    # quadratic (Laplace) estimate of how much the earlier jobs' mean token loss rises; weight 1
    # counts that rise as much as the new job's own loss: the Bayesian weight for jobs of equal
    # size (Huszar, PNAS 2018). A larger weight trades more plasticity for stability
    # (docs/methods.md, ewc).
    ewc_weight: float = 1.0
    # Schwarz et al.'s gamma < 1 forgets old Fisher; 1.0 is Kirkpatrick's sum over every job.
    fisher_decay: float = 1.0
    # 64 rows in batches of 4: 16 backward passes at the job's end, about 8% of the rows a
    # 100-step job of batch 8 trains on.
    fisher_rows: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("ewc_weight", self.ewc_weight, 0.0, 1e9)
        check_float("fisher_decay", self.fisher_decay, 0.0, 1.0)
        check_int("fisher_rows", self.fisher_rows, 1, 100_000)
