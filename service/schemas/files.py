"""File resource shapes (OpenAI `file` object)."""

from typing import Literal

from pydantic import BaseModel


class FilePublic(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    filename: str
    purpose: str
    created_at: int
    status: Literal["processed"] = "processed"
    rows: int


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
