use serde_json::json;

use super::*;
use crate::proxy::test_redis::RedisServer;

fn request<'a>(args: &'a Value, identity: Option<&'a str>) -> NewApproval<'a> {
    NewApproval {
        tool: "drop",
        arguments: args,
        args_sha256: "abc",
        reason: Some("a person decides"),
        rule: Some("tools.drop"),
        session: "s1",
        identity,
        approve_for_secs: None,
        owner_pid: std::process::id(),
    }
}

#[test]
fn standing_keys_separate_callers_tools_and_arguments() {
    let k = |tool, digest, who| standing_key("p", tool, digest, who);
    assert!(k("t", "d", Some("alice")).starts_with("p:approval:standing:"));
    assert_ne!(k("t", "d", Some("alice")), k("t", "d", Some("bob")));
    assert_ne!(k("t", "d", None), k("t", "d", Some("")));
    assert_ne!(k("t", "d", None), k("t", "e", None));
    assert_ne!(k("t", "d", None), k("u", "d", None));
}

#[test]
fn a_request_is_listed_decided_once_and_published() {
    let server = RedisServer::start();
    let queue = Arc::new(SharedQueue::new(&server.url, "t").unwrap());
    let other = SharedQueue::new(&server.url, "t").unwrap();
    let args = json!({"n": 1});
    let id = queue.enqueue(&request(&args, Some("alice")), Duration::from_secs(60)).unwrap();
    let second = queue.enqueue(&request(&args, None), Duration::from_secs(60)).unwrap();
    assert!(second > id, "ids are global and increasing");
    let listed = other.list(false).unwrap();
    assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), [id, second]);
    let row = &listed[0];
    assert_eq!((row.tool.as_str(), row.status.as_str()), ("drop", "pending"));
    assert_eq!(row.arguments, args);
    assert_eq!(row.identity.as_deref(), Some("alice"));
    assert_eq!(listed[1].identity, None);
    assert_eq!(row.reason.as_deref(), Some("a person decides"));
    assert!(row.requested_at.ends_with('Z'));

    // The waiter is woken by the published decision: wait (bounded) until the subscriber thread listens.
    let notify = queue.watch(id);
    let mut con = redis::Client::open(server.url.as_str()).unwrap().get_connection().unwrap();
    for _ in 0..400 {
        let subs: (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(queue.channel()).query(&mut con).unwrap();
        if subs.1 > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let decision = Decision { approve: true, by: "bob", reason: None, approve_for_secs: Some(600) };
    let (changed, after) = other.decide(id, &decision).unwrap().unwrap();
    assert!(changed);
    assert_eq!(after.status, "approved");
    assert_eq!(after.decided_by.as_deref(), Some("bob"));
    assert_eq!(after.approve_for_secs, Some(600));
    assert!(after.approved_until.is_some());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let woken = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(20), notify.notified()).await });
    assert!(woken.is_ok(), "the decision was published to the waiting process");
    queue.forget(id);
    // A decided request cannot be decided again, and the standing approval admits the same caller only.
    let (changed, after) =
        other.decide(id, &Decision { approve: false, by: "x", reason: None, approve_for_secs: None }).unwrap().unwrap();
    assert!(!changed && after.status == "approved");
    assert_eq!(queue.standing("drop", "abc", Some("alice")).unwrap().as_deref(), Some("bob"));
    assert_eq!(queue.standing("drop", "abc", None).unwrap(), None);
    assert_eq!(queue.standing("drop", "abd", Some("alice")).unwrap(), None);
    // Denied with a reason; no standing approval from a denial.
    let (changed, after) = other
        .decide(second, &Decision { approve: false, by: "eve", reason: Some("no"), approve_for_secs: Some(600) })
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!((after.status.as_str(), after.decision_reason.as_deref()), ("denied", Some("no")));
    assert_eq!(queue.standing("drop", "abc", None).unwrap(), None);
    assert!(other.list(false).unwrap().is_empty());
    assert!(other.list(true).unwrap().len() >= 2);
    assert!(other.decide(999_999, &decision).unwrap().is_none());
}
