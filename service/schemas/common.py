"""Shapes shared by every resource: the OpenAI list page."""

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

Item = TypeVar("Item")


class ListPage(BaseModel, Generic[Item]):
    """`{object: "list", data, has_more}`: the SDK pages with the last item's id as `after`."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool = False
