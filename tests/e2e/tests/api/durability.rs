//! Durability on a real Spin: a crash (SIGKILL of the whole `spin up` process group) in the
//! middle of a write load loses no answered write and no audit row, and the audit chain verifies
//! after the restart. The test host runs in-process and cannot be killed, so there the test
//! returns early (`real-Spin-only`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{note_real_spin_only, real_spin_per_test, try_send, unique, TestApp};

const WRITERS: usize = 8;

/// A request the server answered before it died.
#[derive(Debug)]
struct Answered {
    request_id: String,
    status: u16,
    /// `(id, name)` of the team a 201 created.
    team: Option<(String, String)>,
}

#[test]
fn sigkill_mid_write_load_loses_no_answered_write_or_audit_row() {
    if !real_spin_per_test() {
        note_real_spin_only("SIGKILLs the server mid-load; needs E2E_SPIN");
        return;
    }
    let mut app = TestApp::spawn_tuned(&[
        ("rate_limit_api_per_minute", "1000000"),
        ("rate_limit_login_per_minute", "100000"),
        ("rate_limit_login_ip_per_minute", "100000"),
    ]);
    let admin = app.admin();
    let auth = format!("Bearer {}", admin.access);
    let base = app.base.clone();
    let run = unique("dur");
    let answered = Mutex::new(Vec::<Answered>::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (base, auth, run) = (&base, &auth, &run);
            let (answered, done) = (&answered, &done);
            scope.spawn(move || {
                for i in 0.. {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    let request_id = format!("{run}-w{writer}-{i}");
                    let name = format!("{run}-team-{writer}-{i}");
                    let body = json!({"name": name, "description": "durability"}).to_string();
                    let r = try_send(
                        base,
                        "POST",
                        "/api/v1/teams",
                        &[
                            ("content-type", "application/json"),
                            ("authorization", auth),
                            ("x-request-id", &request_id),
                        ],
                        body.as_bytes(),
                    );
                    // The kill: the connection fails (nothing listens any more), the writer ends.
                    let Ok(r) = r else { return };
                    // The id the server used (a replayed one would have been replaced).
                    let request_id = r.header("x-request-id").unwrap_or_default().to_owned();
                    let team = (r.status == 201).then(|| {
                        let id = r.json()["id"].as_str().expect("team id").to_owned();
                        (id, name)
                    });
                    answered.lock().unwrap().push(Answered {
                        request_id,
                        status: r.status,
                        team,
                    });
                }
            });
        }
        // Let the load run, then crash the server under it.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = app.kill9();
        // Writers never outlive the scope, even if the kill failed.
        done.store(true, Ordering::SeqCst);
        killed.expect("SIGKILL spin");
        // The writers now fail (nothing listens on the old port) and end; the scope joins them
        // before the restart, so none can reach the new server.
    });
    app.restart_after_kill()
        .expect("spin restarts after SIGKILL");
    let answered = answered.into_inner().unwrap();
    let created: Vec<&(String, String)> = answered.iter().filter_map(|a| a.team.as_ref()).collect();
    assert!(
        created.len() >= WRITERS,
        "the load wrote before the kill: {} answered, {} created",
        answered.len(),
        created.len()
    );
    eprintln!(
        "durability: {} answered ({} created) before SIGKILL",
        answered.len(),
        created.len()
    );

    // The restarted server may refuse writes for a while: on libSQL the killed instance's open
    // write transaction (a unit of work spread over several host calls) keeps sqld's write lock
    // until its stream expires. That is unavailability, not loss: wait for it (bounded) and say
    // how long it took, then check.
    let recovering = Instant::now();
    while app.get("/api/v1/auth/setup/status").status == 503
        || app
            .json(
                "POST",
                "/api/v1/auth/login",
                None,
                &json!({"username": "nobody-durability", "password": "not a password"}),
            )
            .status
            == 503
    {
        assert!(
            recovering.elapsed() < Duration::from_secs(90),
            "the restarted server still answers 503 after 90 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "durability: writes served again {:.1} s after the restart",
        recovering.elapsed().as_secs_f64()
    );

    // After the restart (same state): every answered write is there …
    let admin = app.admin();
    for (id, name) in &created {
        let r = app.authed("GET", &format!("/api/v1/teams/{id}"), &admin.access);
        assert_eq!(
            r.status,
            200,
            "team {name} ({id}) was answered 201 before the kill and is gone: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["name"], name.as_str());
    }
    // … every answered request has exactly one audit row, with the status it was answered …
    for a in &answered {
        let r = app.authed(
            "GET",
            &format!("/api/v1/admin/audit?request_id={}", a.request_id),
            &admin.access,
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let items = r.json()["items"].as_array().expect("items").clone();
        // A 503 may be the fail-closed answer to an audit write that could not be made (libSQL
        // interrupts writes under load): then the request changed nothing and has no row.
        // Every other answer has exactly one.
        if a.status == 503 && items.is_empty() {
            continue;
        }
        assert_eq!(
            items.len(),
            1,
            "request {} (answered {}) has one audit row: {items:?}",
            a.request_id,
            a.status
        );
        assert_eq!(items[0]["status"], a.status, "{:?}", items[0]);
    }
    // … and the whole chain verifies.
    let mut path = "/api/v1/admin/audit/verify?full=true".to_owned();
    let mut checked = 0;
    loop {
        let r = app.authed("GET", &path, &admin.access);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["ok"], true, "the chain verifies after the crash: {v}");
        checked += v["checked"].as_u64().unwrap_or(0);
        if v["complete"] == true {
            break;
        }
        let cursor = v["next_cursor"].as_str().expect("next_cursor").to_owned();
        path = format!("/api/v1/admin/audit/verify?full=true&cursor={cursor}");
    }
    assert!(
        checked as usize >= answered.len(),
        "the full pass walked every row: {checked} < {}",
        answered.len()
    );
}
