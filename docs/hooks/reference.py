"""MkDocs hook: the reference pages made from the code at every build, never by hand.

* ``reference/api.md`` and ``reference/openapi.json``: the REST API's OpenAPI description,
  as the API itself serves it at ``/openapi.json`` (the app is built in a child process, so
  its logging set-up stays out of MkDocs'), rendered operation by operation and schema by schema;
* ``reference/settings.md``: every field of ``hydra.settings.Settings`` with its variable,
  default and description.

(The CLI reference, ``reference/cli.md``, is mkdocs-click's rendering of the click commands.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from mkdocs.structure.files import File

_DUMP = (
    "import json\nfrom api import create_app\nprint(json.dumps(create_app().test_client().get('/openapi.json').json))"
)
_METHODS = ("get", "post", "put", "patch", "delete")


def openapi(root: Path) -> dict:
    """The API's OpenAPI description (the app needs a signing key to start: a fresh one will do)."""
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    if not env.get("HYDRA_SIGNING_KEY") and not env.get("HYDRA_SIGNING_KEY_FILE"):
        from hydra.dispatch import signing

        env["HYDRA_SIGNING_KEY"] = signing.private_text(signing.generate())
    done = subprocess.run(
        [sys.executable, "-c", _DUMP], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"could not build the API to read its OpenAPI description:\n{done.stderr}")
    return json.loads(done.stdout)


def _cell(text) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def type_of(schema: dict) -> str:
    """A schema's type in a few words, with links to named schemas."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{anchor(name)})"
    if "allOf" in schema:
        return " and ".join(type_of(part) for part in schema["allOf"])
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(type_of(part) for part in schema.get("anyOf") or schema.get("oneOf"))
    kind = schema.get("type", "object")
    if kind == "array":
        text = f"array of {type_of(schema.get('items') or {})}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"object of {type_of(schema['additionalProperties'])}"
    else:
        text = kind + (f" ({schema['format']})" if schema.get("format") else "")
    if schema.get("enum"):
        text += ": " + ", ".join(f"`{value}`" for value in schema["enum"] if value is not None)
    if schema.get("nullable"):
        text += " or null"
    return text


def anchor(schema_name: str) -> str:
    return "schema-" + schema_name.lower()


def _operation_anchor(method: str, path: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in path.strip("/")).strip("-") or "root"
    return f"{method}-{slug}"


def _parameters(operation: dict) -> list[str]:
    params = operation.get("parameters") or []
    if not params:
        return []
    lines = ["", "| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
    for p in params:
        required = "yes" if p.get("required") else ""
        schema_type = type_of(p.get("schema") or {})
        lines.append(f"| `{p['name']}` | {p['in']} | {schema_type} | {required} | {_cell(p.get('description'))} |")
    return lines


def _responses(operation: dict) -> list[str]:
    lines = ["", "| answer | description | body |", "| --- | --- | --- |"]
    for code, response in sorted((operation.get("responses") or {}).items()):
        content = response.get("content") or {}
        body = "; ".join(f"`{kind}`: {type_of(item.get('schema') or {})}" for kind, item in content.items())
        lines.append(f"| {code} | {_cell(response.get('description'))} | {body} |")
    return lines


def render_api(spec: dict) -> str:
    info = spec.get("info", {})
    out = [
        "# REST API reference",
        "",
        f"Generated at every build of this site from the API's own OpenAPI {spec.get('openapi', '')} "
        "description, the one a running API serves at `/openapi.json` (with Swagger UI at `/docs`). "
        "[Download it](openapi.json). How to use the API: the [REST guide](../guides/rest.md).",
        "",
        info.get("description", ""),
        "",
        "Every operation but `/health`, `/openapi.json` and `/docs` needs `Authorization: Bearer <token>`; "
        "errors have the body [Error](#schema-error).",
    ]
    tags = {tag["name"]: tag.get("description", "") for tag in spec.get("tags", [])}
    by_tag: dict[str, list[tuple[str, str, dict]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, operation))
    for tag, operations in by_tag.items():
        out += ["", f"## {tag}", "", tags.get(tag, "")]
        for method, path, operation in operations:
            out += ["", f"### {method.upper()} `{path}` {{#{_operation_anchor(method, path)}}}", ""]
            out.append(operation.get("summary") or "")
            if operation.get("description"):
                out += ["", operation["description"]]
            out += _parameters(operation)
            body = (operation.get("requestBody") or {}).get("content") or {}
            for kind, item in body.items():
                out += ["", f"Request body (`{kind}`): {type_of(item.get('schema') or {})}"]
            out += _responses(operation)
    out += ["", "## Schemas"]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        out += ["", f"### {name} {{#{anchor(name)}}}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        properties = schema.get("properties") or {}
        if not properties:
            out.append(f"Type: {type_of(schema)}.")
            continue
        required = set(schema.get("required") or [])
        out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
        for field_name, prop in properties.items():
            flags = "yes" if field_name in required else ""
            if prop.get("readOnly"):
                flags = (flags + " read-only").strip()
            out.append(f"| `{field_name}` | {type_of(prop)} | {flags} | {_cell(prop.get('description'))} |")
    return "\n".join(out) + "\n"


def render_settings() -> str:
    from hydra.settings import CONFIG_VARIABLE, Settings, env_name

    out = [
        "# Settings reference",
        "",
        "Every Hydra process (API, controller, workers, the `hydra` command, Python programs using",
        "`apply_async`) reads these variables once, at start (`hydra/settings.py`, from which this page",
        "is generated). Unset or empty means the default. `celeryconfig.py` maps them onto",
        "Celery's names (JSON messages only, acknowledgement after the attempt ended).",
        "",
        f"`{CONFIG_VARIABLE}` names a settings file of `HYDRA_NAME=value` lines, read as if they were",
        "in the environment (a variable set in the environment wins). Others than its owner and group",
        "may not read it, and it may name only the settings below. `hydra worker-config` and `hydra client-config`",
        "write such files; see [Joining a worker machine](../operating/workers.md).",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for item in fields(Settings):
        default = item.default if item.default is not MISSING else ""
        shown = "unset" if default is None else f"`{default}`"
        out.append(f"| `{env_name(item.name)}` | {shown} | {_cell(item.metadata.get('doc'))} |")
    return "\n".join(out) + "\n"


def on_files(files, config):
    root = Path(config.config_file_path).resolve().parent
    spec = openapi(root)
    for path, content in (
        ("reference/api.md", render_api(spec)),
        ("reference/openapi.json", json.dumps(spec, indent=1) + "\n"),
        ("reference/settings.md", render_settings()),
    ):
        files.append(File.generated(config, path, content=content))
    return files


def on_page_content(html, page, config, files):
    # mkdocs-click prints click 8.2+'s marker for "no default" as if it were one.
    if page.file.src_uri == "reference/cli.md":
        return html.replace("<code>Sentinel.UNSET</code>", "")
    return html
