"""Online EWC's memory of a lineage: the parameters to stay near and how firmly to hold each one.

Elastic weight consolidation (Kirkpatrick et al., arXiv 1612.00796) keeps a job's loss from
undoing earlier jobs with the penalty `1/2 sum_i F_i (theta_i - theta*_i)^2`, where theta* are
the parameters the earlier jobs ended with and F a diagonal Fisher information. Its online form
(Schwarz et al., *Progress & Compress*, arXiv 1805.06370) keeps one anchor and one Fisher for the
whole lineage: after each job the anchor becomes the job's end parameters and

    F <- fisher_decay * F + F_job,

so memory and penalty cost stay constant however many jobs the lineage has. Tensors only, keyed
by parameter name: usable and testable without a trainer.
"""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

__all__ = ["FILE_NAME", "ParameterAnchor"]

FILE_NAME = "ewc.safetensors"  # `anchor/<name>` and `fisher/<name>` tensors


class ParameterAnchor:
    """The anchor parameters theta* and their accumulated diagonal Fisher F, by parameter name.

    Attributes:
        anchor: theta*, one tensor per parameter.
        fisher: F, shaped as `anchor`; zeros until a job has been folded in.
    """

    def __init__(self, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor]) -> None:
        self.anchor = anchor
        self.fisher = fisher

    @classmethod
    def fresh(cls, parameters: dict[str, torch.Tensor]) -> "ParameterAnchor":
        """The anchor of a lineage's first job: its starting parameters, held by nothing (F = 0)."""
        anchor = {name: p.detach().clone() for name, p in parameters.items()}
        return cls(anchor, {name: torch.zeros_like(p) for name, p in anchor.items()})

    def penalty(self, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        """`sum_i F_i (theta_i - theta*_i)^2` over the anchored parameters (differentiable).

        Args:
            parameters: At least the anchored names; their current values, with gradient.

        Returns:
            A scalar; zero at the anchor.
        """
        terms = [
            (self.fisher[name] * (parameters[name] - anchor) ** 2).sum()
            for name, anchor in self.anchor.items()
        ]
        return torch.stack(terms).sum()

    def consolidated(
        self, parameters: dict[str, torch.Tensor], job_fisher: dict[str, torch.Tensor], decay: float
    ) -> "ParameterAnchor":
        """The anchor for the next job: `parameters` as they end this one, `F = decay * F + job_fisher`."""
        return ParameterAnchor(
            {name: parameters[name].detach().clone() for name in self.anchor},
            {name: decay * fisher + job_fisher[name] for name, fisher in self.fisher.items()},
        )

    def to(self, device: torch.device) -> "ParameterAnchor":
        """The same anchor on `device` (itself when it is there already)."""
        if next(iter(self.anchor.values())).device == device:
            return self
        return ParameterAnchor(
            {name: t.to(device) for name, t in self.anchor.items()},
            {name: t.to(device) for name, t in self.fisher.items()},
        )

    def save(self, directory: Path) -> None:
        """Write `directory/ewc.safetensors` (exact: a load gives the same tensors)."""
        tensors = {f"anchor/{name}": t for name, t in self.anchor.items()}
        tensors |= {f"fisher/{name}": t for name, t in self.fisher.items()}
        save_file({name: t.detach().contiguous().cpu() for name, t in tensors.items()}, directory / FILE_NAME)

    @classmethod
    def load(cls, directory: Path) -> "ParameterAnchor":
        """Read what `save` wrote (on the CPU)."""
        tensors = load_file(directory / FILE_NAME)
        part = {
            kind: {
                name.removeprefix(f"{kind}/"): t for name, t in tensors.items() if name.startswith(f"{kind}/")
            }
            for kind in ("anchor", "fisher")
        }
        return cls(part["anchor"], part["fisher"])
