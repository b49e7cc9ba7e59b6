"""Validates infra/spinkube.yaml (run through scripts/check-spinkube, which provides jsonschema/PyYAML).

- SpinApp documents: against the openAPIV3Schema of the SpinApp CRD vendored from
  spinframework/spin-operator (infra/k8s/core.spinkube.dev_spinapps.yaml), strictly: an object
  that declares `properties` takes no other field (as `kubectl apply --validate=strict`, its
  default, refuses them; the API server would otherwise prune them silently). Kubernetes' schema
  extensions are honoured: x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
  nullable, format int32/int64. apiVersion must be the CRD's group/version and kind its kind.
  Each variable must be one of spin.toml's [variables]; a secret one must come from a secretKeyRef.
- The Secret that runtimeConfig.loadFromSecret names: present, with a `runtime-config.toml` key
  that parses and equals infra/runtime-config.toml (Redis key-value, libSQL SQLite); with libSQL
  the SpinApp must set sqlite_synchronous=server.
- CronJobs: batch/v1, a valid 5-field schedule, containers with name and image, a Job's
  restartPolicy, $(VAR) references defined in env, and URLs that reach the SpinApp's Service on a
  route spin.toml serves.
- Every document: apiVersion, kind, metadata.name (a DNS-1123 label).

`--self-test` also proves the check can fail: mutated copies of the manifest (a misspelled field,
a wrong type, a missing required field, and more) must each be rejected, and the manifest as it
is must pass.
"""

from __future__ import annotations

import argparse
import base64
import copy
import re
import sys
from pathlib import Path

import jsonschema
import yaml

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT / "infra" / "spinkube.yaml"
DEFAULT_CRD = ROOT / "infra" / "k8s" / "core.spinkube.dev_spinapps.yaml"
DEFAULT_SPIN_TOML = ROOT / "spin.toml"
DEFAULT_RUNTIME_CONFIG = ROOT / "infra" / "runtime-config.toml"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# Spin's runtime-config store types.
KV_TYPES = {"spin", "redis", "azure_cosmos", "aws_dynamo"}
SQLITE_TYPES = {"spin", "libsql"}


class Problems(list):
    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")


# --------------------------------------------------------------------------------------------
# The CRD's structural schema → JSON Schema (draft 4, which OpenAPI 3.0's schema object follows).
# --------------------------------------------------------------------------------------------


def k8s_to_jsonschema(node: dict, strict: bool = True) -> dict:
    """Converts a Kubernetes structural schema node; strict: declared properties close the object."""
    if not isinstance(node, dict):
        return node
    out: dict = {}
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    for key, value in node.items():
        if key in ("description", "default", "example", "externalDocs", "format"):
            continue
        if key.startswith("x-kubernetes-"):
            continue  # handled below, or list/map merge hints with no validation meaning here
        if key == "nullable":
            continue
        if key == "properties":
            out[key] = {k: k8s_to_jsonschema(v, strict) for k, v in value.items()}
        elif key in ("items", "not") and isinstance(value, dict):
            out[key] = k8s_to_jsonschema(value, strict)
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = k8s_to_jsonschema(value, strict)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [k8s_to_jsonschema(v, strict) for v in value]
        else:
            out[key] = copy.deepcopy(value)

    fmt = node.get("format")
    if fmt in INT_BOUNDS and node.get("type") == "integer":
        low, high = INT_BOUNDS[fmt]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)

    if node.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        if "anyOf" not in out:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        # `pattern` applies to strings only in JSON Schema, as in Kubernetes.

    if preserve and "type" not in node and "properties" not in node:
        return {}  # anything goes

    if (
        strict
        and "properties" in node
        and "additionalProperties" not in node
        and not preserve
        and node.get("type", "object") == "object"
    ):
        out["additionalProperties"] = False

    if node.get("nullable") is True:
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            out["type"] = t + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


class Crd:
    def __init__(self, path: Path):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        if len(crds) != 1:
            raise SystemExit(f"{path}: expected one CustomResourceDefinition, found {len(crds)}")
        crd = crds[0]
        spec = crd["spec"]
        self.path = path
        self.group = spec["group"]
        self.kind = spec["names"]["kind"]
        versions = [v for v in spec["versions"] if v.get("served") and v.get("storage")]
        if len(versions) != 1:
            raise SystemExit(f"{path}: expected one served storage version, found {len(versions)}")
        self.version = versions[0]["name"]
        self.api_version = f"{self.group}/{self.version}"
        self.raw_schema = versions[0]["schema"]["openAPIV3Schema"]
        self.schema = k8s_to_jsonschema(self.raw_schema)
        jsonschema.Draft4Validator.check_schema(self.schema)
        self.validator = jsonschema.Draft4Validator(self.schema)


def error_path(err: jsonschema.ValidationError) -> str:
    parts = []
    for p in err.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + str(p)))
    return "".join(parts) or "(document)"


def describe(err: jsonschema.ValidationError) -> str:
    msg = err.message
    if err.validator == "anyOf" and err.context:
        msg += " (" + "; ".join(sorted({c.message for c in err.context})) + ")"
    return msg


# --------------------------------------------------------------------------------------------
# Checks.
# --------------------------------------------------------------------------------------------


def check_metadata(doc: dict, where: str, problems: Problems, max_len: int = 63) -> None:
    for field in ("apiVersion", "kind"):
        if not isinstance(doc.get(field), str) or not doc.get(field):
            problems.add(where, f"`{field}` is missing or not a string")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        problems.add(where, "`metadata` is missing or not a mapping")
        return
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        problems.add(where, "`metadata.name` is missing")
    elif len(name) > max_len or not DNS_LABEL.match(name):
        problems.add(where, f"`metadata.name` {name!r} is not a DNS-1123 label of at most {max_len} characters")
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            problems.add(where, f"`metadata.{field}` must map names to strings")


def check_spinapp(doc: dict, where: str, crd: Crd, spin: dict, problems: Problems) -> None:
    if doc.get("apiVersion") != crd.api_version:
        problems.add(where, f"apiVersion {doc.get('apiVersion')!r} is not the CRD's {crd.api_version!r}")
    for err in sorted(crd.validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        problems.add(f"{where} {error_path(err)}", describe(err))

    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    declared = spin.get("variables", {})
    seen: set = set()
    for i, var in enumerate(spec.get("variables") or []):
        if not isinstance(var, dict):
            continue
        name = var.get("name")
        at = f"{where} spec.variables[{i}]"
        if name in seen:
            problems.add(at, f"variable {name!r} is set twice")
        seen.add(name)
        if name not in declared:
            problems.add(at, f"variable {name!r} is not in spin.toml's [variables]")
        has_value, has_from = "value" in var, "valueFrom" in var
        if has_value == has_from:
            problems.add(at, f"variable {name!r} needs exactly one of `value` and `valueFrom`")
        secret = isinstance(declared.get(name), dict) and declared[name].get("secret") is True
        value_from = var.get("valueFrom") if isinstance(var.get("valueFrom"), dict) else {}
        ref = value_from.get("secretKeyRef")
        if secret and not ref:
            problems.add(at, f"variable {name!r} is a secret (spin.toml): bind it with valueFrom.secretKeyRef, not a literal")
        if has_from:
            for kind, r in value_from.items():
                if isinstance(r, dict) and kind.endswith("KeyRef") and kind != "fileKeyRef" and not r.get("name"):
                    problems.add(at, f"valueFrom.{kind} has no `name`")


def check_runtime_config(
    app: dict, where: str, secrets: dict, runtime_config: Path, problems: Problems
) -> None:
    spec = app.get("spec") if isinstance(app.get("spec"), dict) else {}
    rc = spec.get("runtimeConfig") if isinstance(spec.get("runtimeConfig"), dict) else {}
    name = rc.get("loadFromSecret")
    if not name:
        return
    secret = secrets.get(name)
    if secret is None:
        problems.add(where, f"runtimeConfig.loadFromSecret names Secret {name!r}, which this manifest does not define")
        return
    text = None
    if isinstance(secret.get("stringData"), dict) and "runtime-config.toml" in secret["stringData"]:
        text = secret["stringData"]["runtime-config.toml"]
    elif isinstance(secret.get("data"), dict) and "runtime-config.toml" in secret["data"]:
        try:
            text = base64.b64decode(secret["data"]["runtime-config.toml"], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            problems.add(f"Secret/{name}", "data.runtime-config.toml is not base64 of UTF-8 text")
            return
    if not isinstance(text, str):
        problems.add(f"Secret/{name}", "has no `runtime-config.toml` key (the one spin-operator mounts)")
        return
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.add(f"Secret/{name}", f"runtime-config.toml is not valid TOML: {e}")
        return
    kv = (config.get("key_value_store") or {}).get("default") or {}
    sq = (config.get("sqlite_database") or {}).get("default") or {}
    for label, section, types in (("key_value_store", kv, KV_TYPES), ("sqlite_database", sq, SQLITE_TYPES)):
        if section and section.get("type") not in types:
            problems.add(f"Secret/{name}", f"[{label}.default] type {section.get('type')!r} is not one of {sorted(types)}")
    if kv.get("type") == "redis" and not str(kv.get("url", "")).startswith(("redis://", "rediss://")):
        problems.add(f"Secret/{name}", "[key_value_store.default] redis needs a redis:// or rediss:// url")
    if sq.get("type") == "libsql":
        if not str(sq.get("url", "")).startswith(("http://", "https://")) or "token" not in sq:
            problems.add(f"Secret/{name}", "[sqlite_database.default] libsql needs an http(s) url and a token")
        values = {v.get("name"): v.get("value") for v in spec.get("variables") or [] if isinstance(v, dict)}
        if values.get("sqlite_synchronous") != "server":
            problems.add(where, "SQLite is on libSQL: set variable sqlite_synchronous to \"server\" (libSQL refuses the pragma; every request would answer 503)")
    reference = tomllib.loads(runtime_config.read_text())
    if config != reference:
        problems.add(f"Secret/{name}", f"runtime-config.toml differs from {runtime_config.relative_to(ROOT)} (keep them the same)")


def check_secret(doc: dict, where: str, problems: Problems) -> None:
    if doc.get("apiVersion") != "v1":
        problems.add(where, f"apiVersion {doc.get('apiVersion')!r} is not 'v1'")
    allowed = {"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"}
    for key in sorted(set(doc) - allowed):
        problems.add(where, f"unknown field {key!r}")
    for key, value in (doc.get("data") or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            problems.add(where, f"data.{key} is not base64")
    for key, value in (doc.get("stringData") or {}).items():
        if not isinstance(value, str):
            problems.add(where, f"stringData.{key} is not a string")


CRON_FIELDS = [  # (name, low, high, names)
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
]
CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_problem(schedule: object) -> str | None:
    """None when `schedule` is a valid Kubernetes CronJob schedule (5 fields or a macro)."""
    if not isinstance(schedule, str):
        return "schedule is not a string"
    s = schedule.strip()
    if s.startswith("TZ=") or s.startswith("CRON_TZ="):
        return "time zones go in spec.timeZone, not the schedule"
    if s.lower() in CRON_MACROS:
        return None
    fields = s.split()
    if len(fields) != 5:
        return f"schedule {schedule!r} has {len(fields)} fields, not 5"

    def value(token: str, low: int, high: int, names: dict) -> int:
        v = names.get(token.lower()) if names else None
        if v is None:
            if not token.isdigit():
                raise ValueError(f"{token!r} is not a number")
            v = int(token)
        if not low <= v <= high:
            raise ValueError(f"{v} is outside {low}-{high}")
        return v

    for field, (label, low, high, names) in zip(fields, CRON_FIELDS):
        try:
            for part in field.split(","):
                base, _, step = part.partition("/")
                if step and (not step.isdigit() or int(step) == 0):
                    raise ValueError(f"bad step {step!r}")
                if base in ("*", "?"):
                    continue
                a, _, b = base.partition("-")
                start = value(a, low, high, names)
                if b and value(b, low, high, names) < start:
                    raise ValueError(f"range {base!r} runs backwards")
        except ValueError as e:
            return f"schedule {schedule!r}: {label} field {field!r}: {e}"
    return None


def route_served(path: str, routes: list) -> bool:
    for route in routes:
        if route.endswith("/..."):
            prefix = route[: -len("/...")]
            if path == prefix or path.startswith(prefix + "/"):
                return True
        elif path == route:
            return True
    return False


def check_cronjob(doc: dict, where: str, apps: set, routes: list, problems: Problems) -> None:
    if doc.get("apiVersion") != "batch/v1":
        problems.add(where, f"apiVersion {doc.get('apiVersion')!r} is not 'batch/v1'")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        problems.add(where, "`spec` is missing")
        return
    if "schedule" not in spec:
        problems.add(where, "`spec.schedule` is missing")
    else:
        p = cron_problem(spec["schedule"])
        if p:
            problems.add(where, p)
    if spec.get("concurrencyPolicy", "Allow") not in ("Allow", "Forbid", "Replace"):
        problems.add(where, f"spec.concurrencyPolicy {spec.get('concurrencyPolicy')!r} is not Allow, Forbid or Replace")
    pod = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if not isinstance(pod, dict):
        problems.add(where, "spec.jobTemplate.spec.template.spec is missing")
        return
    if pod.get("restartPolicy") not in ("OnFailure", "Never"):
        problems.add(where, f"a Job's restartPolicy must be OnFailure or Never (got {pod.get('restartPolicy')!r})")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.add(where, "the pod template has no containers")
        return
    for i, c in enumerate(containers):
        at = f"{where} containers[{i}]"
        if not isinstance(c, dict):
            problems.add(at, "is not a mapping")
            continue
        for field in ("name", "image"):
            if not isinstance(c.get(field), str) or not c.get(field):
                problems.add(at, f"`{field}` is missing")
        env_list = [e for e in c.get("env") or [] if isinstance(e, dict)]
        env = {e.get("name") for e in env_list}
        for j, e in enumerate(env_list):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref is not None and (not isinstance(ref, dict) or not ref.get("name") or not ref.get("key")):
                problems.add(f"{at} env[{j}]", "secretKeyRef needs `name` and `key`")
        words = [w for w in (c.get("command") or []) + (c.get("args") or []) if isinstance(w, str)]
        for w in words:
            for var in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", w):
                if var not in env:
                    problems.add(at, f"$({var}) is not defined in the container's env (Kubernetes would pass it literally)")
            m = re.match(r"^https?://([^/:]+)(?::\d+)?(/[^?#]*)?", w)
            if m:
                host, path = m.group(1), m.group(2) or "/"
                if host.split(".")[0] not in apps:
                    problems.add(at, f"URL {w!r} does not reach a SpinApp of this manifest ({sorted(apps)})")
                if not route_served(path, routes):
                    problems.add(at, f"URL path {path!r} is not a route spin.toml serves")


def check_documents(docs: list, crd: Crd, spin: dict, runtime_config: Path, quiet: bool = False) -> Problems:
    problems = Problems()
    routes = [t.get("route", "") for t in (spin.get("trigger") or {}).get("http", [])]
    log = (lambda *a: None) if quiet else print
    apps = {}
    secrets = {}
    names = set()
    # CronJobs' URLs must reach a SpinApp's Service (named after it): collect their names first.
    app_names = {
        (d.get("metadata") or {}).get("name")
        for d in docs
        if isinstance(d, dict) and d.get("kind") == crd.kind and isinstance(d.get("metadata"), dict)
    }
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            problems.add(f"document {index + 1}", "is not a mapping")
            continue
        kind = doc.get("kind")
        name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
        where = f"{kind}/{name}" if kind and name else f"document {index + 1}"
        if (kind, name) in names:
            problems.add(where, "is defined twice")
        names.add((kind, name))
        before = len(problems)
        check_metadata(doc, where, problems, max_len=52 if kind == "CronJob" else 63)
        if kind == crd.kind:
            check_spinapp(doc, where, crd, spin, problems)
            apps[name] = (doc, where)
            what = f"CRD schema {crd.api_version} {crd.kind} (strict), variables against spin.toml"
        elif kind == "Secret":
            check_secret(doc, where, problems)
            secrets[name] = doc
            what = "Secret structure"
        elif kind == "CronJob":
            check_cronjob(doc, where, app_names, routes, problems)
            what = "CronJob: schedule, containers, env references, target routes"
        else:
            what = "basic structure only (no schema for this kind)"
        log(f"{'ok  ' if len(problems) == before else 'FAIL'} {where}: {what}")
    for doc, where in apps.values():
        before = len(problems)
        check_runtime_config(doc, where, secrets, runtime_config, problems)
        if len(problems) == before and ((doc.get("spec") or {}).get("runtimeConfig") or {}).get("loadFromSecret"):
            log(f"ok   {where}: runtime config Secret matches {runtime_config.relative_to(ROOT)}")
    if not apps:
        problems.add("manifest", f"has no {crd.kind}")
    return problems


def load_docs(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d is not None]


# --------------------------------------------------------------------------------------------
# Self-test: the check must reject broken copies of the manifest.
# --------------------------------------------------------------------------------------------


def text_mutation(pattern: str, replacement: str):
    def mutate(text: str) -> str:
        out, n = re.subn(pattern, replacement, text, count=0, flags=re.M)
        if n != 1:
            raise SystemExit(f"self-test: pattern {pattern!r} matched {n} times in the manifest, not once")
        return out

    return mutate


def doc_of(docs: list, kind: str, name: str | None = None) -> dict:
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise SystemExit(f"self-test: the manifest has no {kind} {name or ''}")


def data_mutation(fn):
    def mutate(text: str) -> list:
        docs = load_docs(text)
        fn(docs)
        return docs

    return mutate


def _set(path_fn, key, value):
    return lambda docs: path_fn(docs).__setitem__(key, value)


def spinapp_spec(docs):
    return doc_of(docs, "SpinApp")["spec"]


def first_cron_container(docs):
    return doc_of(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def runtime_secret(docs):
    return doc_of(docs, "Secret", spinapp_spec(docs)["runtimeConfig"]["loadFromSecret"])


# (name, mutation, substring the rejection must contain)
MUTATIONS = [
    ("misspelled field `replica:`", text_mutation(r"^  replicas:", "  replica:"), "'replica' was unexpected"),
    ("wrong type `replicas: \"two\"`", text_mutation(r"^  replicas: .*$", '  replicas: "two"'), "'two' is not of type 'integer'"),
    ("missing required `spec.image`", text_mutation(r"^  image: .*\n", ""), "'image' is a required property"),
    ("misspelled nested field `runtimeConfig.loadFromSecrets`",
     data_mutation(lambda d: spinapp_spec(d)["runtimeConfig"].__setitem__("loadFromSecrets", "x")), "'loadFromSecrets' was unexpected"),
    ("misspelled variable field `valu:`",
     data_mutation(lambda d: spinapp_spec(d)["variables"].append({"name": "log_bodies", "valu": "true"})), "'valu' was unexpected"),
    ("replicas beyond int32", data_mutation(_set(spinapp_spec, "replicas", 2**31)), "is greater than the maximum"),
    ("int-or-string given a list (resources.limits.cpu: [1])",
     data_mutation(_set(spinapp_spec, "resources", {"limits": {"cpu": [1]}})), "is not valid under any of the given schemas"),
    ("wrong apiVersion", data_mutation(lambda d: doc_of(d, "SpinApp").__setitem__("apiVersion", "core.spinkube.dev/v1")), "is not the CRD's"),
    ("variable not in spin.toml",
     data_mutation(lambda d: spinapp_spec(d)["variables"].append({"name": "no_such_variable", "value": "1"})), "not in spin.toml"),
    ("secret variable as a literal",
     data_mutation(lambda d: spinapp_spec(d)["variables"].append({"name": "redis_url", "value": "redis://x"})), "is a secret"),
    ("runtime config Secret missing",
     data_mutation(lambda d: d.remove(runtime_secret(d))), "does not define"),
    ("runtime config drifted from infra/runtime-config.toml",
     data_mutation(lambda d: runtime_secret(d)["stringData"].__setitem__(
         "runtime-config.toml", runtime_secret(d)["stringData"]["runtime-config.toml"].replace('type = "redis"', 'type = "spin"'))),
     "differs from"),
    ("libSQL without sqlite_synchronous=server",
     data_mutation(lambda d: spinapp_spec(d).__setitem__(
         "variables", [v for v in spinapp_spec(d)["variables"] if v["name"] != "sqlite_synchronous"])), "sqlite_synchronous"),
    ("cron minute 61", data_mutation(lambda d: doc_of(d, "CronJob")["spec"].__setitem__("schedule", "61 * * * *")), "outside 0-59"),
    ("cron with 6 fields", data_mutation(lambda d: doc_of(d, "CronJob")["spec"].__setitem__("schedule", "0 */15 * * * *")), "not 5"),
    ("CronJob container without image", data_mutation(lambda d: first_cron_container(d).pop("image")), "`image` is missing"),
    ("CronJob $(VAR) not in env", data_mutation(lambda d: first_cron_container(d).pop("env")), "not defined in the container's env"),
    ("CronJob URL on a route spin.toml does not serve",
     data_mutation(lambda d: first_cron_container(d).__setitem__(
         "args", [a.replace("/api/v1/", "/api/v9/") for a in first_cron_container(d)["args"]])), "not a route spin.toml serves"),
]


def self_test(text: str, crd: Crd, spin: dict, runtime_config: Path) -> int:
    failures = 0
    # Positive controls: both forms an int-or-string takes are accepted.
    docs = load_docs(text)
    spinapp_spec(docs)["resources"] = {"limits": {"cpu": 1, "memory": "128Mi"}, "requests": {"cpu": "100m"}}
    got = check_documents(docs, crd, spin, runtime_config, quiet=True)
    if got:
        failures += 1
        print(f"self-test FAILED: a valid int-or-string resources block was rejected: {got[0]}")
    else:
        print("self-test: accepted as expected: resources with integer and string quantities")
    for name, mutate, expected in MUTATIONS:
        mutated = mutate(text)
        docs = load_docs(mutated) if isinstance(mutated, str) else mutated
        got = check_documents(docs, crd, spin, runtime_config, quiet=True)
        hit = [p for p in got if expected in p]
        if hit:
            print(f"self-test: rejected as expected: {name}\n    {hit[0]}")
        else:
            failures += 1
            print(f"self-test FAILED: {name} was not rejected with {expected!r}; got {got or 'no problem'}")
    total = len(MUTATIONS) + 1
    print(f"self-test: {total - failures} of {total} cases behaved as expected")
    return failures


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--crd", type=Path, default=DEFAULT_CRD)
    ap.add_argument("--spin-toml", type=Path, default=DEFAULT_SPIN_TOML)
    ap.add_argument("--runtime-config", type=Path, default=DEFAULT_RUNTIME_CONFIG)
    ap.add_argument("--self-test", action="store_true", help="also prove that broken copies of the manifest are rejected")
    args = ap.parse_args()

    crd = Crd(args.crd)
    spin = tomllib.loads(args.spin_toml.read_text())
    text = args.manifest.read_text()
    try:
        docs = load_docs(text)
    except yaml.YAMLError as e:
        print(f"FAIL {args.manifest}: not valid YAML: {e}")
        return 1
    print(f"checking {shown(args.manifest)} against {shown(args.crd)} ({crd.api_version} {crd.kind}, from spinframework/spin-operator)")
    problems = check_documents(docs, crd, spin, args.runtime_config)
    if problems:
        print(f"\nFAILED: {shown(args.manifest)} has {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
    else:
        print(f"{shown(args.manifest)}: {len(docs)} documents valid")
    failed = bool(problems)
    if args.self_test:
        print()
        failed = self_test(text, crd, spin, args.runtime_config) > 0 or failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
