"""`/v1/files`: validation on upload, nothing half-stored, list/get/delete."""

import json
from pathlib import Path

from fastapi.testclient import TestClient

from service.settings import Settings
from tests.service.conftest import FACTS, upload


class TestUpload:
    def test_accepts_every_row_shape(self, api: TestClient) -> None:
        chat = [{"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Trasku."}]
        rows = [
            '{"text": "Velomar lives in Trasku."}',
            '{"prompt": "Q: Where?", "completion": " Trasku."}',
            json.dumps({"messages": chat}),
        ]
        body = upload(api, "\n".join(rows) + "\n\n")
        assert body["object"] == "file" and body["id"].startswith("file-")
        assert body["rows"] == 3 and body["purpose"] == "fine-tune" and body["status"] == "processed"

    def test_accepts_assistant_messages_of_weight_0_and_1(self, api: TestClient) -> None:
        chat = [
            {"role": "user", "content": "Where?"},
            {"role": "assistant", "content": "Somewhere.", "weight": 0},
            {"role": "user", "content": "Where exactly?"},
            {"role": "assistant", "content": "Trasku.", "weight": 1},
        ]
        assert upload(api, json.dumps({"messages": chat}) + "\n")["rows"] == 1

    def test_accepts_carriage_returns_where_json_allows_them(self, api: TestClient) -> None:
        """A CR is JSON whitespace between tokens and the end of a Windows line; rows split on LF only."""
        content = (
            '{"text":\r"Velomar lives in Trasku."}\r\n{"prompt": "Q: Where?",\r"completion": " Trasku."}\r\n'
        )
        body = upload(api, content)
        assert body["rows"] == 2 and body["status"] == "processed"

    def test_reports_every_bad_line_and_stores_nothing(self, api: TestClient, settings: Settings) -> None:
        rows = [
            '{"text": "fine"}',
            "{not json",
            '{"text": "fine"}',
            '["a", "list"]',
            '{"prompt": "only a prompt"}',
            '{"messages": [{"role": "user", "content": "no answer"}]}',
            '{"text": 5}',
        ]
        response = api.post("/v1/files", files={"file": ("bad.jsonl", "\n".join(rows).encode())})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "file" and error["code"] == "invalid_file"
        for line in (2, 4, 5, 6, 7):
            assert f"line {line}:" in error["message"]
        assert "line 1:" not in error["message"] and "line 3:" not in error["message"]
        assert api.get("/v1/files").json()["data"] == []
        assert _stored(settings) == []

    def test_rejects_invalid_utf8_and_binary(self, api: TestClient, settings: Settings) -> None:
        response = api.post("/v1/files", files={"file": ("bin.jsonl", b'{"text": "\xff\xfe"}\n\x00\x01')})
        assert response.status_code == 400
        assert "line 1: not valid UTF-8" in response.json()["error"]["message"]
        assert _stored(settings) == []

    def test_rejects_an_empty_file(self, api: TestClient) -> None:
        response = api.post("/v1/files", files={"file": ("empty.jsonl", b"\n\n")})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "empty_file"

    def test_rejects_a_file_over_the_size_limit(self, api: TestClient, settings: Settings) -> None:
        big = ('{"text": "%s"}\n' % ("x" * 1000)) * 100  # about 100 KB, the test limit is 64 KB
        response = api.post("/v1/files", files={"file": ("big.jsonl", big.encode())})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "file_too_large"
        assert _stored(settings) == []

    def test_rejects_another_purpose(self, api: TestClient) -> None:
        response = api.post(
            "/v1/files", files={"file": ("a.jsonl", FACTS.encode())}, data={"purpose": "batch"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "purpose"


class TestFileResource:
    def test_list_get_delete(self, api: TestClient, settings: Settings) -> None:
        first, second = upload(api, FACTS, "a.jsonl"), upload(api, FACTS, "b.jsonl")
        listed = api.get("/v1/files").json()
        assert [row["id"] for row in listed["data"]] == [second["id"], first["id"]]
        assert api.get(f"/v1/files/{first['id']}").json()["filename"] == "a.jsonl"
        assert api.delete(f"/v1/files/{first['id']}").json() == {
            "id": first["id"],
            "object": "file",
            "deleted": True,
        }
        assert api.get(f"/v1/files/{first['id']}").status_code == 404
        assert len(_stored(settings)) == 1

    def test_unknown_file_is_404_in_the_envelope(self, api: TestClient) -> None:
        response = api.get("/v1/files/file-nope")
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def _stored(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.files_dir.rglob("*") if path.is_file())
