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
        headers = {"Authorization": f"Bearer {key}"} if key else {}  # no key: the API's 401 says so
        self._http = httpx.Client(base_url=f"{self.url}/v1", headers=headers, timeout=timeout)

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

    def files_page(self, limit: int = 20) -> dict[str, Any]:
        """The newest `limit` training files as the API's list page."""
        return self._call("GET", "/files", params={"limit": limit})

    def get_file(self, file_id: str) -> dict[str, Any]:
        return self._call("GET", f"/files/{file_id}")

    def delete_file(self, file_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/files/{file_id}")

    def get_lineage(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/lineages/{name}")

    def lineages_page(self, limit: int = 100) -> dict[str, Any]:
        return self._call("GET", "/lineages", params={"limit": limit})

    def list_lineages(self) -> list[dict[str, Any]]:
        return self.lineages_page()["data"]  # type: ignore[no-any-return]

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

    def jobs_page(self, limit: int = 20) -> dict[str, Any]:
        """The newest `limit` jobs as the API's list page."""
        return self._call("GET", "/fine_tuning/jobs", params={"limit": limit})

    def list_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.jobs_page(limit)["data"]  # type: ignore[no-any-return]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/fine_tuning/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/fine_tuning/jobs/{job_id}/cancel")

    def pause_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/fine_tuning/jobs/{job_id}/pause")

    def resume_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/fine_tuning/jobs/{job_id}/resume")

    def events_page(self, job_id: str, limit: int = 100) -> dict[str, Any]:
        """The newest `limit` events of a job, newest first, as the API's list page."""
        return self._call("GET", f"/fine_tuning/jobs/{job_id}/events", params={"limit": limit})

    def list_events(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` events of a job, newest first."""
        return self.events_page(job_id, limit)["data"]  # type: ignore[no-any-return]

    def checkpoints_page(self, job_id: str, limit: int = 10) -> dict[str, Any]:
        """A job's newest `limit` checkpoints as the API's list page."""
        return self._call("GET", f"/fine_tuning/jobs/{job_id}/checkpoints", params={"limit": limit})

    def promote(self, lineage: str, version: int, force: bool = False) -> dict[str, Any]:
        body = {"version": version, "force": force}
        return self._call("POST", f"/lineages/{lineage}/promote", json=body)

    def create_health_check(
        self, lineage: str, version: int | None = None, suites: list[str] | None = None
    ) -> dict[str, Any]:
        """Queue a health check of a version (the promoted one if None) on some suites (all if None)."""
        body: dict[str, Any] = {"lineage": lineage}
        if version is not None:
            body["version"] = version
        if suites:
            body["suites"] = suites
        return self._call("POST", "/health_checks", json=body)

    def get_health_check(self, check_id: str) -> dict[str, Any]:
        return self._call("GET", f"/health_checks/{check_id}")

    def health_checks_page(self, lineage: str | None = None, limit: int = 20) -> dict[str, Any]:
        """The newest `limit` health checks of a lineage (every lineage's if None) as the API's list page."""
        params: dict[str, Any] = {"limit": limit} | ({"lineage": lineage} if lineage else {})
        return self._call("GET", "/health_checks", params=params)

    def report_link(self, report_id: str, expires_in: int | None = None) -> dict[str, Any]:
        """A signed link to a report's HTML page that a browser opens without a key."""
        body = {} if expires_in is None else {"expires_in": expires_in}
        return self._call("POST", f"/reports/{report_id}/link", json=body)

    def get_report(self, report_id: str) -> dict[str, Any]:
        return self._call("GET", f"/reports/{report_id}")

    def report_html(self, report_id: str) -> str:
        """A health report as its self-contained HTML page."""
        response = self._http.get(f"/reports/{report_id}.html")
        if response.status_code >= 400:
            raise ApiError(response.status_code, _body(response))
        return response.text

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
        body = _body(response)
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body  # type: ignore[no-any-return]


def _body(response: httpx.Response) -> dict[str, Any]:
    """The JSON body, or an error envelope around the text when a proxy in front answered otherwise."""
    try:
        return response.json()  # type: ignore[no-any-return]
    except ValueError:
        return {"error": {"message": response.text.strip()[:200] or response.reason_phrase}}
