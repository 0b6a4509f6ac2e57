use serde_json::json;

use super::super::{DB_FILE, Store, schema};
use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    (dir, store)
}

fn queue(store: &mut Store, args: &serde_json::Value, pid: u32, approve_for: Option<i64>) -> i64 {
    let new = NewApproval {
        tool: "drop",
        arguments: args,
        args_sha256: "d1",
        reason: Some("why"),
        rule: Some("tools.drop"),
        session: "s",
        identity: None,
        approve_for_secs: approve_for,
        owner_pid: pid,
    };
    store.request_approval(&new).unwrap()
}

fn yes(by: &str) -> Decision<'_> {
    Decision { approve: true, by, reason: None, approve_for_secs: None }
}

#[test]
fn a_version_2_catalogue_gains_the_queue_and_the_audit_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(schema::MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID).unwrap();
        conn.execute_batch("INSERT INTO meta VALUES ('catalogue_id', 'c1'), ('generation', '0')").unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(queue(&mut store, &json!({}), 1, None), 1);
    assert!(store.audit(&AuditQuery::default()).unwrap().is_empty());
}

#[test]
fn a_call_is_decided_once_and_the_first_decision_wins() {
    let (_dir, mut store) = store();
    let id = queue(&mut store, &json!({"a": [1, "x"]}), 1, None);
    let row = store.approval(id).unwrap().unwrap();
    assert_eq!((row.status.as_str(), &row.arguments), ("pending", &json!({"a": [1, "x"]})));
    let (changed, row) = store.decide_approval(id, &yes("alice")).unwrap().unwrap();
    assert!(changed);
    assert_eq!((row.status.as_str(), row.decided_by.as_deref()), ("approved", Some("alice")));
    assert!(row.approved_until.is_none(), "no window unless asked");
    let no = Decision { approve: false, by: "bob", reason: Some("late"), approve_for_secs: None };
    let (changed, row) = store.decide_approval(id, &no).unwrap().unwrap();
    assert!(!changed && row.status == "approved");
    assert!(!store.close_approval(id, "timed_out", "t").unwrap(), "a decided call does not time out");
    assert!(store.decide_approval(999, &yes("alice")).unwrap().is_none());
    assert!(store.approvals(false).unwrap().is_empty());
    assert_eq!(store.approvals(true).unwrap().len(), 1);
}

#[test]
fn only_orphaned_pending_calls_expire() {
    let (_dir, mut store) = store();
    let mine = queue(&mut store, &json!({}), 10, None);
    let gone = queue(&mut store, &json!({}), 20, None);
    let decided = queue(&mut store, &json!({}), 20, None);
    store.decide_approval(decided, &yes("a")).unwrap();
    assert_eq!(store.expire_orphaned_approvals(|pid| pid == 10).unwrap(), 1);
    let status = |store: &Store, id| store.approval(id).unwrap().unwrap().status;
    assert_eq!(status(&store, mine), "pending");
    assert_eq!(status(&store, gone), "expired");
    assert_eq!(status(&store, decided), "approved");
}

#[test]
fn a_standing_approval_covers_its_window_and_the_decider_may_override_it() {
    let (_dir, mut store) = store();
    let id = queue(&mut store, &json!({}), 1, Some(600));
    assert!(store.standing_approval("drop", "d1", None).unwrap().is_none(), "pending is not approved");
    store.decide_approval(id, &yes("alice")).unwrap();
    assert_eq!(store.standing_approval("drop", "d1", None).unwrap().unwrap().id, id);
    assert!(store.standing_approval("drop", "other", None).unwrap().is_none());
    assert!(store.standing_approval("drop", "d1", Some("bob")).unwrap().is_none(), "not for another caller");
    // A window that already closed admits nothing.
    let id = queue(&mut store, &json!({}), 1, Some(600));
    store.conn.execute("UPDATE approvals SET status = 'expired' WHERE id != ?1", [id]).unwrap();
    let d = Decision { approve: true, by: "a", reason: None, approve_for_secs: Some(-1) };
    store.decide_approval(id, &d).unwrap();
    assert!(store.standing_approval("drop", "d1", None).unwrap().is_none());
}

#[test]
fn audit_rows_filter_and_keep_the_newest() {
    let (_dir, mut store) = store();
    let row = |tool: &str, decision: &str, time: &str| AuditRow {
        time: time.into(),
        session: "s".into(),
        server: None,
        identity: Some("alice".into()),
        tool: tool.into(),
        args_sha256: "d".into(),
        args: Some(json!({"x": 1})),
        decision: decision.into(),
        rule: None,
        reason: None,
        outcome: None,
        upstream_latency_us: Some(12),
        decided_by: None,
    };
    let rows = [
        row("a", "allow", "2026-01-01T00:00:00.000Z"),
        row("b", "deny", "2026-01-02T00:00:00.000Z"),
        row("a", "deny", "2026-01-03T00:00:00.000Z"),
    ];
    store.append_audit(&rows).unwrap();
    let q = |tool: Option<&str>, decision: Option<&str>, since: Option<&str>, limit| AuditQuery {
        tool: tool.map(Into::into),
        decision: decision.map(Into::into),
        since: since.map(Into::into),
        limit,
        server: None,
    };
    assert_eq!(store.audit(&q(None, None, None, None)).unwrap(), rows);
    assert_eq!(store.audit(&q(Some("a"), Some("deny"), None, None)).unwrap(), [rows[2].clone()]);
    assert_eq!(store.audit(&q(None, None, Some("2026-01-02T00:00:00.000Z"), None)).unwrap(), rows[1..]);
    assert_eq!(store.audit(&q(None, None, None, Some(2))).unwrap(), rows[1..]);
    assert!(store.audit(&q(Some("a'; DROP TABLE audit; --"), None, None, None)).unwrap().is_empty());
    // Rows of one server (behind a gateway) are found by it; rows without one are not.
    let mut behind = rows[0].clone();
    behind.server = Some("memory".into());
    store.append_audit(std::slice::from_ref(&behind)).unwrap();
    let by_server = AuditQuery { server: Some("memory".into()), ..AuditQuery::default() };
    assert_eq!(store.audit(&by_server).unwrap(), [behind]);
}
