"""Request and response shapes of the REST API (pydantic lives only at the HTTP edge)."""
