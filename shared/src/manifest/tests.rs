use serde_json::json;

use super::*;

/// StreamSpace's `browsers/firefox.yaml` (streamspace-templates), as the spec quotes it.
const FIREFOX: &str = "apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: firefox
  namespace: workspaces
spec:
  displayName: Firefox
  description: '[Firefox] Browser, also known as Mozilla Firefox or simply Firefox,
    is a free and open-source web browser developed by the Mozilla Foundation.'
  category: Web Browsers
  icon: https://raw.githubusercontent.com/linuxserver/docker-templates/master/linuxserver.io/img/firefox-logo.png
  baseImage: lscr.io/linuxserver/firefox:latest
  defaultResources:
    memory: 2Gi
    cpu: 1000m
  ports:
  - name: vnc
    containerPort: 3000
    protocol: TCP
  env:
  - name: PUID
    value: '1000'
  - name: PGID
    value: '1000'
  - name: TZ
    value: America/New_York
  volumeMounts:
  - name: user-home
    mountPath: /config
  kasmvnc:
    enabled: true
    port: 3000
  capabilities:
  - Network
  - Clipboard
  tags:
  - firefox
  - web browsers
";

/// Shaped like `development/code-server.yaml`: a linuxserver image serving plain HTTP on 8080,
/// with KasmVNC explicitly off. StreamSpace's image heuristic calls it selkies:3000.
const CODE_SERVER: &str = "apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: code-server
spec:
  displayName: Code-Server
  category: Development
  baseImage: lscr.io/linuxserver/code-server:latest
  defaultResources:
    memory: 4Gi
    cpu: 2000m
  ports:
  - name: http
    containerPort: 8080
    protocol: TCP
  kasmvnc:
    enabled: false
    port: 8080
  capabilities: [Network, Clipboard]
  tags: [code-server, development]
";

/// What StreamSpace's `scripts/generate-from-catalog.py` writes: `{requests, limits}`.
const GENERATED: &str = "apiVersion: stream.streamspace.io/v1alpha1
kind: Template
metadata:
  name: gimp
spec:
  displayName: GIMP
  baseImage: lscr.io/linuxserver/gimp:latest
  defaultResources:
    requests:
      memory: 1Gi
      cpu: 500m
    limits:
      memory: 4Gi
      cpu: 2000m
  env:
  - name: ENABLE_FEATURE
    value: yes
";

fn base() -> Value {
    json!({
        "apiVersion": "stream.space/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "app"},
        "spec": {"displayName": "App", "baseImage": "ghcr.io/example/app:1.0"}
    })
}

fn with(pointer: &str, value: Value) -> Value {
    let mut doc = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut doc
    } else {
        doc.pointer_mut(parent).unwrap()
    };
    target[key] = value;
    doc
}

#[test]
fn firefox_yaml_validates_and_keeps_every_key() {
    let m = from_yaml(FIREFOX).unwrap();
    assert_eq!(m.name, "firefox");
    assert_eq!(m.display_name, "Firefox");
    assert_eq!(m.category, "Web Browsers");
    assert_eq!(m.app_type, "desktop");
    assert_eq!(m.base_image, "lscr.io/linuxserver/firefox:latest");
    assert_eq!(
        (m.default_cpu.as_str(), m.default_memory.as_str()),
        ("1000m", "2Gi")
    );
    assert_eq!(m.capabilities, vec!["Network", "Clipboard"]);
    assert_eq!(m.tags, vec!["firefox", "web browsers"]);
    assert_eq!(m.streaming, Streaming::new("selkies", 3000, "/websockify"));
    // Unknown keys survive (StreamSpace's struct drops them).
    assert_eq!(
        m.document["spec"]["kasmvnc"],
        json!({"enabled": true, "port": 3000})
    );
    assert_eq!(
        m.document["spec"]["volumeMounts"],
        json!([{"name": "user-home", "mountPath": "/config"}])
    );
    assert_eq!(m.document["metadata"]["namespace"], "workspaces");
    assert_eq!(m.document["spec"]["env"][0]["value"], "1000");
}

#[test]
fn code_server_is_http_not_selkies() {
    let m = from_yaml(CODE_SERVER).unwrap();
    assert_eq!(m.streaming, Streaming::new("http", 8080, "/"));
    assert_ne!(m.streaming.protocol, "selkies");
    assert_eq!(
        (m.default_cpu.as_str(), m.default_memory.as_str()),
        ("2000m", "4Gi")
    );
}

#[test]
fn requests_limits_form_takes_defaults_from_requests_and_yes_stays_a_string() {
    let m = from_yaml(GENERATED).unwrap();
    assert_eq!(
        (m.default_cpu.as_str(), m.default_memory.as_str()),
        ("500m", "1Gi")
    );
    assert_eq!(m.document["spec"]["env"][0]["value"], json!("yes"));
    assert_eq!(
        m.document["spec"]["defaultResources"]["limits"]["cpu"],
        "2000m"
    );
}

#[test]
fn flat_resource_keys_are_used_when_requests_lack_them() {
    let doc = with(
        "/spec/defaultResources",
        json!({"cpu": "750m", "requests": {"memory": "3Gi"}}),
    );
    let m = validate(doc).unwrap();
    assert_eq!(
        (m.default_cpu.as_str(), m.default_memory.as_str()),
        ("750m", "3Gi")
    );
    let m = validate(base()).unwrap();
    assert_eq!(
        (m.default_cpu.as_str(), m.default_memory.as_str()),
        (DEFAULT_CPU, DEFAULT_MEMORY)
    );
    // A bare YAML number is a quantity too.
    let m = from_yaml("apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {name: a}\nspec: {displayName: A, baseImage: nginx, defaultResources: {cpu: 2}}").unwrap();
    assert_eq!(m.default_cpu, "2");
}

#[test]
fn canonical_json_sorts_keys_and_hashes_equal_documents_equally() {
    let a = validate(
        json!({"kind": "Template", "apiVersion": "stream.space/v1alpha1",
        "spec": {"baseImage": "nginx", "displayName": "N"}, "metadata": {"name": "n"}}),
    )
    .unwrap();
    let b = validate(
        json!({"metadata": {"name": "n"}, "spec": {"displayName": "N", "baseImage": "nginx"},
        "apiVersion": "stream.space/v1alpha1", "kind": "Template"}),
    )
    .unwrap();
    assert_eq!(
        a.canonical,
        r#"{"apiVersion":"stream.space/v1alpha1","kind":"Template","metadata":{"name":"n"},"spec":{"baseImage":"nginx","displayName":"N"}}"#
    );
    assert_eq!(a.canonical, b.canonical);
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(a.sha256.len(), 64);
    let yaml = from_yaml("apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata:\n  name: n\nspec:\n  displayName: N\n  baseImage: nginx\n").unwrap();
    assert_eq!(
        yaml.sha256, a.sha256,
        "YAML and JSON of one document hash alike"
    );
}

#[test]
fn streaming_detection_follows_the_spec_order() {
    let cases: Vec<(Value, Streaming)> = vec![
        // 1. explicit kasmvnc / vnc, on their ports.
        (
            with("/spec/kasmvnc", json!({"enabled": true, "port": 3001})),
            Streaming::new("selkies", 3001, "/websockify"),
        ),
        (
            with("/spec/vnc", json!({"enabled": true, "port": 5901})),
            Streaming::new("vnc", 5901, ""),
        ),
        // 2. webapp, with its port and path.
        (
            with(
                "/spec/webapp",
                json!({"enabled": true, "port": 9000, "path": "/ui"}),
            ),
            Streaming::new("http", 9000, "/ui"),
        ),
        (
            with("/spec/webapp", json!({"enabled": true})),
            Streaming::new("http", 8080, "/"),
        ),
        // 3. the first port.
        (
            with("/spec/ports", json!([{"containerPort": 6901}])),
            Streaming::new("selkies", 6901, "/websockify"),
        ),
        (
            with("/spec/ports", json!([{"containerPort": 8080}])),
            Streaming::new("guacamole", 8080, "/guacamole"),
        ),
        (
            with("/spec/ports", json!([{"containerPort": 5900}])),
            Streaming::new("vnc", 5900, ""),
        ),
        (
            with(
                "/spec/ports",
                json!([{"name": "HTTP", "containerPort": 3000}]),
            ),
            Streaming::new("http", 3000, "/"),
        ),
        // 4. the image.
        (
            with("/spec/baseImage", json!("kasmweb/chrome:1.14.0")),
            Streaming::new("selkies", 6901, "/websockify"),
        ),
        (
            with("/spec/baseImage", json!("guacamole/guacd:1.5")),
            Streaming::new("guacamole", 8080, "/guacamole"),
        ),
        (
            with("/spec/baseImage", json!("example/x2go-desktop:1")),
            Streaming::new("x2go", 22, ""),
        ),
        (
            with("/spec/baseImage", json!("linuxserver/blender:latest")),
            Streaming::new("selkies", 3000, "/websockify"),
        ),
        // 5. default.
        (base(), Streaming::new("vnc", 5900, "")),
    ];
    for (doc, want) in cases {
        let got = validate(doc.clone()).unwrap().streaming;
        assert_eq!(got, want, "{doc}");
    }
    // Explicit settings win over the image heuristic (StreamSpace's bug).
    let mut doc = with(
        "/spec/baseImage",
        json!("lscr.io/linuxserver/webtop:latest"),
    );
    doc["spec"]["vnc"] = json!({"enabled": true, "port": 5900});
    assert_eq!(
        validate(doc).unwrap().streaming,
        Streaming::new("vnc", 5900, "")
    );
    // A disabled kasmvnc is ignored.
    let mut doc = with("/spec/kasmvnc", json!({"enabled": false, "port": 3000}));
    doc["spec"]["webapp"] = json!({"enabled": true, "port": 8081});
    assert_eq!(validate(doc).unwrap().streaming.protocol, "http");
}

#[test]
fn app_type_defaults_from_webapp() {
    assert_eq!(validate(base()).unwrap().app_type, "desktop");
    let doc = with("/spec/webapp", json!({"enabled": true}));
    assert_eq!(validate(doc).unwrap().app_type, "webapp");
    let mut doc = with("/spec/webapp", json!({"enabled": true}));
    doc["spec"]["appType"] = json!("desktop");
    assert_eq!(validate(doc).unwrap().app_type, "desktop");
    assert_eq!(
        validate(with("/spec/appType", json!(""))).unwrap().app_type,
        "desktop"
    );
}

/// Table-driven refusals: each case names the message it must carry.
#[test]
fn invalid_manifests_are_refused_with_a_message() {
    let long = |n: usize| json!("x".repeat(n));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("not an object", json!([1]), "manifest must be an object"),
        (
            "wrong kind",
            with("/kind", json!("Pod")),
            "kind must be Template",
        ),
        (
            "no kind",
            {
                let mut d = base();
                d.as_object_mut().unwrap().remove("kind");
                d
            },
            "kind must be Template",
        ),
        (
            "wrong apiVersion",
            with("/apiVersion", json!("v1")),
            "apiVersion must be one of",
        ),
        (
            "no metadata",
            {
                let mut d = base();
                d.as_object_mut().unwrap().remove("metadata");
                d
            },
            "metadata.name is required",
        ),
        (
            "empty name",
            with("/metadata/name", json!("")),
            "metadata.name is required",
        ),
        (
            "bad name",
            with("/metadata/name", json!("Fire_fox")),
            "metadata.name:",
        ),
        (
            "long name",
            with("/metadata/name", json!("a".repeat(64))),
            "at most 63",
        ),
        (
            "no spec",
            {
                let mut d = base();
                d.as_object_mut().unwrap().remove("spec");
                d
            },
            "spec.displayName is required",
        ),
        (
            "no displayName",
            {
                let mut d = base();
                d["spec"].as_object_mut().unwrap().remove("displayName");
                d
            },
            "spec.displayName is required",
        ),
        (
            "blank displayName",
            with("/spec/displayName", json!("   ")),
            "spec.displayName must be 1-200",
        ),
        (
            "long displayName",
            with("/spec/displayName", long(201)),
            "spec.displayName must be 1-200",
        ),
        (
            "displayName not text",
            with("/spec/displayName", json!(5)),
            "spec.displayName must be a string",
        ),
        (
            "long description",
            with("/spec/description", long(4001)),
            "spec.description must be at most 4000",
        ),
        (
            "long category",
            with("/spec/category", long(101)),
            "spec.category must be at most 100",
        ),
        (
            "http icon",
            with("/spec/icon", json!("http://example.com/i.png")),
            "spec.icon must be an https URL",
        ),
        (
            "icon userinfo",
            with("/spec/icon", json!("https://u@example.com/i.png")),
            "spec.icon",
        ),
        (
            "long icon",
            with(
                "/spec/icon",
                json!(format!("https://e.com/{}", "a".repeat(2048))),
            ),
            "spec.icon must be at most 2048",
        ),
        (
            "no baseImage",
            {
                let mut d = base();
                d["spec"].as_object_mut().unwrap().remove("baseImage");
                d
            },
            "spec.baseImage is required",
        ),
        (
            "bad baseImage",
            with("/spec/baseImage", json!("Bad Image")),
            "spec.baseImage:",
        ),
        (
            "injection baseImage",
            with("/spec/baseImage", json!("nginx;rm")),
            "spec.baseImage:",
        ),
        (
            "bad appType",
            with("/spec/appType", json!("mobile")),
            "spec.appType must be desktop or webapp",
        ),
        (
            "cpu too low",
            with("/spec/defaultResources", json!({"cpu": "50m"})),
            "spec.defaultResources.cpu: CPU request too low: minimum 100m",
        ),
        (
            "cpu too high",
            with("/spec/defaultResources", json!({"requests": {"cpu": "65"}})),
            "spec.defaultResources.requests.cpu: CPU request too high: maximum 64000m",
        ),
        (
            "memory too low",
            with("/spec/defaultResources", json!({"memory": "64Mi"})),
            "memory request too low: minimum 128Mi",
        ),
        (
            "memory too high",
            with(
                "/spec/defaultResources",
                json!({"limits": {"memory": "1Ti"}}),
            ),
            "spec.defaultResources.limits.memory: memory request too high",
        ),
        (
            "memory milli",
            with("/spec/defaultResources", json!({"memory": "2000m"})),
            "spec.defaultResources.memory:",
        ),
        (
            "cpu garbage",
            with("/spec/defaultResources", json!({"cpu": "lots"})),
            "spec.defaultResources.cpu:",
        ),
        (
            "resources not object",
            with("/spec/defaultResources", json!("2Gi")),
            "spec.defaultResources must be an object",
        ),
        (
            "bad capability",
            with("/spec/capabilities", json!(["Network", "Teleport"])),
            "spec.capabilities: `Teleport`",
        ),
        (
            "too many tags",
            with("/spec/tags", json!(vec!["t"; 21])),
            "spec.tags must have at most 20",
        ),
        (
            "long tag",
            with("/spec/tags", json!(["x".repeat(65)])),
            "spec.tags entries must be strings of 1-64",
        ),
        (
            "tag not text",
            with("/spec/tags", json!([1])),
            "spec.tags entries",
        ),
        (
            "port zero",
            with("/spec/ports", json!([{"containerPort": 0}])),
            "spec.ports[0].containerPort must be a port number",
        ),
        (
            "port too high",
            with("/spec/ports", json!([{"containerPort": 70000}])),
            "spec.ports[0].containerPort",
        ),
        (
            "port missing",
            with("/spec/ports", json!([{"name": "x"}])),
            "spec.ports[0].containerPort is required",
        ),
        (
            "port protocol",
            with(
                "/spec/ports",
                json!([{"containerPort": 80, "protocol": "SCTP"}]),
            ),
            "spec.ports[0].protocol must be TCP or UDP",
        ),
        (
            "env name",
            with("/spec/env", json!([{"name": "1BAD", "value": "x"}])),
            "spec.env[0].name must match",
        ),
        (
            "env name dash",
            with("/spec/env", json!([{"name": "A-B"}])),
            "spec.env[0].name must match",
        ),
        (
            "env value long",
            with(
                "/spec/env",
                json!([{"name": "A", "value": "x".repeat(4097)}]),
            ),
            "spec.env[0].value must be at most 4 KiB",
        ),
        (
            "env too many",
            with(
                "/spec/env",
                json!((0..101)
                    .map(|i| json!({"name": format!("V{i}")}))
                    .collect::<Vec<_>>()),
            ),
            "spec.env must have at most 100",
        ),
        (
            "vnc port",
            with("/spec/vnc", json!({"enabled": true, "port": 99999})),
            "spec.vnc.port must be a port number",
        ),
        (
            "webapp enabled",
            with("/spec/webapp", json!({"enabled": "yes"})),
            "spec.webapp.enabled must be true or false",
        ),
        (
            "webapp path",
            with("/spec/webapp", json!({"enabled": true, "path": "ui"})),
            "spec.webapp.path must be a path",
        ),
        (
            "too big",
            with("/spec/x-blob", json!("x".repeat(MAX_MANIFEST_BYTES))),
            "at most 64 KiB",
        ),
    ];
    for (what, doc, needle) in cases {
        match validate(doc) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.0.contains(needle), "{what}: `{e}` lacks `{needle}`"),
        }
    }
}

#[test]
fn limits_at_the_edges_are_accepted() {
    let ok = [
        with("/spec/defaultResources", json!({"cpu": "100m", "memory": "128Mi"})),
        with("/spec/defaultResources", json!({"cpu": "64", "memory": "512Gi"})),
        with("/metadata/name", json!("a".repeat(63))),
        with("/spec/displayName", json!("x".repeat(200))),
        with("/spec/tags", json!(vec!["t"; 20])),
        with("/spec/icon", json!("")),
        with("/spec/baseImage", json!("registry.example.com:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")),
        with("/spec/env", json!([{"name": "_X1", "value": 1000}, {"name": "B", "valueFrom": {"secretKeyRef": {}}}])),
    ];
    for doc in ok {
        validate(doc.clone()).unwrap_or_else(|e| panic!("{doc}: {e}"));
    }
}

#[test]
fn yaml_errors_name_the_manifest() {
    let e = from_yaml("a: [1").unwrap_err();
    assert!(e.0.starts_with("manifest: invalid YAML"), "{e}");
    let e = from_yaml("---\nkind: Template\n---\nkind: Template\n").unwrap_err();
    assert!(e.0.contains("2 documents"), "{e}");
}
