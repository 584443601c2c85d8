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


MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a forward pass of their own


@torch.no_grad()
def greedy_matches(
    model: nn.Module,
    prompts: Sequence[list[int]],
    answers: Sequence[list[int]],
    batch_size: int = 32,
    shared_prefix: bool = False,
) -> list[bool]:
    """Whether greedy decoding after each prompt's token ids starts with its answer's token ids.

    Args:
        model: A causal LM in eval mode.
        prompts: Token ids of each prompt.
        answers: Token ids each continuation must start with (at least one each).
        batch_size: Prompts per forward pass.
        shared_prefix: Run the tokens every prompt of a batch starts with (a chat template's
            system prompt, say) once, and the rest of each row on its key-value cache. Only for
            models whose output at a position depends on earlier tokens through attention alone
            (a transformers model, with or without a PEFT adapter): the predictions are the same.

    Returns:
        One flag per prompt, in order.
    """
    # Batches of similar lengths carry little padding; the flags go back to the callers' order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(answers[i]))
    result: dict[int, bool] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        pairs = [(prompts[i], answers[i]) for i in chunk]
        prefix = _common_prefix([prompt for prompt, _ in pairs]) if shared_prefix else 0
        if prefix < MIN_SHARED_PREFIX:
            prefix = 0
        rows = [prompt[prefix:] + answer for prompt, answer in pairs]
        width = max(map(len, rows))
        input_ids = torch.zeros((len(rows), width), dtype=torch.long)  # (rows, seq), right-padded
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (rows, seq)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        if prefix:
            cache = model(input_ids=torch.tensor([pairs[0][0][:prefix]]), use_cache=True).cache
            cache.batch_repeat_interleave(len(rows))  # the prefix's keys and values, once per row
            attention_mask = torch.cat(
                [torch.ones((len(rows), prefix), dtype=torch.long), attention_mask], dim=1
            )
            logits = model(input_ids=input_ids, attention_mask=attention_mask, cache=cache).logits
        else:
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        predicted = logits.argmax(-1)  # (rows, seq - prefix)
        for row, (index, (prompt, answer)) in enumerate(zip(chunk, pairs, strict=True)):
            # The token at position t is predicted by the logits at t - 1.
            first = len(prompt) - 1 - prefix
            result[index] = predicted[row, first : first + len(answer)].tolist() == answer
    return [result[i] for i in range(len(prompts))]


def _common_prefix(prompts: list[list[int]]) -> int:
    """Length of the token ids all `prompts` start with, leaving each at least its last token."""
    length, shortest = 0, min(map(len, prompts)) - 1
    while length < shortest and all(prompt[length] == prompts[0][length] for prompt in prompts):
        length += 1
    return length


def recall(model: nn.Module, tokenizer: PreTrainedTokenizerBase, facts: Sequence[dict[str, str]]) -> float:
    """Share of `facts` recalled exactly (see `recalled`), in [0, 1]."""
    flags = recalled(model, tokenizer, facts)
    return sum(flags) / len(flags)
