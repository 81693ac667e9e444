"""The human page of the OpenAPI description: one self-contained HTML document, no scripts,
no fonts or styles from elsewhere (the server may have no internet, nor its readers)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d1d1f; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ccc; padding-top: 1rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f5f5f7; padding: .75rem; overflow-x: auto; }
.op { border: 1px solid #ddd; border-radius: 6px; margin: 1rem 0; padding: .25rem 1rem; }
.method { display: inline-block; min-width: 4.5rem; font-weight: bold; text-transform: uppercase; }
.get { color: #0a6e31; } .post { color: #0b57d0; } .patch { color: #8a5a00; }
.delete { color: #b3261e; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f7; }
"""


def render_docs(spec: dict[str, Any]) -> str:
    """The whole page for ``spec``: operations by tag, error codes, then every schema."""
    info = spec["info"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(info['title'])} API</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} API</h1>",
        f"<p>{_md(info.get('description', ''))}</p>",
        '<p>The same description as data: <a href="/openapi.json">/openapi.json</a>'
        f" (OpenAPI {escape(spec['openapi'])}).</p>",
    ]
    for tag in spec.get("tags", []):
        parts.append(f"<h2>{escape(tag['name'])}</h2><p>{_md(tag.get('description', ''))}</p>")
        for path, item in spec["paths"].items():
            for method in METHODS:
                operation = item.get(method)
                if operation and tag["name"] in operation.get("tags", []):
                    parts.append(_operation(spec, path, method, item, operation))
    codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
    parts.append("<h2>Error codes</h2><p>" + ", ".join(f"<code>{escape(c)}</code>" for c in codes))
    parts.append("</p><h2>Schemas</h2>")
    for name, schema in spec["components"]["schemas"].items():
        shown = escape(json.dumps(schema, indent=2, ensure_ascii=False))
        parts.append(f'<h3 id="schema-{escape(name)}">{escape(name)}</h3><pre>{shown}</pre>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(
    spec: dict[str, Any], path: str, method: str, item: dict[str, Any], op: dict[str, Any]
) -> str:
    out = [
        f'<div class="op"><h3><span class="method {method}">{method}</span>'
        f" <code>{escape(path)}</code></h3>",
        f"<p><strong>{escape(op.get('summary', ''))}</strong></p>",
    ]
    if op.get("description"):
        out.append(f"<p>{_md(op['description'])}</p>")
    if op.get("security"):
        out.append("<p>Needs <code>Authorization: Bearer &lt;admin token&gt;</code>.</p>")
    params = [*item.get("parameters", []), *op.get("parameters", [])]
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>schema</th><th>notes</th></tr>")
        for p in params:
            schema = p.get("schema") or next(iter(p.get("content", {}).values()))["schema"]
            required = " (required)" if p.get("required") else ""
            out.append(
                f"<tr><td><code>{escape(p['name'])}</code>{required}</td><td>{escape(p['in'])}"
                f"</td><td>{_schema(schema)}</td><td>{_md(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        required = "required" if body.get("required") else "optional"
        kinds = ", ".join(
            f"<code>{escape(kind)}</code>: {_schema(media['schema'])}"
            for kind, media in body["content"].items()
        )
        out.append(f"<p>Body ({required}): {kinds}</p>")
    out.append("<table><tr><th>status</th><th>answer</th><th>body</th></tr>")
    for status, answer in op["responses"].items():
        if "$ref" in answer:
            answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
        content = answer.get("content", {})
        shown = ", ".join(_schema(media["schema"]) for media in content.values())
        out.append(
            f"<tr><td>{escape(status)}</td><td>{_md(answer['description'])}</td>"
            f"<td>{shown}</td></tr>"
        )
    out.append("</table></div>")
    return "\n".join(out)


def _schema(schema: dict[str, Any]) -> str:
    """A short, linked description of a schema: its name, type, or the parts it joins."""
    if "$ref" in schema:
        name = escape(schema["$ref"].rsplit("/", 1)[1])
        return f'<a href="#schema-{name}">{name}</a>'
    for joiner in ("allOf", "anyOf", "oneOf"):
        if joiner in schema:
            return f" {joiner[:-2]} ".join(_schema(part) for part in schema[joiner])
    if "enum" in schema:
        return " | ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    kind = escape(str(schema.get("type", "any")))
    if kind == "array":
        return f"array of {_schema(schema.get('items', {}))}"
    if kind == "object" and "properties" in schema:
        return "{" + ", ".join(escape(k) for k in schema["properties"]) + "}"
    extra = schema.get("pattern") or schema.get("format")
    return f"{kind} <code>{escape(extra)}</code>" if extra else kind


def _md(text: str) -> str:
    """Escaped text with `code` spans, the only markup the descriptions use."""
    pieces = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if n % 2 else p for n, p in enumerate(pieces))
