"""Recall of taught facts: does greedy decoding from a fact's prompt give back its completion?

A fact counts as recalled when greedy continuation of its prompt starts with exactly the
completion's tokens. Greedy decoding produces those tokens if and only if, at every completion
position, the most likely next token given the prompt and the completion so far is the
completion's next token; so one teacher-forced forward pass per batch decides it, with the same
answer as token-by-token generation and a fraction of its cost.
"""

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

__all__ = ["greedy_matches", "recall", "recalled"]


def recalled(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    facts: Sequence[dict[str, str]],
) -> list[bool]:
    """Whether each fact's completion is the greedy continuation of its prompt.

    Args:
        model: A causal LM (e.g. base model with a PEFT adapter), in eval mode.
        tokenizer: The base model's tokenizer.
        facts: `{"prompt", "completion"}` rows, tokenized as training renders them.

    Returns:
        One flag per fact, in order.
    """
    prompts = [tokenizer(fact["prompt"])["input_ids"] for fact in facts]
    answers = [tokenizer(fact["completion"], add_special_tokens=False)["input_ids"] for fact in facts]
    return greedy_matches(model, prompts, answers)


@torch.no_grad()
def greedy_matches(
    model: nn.Module, prompts: Sequence[list[int]], answers: Sequence[list[int]], batch_size: int = 32
) -> list[bool]:
    """Whether greedy decoding after each prompt's token ids starts with its answer's token ids.

    Args:
        model: A causal LM in eval mode.
        prompts: Token ids of each prompt.
        answers: Token ids each continuation must start with (at least one each).
        batch_size: Prompts per forward pass.

    Returns:
        One flag per prompt, in order.
    """
    result: list[bool] = []
    for start in range(0, len(prompts), batch_size):
        pairs = list(
            zip(prompts[start : start + batch_size], answers[start : start + batch_size], strict=True)
        )
        width = max(len(prompt) + len(answer) for prompt, answer in pairs)
        input_ids = torch.zeros((len(pairs), width), dtype=torch.long)  # (rows, seq), right-padded
        attention_mask = torch.zeros((len(pairs), width), dtype=torch.long)  # (rows, seq)
        for row, (prompt, answer) in enumerate(pairs):
            input_ids[row, : len(prompt) + len(answer)] = torch.tensor(prompt + answer)
            attention_mask[row, : len(prompt) + len(answer)] = 1
        predicted = model(input_ids=input_ids, attention_mask=attention_mask).logits.argmax(-1)  # (rows, seq)
        for row, (prompt, answer) in enumerate(pairs):
            # The token at position t is predicted by the logits at t - 1.
            result.append(predicted[row, len(prompt) - 1 : len(prompt) + len(answer) - 1].tolist() == answer)
    return result


def recall(model: nn.Module, tokenizer: PreTrainedTokenizerBase, facts: Sequence[dict[str, str]]) -> float:
    """Share of `facts` recalled exactly (see `recalled`), in [0, 1]."""
    flags = recalled(model, tokenizer, facts)
    return sum(flags) / len(flags)
