"""Signed webhooks end to end: events from state changes reach a loopback receiver, signed so that
an independent Standard Webhooks implementation (the `standardwebhooks` package) verifies them."""

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from service.background import deliverer
from service.db import Database
from service.local import free_port
from service.main import create_app
from service.models import Job, Tenant, WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.services.keys import create_key
from service.services.webhooks import emit
from service.settings import Settings
from service.worker.lease import JobQueue
from service.worker.worker import Worker
from tests.service.conftest import FACTS, upload, wait_for
from tests.service.serving.conftest import publish
from tests.service.serving.fake_vllm import BASE


class Receiver:
    """A webhook receiver on a fixed loopback port; `up()` starts it, `received` is what it got."""

    def __init__(self, status: int = 204) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=status)

    @contextmanager
    def up(self) -> Iterator[None]:
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    settings.serving, settings.webhook_private_networks = False, True
    settings.webhook_poll_seconds, settings.webhook_backoff_seconds = 0.05, 0.2
    return settings


@pytest.fixture
def client(fast: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(fast)) as client:
        with database.session() as session:
            client.headers["Authorization"] = f"Bearer {create_key(session, 'acme')}"
        yield client


def test_a_cancelled_job_is_delivered_signed(client: TestClient, model_path: str) -> None:
    receiver = Receiver()
    endpoint = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    assert endpoint["secret"].startswith("whsec_") and "secret" not in client.get("/v1/webhooks").text
    job_id = _queued_job(client, model_path)

    with receiver.up():
        client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").raise_for_status()
        log = _wait(lambda: _finished(client, endpoint["id"]), "the delivery")

    headers, body = receiver.received[0]
    event = Webhook(endpoint["secret"]).verify(body, headers)  # raises unless the signature holds
    assert event["type"] == "fine_tuning.job.cancelled" and event["data"]["id"] == job_id
    assert headers["webhook-id"] == event["id"] and headers["webhook-signature"].startswith("v1,")
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(body.replace(b"cancelled", b"succeeded"), headers)
    assert [(row["status"], row["attempts"], row["response_status"]) for row in log] == [
        ("succeeded", 1, 204)
    ]


def test_a_receiver_that_is_down_gets_the_event_after_it_comes_back(
    client: TestClient, model_path: str
) -> None:
    receiver = Receiver()
    endpoint = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    job_id = _queued_job(client, model_path)
    client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").raise_for_status()

    failed = _wait(lambda: [r for r in _deliveries(client, endpoint["id"]) if r["attempts"] >= 2], "retries")
    assert failed[0]["status"] == "pending" and "ConnectError" in failed[0]["error"]
    with receiver.up():
        delivered = _wait(lambda: _finished(client, endpoint["id"]), "the delivery once the receiver is up")

    headers, body = receiver.received[0]
    assert Webhook(endpoint["secret"]).verify(body, headers)["data"]["id"] == job_id
    assert len(receiver.received) == 1
    assert delivered[0]["status"] == "succeeded" and delivered[0]["attempts"] >= 3


def test_an_event_written_while_no_deliverer_ran_is_delivered_later(
    fast: Settings, database: Database, model_path: str
) -> None:
    receiver = Receiver()
    fast.webhook_delivery = False  # the process that made the change dies before delivering
    with TestClient(create_app(fast)) as client:
        with database.session() as session:
            client.headers["Authorization"] = f"Bearer {create_key(session, 'acme')}"
        endpoint = client.post("/v1/webhooks", json={"url": receiver.url}).json()
        client.post(f"/v1/fine_tuning/jobs/{_queued_job(client, model_path)}/cancel").raise_for_status()
    fast.webhook_delivery = True
    with receiver.up(), TestClient(create_app(fast)) as later:
        later.headers["Authorization"] = client.headers["Authorization"]
        _wait(lambda: _finished(later, endpoint["id"]), "the delivery by the next process")
    assert Webhook(endpoint["secret"]).verify(receiver.received[0][1], receiver.received[0][0])


def test_promotions_reach_subscribers_of_that_type_only(
    client: TestClient, database: Database, model_path: str
) -> None:
    promoted, everything = Receiver(), Receiver()
    only = client.post(
        "/v1/webhooks", json={"url": promoted.url, "event_types": ["lineage.version.promoted"]}
    )
    client.post("/v1/webhooks", json={"url": everything.url}).raise_for_status()
    with promoted.up(), everything.up():
        job_id = _queued_job(client, model_path)
        publish(database, "acme", "bot", 1, "/store/acme/bot/v1")
        publish(database, "acme", "bot", 2, "/store/acme/bot/v2")
        client.post("/v1/lineages/bot/promote", json={"version": 1}).raise_for_status()
        client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").raise_for_status()
        _wait(lambda: len(everything.received) == 4 and len(promoted.received) == 3, "four events")
        _wait(lambda: not _pending(database), "every delivery recorded")

    secret = only.json()["secret"]
    versions = [
        Webhook(secret).verify(body, headers)["data"]["version"] for headers, body in promoted.received
    ]
    assert sorted(versions) == [1, 1, 2]
    types = sorted(_type(body) for _, body in everything.received)
    assert types == ["fine_tuning.job.cancelled", *["lineage.version.promoted"] * 3]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(client: TestClient, fast: Settings) -> None:
    fast.webhook_max_attempts = 3
    receiver = Receiver(status=500)
    endpoint = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    with receiver.up():
        job_id = _queued_job(client, BASE)
        client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").raise_for_status()
        row = _wait(
            lambda: [r for r in _deliveries(client, endpoint["id"]) if r["status"] == "failed"], "give up"
        )
    assert row[0]["attempts"] == 3 and row[0]["response_status"] == 500 and row[0]["error"] == "HTTP 500"
    assert len(receiver.received) == 3
    stamps = [int(headers["webhook-timestamp"]) for headers, _ in receiver.received]
    assert stamps == sorted(stamps)
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1  # one message, retried


def test_a_deleted_endpoint_gets_nothing_more(client: TestClient) -> None:
    receiver = Receiver()
    endpoint = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    client.delete(f"/v1/webhooks/{endpoint['id']}").raise_for_status()
    job_id = _queued_job(client, BASE)
    client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").raise_for_status()
    with receiver.up():
        time.sleep(0.5)
    assert receiver.received == [] and client.get("/v1/webhooks").json()["data"] == []


def test_private_addresses_are_refused_unless_allowed(
    settings: Settings, api: TestClient, database: Database
) -> None:
    refused = (
        "http://127.0.0.1:9/hook",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "ftp://x.org/",
        "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://example.com:99999/hook",  # a port out of range
        f"http://{'a' * 64}.example.com/hook",  # a label over 63 characters
    )
    for url in refused:
        answer = api.post("/v1/webhooks", json={"url": url})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "url", url
    assert api.post("/v1/webhooks", json={"url": "https://user:pw@example.com/"}).status_code == 400
    assert (
        api.post("/v1/webhooks", json={"url": "https://example.com/h", "event_types": ["x"]}).status_code
        == 400
    )
    # A name is resolved at delivery: `localhost` is loopback, so the attempt is refused, not sent.
    endpoint = api.post("/v1/webhooks", json={"url": "http://localhost:9/hook"}).json()
    with database.session() as session:
        emit(session, _tenant_pk(database, session), "fine_tuning.job.failed", {"id": "ftjob-x"})
    row = _wait(lambda: [r for r in _deliveries(api, endpoint["id"]) if r["error"]], "a refused attempt")
    assert row[0]["error"] == "the host resolves to an address that is not public"  # which one stays unsaid
    assert row[0]["response_status"] is None


def test_one_endpoint_cannot_hold_up_or_break_delivery_for_the_others(
    fast: Settings, client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poison URL (a host label over 63 characters, stored before URLs were checked this
    strictly) and a receiver that trickles its answer one byte a second share a round with a
    healthy receiver: it still gets the event exactly once, and each bad endpoint's attempts end
    with their own error, each within the timeout."""
    fast.webhook_timeout_seconds, fast.webhook_max_attempts = 1.0, 2
    # Addresses are checked as in production; loopback stands in for the public internet here.
    public = deliverer.is_public
    monkeypatch.setattr(deliverer, "is_public", lambda address: address.is_loopback or public(address))
    fast.webhook_private_networks = False
    healthy = Receiver()
    with _trickling_receiver() as slow_url, healthy.up():
        with database.session() as session:
            tenant_pk = _tenant_pk(database, session)
            for name, url in (
                ("we_healthy", healthy.url),
                ("we_slow", slow_url),
                ("we_poison", f"http://{'a' * 64}.example.com/hook"),
            ):
                session.add(
                    WebhookEndpoint(
                        id=name, tenant_pk=tenant_pk, url=url, secret="whsec_" + "A" * 32, event_types=[]
                    )
                )
        with database.session() as session:
            emit(session, tenant_pk, "fine_tuning.job.failed", {"id": "ftjob-x"})
        _wait(lambda: not _pending(database), "every delivery to end", timeout=30)

    assert len(healthy.received) == 1
    outcomes = {row["endpoint_id"]: row for row in _all_deliveries(database)}
    assert (outcomes["we_healthy"]["status"], outcomes["we_healthy"]["attempts"]) == ("succeeded", 1)
    assert (outcomes["we_slow"]["status"], outcomes["we_slow"]["error"]) == ("failed", "no answer within 1 s")
    assert outcomes["we_poison"]["status"] == "failed" and "label" in outcomes["we_poison"]["error"]
    assert outcomes["we_slow"]["attempts"] == outcomes["we_poison"]["attempts"] == 2  # capped


def _all_deliveries(database: Database) -> list[dict[str, Any]]:
    query = select(WebhookDelivery, WebhookEndpoint).join(
        WebhookEndpoint, WebhookEndpoint.pk == WebhookDelivery.endpoint_pk
    )
    with database.session() as session:
        return [
            {"endpoint_id": endpoint.id, "status": row.status, "attempts": row.attempts, "error": row.error}
            for row, endpoint in session.execute(query).all()
        ]


@contextmanager
def _trickling_receiver() -> Iterator[str]:
    """A loopback server that answers every request one byte a second, forever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):  # the deliverer hangs up when its time is up
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 1000:
                if stop.wait(1.0):
                    return
                connection.sendall(bytes([byte]))

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        listener.close()


def test_terminal_states_of_the_worker_and_the_queue_emit_events(
    settings: Settings, api: TestClient, database: Database, model_path: str
) -> None:
    failing = _queued_job(api, model_path)  # the fake base has no weights: the trainer fails
    assert Worker(settings, database).run_once()
    lost = _queued_job(api, model_path)
    with database.session() as session:
        job = session.scalars(select(Job).where(Job.id == lost)).one()
        job.status, job.attempts, job.lease_expires_at = "running", settings.max_attempts, 0.0
    assert JobQueue(database, settings).claim("w") is None  # gives the job up: worker_lost
    with database.session() as session:
        events = [(row.type, row.payload["data"]["id"]) for row in session.scalars(select(WebhookEvent))]
    assert events == [("fine_tuning.job.failed", failing), ("fine_tuning.job.failed", lost)]


def test_an_event_rolls_back_with_its_state_change(database: Database, api: TestClient) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        emit(session, _tenant_pk(database, session), "lineage.version.rejected", {"lineage": "bot"})
        raise RuntimeError("the state change failed")
    with database.session() as session:
        assert session.scalars(select(WebhookEvent)).all() == []
    with pytest.raises(ValueError, match="unknown webhook event type"), database.session() as session:
        emit(session, _tenant_pk(database, session), "job.done", {})


def _queued_job(client: TestClient, base_model: str) -> str:
    if client.get("/v1/lineages/bot").status_code == 404:
        client.post("/v1/lineages", json={"name": "bot", "base_model": base_model}).raise_for_status()
    body = {"model": "bot", "training_file": upload(client, FACTS)["id"]}
    return str(client.post("/v1/fine_tuning/jobs", json=body).json()["id"])


def _deliveries(client: TestClient, endpoint_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()["data"])


def _finished(client: TestClient, endpoint_id: str) -> list[dict[str, Any]]:
    return [row for row in _deliveries(client, endpoint_id) if row["status"] != "pending"]


def _pending(database: Database) -> bool:
    with database.session() as session:
        return (
            session.scalar(select(WebhookDelivery.pk).where(WebhookDelivery.status == "pending")) is not None
        )


def _type(body: bytes) -> str:
    return str(json.loads(body)["type"])


def _tenant_pk(database: Database, session: Any) -> int:
    return int(session.scalar(select(Tenant.pk).where(Tenant.name == "acme")))


_wait = partial(wait_for, timeout=15, tick=0.05)  # a delivery takes a fraction of a second
