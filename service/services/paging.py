"""Cursor paging, newest first: `after` is the id of the last item of the previous page."""

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.errors import not_found

Row = TypeVar("Row")


def page(
    session: Session, model: type[Row], scope: ColumnElement[bool], after: str | None, limit: int
) -> tuple[list[Row], bool]:
    """Up to `limit` rows of `model` within `scope`, newest first, and whether more follow."""
    table: Any = model
    query = select(model).where(scope)
    if after is not None:
        cursor = session.scalar(select(table.pk).where(scope, table.id == after))
        if cursor is None:
            raise not_found(model.__name__.lower(), after, "after")
        query = query.where(table.pk < cursor)
    rows = list(session.scalars(query.order_by(table.pk.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
