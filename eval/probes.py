"""Probes of what one job taught, built from its training file when the job is created. Torch-free.

Three kinds (after Orhan, arXiv 2303.17557; docs/evaluation.md, probes):

- **recall**: the row's context plus the first half of the words of its target is the cue; the
  rest of the target is the continuation that greedy decoding must give back (scored on the
  continuation only, unlike Orhan's code, which also counts the cue);
- **recognition**: the seen row against a foil of about the same length; the text with the lower
  mean per-token NLL is taken as seen. Foil families: `novel` (a held-out row of the same file,
  the closest in word count), `shuffled` (the seen text's words in another order) and `swap` (one
  target word replaced by a word of another row's target);
- **held_out**: rows kept out of training, whose loss measures generalisation.

A row is a `context` (a string, or the chat messages before the last assistant turn, rendered by
the runner with the tokenizer's chat template) and a `target` (the completion, the last assistant
turn, a preference pair's preferred output, or a plain text row whole with an empty context).
Everything is drawn from a `random.Random(seed)`, so a job's probes depend only on its file and
seed.
"""

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FOIL_FAMILIES",
    "ProbeSizes",
    "Probes",
    "build_probes",
    "build_probes_from_file",
    "probe_rows",
    "row_parts",
    "split_words",
]

FOIL_FAMILIES = ("novel", "shuffled", "swap")
Context = str | list[dict[str, str]]


@dataclass(frozen=True)
class ProbeSizes:
    """How many probes of each kind a job gets.

    Attributes:
        recall: Recall items (at most the rows trained on).
        recognition: Recognition pairs (at most the rows trained on).
        held_out_fraction: Share of the file's rows kept out of training as the held-out split.
        max_held_out: Upper bound on held-out rows, so a large file still trains on nearly all.
    """

    recall: int = 32
    recognition: int = 32
    held_out_fraction: float = 0.1
    max_held_out: int = 32

    def held_out_rows(self, rows: int) -> int:
        """Held-out rows for a file of `rows` rows: none for a file too small to spare one."""
        wanted = min(self.max_held_out, int(self.held_out_fraction * rows))
        return wanted if rows - wanted >= 1 else 0

    def candidates(self) -> int:
        """Trained rows the probes are drawn from, and swap foils borrow words from.

        Twice the larger probe count leaves room for rows recall must skip, yet a large file
        need not be read into memory to draw its probes.
        """
        return max(256, 2 * max(self.recall, self.recognition))


@dataclass
class Probes:
    """One job's probes, as stored with its version (`probes.json`).

    Attributes:
        seed: The job's seed, which drew them.
        held_out_rows: Line numbers (from 0) of the file's rows kept out of training.
        recall: `{row, context, cue, continuation}`: the cue follows the rendered context.
        recognition: `{row, family, seen: {context, target}, foil: {context, target}}`.
        held_out: `{row, context, target}`.
    """

    seed: int
    held_out_rows: list[int] = field(default_factory=list)
    recall: list[dict[str, Any]] = field(default_factory=list)
    recognition: list[dict[str, Any]] = field(default_factory=list)
    held_out: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Probes":
        """The inverse of `to_json`."""
        return cls(**data)


def build_probes(rows: Sequence[dict[str, Any]], seed: int, sizes: ProbeSizes) -> Probes:
    """Draw a job's held-out split, recall items and recognition pairs from its training rows.

    Args:
        rows: The training file's rows, validated (`text`, `prompt`/`completion` or `messages`).
        seed: The job's seed.
        sizes: How many of each.

    Returns:
        The probes; recall and recognition use only rows that are trained on.
    """
    return _draw(dict(enumerate(rows)), len(rows), seed, sizes)


def build_probes_from_file(path: Path, count: int, seed: int, sizes: ProbeSizes) -> Probes:
    """`build_probes` of a JSONL file of `count` rows, reading only the rows the probes use.

    Memory stays bounded by those few hundred rows whatever the file's size: the API builds a
    job's probes from files of up to a million rows.
    """
    wanted = set(probe_rows(count, seed, sizes))
    rows: dict[int, dict[str, Any]] = {}
    with path.open("rb") as lines:
        for index, line in enumerate(line for line in lines if line.strip()):
            if index in wanted:
                rows[index] = json.loads(line)
    return _draw(rows, count, seed, sizes)


def probe_rows(count: int, seed: int, sizes: ProbeSizes) -> list[int]:
    """Indices of the rows `build_probes` reads from a file of `count` rows, in no order."""
    held_out, candidates, _ = _split(count, seed, sizes)
    return [*held_out, *candidates]


def _split(count: int, seed: int, sizes: ProbeSizes) -> tuple[list[int], list[int], random.Random]:
    """The held-out rows, the trained rows probes may use, and the generator drawing the rest.

    Only the first `sizes.candidates()` trained rows (in the seed's order) are candidates: recall
    and recognition take theirs from the front, and swap foils borrow words from among them.
    """
    rng = random.Random(seed)
    order = list(range(count))
    rng.shuffle(order)
    n_held_out = sizes.held_out_rows(count)
    held_out, trained = sorted(order[:n_held_out]), order[n_held_out:]
    return held_out, trained[: sizes.candidates()], rng


def _draw(rows: Mapping[int, dict[str, Any]], count: int, seed: int, sizes: ProbeSizes) -> Probes:
    held_out, trained, rng = _split(count, seed, sizes)
    parts = {i: row_parts(rows[i]) for i in (*held_out, *trained)}
    probes = Probes(seed=seed, held_out_rows=held_out)
    probes.held_out = [{"row": i, "context": parts[i][0], "target": parts[i][1]} for i in held_out]

    for i in trained:
        if len(probes.recall) == sizes.recall:
            break
        context, target = parts[i]
        words = split_words(target)
        half = len(words) // 2
        if half == 0 and not context:
            continue  # a one-word text row leaves no cue
        cue, continuation = "".join(words[:half]), "".join(words[half:])
        probes.recall.append({"row": i, "context": context, "cue": cue, "continuation": continuation})

    families = [family for family in FOIL_FAMILIES if family != "novel" or held_out]
    for i in trained[: sizes.recognition]:
        for offset in range(len(families)):  # the pair's family, or the next one that applies
            family = families[(len(probes.recognition) + offset) % len(families)]
            foil = _foil(family, i, parts, held_out, trained, rng)
            if foil is not None:
                seen = {"context": parts[i][0], "target": parts[i][1]}
                probes.recognition.append({"row": i, "family": family, "seen": seen, "foil": foil})
                break
    return probes


def row_parts(row: dict[str, Any]) -> tuple[Context, str]:
    """A training row as (context, target): what the model reads, and what it learns to write (of a
    preference pair, the preferred output)."""
    if row.get("preferred_output") is not None:
        return row["input"]["messages"], str(row["preferred_output"][-1]["content"])
    if row.get("messages") is not None:
        # The last assistant message trained on (weight 0 leaves one out), after what precedes it.
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        last = max(
            i for i, m in enumerate(row["messages"]) if m["role"] == "assistant" and m.get("weight") != 0
        )
        return messages[:last], str(messages[last]["content"])
    if row.get("prompt") is not None:
        return str(row["prompt"]), str(row["completion"])
    return "", str(row["text"])


def split_words(text: str) -> list[str]:
    """Words with the whitespace before each, so `"".join` gives back the text (trailing space aside)."""
    return re.findall(r"\s*\S+", text)


def _foil(
    family: str,
    row: int,
    parts: Mapping[int, tuple[Context, str]],
    held_out: list[int],
    trained: list[int],
    rng: random.Random,
) -> dict[str, Any] | None:
    """A foil for `row` of the given family, or None where the row cannot make one."""
    context, target = parts[row]
    if family == "novel":
        length = _word_count(parts[row])
        closest = min(held_out, key=lambda i: (abs(_word_count(parts[i]) - length), i))
        return {"context": parts[closest][0], "target": parts[closest][1]}
    words = split_words(target)
    if family == "shuffled":
        if isinstance(context, str) and len(split_words(context + target)) >= 2:
            # A plain-text row: shuffle the whole text, context included.
            words, context = split_words(context + target), ""
        if len({word.strip() for word in words}) < 2:
            return None
        shuffled = [word.strip() for word in words]
        while shuffled == [word.strip() for word in words]:
            rng.shuffle(shuffled)
        lead = words[0][: len(words[0]) - len(words[0].lstrip())]
        return {"context": context, "target": lead + " ".join(shuffled)}
    # swap: one target word for a word of another trained row's target
    others = [word.strip() for i in trained if i != row for word in split_words(parts[i][1]) if word.strip()]
    if not words or not others:
        return None
    position = rng.randrange(len(words))
    replacement = rng.choice([word for word in others if word != words[position].strip()] or [""])
    if not replacement:
        return None
    lead = words[position][: len(words[position]) - len(words[position].lstrip())]
    swapped = [*words[:position], lead + replacement, *words[position + 1 :]]
    return {"context": context, "target": "".join(swapped)}


def _word_count(part: tuple[Context, str]) -> int:
    context, target = part
    text = context if isinstance(context, str) else " ".join(m["content"] for m in context)
    return len(split_words(text + target))
