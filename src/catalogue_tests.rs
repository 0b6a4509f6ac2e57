use super::*;
use crate::model::Tool;

fn snapshot(server: &str, tools: &[(&str, &str)]) -> ServerSnapshot {
    ServerSnapshot {
        server: server.into(),
        tools: tools.iter().map(|(n, d)| Tool::named(*n).with_description(*d)).collect(),
        ..ServerSnapshot::default()
    }
}

fn names(hits: &[SearchHit]) -> Vec<String> {
    hits.iter().map(|h| format!("{}/{}", h.server, h.name)).collect()
}

fn search(catalogue: &mut Catalogue, text: &str) -> Vec<String> {
    names(&catalogue.search(&SearchQuery { text: Some(text.into()), limit: 50, ..SearchQuery::default() }).unwrap())
}

#[test]
fn ingest_updates_the_index_incrementally_and_a_lost_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let classifier = Classifier::builtin();
    let mut catalogue = Catalogue::open(dir.path()).unwrap();
    catalogue.ingest(&snapshot("a", &[("delete_repo", "Deletes a repo"), ("list_repos", "")]), &classifier).unwrap();
    catalogue.ingest(&snapshot("b", &[("delete_user", "")]), &classifier).unwrap();
    let report = catalogue.ingest(&snapshot("a", &[("list_repos", "")]), &classifier).unwrap();
    assert_eq!(report.removed, ["delete_repo"]);
    assert_eq!(search(&mut catalogue, "delete"), ["b/delete_user"]);
    drop(catalogue);

    std::fs::remove_dir_all(dir.path().join(INDEX_DIR)).unwrap();
    let mut catalogue = Catalogue::open(dir.path()).unwrap();
    assert_eq!(search(&mut catalogue, "delete"), ["b/delete_user"]);
    drop(catalogue);

    std::fs::write(dir.path().join(INDEX_DIR).join("meta.json"), b"\x00garbage").unwrap();
    let mut catalogue = Catalogue::open(dir.path()).unwrap();
    assert_eq!(search(&mut catalogue, "repos"), ["a/list_repos"]);
}

#[test]
fn an_index_that_lags_the_store_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let classifier = Classifier::builtin();
    let mut catalogue = Catalogue::open(dir.path()).unwrap();
    catalogue.ingest(&snapshot("a", &[("old_tool", "")]), &classifier).unwrap();
    drop(catalogue);
    // Write the store behind the index's back, as a process killed before its index commit would.
    let mut store = Store::open(&dir.path().join(crate::store::DB_FILE)).unwrap();
    store
        .ingest(&[snapshot("a", &[("new_tool", "")])], classifier.version(), &mut |t, _| classifier.classify(t))
        .unwrap();
    drop(store);
    let mut catalogue = Catalogue::open(dir.path()).unwrap();
    assert_eq!(search(&mut catalogue, "tool"), ["a/new_tool"]);
}

#[test]
fn a_catalogue_can_move_to_a_blocking_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Catalogue>();
}

#[test]
fn queue_receipts_are_stored_with_their_listings_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let classifier = Classifier::builtin();
    let mut catalogue = Catalogue::open(dir.path()).unwrap();
    let jobs = vec!["1-0".to_string(), "2-0".to_string()];
    assert!(catalogue.received(&jobs).unwrap().is_empty());
    catalogue.ingest_received(&[snapshot("a", &[("list_repos", "")])], &jobs[..1], &classifier).unwrap();
    drop(catalogue);
    let catalogue = Catalogue::open(dir.path()).unwrap();
    let received = catalogue.received(&jobs).unwrap();
    assert_eq!(received.into_iter().collect::<Vec<_>>(), ["1-0"]);
}
