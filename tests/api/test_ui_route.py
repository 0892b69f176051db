"""The web UI's files: served from web/ (subfolders included, nothing outside it), under
a Content-Security-Policy, and self-contained: every module the page imports, at any
depth, comes from the server itself, so the UI works with no way out to the internet."""

from __future__ import annotations

import re
from urllib.parse import urljoin

from tests.helpers import Server

HTML_REF = re.compile(r"""(?:src|href)="([^"]+)\"""")
JS_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"'\s]+)["']""")


def test_index_has_a_strict_content_security_policy(shared_server: Server) -> None:
    r = shared_server.client.get("/", headers={"Authorization": ""})  # the page needs no key
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert r.headers["cache-control"] == "no-cache"


def test_every_module_the_page_loads_comes_from_the_server(shared_server: Server) -> None:
    index = shared_server.client.get("/").text
    todo = [u for u in HTML_REF.findall(index) if not u.startswith(("data:", "#"))]
    seen: set[str] = set()
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        assert url.startswith("/"), f"{url} is not on this server"
        if url == "/docs":
            continue
        r = shared_server.client.get(url)
        assert r.status_code == 200, url
        if url.endswith(".js"):
            assert r.headers["content-type"].startswith("text/javascript"), url
            for spec in JS_IMPORT.findall(r.text):
                assert spec.startswith("."), f"{url} imports {spec!r} from outside the server"
                todo.append(urljoin(url, spec))
    pages = {u for u in seen if "/js/pages/" in u}
    assert len(pages) >= 9, sorted(seen)
    assert "/ui/vendor/uPlot.esm.js" in seen
    assert "/ui/vendor/preact-hooks.module.js" in seen


def test_vendored_files_are_cached_and_app_files_revalidated(shared_server: Server) -> None:
    vendor = shared_server.client.get("/ui/vendor/preact.module.js")
    app = shared_server.client.get("/ui/js/app.js")
    assert "max-age=86400" in vendor.headers["cache-control"]
    assert app.headers["cache-control"] == "no-cache"
    assert "etag" in app.headers


def test_nothing_outside_web_is_served(shared_server: Server) -> None:
    for path in [
        "/ui/..%2Fpyproject.toml",
        "/ui/%2e%2e/pyproject.toml",
        "/ui/js/..%2F..%2Fpyproject.toml",
        "/ui/vendor/README.md",  # not a served type
        "/ui/js/nope.js",
    ]:
        r = shared_server.client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["message"].startswith("no UI file")
