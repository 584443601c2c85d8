"""Validation of uploaded JSONL training files: every bad line is reported with its number."""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

ROLES = {"system", "user", "assistant"}
SHAPES = "{'text'}, {'prompt', 'completion'} or {'messages'}"


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
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            return f"messages[{index}] must be an object with exactly 'role' and 'content'"
        if message["role"] not in ROLES:
            return f"messages[{index}].role must be one of {sorted(ROLES)}"
        if not isinstance(message["content"], str):
            return f"messages[{index}].content must be a string"
        if not _encodable(message["content"]):
            return f"messages[{index}].content holds an unpaired surrogate"
    if not any(message["role"] == "assistant" for message in messages):
        return "'messages' has no assistant message to learn from"
    return None


def _encodable(text: str) -> bool:
    # JSON may escape lone surrogates ("\\ud800"); they decode to a str that UTF-8 cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
