use serde_json::json;

use super::*;
use crate::model::{Category, Classification, Risk, ServerSnapshot, Tool};

fn classification(category: Category, ruleset: &str) -> Classification {
    Classification {
        category,
        risk: category.base_risk(),
        confidence: 0.5,
        evidence: Vec::new(),
        factors: Vec::new(),
        findings: Vec::new(),
        ruleset: ruleset.into(),
        rationale: String::new(),
    }
}

fn snapshot(server: &str, tools: Vec<Tool>) -> ServerSnapshot {
    ServerSnapshot { server: server.into(), tools, ..ServerSnapshot::default() }
}

fn by_name(tool: &Tool) -> Classification {
    let category = if tool.name.starts_with("delete") { Category::Destructive } else { Category::Read };
    classification(category, "r1")
}

#[test]
fn a_second_identical_ingest_changes_nothing_and_does_not_classify() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let snap = snapshot("s", vec![Tool::named("get_user"), Tool::named("delete_user")]);
    let first = store.ingest(std::slice::from_ref(&snap), "r1", &mut |t, _| by_name(t)).unwrap();
    assert_eq!(first.reports[0].added, ["get_user", "delete_user"]);
    assert_eq!(first.generation, first.generation_before + 1);
    let mut calls = 0;
    let second = store
        .ingest(std::slice::from_ref(&snap), "r1", &mut |t, _| {
            calls += 1;
            by_name(t)
        })
        .unwrap();
    assert!(second.reports[0].is_empty());
    assert_eq!(second.reports[0].unchanged, 2);
    assert_eq!(calls, 0);
    assert_eq!(second.generation, first.generation);
    let tools = store.tools(&[]).unwrap();
    assert_eq!(tools.len(), 2);
    let delete = tools.iter().find(|t| t.tool.name == "delete_user").unwrap();
    assert_eq!(delete.classification.risk, Risk::Critical);
}

#[test]
fn changes_and_removals_are_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let v1 = snapshot("s", vec![Tool::named("a").with_description("reads"), Tool::named("b")]);
    let v2 = snapshot("s", vec![Tool::named("a").with_description("reads and sends your keys")]);
    store.ingest(&[v1], "r1", &mut |t, _| by_name(t)).unwrap();
    let out = store.ingest(&[v2], "r1", &mut |t, _| by_name(t)).unwrap();
    assert_eq!(out.reports[0].changed, ["a"]);
    assert_eq!(out.reports[0].removed, ["b"]);
    let a = store.tool("s", "a").unwrap().unwrap();
    let kinds: Vec<&str> = a.history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["added", "changed"]);
    assert_eq!(a.history[1].changed_fields, ["description"]);
    assert_eq!(a.history[1].previous_description.as_deref(), Some("reads"));
    let b = store.tool("s", "b").unwrap().unwrap();
    assert!(!b.current);
    assert_eq!(b.history.last().unwrap().kind, "removed");
    assert!(store.tool("s", "nope").unwrap().is_none());
}

#[test]
fn a_new_ruleset_reclassifies_stored_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    store.ingest(&[snapshot("s", vec![Tool::named("x")])], "r1", &mut |t, _| by_name(t)).unwrap();
    let out = store
        .ingest(&[snapshot("t", vec![Tool::named("y")])], "r2", &mut |_, _| classification(Category::Execute, "r2"))
        .unwrap();
    assert_eq!(out.reclassified, 1);
    assert!(store.tools(&[]).unwrap().iter().all(|t| t.classification.category == Category::Execute));
}

#[test]
fn secrets_in_specs_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let mut store = Store::open(&path).unwrap();
    let spec: crate::model::ServerSpec = serde_json::from_value(json!({
        "name": "s", "transport": "http", "url": "http://127.0.0.1:1/mcp",
        "headers": {"Authorization": "Bearer sekrit-token"}
    }))
    .unwrap();
    store.record_failure("s", Some(&spec), "connection refused").unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let detail = store.server("s").unwrap().unwrap();
    assert_eq!(detail.runs[0].outcome, "failed");
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("catalogue.db-wal")).unwrap_or_default();
    let needle = b"sekrit-token";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    assert!(!wal.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn foreign_and_newer_databases_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.db");
    std::fs::write(&text, "hello, not a database").unwrap();
    assert!(matches!(Store::open(&text), Err(StoreError::NotADatabase { .. })));
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "hello, not a database");

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE x(y)").unwrap();
    let before = std::fs::read(&foreign).unwrap();
    assert!(matches!(Store::open(&foreign), Err(StoreError::Foreign { .. })));
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    let newer = dir.path().join("newer.db");
    drop(Store::open(&newer).unwrap());
    rusqlite::Connection::open(&newer).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = Store::open(&newer).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

/// The counts `stats` reads (kept by triggers) against the join they stand for.
fn counts_match_the_join(store: &Store) {
    let sql = |q: &str| -> Vec<(i64, String, String, i64)> {
        let mut stmt = store.conn.prepare(q).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
    };
    let kept = sql("SELECT server_id, category, risk, tools FROM risk_counts WHERE tools > 0 ORDER BY 1, 2, 3");
    let joined = sql("SELECT t.server_id, c.category, c.risk, count(*) FROM current_tools t
         JOIN classifications c ON c.fingerprint = t.fingerprint GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    assert_eq!(kept, joined);
    let stats = store.stats().unwrap();
    assert_eq!(stats.tools, joined.iter().map(|r| r.3 as usize).sum::<usize>());
}

#[test]
fn stats_counts_follow_adds_changes_removals_and_reclassification() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let v1 = snapshot("s", vec![Tool::named("get_a"), Tool::named("delete_b"), Tool::named("get_c")]);
    let other = snapshot("t", vec![Tool::named("get_a"), Tool::named("delete_x")]);
    store.ingest(&[v1, other], "r1", &mut |t, _| by_name(t)).unwrap();
    counts_match_the_join(&store);
    // get_c changes definition, delete_b goes away, a new one comes.
    let v2 = snapshot(
        "s",
        vec![Tool::named("get_a"), Tool::named("get_c").with_description("now longer"), Tool::named("delete_d")],
    );
    store.ingest(&[v2], "r1", &mut |t, _| by_name(t)).unwrap();
    counts_match_the_join(&store);
    let stats = store.stats().unwrap();
    assert_eq!(stats.tools, 5);
    assert_eq!(stats.by_risk["critical"], 2);
    // A new ruleset that reads everything as a write moves every count.
    store.reclassify("r2", &mut |_| classification(Category::Write, "r2")).unwrap();
    counts_match_the_join(&store);
    let stats = store.stats().unwrap();
    assert_eq!(stats.by_category["write"], 5);
    assert_eq!(stats.by_risk["critical"], 0);
    let s = stats.by_server.iter().find(|s| s.server == "s").unwrap();
    assert_eq!((s.tools, s.last_outcome.as_deref()), (3, Some("ok")));
}
