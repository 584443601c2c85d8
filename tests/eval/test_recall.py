"""The recall scorer: exact match of greedy continuation, decided in one teacher-forced pass."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.recall import greedy_matches, recall

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
