"""Short-lived signed links to a report's HTML page, so a browser can open it without an API key.

The API hands out `/v1/reports/{id}.html?expires=<unix seconds>&signature=<hex>`, the signature an
HMAC-SHA256 of the report id and the expiry under the service's link secret. The link shows that one
report until it expires; whoever holds it can read the page, as with any shared link, so links are
short-lived (`ReportLinkCreate`: 15 minutes unless asked otherwise, at most a day).
"""

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import ApiError, not_found
from service.models import Report
from service.settings import Settings

SECRET_FILE = "report-link-secret"


def sign(settings: Settings, report_id: str, expires_at: int) -> str:
    """The signature of a link to `report_id` valid until `expires_at` (Unix seconds)."""
    message = f"{report_id}\n{expires_at}".encode()
    return hmac.new(_secret(settings), message, hashlib.sha256).hexdigest()


def open_link(settings: Settings, session: Session, report_id: str, expires: int, signature: str) -> Report:
    """The report a signed link names, whichever tenant's it is: the signature proves the API gave
    the link to that tenant.

    Raises:
        ApiError: 403 when the signature does not match or the link has expired; 404 when the
            report is gone.
    """
    if not hmac.compare_digest(sign(settings, report_id, expires).encode(), signature.encode()):
        raise ApiError(403, "This report link is not valid.", param="signature", code="invalid_link")
    if expires < time.time():
        raise ApiError(
            403,
            "This report link has expired; ask for a new one (neuroplast reports link).",
            param="expires",
            code="link_expired",
        )
    report = session.scalar(select(Report).where(Report.id == report_id))
    if report is None:
        raise not_found("report", report_id, "report_id")
    return report


def _secret(settings: Settings) -> bytes:
    """NEUROPLAST_REPORT_LINK_SECRET, else a random one kept in the data folder (made on first use).

    Several API processes behind one address need the same secret: set it for all of them.
    """
    if settings.report_link_secret:
        return settings.report_link_secret.encode()
    path = settings.data_dir.resolve() / SECRET_FILE
    if not path.exists():
        _write_new_secret(path)
    return path.read_bytes().strip()


def _write_new_secret(path: Path) -> None:
    """Write a fresh secret, readable by the owner only, whole or not at all; of two processes
    racing, the first one's stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    try:
        os.link(scratch, path)  # fails if another process made one first
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
