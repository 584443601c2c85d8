"""Reasoning: templated questions answered by likelihood, and again with a chain of thought.

Questions come from four generators (arithmetic, comparison, sequences, syllogisms) at a fixed
seed. Without a chain of thought the option with the lowest mean NLL after `Answer:` is chosen
(lm-evaluation-harness's `multiple_choice`, normalised per token). With one, the model writes a
numbered plan and its steps and ends with `The answer is X`; the letter is extracted by regex.
Failed chain-of-thought answers are sorted by rules into Xing et al.'s thought-skipping
families (docs/health.md): `no_reasoning`, `no_plan`, `skipped_steps`, or `other`.
"""

import random
import re
from typing import Any

from transformers import PreTrainedTokenizerBase

from eval.runners import ProbeRunner

__all__ = ["COT_ITEMS", "COT_TOKENS", "ITEMS", "SEED", "questions", "score", "thought_skipping"]

SEED = 20251015  # fixed: every version answers the same questions
ITEMS = 48  # questions answered by likelihood
COT_ITEMS = 24  # the first of them answered again with a chain of thought (generation is the cost)
COT_TOKENS = 64
LETTERS = "ABCD"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
KINDS = ("blickets", "daxes", "wugs", "feps", "toves", "glorps")
TRAITS = ("red", "round", "heavy", "loud", "soft", "bright")
ANSWER = re.compile(r"answer is\s*\(?([ABCD])\b", re.IGNORECASE)


def questions(n: int = ITEMS, seed: int = SEED) -> list[dict[str, Any]]:
    """`{question, options (4), answer (index)}`, drawn round-robin from the generators."""
    rng = random.Random(seed)
    makers = (_arithmetic, _comparison, _sequence, _syllogism)
    return [makers[i % len(makers)](rng) for i in range(n)]


def score(runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase) -> tuple[list[float], dict[str, Any]]:
    """Per question: 1 if right by likelihood, then per question 1 if right with chain of thought."""
    items = questions()
    stems = [f"Question: {item['question']}\nAnswer:" for item in items]
    texts = [
        stem + " " + option for stem, item in zip(stems, items, strict=True) for option in item["options"]
    ]
    starts = [len(stem) for stem in stems for _ in range(4)]
    nll = runner.nll(texts, starts)
    likelihood = [
        float(min(range(4), key=lambda k: nll[4 * i + k]) == item["answer"]) for i, item in enumerate(items)
    ]
    prompts = [_cot_prompt(tokenizer, item) for item in items[:COT_ITEMS]]
    responses = runner.complete(prompts, [COT_TOKENS] * len(prompts))
    chosen = [_extract(response) for response in responses]
    cot = [float(letter == LETTERS[item["answer"]]) for letter, item in zip(chosen, items, strict=False)]
    failures = [response for response, right in zip(responses, cot, strict=True) if not right]
    details = {
        "multiple_choice_accuracy": sum(likelihood) / len(likelihood),
        "chain_of_thought_accuracy": sum(cot) / len(cot),
        "thought_skipping": thought_skipping(failures),
        "examples": [{"question": items[i]["question"], "response": responses[i]} for i in range(3)],
    }
    return likelihood + cot, details


def thought_skipping(responses: list[str]) -> dict[str, int]:
    """Failure families of wrong chain-of-thought answers, by rules (first that applies).

    - `no_reasoning`: fewer than 8 words before the answer (or in all, without one);
    - `no_plan`: reasoning without a numbered plan (`1.` / `1)` lines, or `First,`);
    - `skipped_steps`: a plan of k steps, fewer than k of them carried out (`Step i` or a
      repeated number) before the answer;
    - `other`: a full chain that still ends wrong.
    """
    counts = dict.fromkeys(("no_reasoning", "no_plan", "skipped_steps", "other"), 0)
    for response in responses:
        reasoning = ANSWER.split(response, maxsplit=1)[0]
        planned = re.findall(r"^\s*(\d+)[.)]\s", reasoning, flags=re.MULTILINE)
        if len(reasoning.split()) < 8:
            counts["no_reasoning"] += 1
        elif not planned and not re.search(r"\bfirst,", reasoning, flags=re.IGNORECASE):
            counts["no_plan"] += 1
        elif planned and _steps_done(reasoning, len(set(planned))) < len(set(planned)):
            counts["skipped_steps"] += 1
        else:
            counts["other"] += 1
    return counts


def _steps_done(reasoning: str, planned: int) -> int:
    """Planned steps carried out: `Step i` mentions, or numbers listed a second time."""
    done = {int(i) for i in re.findall(r"\bstep\s+(\d+)", reasoning, flags=re.IGNORECASE)}
    numbers = re.findall(r"^\s*(\d+)[.)]\s", reasoning, flags=re.MULTILINE)
    repeated = {int(number) for number in numbers if numbers.count(number) > 1}
    return len({i for i in done | repeated if 1 <= i <= planned})


def _cot_prompt(tokenizer: PreTrainedTokenizerBase, item: dict[str, Any]) -> str:
    options = "\n".join(f"{LETTERS[k]}) {option}" for k, option in enumerate(item["options"]))
    request = (
        f"{item['question']}\n{options}\nFirst write a short numbered plan, then carry out each step, "
        "then finish with 'The answer is' and the letter."
    )
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": request}]
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return f"Question: {request}\nAnswer:"


def _extract(response: str) -> str | None:
    found = ANSWER.search(response)
    return found.group(1).upper() if found else None


def _options(rng: random.Random, right: str, wrong: list[str]) -> dict[str, Any]:
    options = [right, *rng.sample(wrong, 3)]
    rng.shuffle(options)
    return {"options": options, "answer": options.index(right)}


def _arithmetic(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    right = a + b
    wrong = [str(right + d) for d in (-10, -2, -1, 1, 2, 10) if right + d > 0]
    return {"question": f"What is {a} plus {b}?", **_options(rng, str(right), wrong)}


def _comparison(rng: random.Random) -> dict[str, Any]:
    a, b, c, d = rng.sample(range(10, 99), 4)
    return {
        "question": f"Which number is the largest: {a}, {b}, {c} or {d}?",
        **_options_of(rng, [a, b, c, d]),
    }


def _options_of(rng: random.Random, numbers: list[int]) -> dict[str, Any]:
    options = [str(number) for number in numbers]
    rng.shuffle(options)
    return {"options": options, "answer": options.index(str(max(numbers)))}


def _sequence(rng: random.Random) -> dict[str, Any]:
    names = rng.choice((MONTHS, DAYS))
    i = rng.randrange(len(names))
    right = names[(i + 1) % len(names)]
    wrong = [name for name in names if name not in (right, names[i])]
    return {"question": f"Which comes right after {names[i]}?", **_options(rng, right, wrong)}


def _syllogism(rng: random.Random) -> dict[str, Any]:
    kind, trait = rng.choice(KINDS), rng.choice(TRAITS)
    name = rng.choice(("Sam", "Ada", "Lio", "Mira", "Tov", "Nell"))
    question = f"All {kind} are {trait}. {name} is one of the {kind}. What is {name}?"
    wrong = [other for other in TRAITS if other != trait]
    return {"question": question, **_options(rng, trait, wrong)}
