"""The documentation pages work offline: /docs and /redoc load their scripts and styles
from the server itself, and name no other host."""

from __future__ import annotations

import re

import pytest

from tests.helpers import Server

URL_ATTR = re.compile(r"""(?:src|href|url)\s*[=:(]\s*['"]?([^'"\s>)]+)""", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_the_server(shared_server: Server, page: str) -> None:
    r = shared_server.client.get(page, headers={"Authorization": ""})  # no key needed
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "://" not in html, re.findall(r"\S*://\S*", html)
    assets = [u for u in URL_ATTR.findall(html) if u.startswith("/static/")]
    assert assets, html
    for url in assets:
        got = shared_server.client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 500, url
    assert "/openapi.json" in html


def test_swagger_ui_assets_have_their_types(shared_server: Server) -> None:
    js = shared_server.client.get("/static/docs/swagger-ui-bundle.js")
    css = shared_server.client.get("/static/docs/swagger-ui.css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert css.headers["content-type"].startswith("text/css")
    assert "SwaggerUIBundle" in js.text


def test_unknown_asset_is_404(shared_server: Server) -> None:
    r = shared_server.client.get("/static/docs/..%2Fapp.py")
    assert r.status_code == 404
    r = shared_server.client.get("/static/docs/LICENSE")
    assert r.status_code == 404
    assert "no documentation asset" in r.json()["error"]["message"]
