"""Where a delivery goes: to an address the deliverer checked, whatever the DNS answers next, with
the receiver's name kept for the Host header and for TLS.

Loopback stands in for the internet: 127.0.0.2 plays a public address (`is_public` says so here),
the receivers listen on 127.0.0.1, and a test resolver answers for the receivers' names.
"""

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from service.background import deliverer
from service.db import Database
from service.models import WebhookDelivery, WebhookEndpoint
from service.services.keys import create_tenant
from service.services.webhooks import emit
from service.settings import Settings

NAME = "hooks.example"
STAND_IN = "127.0.0.2"  # a "public" address where nothing listens


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Answers for names: each lookup of a name takes its next answer (the last one stays)."""
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: str | bytes | None, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # the HTTP client passes bytes
        if name not in answers:
            return real(host, port, *args, **kwargs)
        queue = answers[name]
        found = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in found]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    public = deliverer.is_public
    stand_in = ipaddress.ip_address(STAND_IN)
    monkeypatch.setattr(deliverer, "is_public", lambda address: address == stand_in or public(address))
    return answers


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_reached(
    settings: Settings, database: Database, resolver: dict[str, list[list[str]]]
) -> None:
    """The check sees the public address; had the client resolved again it would have met loopback."""
    resolver[NAME] = [[STAND_IN], ["127.0.0.1"]]
    with _receiver() as (port, hosts):
        _endpoint(database, f"http://{NAME}:{port}/hook")
        _deliver(settings, database)

    assert hosts == []
    row = _delivery(database)
    assert (row.status, row.response_status) == ("pending", None)  # retried later, to the checked address
    assert row.error.startswith("ConnectError") and "127.0.0" not in row.error


def test_the_next_checked_address_is_tried_when_one_refuses(
    settings: Settings,
    database: Database,
    resolver: dict[str, list[list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deliverer, "is_public", lambda address: address.is_loopback)
    resolver[NAME] = [[STAND_IN, "127.0.0.1"]]
    with _receiver() as (port, hosts):
        _endpoint(database, f"http://{NAME}:{port}/hook")
        _deliver(settings, database)

    row = _delivery(database)
    assert hosts == [f"{NAME}:{port}"]  # the Host header names the receiver, not the address
    assert (row.status, row.response_status) == ("succeeded", 204)


def test_tls_is_checked_for_the_name_not_the_address(
    settings: Settings, database: Database, resolver: dict[str, list[list[str]]], tmp_path: Path
) -> None:
    """The certificate names only the receiver's name, so a check against the address would fail."""
    resolver[NAME] = [["127.0.0.1"]]
    certificate, key = _self_signed(tmp_path, NAME)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certificate, key)
    trusting = ssl.create_default_context(cafile=str(certificate))
    settings.webhook_private_networks = True  # 127.0.0.1 is the receiver's address here
    with _receiver(server) as (port, hosts):
        _endpoint(database, f"https://{NAME}:{port}/hook")
        _deliver(settings, database, verify=trusting)

    row = _delivery(database)
    assert hosts == [f"{NAME}:{port}"]
    assert (row.status, row.error) == ("succeeded", None)


@contextmanager
def _receiver(tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, list[str]]]:
    """A receiver on 127.0.0.1 that answers 204; yields its port and the Host header of each request."""
    hosts: list[str] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hosts.append(self.headers["host"])
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


def _endpoint(database: Database, url: str) -> None:
    """An endpoint of a new tenant at `url`, with one event pending for it."""
    with database.session() as session:
        tenant = create_tenant(session, "acme")
        session.add(
            WebhookEndpoint(
                id="we_test", tenant_pk=tenant.pk, url=url, secret="whsec_" + "A" * 32, event_types=[]
            )
        )
        session.flush()
        emit(session, tenant.pk, "fine_tuning.job.failed", {"id": "ftjob-x"})


def _deliver(settings: Settings, database: Database, verify: ssl.SSLContext | bool = True) -> None:
    """One delivery round, as the deliverer's task runs it."""

    async def one_round() -> None:
        async with httpx.AsyncClient(timeout=5, verify=verify) as client:
            assert await deliverer.Deliverer(settings, database).deliver_due(client) == 1

    asyncio.run(one_round())


def _delivery(database: Database) -> WebhookDelivery:
    with database.session() as session:
        row = session.scalars(select(WebhookDelivery)).one()
        session.expunge(row)
        return row


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` only (no IP address in it) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = folder / "receiver.pem", folder / "receiver.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_file, key_file
