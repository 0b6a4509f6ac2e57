//! The catalogue through the real binary: a real SQLite file and a real tantivy index in a temp dir.
//!
//! The classifier is whatever the build has, so these tests never assume a category for a tool; where they
//! check risk filters they check them against what the catalogue itself says (`export`).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{Env, fixture};

fn names(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}/{}", h["server"].as_str().unwrap(), h["name"].as_str().unwrap()))
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn import_fixtures(env: &Env) -> Value {
    env.json([
        "import",
        "--format",
        "json",
        fixture("catalogue/github.tools.json").to_str().unwrap(),
        fixture("catalogue/shop.json").to_str().unwrap(),
    ])
}

/// Every current tool as exported (the catalogue's own view), keyed `server/name`.
fn exported(env: &Env) -> Vec<Value> {
    env.ok(["export", "--format", "jsonl"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn import_then_search_show_and_stats() {
    let env = Env::new();
    let report = import_fixtures(&env);
    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["server"], "github");
    assert_eq!(servers[0]["added"].as_array().unwrap().len(), 4);
    assert_eq!(servers[1]["server"], "shop");

    // A name match ranks above a description match ("nothing is deleted" in list_issues).
    let hits = env.json(["search", "delete", "--format", "json"]);
    let found = names(&hits);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[2], "github/list_issues", "{found:?}");
    for hit in hits.as_array().unwrap() {
        for key in ["server", "name", "category", "risk", "score", "description", "confidence", "evidence", "snippet"] {
            assert!(hit.get(key).is_some(), "{key} missing in {hit}");
        }
    }
    // The snippet marks the match; split camelCase/kebab names match their words.
    assert!(hits[2]["snippet"].as_str().unwrap().contains("**deleted**"), "{}", hits[2]);
    assert_eq!(
        names(&env.json(["search", "issue", "--server", "github", "--format", "json"]))[0],
        "github/createIssue"
    );
    assert!(names(&env.json(["search", "customer", "--format", "json"])).contains(&"shop/delete-customer".into()));
    assert!(env.json(["search", "delete", "--server", "nope", "--format", "json"]).as_array().unwrap().is_empty());

    let table = env.ok(["search", "delete"]);
    assert!(table.contains("github/delete_repository") && table.contains("RISK"), "{table}");

    let server = env.json(["show", "github", "--format", "json"]);
    assert_eq!(server["tools"].as_array().unwrap().len(), 4);
    assert_eq!(server["runs"][0]["outcome"], "ok");
    let tool = env.json(["show", "github/delete_repository", "--format", "json"]);
    assert_eq!(tool["tool"]["name"], "delete_repository");
    assert_eq!(tool["history"][0]["kind"], "added");
    assert!(tool["classification"]["risk"].is_string());
    let text = env.ok(["show", "shop/delete-customer"]);
    assert!(text.contains("history") && text.contains("added"), "{text}");

    let stats = env.json(["stats", "--format", "json"]);
    assert_eq!(stats["servers"], 2);
    assert_eq!(stats["tools"], 8);
    let by_risk: u64 = stats["by_risk"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let by_category: u64 = stats["by_category"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!((by_risk, by_category), (8, 8));
    assert!(env.ok(["stats"]).contains("shop"));

    let out = env.run(["show", "github/nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no server or tool named"), "{}", stderr(&out));
}

#[test]
fn risk_and_category_filters_agree_with_the_catalogue() {
    let env = Env::new();
    import_fixtures(&env);
    let records = exported(&env);
    let rank = |r: &str| ["low", "medium", "high", "critical"].iter().position(|x| *x == r).unwrap();
    for (i, level) in ["low", "medium", "high", "critical"].into_iter().enumerate() {
        let mut expected: Vec<String> = records
            .iter()
            .filter(|r| rank(r["classification"]["risk"].as_str().unwrap()) >= i)
            .map(|r| format!("{}/{}", r["server"].as_str().unwrap(), r["tool"]["name"].as_str().unwrap()))
            .collect();
        let mut got = names(&env.json(["search", "--min-risk", level, "--limit", "100", "--format", "json"]));
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "--min-risk {level}");
    }
    for category in ["read", "write", "execute", "destructive", "financial"] {
        let expected = records.iter().filter(|r| r["classification"]["category"] == category).count();
        let got = env.json(["search", "--category", category, "--limit", "100", "--format", "json"]);
        assert_eq!(got.as_array().unwrap().len(), expected, "--category {category}");
    }
    // What search shows is what the catalogue holds: the same classification and evidence.
    for hit in env.json(["search", "--limit", "100", "--format", "json"]).as_array().unwrap() {
        let record = records
            .iter()
            .find(|r| r["server"] == hit["server"] && r["tool"]["name"] == hit["name"])
            .unwrap_or_else(|| panic!("{hit} not exported"));
        let c = &record["classification"];
        assert_eq!((&hit["category"], &hit["risk"]), (&c["category"], &c["risk"]), "{hit}");
        assert_eq!(hit["evidence"], c["evidence"], "{hit}");
        assert_eq!(hit["fingerprint"], record["fingerprint"], "{hit}");
    }
    // An empty query lists by risk, most severe first.
    let listed = env.json(["search", "--limit", "100", "--format", "json"]);
    let risks: Vec<usize> = listed.as_array().unwrap().iter().map(|h| rank(h["risk"].as_str().unwrap())).collect();
    assert_eq!(risks.len(), 8);
    assert!(risks.windows(2).all(|w| w[0] >= w[1]), "{risks:?}");
    assert_eq!(env.json(["search", "--limit", "3", "--format", "json"]).as_array().unwrap().len(), 3);
}

#[test]
fn reimporting_an_unchanged_file_writes_nothing_new() {
    let env = Env::new();
    import_fixtures(&env);
    let meta_before = std::fs::read(env.data_dir().join("index/meta.json")).unwrap();
    let stats_before = env.json(["stats", "--format", "json"]);
    let again = import_fixtures(&env);
    for server in again["servers"].as_array().unwrap() {
        assert!(server["added"].as_array().unwrap().is_empty(), "{server}");
        assert!(server["changed"].as_array().unwrap().is_empty(), "{server}");
        assert!(server["removed"].as_array().unwrap().is_empty(), "{server}");
        assert_eq!(server["unchanged"], 4);
    }
    assert_eq!(env.json(["stats", "--format", "json"])["definitions"], stats_before["definitions"]);
    assert_eq!(env.json(["show", "github/list_issues", "--format", "json"])["history"].as_array().unwrap().len(), 1);
    // The index was not touched either.
    assert_eq!(std::fs::read(env.data_dir().join("index/meta.json")).unwrap(), meta_before);
    assert!(env.ok(["import", fixture("catalogue/shop.json").to_str().unwrap()]).contains("no changes"));
}

#[test]
fn a_changed_description_is_reported_and_kept_in_history() {
    let env = Env::new();
    import_fixtures(&env);
    let v2 = fixture("catalogue/v2/github.tools.json");
    let report = env.json(["import", "--format", "json", v2.to_str().unwrap()]);
    let github = &report["servers"][0];
    assert_eq!(github["changed"], json!(["list_issues"]));
    assert_eq!(github["added"], json!(["delete_branch"]));
    assert_eq!(github["removed"], json!(["merge_pull_request"]));
    assert_eq!(github["unchanged"], 2);

    let tool = env.json(["show", "github/list_issues", "--format", "json"]);
    let kinds: Vec<&str> = tool["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["added", "changed"]);
    assert_eq!(tool["history"][1]["changed_fields"], json!(["description"]));
    assert!(tool["history"][1]["previous_description"].as_str().unwrap().contains("nothing is deleted"));
    assert!(tool["tool"]["description"].as_str().unwrap().contains("id_rsa"));
    let removed = env.json(["show", "github/merge_pull_request", "--format", "json"]);
    assert_eq!(removed["current"], false);
    assert_eq!(removed["history"].as_array().unwrap().last().unwrap()["kind"], "removed");

    // The index follows: the removed tool is gone, the new words are found.
    assert!(names(&env.json(["search", "merge", "--format", "json"])).is_empty());
    assert_eq!(names(&env.json(["search", "id_rsa", "--format", "json"])), ["github/list_issues"]);
    let text = env.ok(["import", fixture("catalogue/github.tools.json").to_str().unwrap()]);
    assert!(text.contains("CHANGED list_issues"), "{text}");
    let shown = env.ok(["show", "github/list_issues"]);
    assert!(shown.contains("description was"), "{shown}");
}

const QUERIES: &[&[&str]] = &[
    &["search", "delete"],
    &["search", "issue"],
    &["search", "order", "--server", "shop"],
    &["search", "--min-risk", "medium"],
    &["search"],
    &["search", "repository", "--risk", "low", "--risk", "critical"],
];

fn answers(env: &Env) -> Vec<Value> {
    QUERIES.iter().map(|q| env.json(q.iter().copied().chain(["--format", "json", "--limit", "50"]))).collect()
}

#[test]
fn a_rebuilt_index_gives_the_same_answers() {
    let env = Env::new();
    import_fixtures(&env);
    let before = answers(&env);
    let out = env.json(["index", "rebuild", "--format", "json"]);
    assert_eq!(out["tools"], 8);
    assert_eq!(answers(&env), before);

    std::fs::remove_dir_all(env.data_dir().join("index")).unwrap();
    let out = env.run(["search", "delete", "--format", "json"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("rebuilt it from the catalogue"), "{}", stderr(&out));
    assert_eq!(answers(&env), before);

    // Garbage in the index directory is derived data: replaced and rebuilt, never an error.
    std::fs::write(env.data_dir().join("index/meta.json"), "{\"segments\": [[[").unwrap();
    assert_eq!(answers(&env), before);
}

fn spawn(env: &Env, args: &[&str], pause: Option<(&str, &Path)>) -> Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("toolwarden"));
    cmd.args(args)
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .env_remove("TOOLWARDEN_RULES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((stage, marker)) = pause {
        cmd.env("TOOLWARDEN_DEBUG_PAUSE", format!("{stage}:{}", marker.display()));
    }
    cmd.spawn().unwrap()
}

/// Wait until the child reaches its pause point (bounded, so a broken hook fails the test instead of hanging).
fn wait_for(marker: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited ({status}) before reaching its pause point");
        }
        assert!(Instant::now() < deadline, "the child never reached its pause point");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn v2_path() -> PathBuf {
    fixture("catalogue/v2/github.tools.json")
}

#[test]
fn sigkill_inside_the_store_transaction_keeps_the_previous_catalogue() {
    let env = Env::new();
    import_fixtures(&env);
    let before_export = env.ok(["export"]);
    let before_search = answers(&env);
    let marker = env.path("paused");
    let mut child = spawn(&env, &["import", v2_path().to_str().unwrap()], Some(("store", &marker)));
    wait_for(&marker, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(env.ok(["export"]), before_export);
    assert_eq!(answers(&env), before_search);
    assert_eq!(env.json(["show", "github", "--format", "json"])["runs"].as_array().unwrap().len(), 1);
    // And the catalogue still takes writes.
    let report = env.json(["import", "--format", "json", v2_path().to_str().unwrap()]);
    assert_eq!(report["servers"][0]["changed"], json!(["list_issues"]));
}

#[test]
fn sigkill_between_store_and_index_is_repaired_on_the_next_run() {
    let env = Env::new();
    import_fixtures(&env);
    let marker = env.path("paused");
    let mut child = spawn(&env, &["import", v2_path().to_str().unwrap()], Some(("index", &marker)));
    wait_for(&marker, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();

    // The store has the new listing; the index lagged and is rebuilt before answering.
    let out = env.run(["search", "branch", "--format", "json"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("out of date"), "{}", stderr(&out));
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names(&hits), ["github/delete_branch"]);
    assert!(names(&env.json(["search", "merge", "--format", "json"])).is_empty());
}

#[test]
fn sigkill_during_a_big_import_leaves_all_or_nothing() {
    let env = Env::new();
    let tools: Vec<Value> = (0..20_000)
        .map(|i| {
            json!({"name": format!("tool_{i}"), "description": format!("Does thing number {i} to a record"),
                        "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}}})
        })
        .collect();
    let big = env.write("big.json", serde_json::to_vec(&json!({ "tools": tools })).unwrap());
    let mut child = spawn(&env, &["import", big.to_str().unwrap()], None);
    // Wherever this lands (before, during or after the transaction), the catalogue must be whole.
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    child.wait().unwrap();
    let stats = env.run(["stats", "--format", "json"]);
    assert!(stats.status.success(), "{}", stderr(&stats));
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    let count = stats["tools"].as_u64().unwrap();
    assert!(count == 0 || count == 20_000, "{count} tools");
    assert_eq!(env.ok(["export"]).lines().count() as u64, count);
    let hits = env.json(["search", "thing", "--limit", "5", "--format", "json"]);
    assert_eq!(hits.as_array().unwrap().len(), if count == 0 { 0 } else { 5 });
}

#[test]
fn foreign_corrupt_and_newer_databases_are_refused_untouched() {
    let env = Env::new();
    std::fs::create_dir_all(env.data_dir()).unwrap();
    let db = env.data_dir().join("catalogue.db");
    std::fs::write(&db, "name,risk\nnot,a database\n").unwrap();
    let out = env.run(["search", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a toolwarden catalogue"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&db).unwrap(), "name,risk\nnot,a database\n");

    // A real catalogue with its header patched: application id (offset 68) and schema version (offset 60).
    std::fs::remove_file(&db).unwrap();
    import_fixtures(&env);
    let good = std::fs::read(&db).unwrap();
    let mut foreign = good.clone();
    foreign[68..72].copy_from_slice(&[0, 0, 0, 7]);
    std::fs::write(&db, &foreign).unwrap();
    let out = env.run(["stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a toolwarden catalogue"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&db).unwrap(), foreign);

    let mut newer = good.clone();
    newer[60..64].copy_from_slice(&[0, 0, 0, 99]);
    std::fs::write(&db, &newer).unwrap();
    let out = env.run(["import", fixture("catalogue/shop.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("newer toolwarden"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&db).unwrap(), newer);

    // Pages of garbage after a valid header: a clear error, not a panic.
    let mut corrupt = good;
    for b in corrupt.iter_mut().skip(100) {
        *b = 0xA5;
    }
    std::fs::write(&db, &corrupt).unwrap();
    let out = env.run(["stats"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("corrupt") || err.contains("not a toolwarden catalogue"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn hostile_tool_definitions_never_crash_corrupt_or_inject() {
    let env = Env::new();
    let mut nested = json!({"type": "string"});
    // 60 levels of objects within the parser's limit of 128 (a tool and the array add two).
    for _ in 0..30 {
        nested = json!({"type": "object", "properties": {"x": nested}});
    }
    let mut too_deep = String::new();
    for _ in 0..5000 {
        too_deep.push_str("{\"a\":");
    }
    too_deep.push('1');
    for _ in 0..5000 {
        too_deep.push('}');
    }
    let huge = "delete ".repeat(150_000);
    let tools = json!([
        {"name": "sql'); DROP TABLE servers; --", "description": "Robert'); DELETE FROM current_tools; -- \"quoted\" `tick`"},
        {"name": "evil\u{1b}[31mred\u{7}", "description": "line1\r\nline2\u{0}\u{202e}reversed\u{200b}zero", "title": "\u{1b}]0;pwned\u{7}"},
        {"name": "huge", "description": huge},
        {"name": "deep", "inputSchema": nested},
        {"name": "a/b/c", "description": "slashes in names"},
        {"name": "名前_削除", "description": "unicode name"},
        {"name": "delete AND OR (", "description": "query syntax in a name: title:x AND -y \"unclosed"},
    ]);
    let file = env.write("hostile.json", serde_json::to_string(&tools).unwrap());
    // A file nested deeper than the JSON parser allows is refused with its position, the other file imported.
    let deep_file = env.write("deep.json", format!("[{{\"name\": \"too_deep\", \"inputSchema\": {too_deep}}}]"));
    let out = env.run(["import", "--format", "json", file.to_str().unwrap(), deep_file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["servers"][0]["added"].as_array().map(Vec::len), Some(7), "{report}");
    assert!(report["failed_files"][0]["error"].as_str().unwrap().contains("recursion limit"), "{report}");

    let stats = env.json(["stats", "--format", "json"]);
    assert_eq!(stats["tools"], 7);
    assert_eq!(stats["servers"], 1);

    for query in
        ["delete AND OR (", "\"unclosed", "title:", "-", "*:*", "((((", "\u{1b}[2J", "名前", "sql'); DROP TABLE"]
    {
        let out = env.run(["search", query, "--format", "json"]);
        assert!(out.status.success(), "{query:?}: {}", stderr(&out));
        let _: Value = serde_json::from_slice(&out.stdout).unwrap();
        let out = env.run(["search", query]);
        assert!(out.status.success(), "{query:?}: {}", stderr(&out));
        assert!(!out.stdout.contains(&0x1b), "escape sequence in the table for {query:?}");
    }
    let hits = env.json(["search", "DROP TABLE", "--format", "json"]);
    assert_eq!(hits[0]["name"], "sql'); DROP TABLE servers; --");
    assert_eq!(names(&env.json(["search", "名前", "--format", "json"])), ["hostile/名前_削除"]);

    // Tables never carry escape sequences, wherever the hostile text appears.
    for args in [&["show", "hostile"][..], &["show", "hostile/huge"], &["stats"], &["search", "--limit", "50"]] {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!out.stdout.contains(&0x1b), "escape sequence in {args:?}");
        assert!(out.stdout.len() < 200_000, "{args:?} printed {} bytes", out.stdout.len());
    }
    let evil = env.json(["show", "hostile/evil\u{1b}[31mred\u{7}", "--format", "json"]);
    assert_eq!(evil["tool"]["name"], "evil\u{1b}[31mred\u{7}");
    assert_eq!(env.json(["show", "hostile/a/b/c", "--format", "json"])["tool"]["name"], "a/b/c");
    let deep = env.json(["show", "hostile/deep", "--format", "json"]);
    assert_eq!(deep["tool"]["inputSchema"], nested);
    let huge_tool = env.json(["show", "hostile/huge", "--format", "json"]);
    assert_eq!(huge_tool["tool"]["description"].as_str().unwrap().len(), huge.len());

    // The export round-trips every definition exactly; the CSV defuses formulas.
    let records = exported(&env);
    assert_eq!(records.len(), 7);
    let csv = env.ok(["export", "--format", "csv"]);
    assert!(csv.starts_with("server,name,"));
    // Re-import: nothing changed, so the hostile file is stable in the store.
    let again = env.json(["import", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(again["servers"][0]["unchanged"], 7);
}

#[test]
fn an_empty_catalogue_answers_with_a_hint() {
    let env = Env::new();
    for args in [&["search", "delete"][..], &["stats"], &["show", "github"]] {
        let out = env.ok(args);
        assert!(out.contains("the catalogue is empty"), "{args:?}: {out}");
    }
    let out = env.run(["search", "x", "--format", "json"]);
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!([]));
    assert!(stderr(&out).contains("toolwarden import FILE"));
    let out = env.run(["export"]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(env.json(["stats", "--format", "json"])["tools"], 0);
}

#[test]
fn a_file_that_is_not_a_capture_is_reported_and_the_others_imported() {
    let env = Env::new();
    let bad = env.write("notes.json", "{\"hello\": 1}");
    let dir = env.path("captures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("catalogue/shop.json"), dir.join("shop.json")).unwrap();
    std::fs::write(dir.join("readme.txt"), "not json").unwrap();
    let out = env.run(["import", bad.to_str().unwrap(), dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("notes.json"), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 of 2 files could not be imported"), "{}", stderr(&out));
    assert_eq!(env.json(["stats", "--format", "json"])["tools"], 4);
    // --server joins several files into one server.
    let out = env.json([
        "import",
        "--server",
        "joined",
        "--format",
        "json",
        fixture("catalogue/shop.json").to_str().unwrap(),
        fixture("catalogue/github.tools.json").to_str().unwrap(),
    ]);
    assert_eq!(out["servers"][0]["server"], "joined");
    assert_eq!(out["servers"][0]["added"].as_array().unwrap().len(), 8);
}

#[test]
fn a_rules_update_reclassifies_the_catalogue() {
    let env = Env::new();
    import_fixtures(&env);
    let builtin: Vec<String> =
        exported(&env).iter().map(|r| r["classification"]["ruleset"].as_str().unwrap().to_string()).collect();
    assert!(builtin.windows(2).all(|w| w[0] == w[1]), "{builtin:?}");

    // The same rules with one local edit: another ruleset version.
    let rules = env.path("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(crate::util::repo().join("data/rules")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
    }
    let edited = rules.join("actions.toml");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    text.push_str("\n# a local edit\n");
    std::fs::write(&edited, text).unwrap();

    let out = env.json(["--rules", rules.to_str().unwrap(), "index", "rebuild", "--format", "json"]);
    assert_eq!(out["reclassified"], 8, "{out}");
    assert_eq!(out["tools"], 8);
    let records = exported(&env);
    let local = records[0]["classification"]["ruleset"].as_str().unwrap().to_string();
    assert_ne!(local, builtin[0]);
    assert!(records.iter().all(|r| r["classification"]["ruleset"] == local.as_str()));
    // Nothing to do the second time; and an import with the built-in rules brings them back.
    let again = env.json(["--rules", rules.to_str().unwrap(), "index", "rebuild", "--format", "json"]);
    assert_eq!(again["reclassified"], 0);
    let report = env.json(["import", "--format", "json", fixture("catalogue/shop.json").to_str().unwrap()]);
    assert_eq!(report["servers"][0]["unchanged"], 4);
    assert!(exported(&env).iter().all(|r| r["classification"]["ruleset"] == builtin[0].as_str()));
    // The index follows the classifications: search shows the same rulesets' verdicts as the store.
    let hits = env.json(["search", "--limit", "100", "--format", "json"]);
    assert_eq!(hits.as_array().unwrap().len(), 8);
}

#[test]
fn concurrent_imports_all_land_and_the_index_keeps_up() {
    let env = Env::new();
    let files: Vec<PathBuf> = (0..4)
        .map(|s| {
            let tools: Vec<Value> = (0..500)
                .map(|i| json!({"name": format!("tool_{s}_{i}"), "description": format!("Archives record {i}")}))
                .collect();
            env.write(&format!("srv{s}.json"), serde_json::to_vec(&tools).unwrap())
        })
        .collect();
    let children: Vec<Child> = files.iter().map(|f| spawn(&env, &["import", f.to_str().unwrap()], None)).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let stats = env.json(["stats", "--format", "json"]);
    assert_eq!((stats["servers"].as_u64(), stats["tools"].as_u64()), (Some(4), Some(2000)));
    let hits = env.json(["search", "archives", "--limit", "5000", "--format", "json"]);
    assert_eq!(hits.as_array().unwrap().len(), 2000);
}
