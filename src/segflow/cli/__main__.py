"""``python -m segflow.cli``: the ``segflow`` command."""

from segflow.cli import app

app()
