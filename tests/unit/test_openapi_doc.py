"""The OpenAPI description is complete: every operation summarized, every error answer
documented with the error schema, every field described; the docs page is self-contained."""

from __future__ import annotations

import re

import pytest

from api import create_app


@pytest.fixture(scope="module")
def client():
    return create_app().test_client()


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def resolve(spec, obj):
    while "$ref" in obj:
        _, section, kind, name = obj["$ref"].split("/")
        obj = spec[section][kind][name]
    return obj


def test_every_operation_is_summarized_and_lists_its_errors_with_the_error_schema(spec):
    assert spec["openapi"].startswith("3.") and spec["info"]["description"]
    for path, method, operation in operations(spec):
        label = f"{method.upper()} {path}"
        assert operation.get("summary"), label
        responses = operation["responses"]
        assert "default" not in responses, label
        assert any(code.startswith("2") for code in responses), label
        has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
        expected = (
            {"431", "500", "503"}
            | ({"404"} if "{" in path else set())
            | ({"400", "413"} if "requestBody" in operation else set())
            | ({"414"} if has_query or "{" in path else set())
        )
        assert expected <= set(responses), label
        for code, response in responses.items():
            response = resolve(spec, response)
            assert response.get("description"), (label, code)
            # 414 and 431 too: gunicorn's refusals are answered in the error shape (gunicorn.conf.py)
            if int(code) >= 400:
                schema = response["content"]["application/json"]["schema"]
                # /health answers 503 with its own body (which service is down), not an error
                own = "Health" if path.startswith("/health") and code == "503" else "Error"
                assert schema == {"$ref": f"#/components/schemas/{own}"}, (label, code)
        assert "Retry-After" in responses["503"]["headers"], label


def test_every_field_and_parameter_is_described(spec):
    missing = [
        f"{name}.{field}"
        for name, schema in spec["components"]["schemas"].items()
        for field, prop in (schema.get("properties") or {}).items()
        if not prop.get("description")
    ]
    assert not missing, missing
    for path, item in spec["paths"].items():
        for parameter in item.get("parameters", []):
            assert parameter.get("description"), (path, parameter["name"])
    for path, _method, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (path, parameter["name"])


def test_the_new_endpoints_are_documented(spec):
    assert {"/runs/{run_id}/output", "/metrics"} <= set(spec["paths"])
    output = spec["paths"]["/runs/{run_id}/output"]["get"]
    assert {p["name"] for p in output["parameters"] if p["in"] == "query"} == {"after", "wait", "limit"}
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_swagger_ui_is_served_from_local_files(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    assert not re.search(r"https?://", html)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
