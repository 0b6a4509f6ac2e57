use super::*;
use crate::model::{Classification, Tool, fingerprint};

fn record(server: &str, tool: Tool, category: Category) -> ToolRecord {
    ToolRecord {
        server: server.into(),
        fingerprint: fingerprint(&tool),
        tool,
        classification: Classification {
            category,
            risk: category.base_risk(),
            confidence: 0.9,
            evidence: vec![Evidence { rule: "r".into(), field: "name".into(), text: "x".into() }],
            factors: Vec::new(),
            findings: Vec::new(),
            ruleset: "t".into(),
            rationale: String::new(),
        },
    }
}

fn sample() -> (tempfile::TempDir, SearchIndex) {
    let dir = tempfile::tempdir().unwrap();
    let (mut index, opened) = SearchIndex::open(&dir.path().join("index")).unwrap();
    assert_eq!(opened, Opened::Created);
    let records = [
        record("files", Tool::named("deleteFile").with_description("Removes a file for good"), Category::Destructive),
        record(
            "files",
            Tool::named("read_file").with_description("Reads a file. Never used to delete."),
            Category::Read,
        ),
        record("shop", Tool::named("create_refund").with_description("Refund an order"), Category::Financial),
        record("shop", Tool::named("run_sql").with_description("Run a query"), Category::Execute),
    ];
    for r in &records {
        index.add(r).unwrap();
    }
    index.commit("id:1").unwrap();
    (dir, index)
}

fn query(text: &str) -> SearchQuery {
    SearchQuery { text: Some(text.into()), limit: 10, ..SearchQuery::default() }
}

#[test]
fn a_name_match_ranks_above_a_description_match() {
    let (_dir, index) = sample();
    let hits = index.search(&query("delete")).unwrap();
    let names: Vec<&str> = hits.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["deleteFile", "read_file"]);
    assert!(hits[1].snippet.contains("**delete**"), "{}", hits[1].snippet);
    assert_eq!(hits[0].evidence.len(), 1);
    assert_eq!(index.stamp().as_deref(), Some("id:1"));
}

#[test]
fn filters_and_an_empty_query_list_by_risk() {
    let (_dir, index) = sample();
    let all = index.search(&SearchQuery { limit: 10, ..SearchQuery::default() }).unwrap();
    let risks: Vec<Risk> = all.iter().map(|h| h.risk).collect();
    assert_eq!(risks, [Risk::Critical, Risk::Critical, Risk::High, Risk::Low]);
    let critical =
        index.search(&SearchQuery { min_risk: Some(Risk::Critical), limit: 10, ..SearchQuery::default() }).unwrap();
    assert_eq!(critical.len(), 2);
    let shop_fin = index
        .search(&SearchQuery {
            categories: vec![Category::Financial],
            server: Some("shop".into()),
            limit: 10,
            ..SearchQuery::default()
        })
        .unwrap();
    assert_eq!(shop_fin.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["create_refund"]);
    let none = index
        .search(&SearchQuery { risks: vec![Risk::Low], min_risk: Some(Risk::High), limit: 10, ..Default::default() })
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn query_syntax_from_the_user_never_fails() {
    let (_dir, index) = sample();
    for text in ["delete AND OR (", "\"unclosed", "name_raw:", "*", "risk:[a TO", ")))", "a^^^2", "\u{0}"] {
        index.search(&query(text)).unwrap();
    }
    assert!(index.search(&SearchQuery { limit: 0, ..query("delete") }).unwrap().is_empty());
}

#[test]
fn removing_a_server_and_an_unreadable_directory() {
    let (dir, mut index) = sample();
    index.remove_server("files").unwrap();
    index.commit("id:2").unwrap();
    assert_eq!(index.num_docs(), 2);
    drop(index);
    std::fs::write(dir.path().join("index/meta.json"), "{ not json").unwrap();
    let (index, opened) = SearchIndex::open(&dir.path().join("index")).unwrap();
    assert_eq!(opened, Opened::Replaced);
    assert_eq!(index.num_docs(), 0);
    assert_eq!(index.stamp(), None);
}

#[test]
fn bounded_text_is_cut_on_a_character_boundary() {
    assert_eq!(bounded("ééé", 3), "é");
    assert_eq!(bounded("abc", 10), "abc");
    let (_dir, mut index) = sample();
    let long = "é".repeat(100_000);
    index.add(&record(&long, Tool::named(long.clone()).with_description(long.clone()), Category::Read)).unwrap();
    index.commit("id:3").unwrap();
    let hits = index.search(&SearchQuery { server: Some(long.clone()), limit: 5, ..SearchQuery::default() }).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].name, long);
    assert_eq!(hits[0].server, long);
}

#[test]
fn facets_count_each_dimension_without_its_own_filter() {
    let (_dir, index) = sample();
    let all = index.facets(&SearchQuery { limit: 10, ..SearchQuery::default() }, 10).unwrap();
    assert_eq!(all.total, 4);
    assert_eq!(all.server, vec![("files".to_string(), 2), ("shop".to_string(), 2)]);
    let n = |f: &Facets, c: Category| f.category.iter().find(|(k, _)| *k == c).unwrap().1;
    assert_eq!(n(&all, Category::Read), 1);
    // Filtering on a server narrows the other dimensions but still lists every server.
    let shop = SearchQuery { server: Some("shop".into()), limit: 10, ..SearchQuery::default() };
    let f = index.facets(&shop, 10).unwrap();
    assert_eq!(f.total, 2);
    assert_eq!(n(&f, Category::Read), 0);
    assert_eq!(n(&f, Category::Financial), 1);
    assert_eq!(f.server.len(), 2, "the server facet ignores the server filter: {:?}", f.server);
    // Words narrow everything.
    let f = index.facets(&query("file"), 1).unwrap();
    assert_eq!(f.total, 2);
    assert_eq!((f.server.len(), f.servers), (1, 1));
    let r = |f: &Facets, risk: Risk| f.risk.iter().find(|(k, _)| *k == risk).unwrap().1;
    assert_eq!(r(&f, Category::Destructive.base_risk()) + r(&f, Category::Read.base_risk()), 2);
}

#[test]
fn a_long_lived_reader_sees_later_commits_after_reload() {
    let (dir, mut index) = sample();
    index.finish().unwrap();
    assert_eq!(index.num_docs(), 4);
    let (mut writer, _) = SearchIndex::open(&dir.path().join("index")).unwrap();
    writer.begin().unwrap();
    writer.add(&record("extra", Tool::named("delete_everything"), Category::Destructive)).unwrap();
    writer.commit("id:2").unwrap();
    index.reload().unwrap();
    assert_eq!(index.num_docs(), 5);
}
