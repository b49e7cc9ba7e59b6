//! Templates and favorites end to end (SPEC-wave2 §2.2, §2.3): operators and admins create
//! templates from a JSON manifest, a YAML string or flat fields; every user of the org lists and
//! reads the enabled ones; a template of another org answers 404 (never 403); favorites are
//! idempotent and go with their template.

use serde_json::{json, Value};

use crate::helpers::{expect_error, text, unique, TestApp};
use crate::setup::{create_org, create_user};

/// A template name unique across runs (RFC 1123, ≤ 63).
fn name(prefix: &str) -> String {
    unique(prefix).to_ascii_lowercase()
}

const FIREFOX_YAML: &str = "apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: NAME
  namespace: workspaces
spec:
  displayName: Firefox
  description: 'Firefox browser'
  category: CATEGORY
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
  - name: SHOUT
    value: yes
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

fn manifest_json(name: &str, display: &str, category: &str, tags: &[&str]) -> Value {
    json!({
        "apiVersion": "stream.space/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {
            "displayName": display,
            "category": category,
            "baseImage": "ghcr.io/example/app:1.0",
            "defaultResources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
            "tags": tags,
            "webapp": {"enabled": true, "port": 8443, "path": "/app"},
            "x-custom": {"kept": [1, 2, 3]}
        }
    })
}

fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let r = app.json("POST", "/api/v1/templates", Some(token), body);
    assert_eq!(r.status, 201, "create template: {}", text(&r));
    let v = r.json();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/templates/{}", v["id"].as_str().unwrap()).as_str())
    );
    v
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn operators_create_templates_from_yaml_json_and_flat_fields() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let operator = create_user(&app, &admin.access, "operator", None).token;
    let category = name("cat");

    // YAML string: StreamSpace's firefox.yaml; `yes` stays a string, unknown keys are kept.
    let firefox = name("firefox");
    let yaml = FIREFOX_YAML
        .replace("NAME", &firefox)
        .replace("CATEGORY", &category);
    let t = create(&app, &operator, &json!({"manifest": yaml}));
    assert_eq!(t["name"], firefox.as_str());
    assert_eq!(t["display_name"], "Firefox");
    assert_eq!(t["app_type"], "desktop");
    assert_eq!(t["base_image"], "lscr.io/linuxserver/firefox:latest");
    assert_eq!(
        t["default_resources"],
        json!({"cpu": "1000m", "memory": "2Gi"})
    );
    assert_eq!(t["capabilities"], json!(["Network", "Clipboard"]));
    assert_eq!(t["tags"], json!(["firefox", "web browsers"]));
    assert_eq!(
        t["streaming"],
        json!({"protocol": "selkies", "port": 3000, "path": "/websockify"})
    );
    assert_eq!(t["enabled"], true);
    assert_eq!(t["source"], "manual");
    assert_eq!(t["catalog_template_id"], Value::Null);
    assert_eq!(t["update_available"], false);
    assert_eq!(t["install_count"], 0);
    let manifest = &t["manifest"];
    assert_eq!(
        manifest["spec"]["env"][1]["value"], "yes",
        "1.2 core schema"
    );
    assert_eq!(
        manifest["spec"]["kasmvnc"],
        json!({"enabled": true, "port": 3000})
    );
    assert_eq!(manifest["metadata"]["namespace"], "workspaces");

    // JSON manifest with `{requests, limits}` and an unknown key.
    let web = name("web");
    let t = create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&web, "Web App", &category, &["Alpha"]), "enabled": false}),
    );
    assert_eq!(
        t["default_resources"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    assert_eq!(t["app_type"], "webapp");
    assert_eq!(
        t["streaming"],
        json!({"protocol": "http", "port": 8443, "path": "/app"})
    );
    assert_eq!(t["enabled"], false);
    assert_eq!(
        t["manifest"]["spec"]["x-custom"],
        json!({"kept": [1, 2, 3]})
    );

    // Flat fields: a manifest is synthesized.
    let flat = name("flat");
    let t = create(
        &app,
        &operator,
        &json!({"name": flat, "display_name": "Flat One", "base_image": "docker.io/library/nginx:1.27",
                "category": category, "tags": ["x"], "default_resources": {"cpu": "2", "memory": "4Gi"},
                "ports": [{"name": "http", "containerPort": 8080}]}),
    );
    assert_eq!(t["default_resources"], json!({"cpu": "2", "memory": "4Gi"}));
    assert_eq!(t["manifest"]["kind"], "Template");
    assert_eq!(t["manifest"]["metadata"]["name"], flat.as_str());
    assert_eq!(t["manifest"]["spec"]["displayName"], "Flat One");
    assert_eq!(t["streaming"]["protocol"], "http");

    // Read back by id and by name; the list view has no manifest.
    let id = t["id"].as_str().unwrap();
    let by_id = app.authed("GET", &format!("/api/v1/templates/{id}"), &operator);
    assert_eq!(by_id.status, 200, "{}", text(&by_id));
    let by_name = app.authed("GET", &format!("/api/v1/templates/{flat}"), &operator);
    assert_eq!(by_name.status, 200, "{}", text(&by_name));
    assert_eq!(by_id.json(), by_name.json());
    let list = app
        .authed(
            "GET",
            &format!("/api/v1/templates?category={category}"),
            &operator,
        )
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(list["items"][0].get("manifest").is_none());
    assert!(list.get("next_cursor").is_some());
}

#[test]
fn invalid_manifests_are_400_with_a_message_naming_the_field() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let n = name("bad");
    let good = manifest_json(&n, "Bad", "c", &[]);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"manifest": {"kind": "Other"}}), "kind"),
        (
            {
                let mut m = good.clone();
                m["apiVersion"] = json!("v1");
                json!({"manifest": m})
            },
            "apiVersion",
        ),
        (
            {
                let mut m = good.clone();
                m["metadata"]["name"] = json!("Not_A_Name");
                json!({"manifest": m})
            },
            "metadata.name",
        ),
        (
            {
                let mut m = good.clone();
                m["spec"]["baseImage"] = json!("evil;rm -rf");
                json!({"manifest": m})
            },
            "spec.baseImage",
        ),
        (
            {
                let mut m = good.clone();
                m["spec"]["defaultResources"] = json!({"cpu": "50m"});
                json!({"manifest": m})
            },
            "minimum 100m",
        ),
        (
            {
                let mut m = good.clone();
                m["spec"]["defaultResources"] = json!({"requests": {"memory": "1Ti"}});
                json!({"manifest": m})
            },
            "maximum 512Gi",
        ),
        (
            {
                let mut m = good.clone();
                m["spec"]["capabilities"] = json!(["Teleport"]);
                json!({"manifest": m})
            },
            "spec.capabilities",
        ),
        (
            {
                let mut m = good.clone();
                m["spec"]["icon"] = json!("http://insecure.example/icon.png");
                json!({"manifest": m})
            },
            "spec.icon",
        ),
        (json!({"manifest": "a: &x 1\nb: *x"}), "anchors"),
        (json!({"manifest": 42}), "manifest"),
        (
            json!({"manifest": format!("# {}\n", "x".repeat(300 * 1024))}),
            "256 KiB",
        ),
        (json!({"name": n}), "display_name"),
        (json!({"manifest": good.clone(), "name": "x"}), "either"),
    ];
    for (body, needle) in cases {
        let r = app.json("POST", "/api/v1/templates", Some(&admin.access), &body);
        expect_error(&r, 400, "invalid_field");
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(needle),
            "{body}: `{message}` should mention `{needle}`"
        );
    }
    let r = app.json(
        "POST",
        "/api/v1/templates",
        Some(&admin.access),
        &json!({"manifest": good, "surprise": 1}),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
}

#[test]
fn duplicate_name_is_409_name_taken() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let n = name("dup");
    create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&n, "One", "c", &[])}),
    );
    let r = app.json(
        "POST",
        "/api/v1/templates",
        Some(&admin.access),
        &json!({"name": n, "display_name": "Two", "base_image": "nginx"}),
    );
    expect_error(&r, 409, "name_taken");
}

#[test]
fn users_cannot_write_and_never_see_disabled_templates() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let user = create_user(&app, &admin.access, "user", None).token;
    let auditor = create_user(&app, &admin.access, "auditor", None).token;
    let category = name("vis");
    let on = create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&name("on"), "On", &category, &[])}),
    );
    let off = create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&name("off"), "Off", &category, &[]), "enabled": false}),
    );
    let (on_id, off_id) = (on["id"].as_str().unwrap(), off["id"].as_str().unwrap());

    for token in [&user, &auditor] {
        let r = app.json(
            "POST",
            "/api/v1/templates",
            Some(token),
            &json!({"manifest": manifest_json(&name("nope"), "No", &category, &[])}),
        );
        expect_error(&r, 403, "forbidden");
        let r = app.json(
            "PATCH",
            &format!("/api/v1/templates/{on_id}"),
            Some(token),
            &json!({"enabled": false}),
        );
        expect_error(&r, 403, "forbidden");
        let r = app.authed("DELETE", &format!("/api/v1/templates/{on_id}"), token);
        expect_error(&r, 403, "forbidden");

        let list = app
            .authed(
                "GET",
                &format!("/api/v1/templates?category={category}"),
                token,
            )
            .json();
        assert_eq!(ids(&list), vec![on_id.to_owned()]);
        let list = app
            .authed(
                "GET",
                &format!("/api/v1/templates?category={category}&enabled=false"),
                token,
            )
            .json();
        assert!(ids(&list).is_empty(), "enabled=false shows a user nothing");
        let r = app.authed("GET", &format!("/api/v1/templates/{off_id}"), token);
        expect_error(&r, 404, "not_found");
        let r = app.authed(
            "GET",
            &format!("/api/v1/templates/{off_id}/favorite"),
            token,
        );
        expect_error(&r, 404, "not_found");
        let r = app.json(
            "POST",
            &format!("/api/v1/preferences/favorites/{off_id}"),
            Some(token),
            &json!({}),
        );
        expect_error(&r, 404, "not_found");
    }

    // The admin sees both, and filters by `enabled`.
    let list = app
        .authed(
            "GET",
            &format!("/api/v1/templates?category={category}&enabled=false"),
            &admin.access,
        )
        .json();
    assert_eq!(ids(&list), vec![off_id.to_owned()]);
    let r = app.authed("GET", &format!("/api/v1/templates/{off_id}"), &admin.access);
    assert_eq!(r.status, 200);
}

#[test]
fn lists_filter_sort_and_page() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let category = name("list");
    let mut created = Vec::new();
    for (display, tags, desc) in [
        ("Charlie", vec!["Alpha", "Beta"], "plain"),
        ("alpha", vec!["alpha"], "has 100%_off in it"),
        ("Bravo", vec!["beta"], "plain"),
        ("Delta", vec!["ALPHA", "beta", "gamma"], "plain"),
    ] {
        let mut m = manifest_json(&name("l"), display, &category, &tags);
        m["spec"]["description"] = json!(desc);
        let t = create(&app, &admin.access, &json!({"manifest": m}));
        created.push((display, t["id"].as_str().unwrap().to_owned()));
    }
    let id_of = |d: &str| created.iter().find(|(n, _)| *n == d).unwrap().1.clone();
    let get = |query: &str| {
        let r = app.authed(
            "GET",
            &format!("/api/v1/templates?category={category}&{query}"),
            &admin.access,
        );
        assert_eq!(r.status, 200, "{query}: {}", text(&r));
        r.json()
    };

    // name: lower(display_name).
    let by_name = ids(&get("sort=name"));
    assert_eq!(
        by_name,
        ["alpha", "Bravo", "Charlie", "Delta"].map(&id_of).to_vec()
    );
    // Tags: every one must match, case-insensitively.
    let both = ids(&get("tag=alpha&tag=BETA"));
    assert_eq!(both, ["Charlie", "Delta"].map(&id_of).to_vec());
    // q: a substring of name, display name, description or tags; `%` and `_` are literal.
    assert_eq!(ids(&get("q=100%25_off")), vec![id_of("alpha")]);
    assert_eq!(ids(&get("search=GAMMA")), vec![id_of("Delta")]);
    assert_eq!(ids(&get("q=_")), vec![id_of("alpha")], "`_` is no wildcard");
    assert_eq!(
        ids(&get("q=%25")),
        vec![id_of("alpha")],
        "`%` is no wildcard"
    );
    assert_eq!(ids(&get("q=bRaV")), vec![id_of("Bravo")]);
    assert_eq!(ids(&get("app_type=webapp")).len(), 4);
    assert!(ids(&get("app_type=desktop")).is_empty());
    // newest: created_at DESC (ties broken by id, so compare as a set order-insensitively when
    // created within one millisecond).
    let newest = ids(&get("sort=newest"));
    assert_eq!(newest.len(), 4);
    assert_eq!(ids(&get("sort=created")), newest);
    assert_eq!(
        ids(&get("sort=popularity")),
        by_name,
        "all at 0 installs: by name"
    );

    // Paging: two by two, in every sort, the same items as the whole list.
    for sort in ["name", "popular", "newest"] {
        let whole = ids(&get(&format!("sort={sort}")));
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("sort={sort}&limit=2&cursor={c}"),
                None => format!("sort={sort}&limit=2"),
            };
            let page = get(&q);
            paged.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(paged, whole, "sort={sort}");
    }

    for bad in [
        "sort=random",
        "app_type=mobile",
        "enabled=maybe",
        "cursor=!!",
    ] {
        let r = app.authed("GET", &format!("/api/v1/templates?{bad}"), &admin.access);
        assert_eq!(r.status, 400, "{bad}: {}", text(&r));
    }
    let long = "x".repeat(101);
    let r = app.authed("GET", &format!("/api/v1/templates?q={long}"), &admin.access);
    expect_error(&r, 400, "invalid_query");
}

/// SQLite's `lower()` folds ASCII only: a cursor folded any other way (Unicode lowercase) would
/// compare unequal to the row it came from and skip the rows after it.
#[test]
fn name_sort_pages_through_non_ascii_display_names() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let category = name("uni");
    for display in ["Ärger", "äpfel", "Zebra", "alpha", "Éclair", "école"] {
        let m = manifest_json(&name("u"), display, &category, &[]);
        create(&app, &admin.access, &json!({"manifest": m}));
    }
    let list = |query: &str| {
        let r = app.authed(
            "GET",
            &format!("/api/v1/templates?category={category}&{query}"),
            &admin.access,
        );
        assert_eq!(r.status, 200, "{}", text(&r));
        r.json()
    };
    let whole = ids(&list("sort=name"));
    assert_eq!(whole.len(), 6);
    let mut paged = Vec::new();
    let mut query = "sort=name&limit=1".to_owned();
    loop {
        let page = list(&query);
        paged.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("sort=name&limit=1&cursor={c}"),
            None => break,
        }
        assert!(paged.len() <= 6, "pages repeat items");
    }
    assert_eq!(paged, whole);
}

#[test]
fn foreign_org_templates_answer_404_everywhere() {
    let app = TestApp::spawn();
    let platform = app.admin();
    let org_b = create_org(&app, &platform.access);
    let b_admin = create_user(&app, &platform.access, "admin", Some(&org_b)).token;
    let a_admin = create_user(&app, &platform.access, "admin", None).token;
    let n = name("foreign");
    let t = create(
        &app,
        &b_admin,
        &json!({"manifest": manifest_json(&n, "Foreign", "c", &[])}),
    );
    let id = t["id"].as_str().unwrap();

    for key in [id, n.as_str()] {
        for (method, path) in [
            ("GET", format!("/api/v1/templates/{key}")),
            ("DELETE", format!("/api/v1/templates/{key}")),
            ("GET", format!("/api/v1/templates/{key}/favorite")),
            ("POST", format!("/api/v1/preferences/favorites/{key}")),
            ("DELETE", format!("/api/v1/preferences/favorites/{key}")),
        ] {
            let r = app.json(method, &path, Some(&a_admin), &json!({}));
            expect_error(&r, 404, "not_found");
        }
        let r = app.json(
            "PATCH",
            &format!("/api/v1/templates/{key}"),
            Some(&a_admin),
            &json!({"enabled": false}),
        );
        expect_error(&r, 404, "not_found");
    }
    // The same name is free in org A: names are unique per org.
    create(
        &app,
        &a_admin,
        &json!({"manifest": manifest_json(&n, "Mine", "c", &[])}),
    );
    let list = app
        .authed("GET", &format!("/api/v1/templates?q={n}"), &a_admin)
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["display_name"], "Mine");
    // Still there, untouched, for its own org.
    let r = app.authed("GET", &format!("/api/v1/templates/{id}"), &b_admin);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], true);
}

#[test]
fn patch_updates_fields_and_manifest_but_never_the_name() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let operator = create_user(&app, &admin.access, "operator", None).token;
    let n = name("patch");
    let t = create(
        &app,
        &operator,
        &json!({"manifest": manifest_json(&n, "Before", "c", &["a"])}),
    );
    let id = t["id"].as_str().unwrap();
    let path = format!("/api/v1/templates/{id}");

    let r = app.json(
        "PATCH",
        &path,
        Some(&operator),
        &json!({"display_name": "After", "tags": ["b", "c"], "default_resources": {"cpu": "250m", "memory": "512Mi"}, "enabled": false}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let v = r.json();
    assert_eq!(v["display_name"], "After");
    assert_eq!(v["tags"], json!(["b", "c"]));
    assert_eq!(
        v["default_resources"],
        json!({"cpu": "250m", "memory": "512Mi"})
    );
    assert_eq!(v["enabled"], false);
    assert_eq!(
        v["manifest"]["spec"]["displayName"], "After",
        "the manifest follows"
    );
    assert_eq!(
        v["manifest"]["spec"]["x-custom"],
        json!({"kept": [1, 2, 3]})
    );

    // A whole new manifest (YAML) of the same name.
    let yaml = FIREFOX_YAML.replace("NAME", &n).replace("CATEGORY", "c");
    let r = app.json("PATCH", &path, Some(&operator), &json!({"manifest": yaml}));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["streaming"]["protocol"], "selkies");
    assert_eq!(r.json()["enabled"], false, "enabled is untouched");

    // Renaming through the manifest is refused; so are bad values and unknown fields.
    let r = app.json(
        "PATCH",
        &path,
        Some(&operator),
        &json!({"manifest": manifest_json(&name("other"), "X", "c", &[])}),
    );
    expect_error(&r, 400, "invalid_field");
    let r = app.json(
        "PATCH",
        &path,
        Some(&operator),
        &json!({"app_type": "mobile"}),
    );
    expect_error(&r, 400, "invalid_field");
    let r = app.json("PATCH", &path, Some(&operator), &json!({"name": "renamed"}));
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = app.json(
        "PATCH",
        &format!("/api/v1/templates/{}", name("missing")),
        Some(&operator),
        &json!({"enabled": true}),
    );
    expect_error(&r, 404, "not_found");
}

#[test]
fn favorites_are_idempotent_and_deleted_with_their_template() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let user = create_user(&app, &admin.access, "user", None).token;
    let other = create_user(&app, &admin.access, "user", None).token;
    let n1 = name("fav");
    let t1 = create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&n1, "Fav One", "c", &[])}),
    );
    let t2 = create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&name("fav"), "Fav Two", "c", &[])}),
    );
    let (id1, id2) = (t1["id"].as_str().unwrap(), t2["id"].as_str().unwrap());

    let r = app.authed("GET", &format!("/api/v1/templates/{id1}/favorite"), &user);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        r.json(),
        json!({"template_id": id1, "favorited": false, "favorited_at": null})
    );

    // Add by name, then again by id: the same favorite, the same time.
    let r = app.json(
        "POST",
        &format!("/api/v1/preferences/favorites/{n1}"),
        Some(&user),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let first = r.json();
    assert_eq!(first["template_id"], id1);
    assert_eq!(first["favorited"], true);
    let r = app.json(
        "POST",
        &format!("/api/v1/preferences/favorites/{id1}"),
        Some(&user),
        &json!({}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), first, "idempotent");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = app.json(
        "POST",
        &format!("/api/v1/preferences/favorites/{id2}"),
        Some(&user),
        &json!({}),
    );
    assert_eq!(r.status, 200);
    let second = r.json();

    // Newest first, each with its own time.
    let list = app
        .authed("GET", "/api/v1/preferences/favorites", &user)
        .json();
    assert_eq!(ids(&list), vec![id2.to_owned(), id1.to_owned()]);
    assert_eq!(list["items"][0]["favorited_at"], second["favorited_at"]);
    assert_eq!(list["items"][1]["favorited_at"], first["favorited_at"]);
    assert_eq!(list["items"][1]["display_name"], "Fav One");
    assert_eq!(list["items"][1]["favorited"], true);
    let page = app
        .authed("GET", "/api/v1/preferences/favorites?limit=1", &user)
        .json();
    assert_eq!(ids(&page), vec![id2.to_owned()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app
        .authed(
            "GET",
            &format!("/api/v1/preferences/favorites?limit=1&cursor={cursor}"),
            &user,
        )
        .json();
    assert_eq!(ids(&page), vec![id1.to_owned()]);

    // Favorites are per user.
    let list = app
        .authed("GET", "/api/v1/preferences/favorites", &other)
        .json();
    assert!(ids(&list).is_empty());

    // Removing is 204 whether or not it was a favorite (twice, or by another user); an
    // unknown template is 404 to add and to remove, as on every template route.
    for token in [&user, &user, &other] {
        let r = app.authed(
            "DELETE",
            &format!("/api/v1/preferences/favorites/{id2}"),
            token,
        );
        assert_eq!(r.status, 204, "{}", text(&r));
        assert!(r.body.is_empty());
    }
    for method in ["POST", "DELETE"] {
        let r = app.json(
            method,
            &format!("/api/v1/preferences/favorites/{}", name("nothing")),
            Some(&user),
            &json!({}),
        );
        expect_error(&r, 404, "not_found");
    }

    // Deleting the template takes its favorites with it.
    let r = app.authed("DELETE", &format!("/api/v1/templates/{id1}"), &admin.access);
    assert_eq!(r.status, 204, "{}", text(&r));
    assert!(r.body.is_empty());
    let list = app
        .authed("GET", "/api/v1/preferences/favorites", &user)
        .json();
    assert!(ids(&list).is_empty(), "{list}");
    let r = app.authed("GET", &format!("/api/v1/templates/{id1}"), &user);
    expect_error(&r, 404, "not_found");
    let r = app.authed("DELETE", &format!("/api/v1/templates/{id1}"), &admin.access);
    expect_error(&r, 404, "not_found");
    // A template created again under the same name starts without favorites.
    let again = create(
        &app,
        &admin.access,
        &json!({"manifest": manifest_json(&n1, "Again", "c", &[])}),
    );
    let r = app.authed(
        "GET",
        &format!(
            "/api/v1/templates/{}/favorite",
            again["id"].as_str().unwrap()
        ),
        &user,
    );
    assert_eq!(r.json()["favorited"], false);
}
