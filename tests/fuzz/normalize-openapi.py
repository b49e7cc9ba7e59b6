#!/usr/bin/env python3
"""Applies the pipeline-wide facts to every operation of infra/openapi.json, in place.

The document is maintained by hand, operation by operation; what every operation shares because
the shared pipeline (shared/src/pipeline.rs) runs before any handler is added here instead, so
it cannot be forgotten on a new route. Idempotent: run it after editing the document, and
scripts/fuzz-contract fails when running it would change the file.

  * 400 on every operation: the input guard refuses a NUL byte or a traversal sequence in the
    path, a query value over 10 KB and a Content-Length that is not a number, before routing.
  * 413 on every operation: the body cap (5 MB JSON, 10 MB otherwise, 50 MB uploads) is checked
    before routing decides whether the body is read.
  * 415 on every operation with a JSON request body (Cx::json needs Content-Type: application/json).
  * 429 on every operation except the quiet probe (GET /health is exempt from rate limiting).
  * 401 and 403 on every authenticated operation (missing/invalid credential; role, token scope,
    CSRF).
  * 404 on every operation with a path parameter.
  * 503 on every operation (the store, or the audit row every request writes).
  * Every optional member of a JSON request body may be `null`, meaning the same as leaving it
    out (every optional field is an `Option` in its handler's type, and serde reads `null` as
    `None`): its schema gets `"null"` among its types. A body schema marked
    `"x-null-is-absent": false` is left alone (its handler refuses null).
  * An empty query value means the same as leaving the parameter out (shared/src/http.rs drops
    `name=` pairs before any handler sees the query): every optional query parameter whose own
    schema refuses "" also accepts it, and a required array parameter needs one non-empty item.
  * String query and path parameters carry the pattern `^[^\\u0000]*$`: the input guard refuses
    a NUL byte anywhere in the path or the query (a security boundary: NUL truncates strings in
    downstream C consumers and log pipelines), so such a value is not a valid value.

Usage: tests/fuzz/normalize-openapi.py [--check] [path]
"""

import json
import sys

NO_NUL = "^[^\\u0000]*$"
ERROR = {"$ref": "#/components/responses/Error"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
QUIET = {("get", "/health")}


def no_nul(schema):
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "array":
        no_nul(schema.get("items"))
        return
    if schema.get("type") == "string" and "enum" not in schema and "pattern" not in schema:
        if schema.get("format") != "uuid":
            schema["pattern"] = NO_NUL


def nullable(schema):
    """`schema`, also accepting null (idempotent)."""
    if "$ref" in schema or "anyOf" in schema or "oneOf" in schema or "type" not in schema:
        if any(s.get("type") == "null" for s in schema.get("anyOf", [])):
            return schema
        if "anyOf" in schema and len(schema) == 1:
            return {"anyOf": schema["anyOf"] + [{"type": "null"}]}
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if "null" not in types:
        schema = dict(schema, type=types + ["null"])
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = schema["enum"] + [None]
    return schema


EMPTY = {"type": "string", "maxLength": 0}


def accepts_empty(schema):
    """Whether "" already satisfies `schema` (a plain string without a lower bound)."""
    return (
        schema.get("type") == "string"
        and "enum" not in schema
        and schema.get("minLength", 0) == 0
        and schema.get("pattern") in (None, NO_NUL)
        and "format" not in schema
    )


def empty_means_absent(param):
    schema = param.get("schema")
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "array":
        items = schema.get("items", {})
        if param.get("required") and items.get("type") == "string" and "contains" not in schema:
            schema["contains"] = {"type": "string", "minLength": 1}
        return
    if param.get("required") or accepts_empty(schema):
        return
    if any(alt == EMPTY for alt in schema.get("anyOf", [])):
        return
    param["schema"] = {"anyOf": [schema, dict(EMPTY)]}


def body_schema(doc, schema):
    """The object schema of a request body (a `$ref` to components/schemas followed once)."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def normalize(doc):
    for path, item in doc["paths"].items():
        path_params = [p for p in item.get("parameters", []) if "$ref" not in p]
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = path_params + [p for p in op.get("parameters", []) if "$ref" not in p]
            for p in params:
                if p.get("in") in ("query", "path"):
                    no_nul(p.get("schema"))
                if p.get("in") == "query":
                    empty_means_absent(p)
            security = op.get("security", doc.get("security", []))
            authenticated = any(len(req) > 0 for req in security) and {} not in security
            body = op.get("requestBody")
            json_body = body is not None and any(
                ct == "application/json" or ct.endswith("+json") for ct in body.get("content", {})
            )
            if json_body:
                for ct, content in body.get("content", {}).items():
                    schema = body_schema(doc, content.get("schema", {}))
                    if schema.get("x-null-is-absent") is False:
                        continue  # a body whose fields refuse null (said in its description)
                    required = set(schema.get("required", []))
                    for name, prop in schema.get("properties", {}).items():
                        if name not in required:
                            schema["properties"][name] = nullable(prop)
            add = {"400", "413", "503"}
            if json_body:
                add.add("415")
            if (method, path) not in QUIET:
                add.add("429")
            if authenticated:
                add |= {"401", "403"}
            if "{" in path:
                add.add("404")
            responses = op["responses"]
            for code in add:
                responses.setdefault(code, dict(ERROR))
            op["responses"] = dict(sorted(responses.items(), key=lambda kv: kv[0]))
    return doc


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv[1:]
    path = args[0] if args else "infra/openapi.json"
    with open(path, encoding="utf-8") as f:
        before = f.read()
    after = json.dumps(normalize(json.loads(before)), indent=2, ensure_ascii=False) + "\n"
    if check:
        if after != before:
            print(f"{path} is not normalized: run tests/fuzz/normalize-openapi.py", file=sys.stderr)
            sys.exit(1)
        return
    if after != before:
        with open(path, "w", encoding="utf-8") as f:
            f.write(after)


if __name__ == "__main__":
    main()
