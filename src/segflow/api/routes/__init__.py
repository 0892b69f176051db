"""The HTTP API's routes, one module per resource.

Each module defines a ``router`` (``create_app`` includes them in ``app.MODULES``
order) and may define ``async def background(ctx) -> None``, run as a task for the
server's lifetime.
"""
