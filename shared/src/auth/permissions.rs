//! Team permissions: who may act on a resource that belongs to a user and, optionally, a team.
//!
//! A team member's role (`admin`, `member`, `viewer`, …) maps to permission strings through the
//! `team_role_permissions` table (seeded by migration 2):
//!
//! | role | permissions |
//! |---|---|
//! | `admin` | every permission below |
//! | `member` | `sessions.view`, `sessions.create`, `sessions.share` |
//! | `viewer` | `sessions.view` |
//!
//! Org scoping: a team only counts when it belongs to the principal's org, so a membership (or a
//! tampered team id) can never reach across orgs. An org admin ([`Role::Admin`](super::Role)) holds
//! every permission on every team of its own org, without being a member.
//!
//! How resources use it (sessions, later issues): load the resource **scoped to the caller's
//! tenant first** (a foreign org's resource answers 404), then ask
//! `can_access(db, principal, &row.owner_user_id, row.team_id.as_deref(), SESSIONS_VIEW)` and
//! answer 403 `forbidden` when it is false.

use crate::store::{Database, StoreError, Value};

use super::Principal;

pub const SESSIONS_VIEW: &str = "sessions.view";
pub const SESSIONS_CREATE: &str = "sessions.create";
pub const SESSIONS_DELETE: &str = "sessions.delete";
pub const SESSIONS_SHARE: &str = "sessions.share";
pub const TEAM_MANAGE: &str = "team.manage";
pub const TEAM_BILLING: &str = "team.billing";

/// Every permission string, in a stable order (what an org admin holds on its org's teams).
pub const ALL: &[&str] = &[
    SESSIONS_VIEW,
    SESSIONS_CREATE,
    SESSIONS_DELETE,
    SESSIONS_SHARE,
    TEAM_MANAGE,
    TEAM_BILLING,
];

/// True for a known permission string.
pub fn is_permission(s: &str) -> bool {
    ALL.contains(&s)
}

/// May `principal` exercise `permission` on a resource owned by `owner_user_id` and shared with
/// `team_id` (if any)? True when any of these holds:
///
/// - the principal owns the resource (`owner_user_id == principal.user_id`);
/// - the principal is an org admin and the owner, or the team, belongs to the principal's org;
/// - `team_id` is a team of the principal's org, the principal is a member of it, and the member's
///   team role grants `permission`.
///
/// Unknown permission strings are never granted through a team. The caller must still have
/// loaded the resource scoped to its tenant: this function answers "may", not "exists".
/// A store failure is an error (503 upstream), never a silent `false`.
pub fn can_access(
    db: &Database,
    principal: &Principal,
    owner_user_id: &str,
    team_id: Option<&str>,
    permission: &str,
) -> Result<bool, StoreError> {
    if owner_user_id == principal.user_id {
        return Ok(true);
    }
    let org = principal.org_id.as_str();
    if principal.is_admin() {
        let rows = db.execute(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND org_id = ?)
                 OR EXISTS (SELECT 1 FROM teams WHERE id = ? AND org_id = ?) AS in_org",
            &[
                Value::from(owner_user_id),
                Value::from(org),
                Value::from(team_id),
                Value::from(org),
            ],
        )?;
        if flag(&rows, "in_org")? {
            return Ok(true);
        }
    }
    let Some(team_id) = team_id else {
        return Ok(false);
    };
    if !is_permission(permission) {
        return Ok(false);
    }
    let rows = db.execute(
        "SELECT EXISTS (
             SELECT 1 FROM team_members m
               JOIN teams t ON t.id = m.team_id
               JOIN team_role_permissions p ON p.role = m.role
              WHERE m.team_id = ? AND m.user_id = ? AND t.org_id = ? AND p.permission = ?
         ) AS granted",
        &[
            Value::from(team_id),
            Value::from(principal.user_id.as_str()),
            Value::from(org),
            Value::from(permission),
        ],
    )?;
    flag(&rows, "granted")
}

/// The principal's team role on `team_id`, or `None` when it is not a member (or the team is not
/// in the principal's org).
pub fn team_role(
    db: &Database,
    principal: &Principal,
    team_id: &str,
) -> Result<Option<String>, StoreError> {
    let rows = db.execute(
        "SELECT m.role FROM team_members m JOIN teams t ON t.id = m.team_id
          WHERE m.team_id = ? AND m.user_id = ? AND t.org_id = ?",
        &[
            Value::from(team_id),
            Value::from(principal.user_id.as_str()),
            Value::from(principal.org_id.as_str()),
        ],
    )?;
    rows.first()
        .map(|row| row.str("role").map(str::to_owned))
        .transpose()
}

/// The permissions the principal holds on `team_id`, sorted in [`ALL`]'s order: every permission
/// for an org admin (on a team of its org), the team role's permissions for a member, none
/// otherwise (not a member, or a team of another org, or no such team).
pub fn team_permissions(
    db: &Database,
    principal: &Principal,
    team_id: &str,
) -> Result<Vec<String>, StoreError> {
    let org = principal.org_id.as_str();
    if principal.is_admin() {
        let rows = db.execute(
            "SELECT EXISTS (SELECT 1 FROM teams WHERE id = ? AND org_id = ?) AS in_org",
            &[Value::from(team_id), Value::from(org)],
        )?;
        return Ok(if flag(&rows, "in_org")? {
            ALL.iter().map(|p| (*p).to_owned()).collect()
        } else {
            Vec::new()
        });
    }
    let rows = db.execute(
        "SELECT p.permission FROM team_members m
           JOIN teams t ON t.id = m.team_id
           JOIN team_role_permissions p ON p.role = m.role
          WHERE m.team_id = ? AND m.user_id = ? AND t.org_id = ?",
        &[
            Value::from(team_id),
            Value::from(principal.user_id.as_str()),
            Value::from(org),
        ],
    )?;
    Ok(sorted(
        rows.decode(|r| r.str("permission").map(str::to_owned))?,
    ))
}

/// Known permissions first in [`ALL`]'s order, then any others (added by a later migration)
/// alphabetically.
fn sorted(mut granted: Vec<String>) -> Vec<String> {
    granted.sort_by(|a, b| {
        let rank = |p: &str| ALL.iter().position(|k| *k == p).unwrap_or(ALL.len());
        rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
    });
    granted.dedup();
    granted
}

fn flag(rows: &crate::store::Rows, column: &str) -> Result<bool, StoreError> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError::sqlite("EXISTS query returned no row"))?;
    Ok(row.i64(column)? != 0)
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::testing::{insert_user, principal, TestStores};

    fn add_user(db: &Database, id: &str, org: &str, role: &str) {
        insert_user(db, id, org, role).unwrap();
    }

    const ORG: &str = "org-a";
    const OTHER_ORG: &str = "org-b";

    fn add_team(db: &Database, id: &str, org: &str) {
        db.execute(
            "INSERT INTO teams (id, org_id, name, created_at) VALUES (?, ?, ?, 0)",
            &[Value::from(id), Value::from(org), Value::from(id)],
        )
        .unwrap();
    }

    fn add_member(db: &Database, team: &str, user: &str, role: &str) {
        db.execute(
            "INSERT INTO team_members (team_id, user_id, role, added_at) VALUES (?, ?, ?, 0)",
            &[Value::from(team), Value::from(user), Value::from(role)],
        )
        .unwrap();
    }

    /// org-a: admin, owner, member (team t1 member), viewer (t1 viewer), teamadmin (t1 admin),
    /// outsider (no team). org-b: foreign admin, foreign member of t2 and — by a forged row — t1.
    fn fixture(stores: &TestStores) -> crate::services::Services {
        let services = stores.services();
        let db = services.db().unwrap();
        for (id, role) in [
            ("admin", "admin"),
            ("owner", "user"),
            ("member", "user"),
            ("viewer", "user"),
            ("teamadmin", "user"),
            ("outsider", "operator"),
        ] {
            add_user(db, id, ORG, role);
        }
        add_user(db, "foreign-admin", OTHER_ORG, "admin");
        add_user(db, "foreign", OTHER_ORG, "user");
        add_team(db, "t1", ORG);
        add_team(db, "t2", OTHER_ORG);
        add_member(db, "t1", "member", "member");
        add_member(db, "t1", "viewer", "viewer");
        add_member(db, "t1", "teamadmin", "admin");
        add_member(db, "t2", "foreign", "admin");
        // A membership row that crosses orgs must not grant anything.
        add_member(db, "t1", "foreign", "admin");
        services
    }

    #[test]
    fn owner_always_has_access() {
        let stores = TestStores::new();
        let services = fixture(&stores);
        let db = services.db().unwrap();
        let owner = principal("owner", ORG, Role::User);
        assert!(can_access(db, &owner, "owner", None, SESSIONS_DELETE).unwrap());
        assert!(can_access(db, &owner, "owner", Some("t2"), TEAM_BILLING).unwrap());
    }

    #[test]
    fn org_admin_of_the_same_org_only() {
        let stores = TestStores::new();
        let services = fixture(&stores);
        let db = services.db().unwrap();
        let admin = principal("admin", ORG, Role::Admin);
        assert!(can_access(db, &admin, "owner", None, SESSIONS_DELETE).unwrap());
        assert!(can_access(db, &admin, "gone-user", Some("t1"), SESSIONS_VIEW).unwrap());
        let foreign_admin = principal("foreign-admin", OTHER_ORG, Role::Admin);
        assert!(!can_access(db, &foreign_admin, "owner", None, SESSIONS_VIEW).unwrap());
        assert!(!can_access(db, &foreign_admin, "owner", Some("t1"), SESSIONS_VIEW).unwrap());
    }

    #[test]
    fn team_role_decides_the_permission() {
        let stores = TestStores::new();
        let services = fixture(&stores);
        let db = services.db().unwrap();
        let member = principal("member", ORG, Role::User);
        let viewer = principal("viewer", ORG, Role::User);
        let team_admin = principal("teamadmin", ORG, Role::User);
        let t1 = Some("t1");
        assert!(can_access(db, &member, "owner", t1, SESSIONS_VIEW).unwrap());
        assert!(can_access(db, &member, "owner", t1, SESSIONS_SHARE).unwrap());
        assert!(!can_access(db, &member, "owner", t1, SESSIONS_DELETE).unwrap());
        assert!(!can_access(db, &member, "owner", t1, TEAM_MANAGE).unwrap());
        assert!(can_access(db, &viewer, "owner", t1, SESSIONS_VIEW).unwrap());
        assert!(!can_access(db, &viewer, "owner", t1, SESSIONS_CREATE).unwrap());
        for p in ALL {
            assert!(can_access(db, &team_admin, "owner", t1, p).unwrap(), "{p}");
        }
        assert!(!can_access(db, &team_admin, "owner", t1, "made.up").unwrap());
        // Not shared with a team, or shared with a team the caller is not in: no.
        assert!(!can_access(db, &member, "owner", None, SESSIONS_VIEW).unwrap());
        assert!(!can_access(db, &member, "owner", Some("t2"), SESSIONS_VIEW).unwrap());
        let outsider = principal("outsider", ORG, Role::Operator);
        assert!(!can_access(db, &outsider, "owner", t1, SESSIONS_VIEW).unwrap());
    }

    #[test]
    fn memberships_never_cross_orgs() {
        let stores = TestStores::new();
        let services = fixture(&stores);
        let db = services.db().unwrap();
        let foreign = principal("foreign", OTHER_ORG, Role::User);
        assert!(!can_access(db, &foreign, "owner", Some("t1"), SESSIONS_VIEW).unwrap());
        assert!(team_permissions(db, &foreign, "t1").unwrap().is_empty());
        assert_eq!(team_role(db, &foreign, "t1").unwrap(), None);
        assert_eq!(
            team_role(db, &foreign, "t2").unwrap().as_deref(),
            Some("admin")
        );
        assert!(can_access(db, &foreign, "x", Some("t2"), TEAM_MANAGE).unwrap());
    }

    #[test]
    fn team_permissions_by_role() {
        let stores = TestStores::new();
        let services = fixture(&stores);
        let db = services.db().unwrap();
        let perms = |user: &str, role: Role, team: &str| {
            team_permissions(db, &principal(user, ORG, role), team).unwrap()
        };
        assert_eq!(perms("viewer", Role::User, "t1"), vec![SESSIONS_VIEW]);
        assert_eq!(
            perms("member", Role::User, "t1"),
            vec![SESSIONS_VIEW, SESSIONS_CREATE, SESSIONS_SHARE]
        );
        assert_eq!(perms("teamadmin", Role::User, "t1"), ALL);
        assert_eq!(perms("admin", Role::Admin, "t1"), ALL);
        assert!(perms("admin", Role::Admin, "t2").is_empty());
        assert!(perms("admin", Role::Admin, "nope").is_empty());
        assert!(perms("outsider", Role::Operator, "t1").is_empty());
        assert_eq!(
            team_role(db, &principal("member", ORG, Role::User), "t1")
                .unwrap()
                .as_deref(),
            Some("member")
        );
    }

    #[test]
    fn store_failure_is_an_error() {
        let stores = TestStores::new();
        let services = fixture(&stores);
        let db = services.db().unwrap();
        db.execute("DROP TABLE team_role_permissions", &[]).unwrap();
        let member = principal("member", ORG, Role::User);
        assert!(can_access(db, &member, "owner", Some("t1"), SESSIONS_VIEW).is_err());
        assert!(team_permissions(db, &member, "t1").is_err());
    }
}
