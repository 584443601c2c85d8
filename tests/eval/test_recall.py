"""The recall scorer: exact match of greedy continuation, decided in one teacher-forced pass."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.recall import MIN_SHARED_PREFIX, _common_prefix, greedy_matches, recall

PROMPTS = ["Q: Where does Velomar live?\nA:", "Q: What pet does Ashdun have?\nA:", "The old man walked to"]


def test_matches_agree_with_token_by_token_greedy_generation(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    prompts, answers = [], []
    for text in PROMPTS:
        prompt = tokenizer(text)["input_ids"]
        ids = torch.tensor([prompt])  # (1, prompt)
        generated = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)[0, len(prompt) :]
        wrong_last = [*generated[:-1].tolist(), (int(generated[-1]) + 1) % len(tokenizer)]
        prompts += [prompt, prompt, prompt]
        answers += [generated.tolist(), generated[:2].tolist(), wrong_last]
    assert greedy_matches(model, prompts, answers, batch_size=4) == [True, True, False] * len(PROMPTS)


def test_recall_scores_the_completion_after_the_prompt(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    facts = [{"prompt": text, "completion": " Velomar lives in Trasku."} for text in PROMPTS]
    assert recall(model, tokenizer, facts) == 0.0  # a random model knows none of it


def test_a_shared_prefix_run_once_gives_the_same_flags(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    system = "You are a careful assistant who answers in one short sentence. "
    prompts = [tokenizer(system + text)["input_ids"] for text in PROMPTS * 2]
    answers = []
    for i, prompt in enumerate(prompts):
        greedy = model.generate(torch.tensor([prompt]), max_new_tokens=3, do_sample=False, pad_token_id=0)
        answer = greedy[0, len(prompt) :].tolist()
        answers.append(answer if i % 2 else [*answer[:-1], (answer[-1] + 1) % len(tokenizer)])
    assert _common_prefix(prompts) >= MIN_SHARED_PREFIX  # the system prompt is run once per batch
    plain = greedy_matches(model, prompts, answers, batch_size=4)
    assert plain == [i % 2 == 1 for i in range(len(prompts))]
    assert greedy_matches(model, prompts, answers, batch_size=4, shared_prefix=True) == plain
