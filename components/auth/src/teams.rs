//! Teams: rows, views, validation and the org-scoped queries behind `/api/v1/teams`.
//!
//! Every function takes the caller's [`Tenant`] and filters by it, so a team of another org is
//! simply not found (404). Who may do what is decided with
//! [`shared::auth::permissions`]: an org admin holds every permission on its org's teams; a team
//! member holds its team role's permissions (`team.manage` makes it a "team admin").

use serde::{Deserialize, Serialize};
use shared::auth::permissions::{self, TEAM_MANAGE};
use shared::auth::{Principal, Tenant};
use shared::pagination::{asc, Key, Page, PageRequest, Paged};
use shared::store::{Database, Row, StoreError, Value};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

pub const NAME_MAX_CHARS: usize = 100;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;

/// What clients see of a team.
#[derive(Debug, Clone, Serialize)]
pub struct TeamView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub member_count: i64,
    pub created_at: Timestamp,
}

/// The columns [`TeamView::from_row`] reads, for a query over `teams t`.
const TEAM_COLUMNS: &str = "t.id, t.org_id, t.name, t.description, t.created_at,
    (SELECT COUNT(*) FROM team_members c WHERE c.team_id = t.id) AS member_count";

impl TeamView {
    fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.str("id")?.to_owned(),
            org_id: row.str("org_id")?.to_owned(),
            name: row.str("name")?.to_owned(),
            description: row.str("description")?.to_owned(),
            member_count: row.i64("member_count")?,
            created_at: Timestamp::from_ms(row.i64("created_at")?),
        })
    }
}

/// A team of the caller's, with the caller's team role (`GET /teams/my-teams`).
#[derive(Debug, Clone, Serialize)]
pub struct MyTeamView {
    #[serde(flatten)]
    pub team: TeamView,
    pub role: String,
}

/// A member of a team.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub team_id: String,
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub added_at: Timestamp,
}

const MEMBER_COLUMNS: &str = "m.team_id, m.user_id, u.username, m.role, m.added_at";

impl MemberView {
    fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            team_id: row.str("team_id")?.to_owned(),
            user_id: row.str("user_id")?.to_owned(),
            username: row.str("username")?.to_owned(),
            role: row.str("role")?.to_owned(),
            added_at: Timestamp::from_ms(row.i64("added_at")?),
        })
    }
}

/// The caller's permissions on one team (`GET /teams/{id}/my-permissions`).
#[derive(Debug, Clone, Serialize)]
pub struct MyPermissions {
    pub team_id: String,
    /// The caller's team role; `null` when it is not a member (an org admin may still hold
    /// every permission).
    pub role: Option<String>,
    pub permissions: Vec<String>,
}

/// A team name: no control characters (not even around it), then trimmed, 1–100 characters.
pub fn check_name(name: &str) -> ApiResult<String> {
    let control = name.chars().any(char::is_control);
    let name = name.trim();
    let len = name.chars().count();
    if !(1..=NAME_MAX_CHARS).contains(&len) || control {
        return Err(ApiError::bad_request(
            "invalid_field",
            "name must be 1-100 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// A team description: trimmed, at most 1000 characters; line breaks and tabs are the only
/// control characters allowed.
pub fn check_description(description: &str) -> ApiResult<String> {
    let bad_control = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    let control = description.chars().any(bad_control);
    let description = description.trim();
    if description.chars().count() > DESCRIPTION_MAX_CHARS || control {
        return Err(ApiError::bad_request(
            "invalid_field",
            "description must be at most 1000 characters without control characters",
        ));
    }
    Ok(description.to_owned())
}

/// A team role: one of the roles `team_role_permissions` knows (`admin`, `member`, `viewer`).
pub fn check_role(db: &Database, role: &str) -> ApiResult<String> {
    let known = role.len() <= 64 && {
        let rows = db.execute(
            "SELECT EXISTS (SELECT 1 FROM team_role_permissions WHERE role = ?) AS known",
            &[Value::from(role)],
        )?;
        rows.first()
            .map(|r| r.i64("known"))
            .transpose()?
            .unwrap_or(0)
            != 0
    };
    if !known {
        return Err(ApiError::bad_request(
            "invalid_field",
            "role must be one of admin, member, viewer",
        ));
    }
    Ok(role.to_owned())
}

fn team_exists() -> ApiError {
    ApiError::conflict("team_exists", "a team with this name already exists")
}

fn no_such_team() -> ApiError {
    ApiError::not_found("no such team")
}

fn no_such_member() -> ApiError {
    ApiError::not_found("no such team member")
}

pub fn forbidden(what: &str) -> ApiError {
    ApiError::forbidden("forbidden", format!("you may not {what} this team"))
}

/// A team of the tenant's org; 404 for any other.
pub fn find(db: &Database, tenant: &Tenant, team_id: &str) -> ApiResult<TeamView> {
    let rows = db.execute(
        &format!("SELECT {TEAM_COLUMNS} FROM teams t WHERE t.id = ? AND t.org_id = ?"),
        &[Value::from(team_id), Value::from(tenant.org_id())],
    )?;
    let row = rows.first().ok_or_else(no_such_team)?;
    Ok(TeamView::from_row(&row)?)
}

/// Requires `team.manage` on a team (org admin, or a team member whose role grants it): 403.
pub fn require_manage(db: &Database, principal: &Principal, team_id: &str) -> ApiResult<()> {
    let perms = permissions::team_permissions(db, principal, team_id)?;
    if perms.iter().any(|p| p == TEAM_MANAGE) {
        Ok(())
    } else {
        Err(forbidden("manage"))
    }
}

/// Requires being an org admin or a member (any role) of the team: 403.
pub fn require_member_or_admin(
    db: &Database,
    principal: &Principal,
    team_id: &str,
) -> ApiResult<()> {
    if principal.is_admin() || permissions::team_role(db, principal, team_id)?.is_some() {
        Ok(())
    } else {
        Err(forbidden("view the members of"))
    }
}

/// Pages through the org's teams by name.
pub fn list(db: &Database, tenant: &Tenant, page: &PageRequest) -> ApiResult<Page<TeamView>> {
    let mut q = Paged::new(format!("SELECT {TEAM_COLUMNS} FROM teams t"));
    let org = q.bind(tenant.org_id());
    q.and(format!("t.org_id = {org}"));
    q.fetch(db, page, BY_NAME, TeamView::from_row, |t| {
        (t.name.clone(), t.id.clone())
    })
}

/// Teams by name.
const BY_NAME: &[Key] = &[asc("t.name"), asc("t.id")];

/// Pages through the caller's teams (in its org) by name, with its team role.
pub fn list_mine(
    db: &Database,
    principal: &Principal,
    page: &PageRequest,
) -> ApiResult<Page<MyTeamView>> {
    let mut q = Paged::new(format!(
        "SELECT {TEAM_COLUMNS}, m.role AS member_role
           FROM team_members m JOIN teams t ON t.id = m.team_id"
    ));
    let (user, org) = (
        q.bind(principal.user_id.as_str()),
        q.bind(principal.org_id.as_str()),
    );
    q.and(format!("m.user_id = {user} AND t.org_id = {org}"));
    q.fetch(
        db,
        page,
        BY_NAME,
        |row| {
            Ok::<_, StoreError>(MyTeamView {
                team: TeamView::from_row(row)?,
                role: row.str("member_role")?.to_owned(),
            })
        },
        |t| (t.team.name.clone(), t.team.id.clone()),
    )
}

/// Creates a team in the tenant's org; 409 when the org already has a team of that name.
pub fn create(
    db: &Database,
    tenant: &Tenant,
    id: &str,
    name: &str,
    description: &str,
    now_ms: i64,
) -> ApiResult<TeamView> {
    let rows = db.execute(
        "INSERT INTO teams (id, org_id, name, description, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (org_id, name) DO NOTHING
         RETURNING id, org_id, name, description, created_at, 0 AS member_count",
        &[
            Value::from(id),
            Value::from(tenant.org_id()),
            Value::from(name),
            Value::from(description),
            Value::from(now_ms),
        ],
    )?;
    let row = rows.first().ok_or_else(team_exists)?;
    Ok(TeamView::from_row(&row)?)
}

/// What a `PATCH /teams/{id}` may change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Applies a validated patch (`None` keeps a field); 404 when the team is not in the org, 409
/// when another team of the org has the new name. One statement: the name check and the write
/// cannot be split by a concurrent rename.
pub fn update(
    db: &Database,
    tenant: &Tenant,
    team_id: &str,
    name: Option<&str>,
    description: Option<&str>,
) -> ApiResult<TeamView> {
    let org = tenant.org_id();
    db.execute(
        "UPDATE teams SET name = COALESCE(?, name), description = COALESCE(?, description)
          WHERE id = ? AND org_id = ?
            AND NOT EXISTS (SELECT 1 FROM teams o WHERE o.org_id = ? AND o.name = ? AND o.id <> ?)",
        &[
            Value::from(name),
            Value::from(description),
            Value::from(team_id),
            Value::from(org),
            Value::from(org),
            Value::from(name),
            Value::from(team_id),
        ],
    )?;
    if db.changes()? == 0 {
        // Either the team is not there (404) or the name is taken (409).
        find(db, tenant, team_id)?;
        return Err(team_exists());
    }
    find(db, tenant, team_id)
}

/// Deletes a team and all its memberships in one transaction; 404 when it is not in the org.
pub fn delete(db: &Database, tenant: &Tenant, team_id: &str) -> ApiResult<()> {
    db.transaction(|db| {
        db.execute(
            "DELETE FROM teams WHERE id = ? AND org_id = ?",
            &[Value::from(team_id), Value::from(tenant.org_id())],
        )?;
        if db.changes()? == 0 {
            return Err(no_such_team());
        }
        db.execute(
            "DELETE FROM team_members WHERE team_id = ?",
            &[Value::from(team_id)],
        )?;
        Ok(())
    })
}

/// Pages through a team's members by username.
pub fn members(
    db: &Database,
    tenant: &Tenant,
    team_id: &str,
    page: &PageRequest,
) -> ApiResult<Page<MemberView>> {
    // `users.username` is COLLATE NOCASE: ordering and the cursor comparison both use it.
    let mut q = Paged::new(format!(
        "SELECT {MEMBER_COLUMNS}
           FROM team_members m
           JOIN teams t ON t.id = m.team_id
           JOIN users u ON u.id = m.user_id"
    ));
    let (team, org) = (q.bind(team_id), q.bind(tenant.org_id()));
    q.and(format!(
        "m.team_id = {team} AND t.org_id = {org} AND u.org_id = t.org_id"
    ));
    q.fetch(
        db,
        page,
        &[asc("u.username"), asc("m.user_id")],
        MemberView::from_row,
        |m| (m.username.clone(), m.user_id.clone()),
    )
}

/// One member of a team of the org; 404 when the user is not a member.
pub fn find_member(
    db: &Database,
    tenant: &Tenant,
    team_id: &str,
    user_id: &str,
) -> ApiResult<MemberView> {
    let rows = db.execute(
        &format!(
            "SELECT {MEMBER_COLUMNS}
               FROM team_members m
               JOIN teams t ON t.id = m.team_id
               JOIN users u ON u.id = m.user_id
              WHERE m.team_id = ? AND m.user_id = ? AND t.org_id = ? AND u.org_id = t.org_id"
        ),
        &[
            Value::from(team_id),
            Value::from(user_id),
            Value::from(tenant.org_id()),
        ],
    )?;
    let row = rows.first().ok_or_else(no_such_member)?;
    Ok(MemberView::from_row(&row)?)
}

/// Adds a user of the org to a team of the org. The insert itself re-checks that both still
/// belong to the org, so a concurrent delete cannot leave a membership behind. 404 when the team
/// or the user is not in the org, 409 when the user already is a member.
pub fn add_member(
    db: &Database,
    tenant: &Tenant,
    team_id: &str,
    user_id: &str,
    role: &str,
    now_ms: i64,
) -> ApiResult<MemberView> {
    let org = tenant.org_id();
    db.execute(
        "INSERT INTO team_members (team_id, user_id, role, added_at)
         SELECT t.id, u.id, ?, ? FROM teams t, users u
          WHERE t.id = ? AND t.org_id = ? AND u.id = ? AND u.org_id = ?
         ON CONFLICT (team_id, user_id) DO NOTHING",
        &[
            Value::from(role),
            Value::from(now_ms),
            Value::from(team_id),
            Value::from(org),
            Value::from(user_id),
            Value::from(org),
        ],
    )?;
    if db.changes()? == 0 {
        // Tell the three cases apart (the insert changed nothing, so this is only diagnosis).
        find(db, tenant, team_id)?;
        let user = db.execute(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND org_id = ?) AS found",
            &[Value::from(user_id), Value::from(org)],
        )?;
        if user
            .first()
            .map(|r| r.i64("found"))
            .transpose()?
            .unwrap_or(0)
            == 0
        {
            return Err(ApiError::not_found("no such user"));
        }
        return Err(ApiError::conflict(
            "already_member",
            "the user already is a member of this team",
        ));
    }
    find_member(db, tenant, team_id, user_id)
}

/// Changes a member's team role; 404 when the user is not a member of this team of the org.
pub fn set_member_role(
    db: &Database,
    tenant: &Tenant,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> ApiResult<MemberView> {
    db.execute(
        "UPDATE team_members SET role = ?
          WHERE team_id = ? AND user_id = ?
            AND team_id IN (SELECT id FROM teams WHERE id = ? AND org_id = ?)",
        &[
            Value::from(role),
            Value::from(team_id),
            Value::from(user_id),
            Value::from(team_id),
            Value::from(tenant.org_id()),
        ],
    )?;
    if db.changes()? == 0 {
        return Err(no_such_member());
    }
    find_member(db, tenant, team_id, user_id)
}

/// Removes a member; 404 when the user is not a member of this team of the org.
pub fn remove_member(
    db: &Database,
    tenant: &Tenant,
    team_id: &str,
    user_id: &str,
) -> ApiResult<()> {
    db.execute(
        "DELETE FROM team_members
          WHERE team_id = ? AND user_id = ?
            AND team_id IN (SELECT id FROM teams WHERE id = ? AND org_id = ?)",
        &[
            Value::from(team_id),
            Value::from(user_id),
            Value::from(team_id),
            Value::from(tenant.org_id()),
        ],
    )?;
    if db.changes()? == 0 {
        return Err(no_such_member());
    }
    Ok(())
}

/// The caller's role and permissions on a team of its org (404 for any other team).
pub fn my_permissions(
    db: &Database,
    principal: &Principal,
    team_id: &str,
) -> ApiResult<MyPermissions> {
    find(db, &principal.tenant(), team_id)?;
    Ok(MyPermissions {
        team_id: team_id.to_owned(),
        role: permissions::team_role(db, principal, team_id)?,
        permissions: permissions::team_permissions(db, principal, team_id)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::auth::permissions::ALL;
    use shared::auth::Role;
    use shared::testing::{insert_user, principal, TestStores};

    fn add_user(db: &Database, id: &str, org: &str) {
        insert_user(db, id, org, "user").unwrap();
    }
    use shared::services::Services;

    const ORG: &str = "org-a";
    const OTHER: &str = "org-b";

    fn setup() -> (TestStores, Services) {
        let stores = TestStores::new();
        let services = stores.services();
        {
            let db = services.db().unwrap();
            for id in ["alice", "bob", "carol"] {
                add_user(db, id, ORG);
            }
            add_user(db, "mallory", OTHER);
        }
        (stores, services)
    }

    fn page(query: &str) -> PageRequest {
        PageRequest::from_query(query).unwrap()
    }

    #[test]
    fn names_and_descriptions_are_checked() {
        assert_eq!(check_name("  Ops  ").unwrap(), "Ops");
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name(&"é".repeat(100)).is_ok());
        assert!(check_name(&"é".repeat(101)).is_err());
        assert!(check_name("a\u{0}b").is_err());
        assert!(check_name("a\nb").is_err());
        assert_eq!(
            check_description(" line\nnext\tcol ").unwrap(),
            "line\nnext\tcol"
        );
        assert!(check_description(&"d".repeat(1000)).is_ok());
        assert!(check_description(&"d".repeat(1001)).is_err());
        assert!(check_description("bell\u{7}").is_err());
    }

    #[test]
    fn roles_come_from_the_table() {
        let (_stores, services) = setup();
        let db = services.db().unwrap();
        for role in ["admin", "member", "viewer"] {
            assert_eq!(check_role(db, role).unwrap(), role);
        }
        for role in ["owner", "", "Admin", &"a".repeat(65)] {
            assert_eq!(
                check_role(db, role).unwrap_err().code,
                "invalid_field",
                "{role}"
            );
        }
    }

    #[test]
    fn create_find_update_and_name_clashes() {
        let (_stores, services) = setup();
        let db = services.db().unwrap();
        let a = Tenant::of_org(ORG);
        let b = Tenant::of_org(OTHER);
        let t1 = create(db, &a, "t1", "Ops", "", 1).unwrap();
        assert_eq!((t1.name.as_str(), t1.member_count), ("Ops", 0));
        assert_eq!(
            create(db, &a, "t2", "Ops", "", 1).unwrap_err().code,
            "team_exists"
        );
        // Another org may use the same name; neither sees the other's team.
        create(db, &b, "t3", "Ops", "", 1).unwrap();
        assert_eq!(find(db, &b, "t1").unwrap_err().status.as_u16(), 404);
        create(db, &a, "t2", "Dev", "", 1).unwrap();
        assert_eq!(
            update(db, &a, "t2", Some("Ops"), None).unwrap_err().code,
            "team_exists"
        );
        let same = update(db, &a, "t1", Some("Ops"), Some("d")).unwrap();
        assert_eq!(
            (same.name.as_str(), same.description.as_str()),
            ("Ops", "d")
        );
        let kept = update(db, &a, "t1", None, Some("e")).unwrap();
        assert_eq!(
            (kept.name.as_str(), kept.description.as_str()),
            ("Ops", "e")
        );
        assert_eq!(
            update(db, &b, "t1", Some("Mine"), None)
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert_eq!(find(db, &a, "t1").unwrap().name, "Ops");
    }

    #[test]
    fn members_stay_inside_the_org() {
        let (_stores, services) = setup();
        let db = services.db().unwrap();
        let a = Tenant::of_org(ORG);
        let b = Tenant::of_org(OTHER);
        create(db, &a, "t1", "Ops", "", 1).unwrap();
        let m = add_member(db, &a, "t1", "alice", "admin", 5).unwrap();
        assert_eq!((m.username.as_str(), m.role.as_str()), ("alice", "admin"));
        assert_eq!(
            add_member(db, &a, "t1", "alice", "member", 5)
                .unwrap_err()
                .code,
            "already_member"
        );
        let foreign_user = add_member(db, &a, "t1", "mallory", "member", 5).unwrap_err();
        assert_eq!(
            (foreign_user.status.as_u16(), foreign_user.message.as_str()),
            (404, "no such user")
        );
        let foreign_team = add_member(db, &b, "t1", "mallory", "member", 5).unwrap_err();
        assert_eq!(
            (foreign_team.status.as_u16(), foreign_team.message.as_str()),
            (404, "no such team")
        );
        assert_eq!(
            set_member_role(db, &b, "t1", "alice", "viewer")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert_eq!(
            remove_member(db, &b, "t1", "alice")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert_eq!(
            set_member_role(db, &a, "t1", "alice", "viewer")
                .unwrap()
                .role,
            "viewer"
        );
        assert_eq!(
            set_member_role(db, &a, "t1", "bob", "viewer")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        assert_eq!(find(db, &a, "t1").unwrap().member_count, 1);
        remove_member(db, &a, "t1", "alice").unwrap();
        assert_eq!(
            remove_member(db, &a, "t1", "alice")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
    }

    #[test]
    fn lists_page_by_name_and_username() {
        let (_stores, services) = setup();
        let db = services.db().unwrap();
        let a = Tenant::of_org(ORG);
        for (id, name) in [("t1", "Charlie"), ("t2", "Alpha"), ("t3", "Bravo")] {
            create(db, &a, id, name, "", 1).unwrap();
        }
        create(db, &Tenant::of_org(OTHER), "t9", "Aaa", "", 1).unwrap();
        let first = list(db, &a, &page("limit=2")).unwrap();
        let names: Vec<_> = first.items.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "Bravo"]);
        let cursor = first.next_cursor.unwrap();
        let rest = list(db, &a, &page(&format!("limit=2&cursor={cursor}"))).unwrap();
        let names: Vec<_> = rest.items.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Charlie"]);
        assert_eq!(rest.next_cursor, None);

        for (user, role) in [("carol", "viewer"), ("alice", "admin"), ("bob", "member")] {
            add_member(db, &a, "t1", user, role, 1).unwrap();
        }
        add_member(db, &a, "t3", "bob", "viewer", 1).unwrap();
        let first = members(db, &a, "t1", &page("limit=2")).unwrap();
        let users: Vec<_> = first.items.iter().map(|m| m.user_id.as_str()).collect();
        assert_eq!(users, ["alice", "bob"]);
        let cursor = first.next_cursor.unwrap();
        let rest = members(db, &a, "t1", &page(&format!("limit=2&cursor={cursor}"))).unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].user_id, "carol");

        let bob = principal("bob", ORG, Role::User);
        let mine = list_mine(db, &bob, &page("")).unwrap();
        let got: Vec<_> = mine
            .items
            .iter()
            .map(|t| (t.team.name.as_str(), t.role.as_str(), t.team.member_count))
            .collect();
        assert_eq!(got, [("Bravo", "viewer", 1), ("Charlie", "member", 3)]);
        let mallory = principal("mallory", OTHER, Role::Admin);
        assert!(list_mine(db, &mallory, &page("")).unwrap().items.is_empty());
    }

    #[test]
    fn deleting_a_team_takes_its_memberships() {
        let (_stores, services) = setup();
        let db = services.db().unwrap();
        let a = Tenant::of_org(ORG);
        create(db, &a, "t1", "Ops", "", 1).unwrap();
        add_member(db, &a, "t1", "alice", "admin", 1).unwrap();
        add_member(db, &a, "t1", "bob", "member", 1).unwrap();
        assert_eq!(
            delete(db, &Tenant::of_org(OTHER), "t1")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        delete(db, &a, "t1").unwrap();
        let left = db
            .execute(
                "SELECT COUNT(*) AS n FROM team_members WHERE team_id = 't1'",
                &[],
            )
            .unwrap();
        assert_eq!(left.first().unwrap().i64("n").unwrap(), 0);
        assert_eq!(delete(db, &a, "t1").unwrap_err().status.as_u16(), 404);
        // No transaction is left open: the next write commits on its own.
        create(db, &a, "t1", "Ops", "", 2).unwrap();
    }

    #[test]
    fn permissions_and_guards() {
        let (_stores, services) = setup();
        let db = services.db().unwrap();
        let a = Tenant::of_org(ORG);
        create(db, &a, "t1", "Ops", "", 1).unwrap();
        add_member(db, &a, "t1", "alice", "admin", 1).unwrap();
        add_member(db, &a, "t1", "bob", "viewer", 1).unwrap();
        let alice = principal("alice", ORG, Role::User);
        let bob = principal("bob", ORG, Role::User);
        let carol = principal("carol", ORG, Role::User);
        let org_admin = principal("root", ORG, Role::Admin);
        let mallory = principal("mallory", OTHER, Role::Admin);

        require_manage(db, &alice, "t1").unwrap();
        require_manage(db, &org_admin, "t1").unwrap();
        assert_eq!(
            require_manage(db, &bob, "t1").unwrap_err().code,
            "forbidden"
        );
        assert_eq!(
            require_manage(db, &mallory, "t1").unwrap_err().code,
            "forbidden"
        );
        require_member_or_admin(db, &bob, "t1").unwrap();
        require_member_or_admin(db, &org_admin, "t1").unwrap();
        assert_eq!(
            require_member_or_admin(db, &carol, "t1")
                .unwrap_err()
                .status
                .as_u16(),
            403
        );

        let p = my_permissions(db, &bob, "t1").unwrap();
        assert_eq!(
            (p.role.as_deref(), p.permissions),
            (Some("viewer"), vec!["sessions.view".to_owned()])
        );
        let p = my_permissions(db, &carol, "t1").unwrap();
        assert_eq!((p.role, p.permissions.len()), (None, 0));
        let p = my_permissions(db, &org_admin, "t1").unwrap();
        assert_eq!(p.permissions, ALL);
        assert_eq!(
            my_permissions(db, &mallory, "t1")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
    }
}
