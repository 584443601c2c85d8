"""`/v1/reports`: health reports as JSON and as a self-contained HTML page."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from eval.report import render_html
from service.deps import SessionDep, TenantDep
from service.schemas.errors import CLIENT_ERRORS_OF_HTML
from service.schemas.health_checks import ReportPublic
from service.services import reports

router = APIRouter(prefix="/reports", tags=["health checks"])


@router.get("/{report_id}.html", response_class=HTMLResponse, responses=CLIENT_ERRORS_OF_HTML)
def get_report_html(report_id: str, session: SessionDep, tenant: TenantDep) -> HTMLResponse:
    return HTMLResponse(render_html(reports.get_report(session, tenant, report_id).body))


@router.get("/{report_id}", response_model=ReportPublic)
def get_report(report_id: str, session: SessionDep, tenant: TenantDep) -> ReportPublic:
    return ReportPublic(**reports.get_report(session, tenant, report_id).body)
