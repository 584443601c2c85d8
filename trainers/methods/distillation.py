"""Distillation towards a frozen copy of a method's own weights: the teacher's logits and the KL.

Used on replayed rows by `replay` (`distill_weight`, LwF / DER++ style) and by `trc`: the teacher
is the model as the job started (the parent version), kept as a set of tensors shaped like the
trainable ones and swapped in for one forward pass without gradient.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["distillation_loss", "teacher_logits"]


@torch.no_grad()
def teacher_logits(
    model: nn.Module, teacher: dict[str, torch.Tensor], input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Logits of `model` with the `teacher` tensors in place of its own (the rest unchanged), no gradient.

    Args:
        model: The unwrapped model being trained.
        teacher: Tensors keyed by `model.named_parameters()` names (a subset of them).
        input_ids: (rows, seq).
        attention_mask: (rows, seq).

    Returns:
        (rows, seq, vocab).
    """
    outputs = torch.func.functional_call(
        model,
        teacher,
        args=(),
        kwargs={"input_ids": input_ids, "attention_mask": attention_mask},
        strict=False,
    )
    return outputs.logits


def distillation_loss(
    logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean KL(teacher || student) of the next-token distributions at the rows' loss positions.

    Args:
        logits: (rows, seq, vocab), with gradient.
        teacher_logits: (rows, seq, vocab), a constant target.
        labels: (rows, seq); -100 where a row carries no loss (position t predicts label t + 1).

    Returns:
        A scalar; zero when student and teacher agree.
    """
    positions = labels[:, 1:] != -100  # (rows, seq - 1)
    student = F.log_softmax(logits[:, :-1][positions], dim=-1)  # (tokens, vocab)
    teacher = F.log_softmax(teacher_logits[:, :-1][positions].detach(), dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")
