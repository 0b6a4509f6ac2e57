use std::net::TcpListener;

use super::*;
use crate::proxy::counters::Window;
use crate::proxy::test_redis::RedisServer;

fn charge(key: &str, window: Window, max: f64, amount: f64, refundable: bool) -> Charge {
    Charge { key: key.into(), window, max, amount, refundable }
}

#[test]
fn keys_name_the_prefix_counter_scope_and_bucket() {
    assert_eq!(key("toolwarden", "echo_total|global", 86_400), "toolwarden:echo_total|global:86400");
    assert_eq!(key("prod:eu", "refunds|grant:alice", 120), "prod:eu:refunds|grant:alice:120");
}

#[test]
fn keys_expire_at_the_end_of_their_window_plus_slack() {
    let c = charge("c", Window::Minute, 1.0, 1.0, false);
    assert_eq!(ttl(&c, 120), 60 + EXPIRY_SLACK);
    assert_eq!(ttl(&c, 179), 1 + EXPIRY_SLACK);
    let c = charge("c", Window::Seconds(10), 1.0, 1.0, false);
    assert_eq!(ttl(&c, 25), 5 + EXPIRY_SLACK);
    let c = charge("c", Window::Day, 1.0, 1.0, false);
    assert_eq!(ttl(&c, 86_400 + 3600), 86_400 - 3600 + EXPIRY_SLACK);
}

#[test]
fn amounts_are_sent_in_a_form_redis_reads_back_exactly() {
    assert_eq!(number(1.0), "1");
    assert_eq!(number(0.1), "0.1");
    assert_eq!(number(-12.5), "-12.5");
    assert_eq!(number(1e21), "1000000000000000000000");
}

fn counters(server: &RedisServer, failure: StateFailure) -> Arc<RedisCounters> {
    RedisCounters::new(&server.url, "t", failure, Arc::new(Audit::disabled())).unwrap()
}

#[test]
fn reserve_is_all_or_nothing_and_same_key_amounts_add_up() {
    let server = RedisServer::start();
    let store = counters(&server, StateFailure::Closed);
    store.reserve(&[charge("b|global", Window::Minute, 1.0, 1.0, false)], 0).unwrap();
    let both =
        [charge("a|global", Window::Minute, 5.0, 1.0, false), charge("b|global", Window::Minute, 1.0, 1.0, false)];
    let Err(ReserveError::Exceeded(e)) = store.reserve(&both, 0) else { panic!("admitted over the limit") };
    assert_eq!((e.key.as_str(), e.used, e.max), ("b|global", 1.0, 1.0));
    assert_eq!(store.used("a|global", 0).unwrap(), 0.0);
    let twice =
        [charge("s|global", Window::Minute, 10.0, 6.0, true), charge("s|global", Window::Minute, 10.0, 6.0, true)];
    let Err(ReserveError::Exceeded(e)) = store.reserve(&twice, 0) else { panic!("admitted 12 of 10") };
    assert_eq!(e.used, 6.0);
    assert_eq!(store.used("s|global", 0).unwrap(), 0.0);
}

#[test]
fn rollback_refunds_spend_only_in_its_own_bucket_and_never_below_zero() {
    let server = RedisServer::start();
    let store = counters(&server, StateFailure::Closed);
    let spend = |amount| charge("spend|global", Window::Minute, 100.0, amount, true);
    let r = store.reserve(&[spend(40.5), charge("count|global", Window::Minute, 9.0, 1.0, false)], 0).unwrap();
    store.rollback(&r);
    assert_eq!(store.used("spend|global", 0).unwrap(), 0.0);
    assert_eq!(store.used("count|global", 0).unwrap(), 1.0);
    // A reservation from the previous minute, rolled back after the rollover, leaves the new minute alone.
    let old = store.reserve(&[spend(40.0)], 59).unwrap();
    store.reserve(&[spend(10.0)], 60).unwrap();
    store.rollback(&old);
    assert_eq!(store.used("spend|global", 60).unwrap(), 10.0);
    // Rolling back twice does not make the count negative.
    let r = store.reserve(&[spend(5.0)], 120).unwrap();
    store.rollback(&r);
    store.rollback(&r);
    assert_eq!(store.used("spend|global", 120).unwrap(), 0.0);
    // A bucket that is gone stays gone: no negative key without expiry appears.
    let gone = Reservation { key: "spend|global".into(), bucket: 999_960, amount: 3.0, refundable: true };
    store.rollback(&[gone]);
    let exists: i64 = store.with_connection(|c| redis::cmd("EXISTS").arg("t:spend|global:999960").query(c)).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn keys_carry_their_expiry() {
    let server = RedisServer::start();
    let store = counters(&server, StateFailure::Closed);
    let now = crate::proxy::counters::now();
    let c = charge("echo|global", Window::Hour, 10.0, 1.0, false);
    store.reserve(std::slice::from_ref(&c), now).unwrap();
    let k = key("t", "echo|global", Window::Hour.bucket(now));
    let left: i64 = store.with_connection(|con| redis::cmd("TTL").arg(&k).query(con)).unwrap();
    assert!(left > 0 && left as u64 <= ttl(&c, now), "TTL {left}");
}

#[test]
fn concurrent_callers_on_two_stores_get_exactly_the_limit() {
    let server = RedisServer::start();
    let stores = [counters(&server, StateFailure::Closed), counters(&server, StateFailure::Closed)];
    let admitted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..32 {
            let store = &stores[i % 2];
            let admitted = &admitted;
            s.spawn(move || {
                for _ in 0..5 {
                    if store.reserve(&[charge("c|global", Window::Day, 50.0, 1.0, false)], 0).is_ok() {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 50);
}

#[test]
fn an_unreachable_redis_refuses_or_allows_by_the_failure_mode() {
    // A port nobody listens on: bind, note, close.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let c = [charge("c|global", Window::Minute, 5.0, 1.0, false)];
    let closed = RedisCounters::new(&url, "t", StateFailure::Closed, Arc::new(Audit::disabled())).unwrap();
    let Err(ReserveError::Unavailable(reason)) = closed.reserve(&c, 0) else { panic!("closed admitted a call") };
    assert!(
        reason.starts_with("rate-limit state unavailable: ") && reason.ends_with("; refusing (state-failure closed)")
    );
    // Calls without limits never need Redis.
    assert_eq!(closed.reserve(&[], 0), Ok(Vec::new()));
    let open = RedisCounters::new(&url, "t", StateFailure::Open, Arc::new(Audit::disabled())).unwrap();
    assert_eq!(open.reserve(&c, 0), Ok(Vec::new()));
    assert!(RedisCounters::new("http://nope", "t", StateFailure::Open, Arc::new(Audit::disabled())).is_err());
}

#[test]
fn async_reservations_share_one_connection_and_admit_exactly_the_limit() {
    let server = RedisServer::start();
    let stores = [counters(&server, StateFailure::Closed), counters(&server, StateFailure::Closed)];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let admitted = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = Arc::clone(&stores[i % 2]);
            tasks.push(tokio::spawn(async move {
                let c = vec![
                    charge("a|global", Window::Day, 40.0, 1.0, false),
                    charge("b|global", Window::Day, 99.0, 1.0, false),
                ];
                store.reserve_async(c, 0).await.is_ok()
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        admitted
    });
    assert_eq!(admitted, 40);
    // All or nothing across the two keys: the refused calls did not count on the second one either.
    assert_eq!(stores[0].used("b|global", 0).unwrap(), 40.0);
    // A refund inside the runtime is sent from a task of its own; it lands shortly after.
    let r = rt.block_on(stores[0].reserve_async(vec![charge("s|global", Window::Day, 10.0, 4.0, true)], 0)).unwrap();
    rt.block_on(async { stores[0].rollback(&r) });
    let mut left = f64::NAN;
    for _ in 0..200 {
        left = stores[0].used("s|global", 0).unwrap();
        if left == 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(left, 0.0);
}

#[test]
fn the_async_path_fails_by_the_mode_and_reconnects_when_redis_returns() {
    let mut server = RedisServer::start();
    let store = counters(&server, StateFailure::Closed);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let c = || vec![charge("c|global", Window::Day, 5.0, 1.0, false)];
    assert!(rt.block_on(store.reserve_async(c(), 0)).is_ok());
    server.stop();
    let Err(ReserveError::Unavailable(reason)) = rt.block_on(store.reserve_async(c(), 0)) else {
        panic!("closed admitted a call without Redis")
    };
    assert!(reason.ends_with("; refusing (state-failure closed)"), "{reason}");
    // The same port again (empty: nothing on disk): the next call connects afresh and is counted.
    server.resume();
    assert_eq!(rt.block_on(store.reserve_async(c(), 0)).map(|r| r.len()), Ok(1));
    assert_eq!(store.used("c|global", 0).unwrap(), 1.0);
}
