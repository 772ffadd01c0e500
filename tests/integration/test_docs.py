"""``/docs`` works without a network: the page names only this server's own URLs, and
each of them answers (Swagger UI's files come from the package)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from taskhub.api.app import SWAGGER_UI_DIR, create_app

#: Every URL a page can make the browser fetch: src/href attributes and Swagger UI's
#: ``url`` (the schema), ``oauth2RedirectUrl`` and ``validatorUrl`` settings.
_URLS = re.compile(
    r"""(?:src|href)="([^"]*)"|\b(?:url|oauth2RedirectUrl|validatorUrl)\b["']?:\s*["']([^"']*)["']"""
)


def test_docs_load_only_local_assets_and_each_answers(tmp_path: Path) -> None:
    client = TestClient(create_app(f"sqlite:///{tmp_path / 'docs.db'}"))
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = [a or b for a, b in _URLS.findall(page.text)]
    assert "/openapi.json" in urls
    assert len(urls) >= 4, urls  # the stylesheet, the icon, the script and the schema
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"not local: {url}"
    assert "cdn" not in page.text.lower() and "http" not in page.text.replace("http-equiv", "")
    assert '"validatorUrl": null' in page.text  # no badge fetched from validator.swagger.io

    expected_types = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        suffix = Path(url).suffix
        if suffix in expected_types:
            assert expected_types[suffix] in response.headers["content-type"], url
            assert response.content == (SWAGGER_UI_DIR / Path(url).name).read_bytes()
    assert client.get("/openapi.json").json()["info"]["title"] == "taskhub"


def test_the_shipped_swagger_ui_is_whole_and_licensed() -> None:
    names = {path.name for path in SWAGGER_UI_DIR.iterdir()}
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "SOURCE"} <= names
    assert "Apache License" in (SWAGGER_UI_DIR / "LICENSE").read_text()
    bundle = (SWAGGER_UI_DIR / "swagger-ui-bundle.js").read_text()
    assert "SwaggerUIBundle" in bundle
    # No source map is shipped, so none may be asked for.
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert "sourceMappingURL" not in (SWAGGER_UI_DIR / name).read_text()
