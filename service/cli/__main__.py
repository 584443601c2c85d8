"""`python -m service.cli …`, the same as the `neuroplast` command."""

from service.cli import app

app()
