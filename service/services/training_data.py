"""Validation of uploaded JSONL training files: every bad line is reported with its number.

A file holds examples to imitate (`{'text'}`, `{'prompt', 'completion'}`, `{'messages'}`; a
`supervised` job) or preference pairs (`{'input', 'preferred_output', 'non_preferred_output'}`,
OpenAI's format; a `dpo` job). Upload accepts either; `format_problem` checks at job creation
that every row is of the kind the job's objective trains on.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

ROLES = {"system", "user", "assistant"}
MESSAGE_KEYS = {"role", "content", "weight"}
SHAPES = (
    "{'text'}, {'prompt', 'completion'}, {'messages'} "
    "or {'input', 'preferred_output', 'non_preferred_output'}"
)
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output"}


@dataclass
class Report:
    """What validating a file found: the number of good rows and each bad line's problem."""

    rows: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    def summary(self, shown: int = 20) -> str:
        """One message naming the first `shown` bad lines."""
        listed = "; ".join(f"line {n}: {problem}" for n, problem in self.problems[:shown])
        more = len(self.problems) - shown
        suffix = f"; and {more} more bad lines" if more > 0 else ""
        return f"{len(self.problems)} bad line(s): {listed}{suffix}."


def read_lines(stream: BinaryIO, max_row_bytes: int) -> Iterator[bytes]:
    """The lines of `stream`, each cut to `max_row_bytes + 1` bytes: memory stays bounded by the row
    limit whatever the file holds (a line over the limit is reported, never parsed)."""
    while line := stream.readline(max_row_bytes + 1):
        if len(line) > max_row_bytes and not line.endswith(b"\n"):
            while (rest := stream.readline(max_row_bytes + 1)) and not rest.endswith(b"\n"):
                pass
        yield line


def validate_lines(lines: Iterable[bytes], max_row_bytes: int, max_rows: int) -> Report:
    """Check every line of a JSONL training file; blank lines are skipped.

    Stops at the first row over `max_rows`, naming its line.
    """
    report = Report()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if report.rows + len(report.problems) == max_rows:
            report.problems.append((number, f"the file has more than the limit of {max_rows} rows"))
            break
        problem = _row_problem(raw, max_row_bytes)
        if problem:
            report.problems.append((number, problem))
        else:
            report.rows += 1
    return report


def format_problem(lines: Iterable[bytes], objective: str) -> tuple[int, str] | None:
    """The first line (from 1) of an uploaded, valid file whose row a job of `objective` cannot
    train on, and why; None when every row fits.

    A `dpo` job needs preference pairs on every line; a `supervised` job needs none.
    """
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        keys = set(json.loads(raw))
        if objective == "dpo" and keys != PREFERENCE_KEYS:
            return number, (
                f"a dpo job trains on preference pairs {sorted(PREFERENCE_KEYS)} on every line; "
                f"this row has keys {sorted(keys)}"
            )
        if objective != "dpo" and keys == PREFERENCE_KEYS:
            return number, (
                "this row is a preference pair, which only a dpo job trains on; "
                'create the job with method {"type": "dpo"}'
            )
    return None


def _row_problem(raw: bytes, max_row_bytes: int) -> str | None:
    if len(raw) > max_row_bytes:
        return f"line is over the limit of {max_row_bytes} bytes"
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "not valid UTF-8"
    except (json.JSONDecodeError, RecursionError) as error:
        return f"not valid JSON ({error.__class__.__name__}: {str(error)[:80]})"
    if not isinstance(row, dict):
        return f"expected a JSON object {SHAPES}, got {type(row).__name__}"
    return _shape_problem(row)


def _shape_problem(row: dict[str, Any]) -> str | None:
    keys = set(row)
    if keys == {"text"}:
        return _text_problem(row, "text")
    if keys == {"prompt", "completion"}:
        return _text_problem(row, "prompt", allow_empty=True) or _text_problem(row, "completion")
    if keys == {"messages"}:
        return _messages_problem(row["messages"])
    if keys == PREFERENCE_KEYS:
        return _preference_problem(row)
    return f"keys {sorted(keys)} match no row shape; expected {SHAPES}"


def _text_problem(row: dict[str, Any], key: str, allow_empty: bool = False) -> str | None:
    value = row[key]
    if not isinstance(value, str):
        return f"'{key}' must be a string"
    if not _encodable(value):
        return f"'{key}' holds an unpaired surrogate (\\ud800-\\udfff), which no tokenizer can encode"
    if not allow_empty and not value.strip():
        return f"'{key}' is empty"
    return None


def _messages_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message) <= MESSAGE_KEYS:
            return f"messages[{index}] must be an object with 'role', 'content' and maybe 'weight'"
        if message["role"] not in ROLES:
            return f"messages[{index}].role must be one of {sorted(ROLES)}"
        if not isinstance(message["content"], str):
            return f"messages[{index}].content must be a string"
        if not _encodable(message["content"]):
            return f"messages[{index}].content holds an unpaired surrogate"
        if "weight" in message and (problem := _weight_problem(message)):
            return f"messages[{index}].{problem}"
    if not any(message["role"] == "assistant" for message in messages):
        return "'messages' has no assistant message to learn from"
    if all(message.get("weight") == 0 for message in messages if message["role"] == "assistant"):
        return "every assistant message has weight 0: the row has nothing to learn from"
    return None


def _weight_problem(message: dict[str, Any]) -> str | None:
    # OpenAI's per-message weight: 0 leaves an assistant message out of the loss, 1 (the default) keeps it.
    if message["role"] != "assistant":
        return "weight is only allowed on assistant messages"
    if type(message["weight"]) is not int or message["weight"] not in (0, 1):
        return f"weight must be 0 or 1, got {json.dumps(message['weight'])}"
    return None


def _preference_problem(row: dict[str, Any]) -> str | None:
    """OpenAI's preference row: `input.messages` (the conversation so far) and one assistant
    message in each of `preferred_output` and `non_preferred_output`, the two different."""
    if not isinstance(row["input"], dict) or set(row["input"]) != {"messages"}:
        return "'input' must be an object with exactly 'messages'"
    messages = row["input"]["messages"]
    if not isinstance(messages, list) or not messages:
        return "'input.messages' must be a non-empty list"
    for index, message in enumerate(messages):
        if problem := _message_problem(message):
            return f"input.messages[{index}] {problem}"
    outputs = []
    for key in ("preferred_output", "non_preferred_output"):
        output = row[key]
        if not isinstance(output, list) or len(output) != 1:
            return f"'{key}' must be a list of one assistant message"
        if problem := _message_problem(output[0]):
            return f"{key}[0] {problem}"
        if output[0]["role"] != "assistant":
            return f"{key}[0].role must be 'assistant'"
        if not output[0]["content"].strip():
            return f"{key}[0].content is empty"
        outputs.append(output[0]["content"])
    if outputs[0] == outputs[1]:
        return "'preferred_output' and 'non_preferred_output' are the same: the pair teaches nothing"
    return None


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, dict) or set(message) != {"role", "content"}:
        return "must be an object with exactly 'role' and 'content'"
    if message["role"] not in ROLES:
        return f"role must be one of {sorted(ROLES)}"
    if not isinstance(message["content"], str):
        return "content must be a string"
    if not _encodable(message["content"]):
        return "content holds an unpaired surrogate"
    return None


def _encodable(text: str) -> bool:
    # JSON may escape lone surrogates ("\\ud800"); they decode to a str that UTF-8 cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
