"""Domain logic, one module per resource; no FastAPI in here."""
