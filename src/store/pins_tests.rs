use super::super::{DB_FILE, Store, schema};
use crate::model::{Category, Classification, Finding, Risk, ServerSnapshot, Tool};

fn classify(tool: &Tool, _server: &str) -> Classification {
    let findings = if tool.description.as_deref().is_some_and(|d| d.contains("secret")) {
        vec![Finding::new("x", Risk::High, "t")]
    } else {
        Vec::new()
    };
    Classification {
        category: Category::Read,
        risk: Risk::Low,
        confidence: 0.5,
        evidence: Vec::new(),
        factors: Vec::new(),
        findings,
        ruleset: "r1".into(),
        rationale: String::new(),
    }
}

fn snapshot(server: &str, tools: Vec<Tool>) -> ServerSnapshot {
    ServerSnapshot { server: server.into(), tools, ..ServerSnapshot::default() }
}

#[test]
fn a_version_1_catalogue_is_migrated_and_keeps_its_tools() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID).unwrap();
        conn.execute_batch("INSERT INTO meta VALUES ('catalogue_id', 'c1'), ('generation', '0')").unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let version: i64 = store.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version as usize, schema::MIGRATIONS.len());
    store.ingest(&[snapshot("s", vec![Tool::named("a")])], "r1", &mut classify).unwrap();
    assert_eq!(store.pin("s").unwrap().unwrap().tools.len(), 1);
}

#[test]
fn pins_survive_changes_and_keep_the_approved_definition() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    assert!(store.pin("nobody").unwrap().is_none());
    let a = Tool::named("a").with_description("reads");
    store.ingest(&[snapshot("s", vec![a.clone(), Tool::named("b")])], "r1", &mut classify).unwrap();
    let pin = store.pin("s").unwrap().unwrap();
    assert_eq!(pin.tools.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert!(store.pin_set("other").unwrap().is_none());

    let changed = Tool::named("a").with_description("reads a secret");
    store.ingest(&[snapshot("s", vec![changed])], "r1", &mut classify).unwrap();
    let pin = store.pin_set("s").unwrap().unwrap();
    assert_eq!(pin.tools.len(), 2, "the pin does not follow the server");
    let current = store.current_fingerprints("s").unwrap();
    assert_ne!(current["a"], pin.tools["a"]);
    assert_eq!(store.definition(&pin.tools["a"]).unwrap().unwrap(), a);
    assert_eq!(store.findings_of(&current["a"]).unwrap()[0].id, "x");
    assert!(store.findings_of(&pin.tools["a"]).unwrap().is_empty());
}

#[test]
fn shared_names_are_found_across_servers() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let snapshots = [
        snapshot("one", vec![Tool::named("send_email"), Tool::named("only_one")]),
        snapshot("two", vec![Tool::named("send_email")]),
        snapshot("three", vec![Tool::named("send_email")]),
    ];
    store.ingest(&snapshots, "r1", &mut classify).unwrap();
    let shared = store.shared_tool_names("one").unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared["send_email"], ["three", "two"]);
    assert_eq!(store.other_servers_with("send_email", "two").unwrap(), ["one", "three"]);
    assert!(store.other_servers_with("only_one", "one").unwrap().is_empty());
}
