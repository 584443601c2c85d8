"""File resource shapes (OpenAI `file` object)."""

from typing import Literal

from pydantic import BaseModel, Field


class FilePublic(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    filename: str
    purpose: str
    created_at: int
    status: Literal["processed"] = "processed"
    rows: int
    junk_ratio: float | None = Field(
        None, description="Share of junk rows found by the training-data screen."
    )


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
