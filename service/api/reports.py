"""`/v1/reports`: health reports as JSON and as a self-contained HTML page, and signed links to the page."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import HTMLResponse

from eval.report import render_html
from service.deps import BEARER, SessionDep, SettingsDep, TenantDep, get_caller, get_tenant
from service.models import now
from service.schemas.errors import CLIENT_ERRORS_OF_HTML
from service.schemas.health_checks import ReportLinkCreate, ReportLinkPublic, ReportPublic
from service.services import report_links, reports

router = APIRouter(prefix="/reports", tags=["health checks"])


@router.get(
    "/{report_id}.html",
    response_class=HTMLResponse,
    responses=CLIENT_ERRORS_OF_HTML,
    dependencies=[Security(BEARER)],
    description="With an API key, or without one through a signed link (`POST /v1/reports/{id}/link`).",
)
def get_report_html(
    report_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    expires: Annotated[int | None, Query(description="Of a signed link.")] = None,
    signature: Annotated[str | None, Query(description="Of a signed link.")] = None,
) -> HTMLResponse:
    if expires is not None and signature is not None:
        report = report_links.open_link(settings, session, report_id, expires, signature)
    else:
        report = reports.get_report(session, get_tenant(session, get_caller(request, session)), report_id)
    return HTMLResponse(render_html(report.body))


@router.post("/{report_id}/link", response_model=ReportLinkPublic)
def create_report_link(
    report_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    body: ReportLinkCreate | None = None,
) -> ReportLinkPublic:
    report = reports.get_report(session, tenant, report_id)
    expires_at = now() + (body or ReportLinkCreate()).expires_in
    signature = report_links.sign(settings, report.id, expires_at)
    page = request.url_for("get_report_html", report_id=report.id)
    url = page.include_query_params(expires=expires_at, signature=signature)
    return ReportLinkPublic(report_id=report.id, url=str(url), expires_at=expires_at)


@router.get("/{report_id}", response_model=ReportPublic)
def get_report(report_id: str, session: SessionDep, tenant: TenantDep) -> ReportPublic:
    return ReportPublic(**reports.get_report(session, tenant, report_id).body)
