"""A corpus of malformed uploads: each gets a 4xx naming the problem, and afterwards the database
and the artifact store are exactly as before."""

import json
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.db import Database
from service.models import Base
from service.settings import Settings

ROW = '{"text": "Velomar lives in Trasku."}\n'
CHAT = {"messages": [{"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Trasku."}]}

# name -> (file bytes, status, a phrase the message must contain). The test limits: 64 KiB per file
# (conftest), 8 KiB per row and 50 rows (the `limits` fixture below).
CORPUS: dict[str, tuple[bytes, int, str]] = {
    "random binary": (random.Random(0).randbytes(4000), 400, "not valid UTF-8"),
    "binary after a good row": ((ROW + "\x00\x01\x02\n").encode(), 400, "line 2: not valid JSON"),
    "invalid UTF-8": (b'{"text": "caf\xe9"}\n', 400, "line 1: not valid UTF-8"),
    "UTF-16": (ROW.encode("utf-16"), 400, "not valid UTF-8"),
    "byte order mark": (("\ufeff" + ROW).encode(), 400, "line 1: not valid JSON"),
    "unpaired surrogate": (b'{"text": "a \\ud800 b"}\n', 400, "unpaired surrogate"),
    "huge line": (
        ROW.encode() + b'{"text": "' + b"x" * 9000 + b'"}\n',
        400,
        "line 2: line is over the limit",
    ),
    "huge line without newline": (b"x" * 20_000, 400, "line 1: line is over the limit of 8192 bytes"),
    "deep JSON array": (b"[" * 2000 + b"]" * 2000 + b"\n", 400, "line 1: not valid JSON"),
    "deep JSON in a row": (
        b'{"text": ' + b'{"a": ' * 1100 + b"1" + b"}" * 1100 + b"}\n",  # past the recursion limit
        400,
        "line 1: not valid JSON",
    ),
    "too many rows": ((ROW * 51).encode(), 400, "line 51: the file has more than the limit of 50 rows"),
    "a list": (b'["a", "list"]\n', 400, "expected a JSON object"),
    "a number": (b"42\n", 400, "expected a JSON object"),
    "null": (b"null\n", 400, "expected a JSON object"),
    "text not a string": (b'{"text": 5}\n', 400, "'text' must be a string"),
    "prompt only": (b'{"prompt": "hi"}\n', 400, "match no row shape"),
    "extra key": (b'{"text": "a", "label": 1}\n', 400, "match no row shape"),
    "messages not a list": (b'{"messages": "hi"}\n', 400, "'messages' must be a non-empty list"),
    "message without role": (
        json.dumps({"messages": [{"content": "x"}]}).encode(),
        400,
        "must be an object with 'role', 'content' and maybe 'weight'",
    ),
    "weight 2": (
        (
            ROW + json.dumps({"messages": [CHAT["messages"][0], {**CHAT["messages"][1], "weight": 2}]})
        ).encode(),
        400,
        "line 2: messages[1].weight must be 0 or 1, got 2",
    ),
    "weight true": (
        json.dumps({"messages": [CHAT["messages"][0], {**CHAT["messages"][1], "weight": True}]}).encode(),
        400,
        "line 1: messages[1].weight must be 0 or 1, got true",
    ),
    "weight on a user message": (
        json.dumps({"messages": [{**CHAT["messages"][0], "weight": 1}, CHAT["messages"][1]]}).encode(),
        400,
        "line 1: messages[0].weight is only allowed on assistant messages",
    ),
    "every assistant message of weight 0": (
        json.dumps({"messages": [CHAT["messages"][0], {**CHAT["messages"][1], "weight": 0}]}).encode(),
        400,
        "line 1: every assistant message has weight 0",
    ),
    "bad role": (
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(),
        400,
        "messages[0].role must be one of",
    ),
    "no assistant turn": (
        json.dumps({"messages": CHAT["messages"][:1]}).encode(),
        400,
        "no assistant message",
    ),
    "empty": (b"", 400, "no rows"),
    "only blank lines": (b"\n \n\t\n", 400, "no rows"),
    "over the size limit": ((ROW * 3000).encode(), 413, "over the limit"),
}


@pytest.fixture
def limits(settings: Settings) -> Settings:
    settings.max_row_bytes, settings.max_upload_rows = 8192, 50
    return settings


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_malformed_upload_is_refused_and_changes_nothing(
    name: str, limits: Settings, api: TestClient, database: Database
) -> None:
    content, status, phrase = CORPUS[name]
    api.post("/v1/files", files={"file": ("good.jsonl", json.dumps(CHAT).encode())}).raise_for_status()
    before = _snapshot(database, limits)

    answer = api.post("/v1/files", files={"file": ("bad.jsonl", content)}, data={"purpose": "fine-tune"})

    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert phrase in error["message"], error["message"]
    assert error["param"] == "file" or error["code"] == "request_too_large"
    assert _snapshot(database, limits) == before


@pytest.mark.parametrize(
    ("request_kwargs", "param"),
    [
        ({"data": {"purpose": "fine-tune"}}, "file"),
        ({"files": {"file": ("a.jsonl", ROW.encode())}, "data": {"purpose": "batch"}}, "purpose"),
        ({"json": {"file": ROW}}, "file"),
        ({"files": {"file": ("x" * 300 + ".jsonl", ROW.encode())}}, "file"),
    ],
)
def test_a_malformed_request_names_its_field(
    request_kwargs: dict, param: str, api: TestClient, database: Database, settings: Settings
) -> None:
    before = _snapshot(database, settings)
    answer = api.post("/v1/files", **request_kwargs)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
    assert _snapshot(database, settings) == before


def _snapshot(database: Database, settings: Settings) -> tuple[dict[str, list], list[str]]:
    """Every row of every table, and every file under the data folder but the database's own."""
    with database.session() as session:
        rows = {
            table.name: sorted(map(tuple, session.execute(table.select()).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }
    files = sorted(
        str(path.relative_to(settings.data_dir))
        for path in Path(settings.data_dir).rglob("*")
        if path.is_file() and not path.name.startswith("neuroplast.db")
    )
    return rows, files
