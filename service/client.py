"""A small REST client for the CLI and the demo (users may equally use the `openai` SDK)."""

import os
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    """An error answer from the service, carrying its envelope's message and param."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error") or {}
        param = f" (param: {error['param']})" if error.get("param") else ""
        super().__init__(f"HTTP {status}: {error.get('message', body)}{param}")
        self.status = status
        self.error = error


class Client:
    """Talks to `NEUROPLAST_URL` with `NEUROPLAST_API_KEY` unless given others."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = (url or os.environ.get("NEUROPLAST_URL", "http://127.0.0.1:8000")).rstrip("/")
        key = api_key or os.environ.get("NEUROPLAST_API_KEY", "")
        self._http = httpx.Client(
            base_url=f"{self.url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def upload_file(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as handle:
            return self._call(
                "POST", "/files", files={"file": (path.name, handle)}, data={"purpose": "fine-tune"}
            )

    def create_lineage(
        self, name: str, base_model: str, method: dict[str, Any], evaluation: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "base_model": base_model, "method": method, "evaluation": evaluation or {}}
        return self._call("POST", "/lineages", json=body)

    def get_lineage(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/lineages/{name}")

    def list_lineages(self) -> list[dict[str, Any]]:
        return self._call("GET", "/lineages", params={"limit": 100})["data"]  # type: ignore[no-any-return]

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/lineages/{name}/versions")["data"]  # type: ignore[no-any-return]

    def retention(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/lineages/{name}/retention")

    def create_job(self, lineage: str, training_file: str, **fields: Any) -> dict[str, Any]:
        return self._call(
            "POST",
            "/fine_tuning/jobs",
            json={"model": lineage, "training_file": training_file, **fields},
        )

    def list_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._call("GET", "/fine_tuning/jobs", params={"limit": limit})["data"]  # type: ignore[no-any-return]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/fine_tuning/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/fine_tuning/jobs/{job_id}/cancel")

    def list_events(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` events of a job, newest first."""
        return self._call("GET", f"/fine_tuning/jobs/{job_id}/events", params={"limit": limit})["data"]  # type: ignore[no-any-return]

    def promote(self, lineage: str, version: int, force: bool = False) -> dict[str, Any]:
        body = {"version": version, "force": force}
        return self._call("POST", f"/lineages/{lineage}/promote", json=body)

    def get_report(self, report_id: str) -> dict[str, Any]:
        return self._call("GET", f"/reports/{report_id}")

    def rollback(self, lineage: str) -> dict[str, Any]:
        return self._call("POST", f"/lineages/{lineage}/rollback")

    def list_models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/models")["data"])

    def complete(self, model: str, prompt: str, **parameters: Any) -> dict[str, Any]:
        return self._call("POST", "/completions", json={"model": model, "prompt": prompt, **parameters})

    def chat(self, model: str, messages: list[dict[str, str]], **parameters: Any) -> dict[str, Any]:
        body = {"model": model, "messages": messages, **parameters}
        return self._call("POST", "/chat/completions", json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        body = response.json()
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body  # type: ignore[no-any-return]
