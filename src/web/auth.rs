//! Who may use the console, and proof that a state-changing request came from its own pages.
//!
//! - **Host**: requests must name the listening address (or an `--allowed-host`), so a DNS-rebinding page on
//!   another origin cannot reach a loopback console by a name it controls.
//! - **Login**: with `--auth-tokens` (the proxy's file: token → identity) every page but the login form needs
//!   a session cookie, got by typing a token, or an `Authorization: Bearer` header. The identity is the
//!   decider recorded on approvals. Without tokens (loopback only) every visitor is the console's `--as` name.
//! - **CSRF**: each session has a random id in an `HttpOnly`, `SameSite=Strict` cookie; forms carry a token
//!   derived from it with a per-process secret, and a POST must also carry an `Origin` (or `Referer`) of the
//!   console itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a login lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; the oldest are dropped first.
const MAX_SESSIONS: usize = 10_000;
pub(crate) const COOKIE: &str = "tw_session";

#[derive(Debug)]
pub(crate) struct Auth {
    /// token → identity; `None`: no login (loopback).
    tokens: Option<HashMap<String, String>>,
    /// The identity of everyone when there is no login.
    anonymous: String,
    secret: String,
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    hosts: Vec<String>,
}

/// Who is asking, once the request passed [`Auth::who`].
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    /// The session id (new when the request had none).
    pub sid: String,
    pub identity: String,
    /// Whether the response must set the session cookie.
    pub new_cookie: bool,
    pub csrf: String,
    /// Whether the console has logins at all (shows the log-out button).
    pub logins: bool,
}

fn random_id() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Compare without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub(crate) fn new(
        tokens: Option<HashMap<String, String>>,
        anonymous: String,
        listen: std::net::SocketAddr,
        allowed: &[String],
    ) -> Auth {
        let port = listen.port();
        let mut hosts = vec![listen.to_string(), format!("localhost:{port}")];
        if listen.ip().is_loopback() {
            hosts.extend([format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);
        }
        for h in allowed {
            hosts.push(h.to_ascii_lowercase());
            if !h.contains(':') {
                hosts.push(format!("{}:{port}", h.to_ascii_lowercase()));
            }
        }
        Auth { tokens, anonymous, secret: random_id(), sessions: Mutex::new(HashMap::new()), hosts }
    }

    pub(crate) fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }

    pub(crate) fn csrf_for(&self, sid: &str) -> String {
        let digest = Sha256::digest(format!("{}\0{sid}", self.secret).as_bytes());
        hex::encode(&digest[..16])
    }

    pub(crate) fn csrf_ok(&self, sid: &str, token: Option<&str>) -> bool {
        token.is_some_and(|t| same(t, &self.csrf_for(sid)))
    }

    /// The visitor of a request with these cookie and authorization headers, or `None` when a login is
    /// needed first.
    pub(crate) fn who(&self, cookie: Option<&str>, bearer: Option<&str>) -> Option<Visitor> {
        let sid = cookie.and_then(|c| {
            c.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| *k == COOKIE).map(|(_, v)| v)
        });
        let Some(tokens) = &self.tokens else {
            let (sid, new_cookie) = match sid.filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
                Some(s) => (s.to_string(), false),
                None => (random_id(), true),
            };
            let csrf = self.csrf_for(&sid);
            return Some(Visitor { sid, identity: self.anonymous.clone(), new_cookie, csrf, logins: false });
        };
        if let Some(token) = bearer {
            let identity = tokens.iter().find(|(t, _)| same(t, token)).map(|(_, who)| who.clone())?;
            let sid = format!("bearer-{}", &self.csrf_for(token)[..16]);
            let csrf = self.csrf_for(&sid);
            return Some(Visitor { sid, identity, new_cookie: false, csrf, logins: true });
        }
        let sid = sid?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (identity, seen) = sessions.get_mut(sid)?;
        if seen.elapsed() > SESSION_IDLE {
            sessions.remove(sid);
            return None;
        }
        *seen = Instant::now();
        let identity = identity.clone();
        Some(Visitor { sid: sid.to_string(), identity, new_cookie: false, csrf: self.csrf_for(sid), logins: true })
    }

    pub(crate) fn logins(&self) -> bool {
        self.tokens.is_some()
    }

    /// A new session for a correct token: its id (for the cookie).
    pub(crate) fn login(&self, token: &str) -> Option<String> {
        let tokens = self.tokens.as_ref()?;
        let identity = tokens.iter().find(|(t, _)| same(t, token)).map(|(_, who)| who.clone())?;
        let sid = random_id();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, (_, seen)| seen.elapsed() < SESSION_IDLE);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions.iter().min_by_key(|(_, (_, seen))| *seen).map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(sid.clone(), (identity, Instant::now()));
        Some(sid)
    }

    pub(crate) fn logout(&self, sid: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(sid);
    }
}

/// Whether a POST's `Origin` (or, without one, its `Referer`) is the console at `host`.
pub(crate) fn same_origin(host: &str, origin: Option<&str>, referer: Option<&str>) -> bool {
    let ours = [format!("http://{host}"), format!("https://{host}")];
    match (origin, referer) {
        (Some(o), _) => ours.iter().any(|x| x.eq_ignore_ascii_case(o)),
        (None, Some(r)) => ours
            .iter()
            .any(|x| r.len() > x.len() && r[..x.len()].eq_ignore_ascii_case(x) && r.as_bytes()[x.len()] == b'/'),
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(tokens: bool) -> Auth {
        let tokens = tokens.then(|| HashMap::from([("t".repeat(20), "alice".to_string())]));
        Auth::new(tokens, "me".into(), "127.0.0.1:8088".parse().unwrap(), &["console.example".into()])
    }

    #[test]
    fn hosts_other_than_ours_are_refused() {
        let a = auth(false);
        assert!(a.host_allowed(Some("127.0.0.1:8088")));
        assert!(a.host_allowed(Some("localhost:8088")));
        assert!(a.host_allowed(Some("console.example")));
        assert!(!a.host_allowed(Some("evil.example:8088")));
        assert!(!a.host_allowed(None));
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = auth(false);
        let v = a.who(None, None).unwrap();
        assert!(v.new_cookie);
        assert!(a.csrf_ok(&v.sid, Some(&v.csrf)));
        assert!(!a.csrf_ok("other", Some(&v.csrf)));
        assert!(!a.csrf_ok(&v.sid, None));
    }

    #[test]
    fn logins_need_a_known_token() {
        let a = auth(true);
        assert!(a.who(None, None).is_none());
        assert!(a.login("wrong").is_none());
        let sid = a.login(&"t".repeat(20)).unwrap();
        let v = a.who(Some(&format!("x=1; {COOKIE}={sid}")), None).unwrap();
        assert_eq!(v.identity, "alice");
        assert_eq!(a.who(None, Some(&"t".repeat(20))).unwrap().identity, "alice");
        a.logout(&sid);
        assert!(a.who(Some(&format!("{COOKIE}={sid}")), None).is_none());
    }

    #[test]
    fn origins() {
        assert!(same_origin("127.0.0.1:8088", Some("http://127.0.0.1:8088"), None));
        assert!(!same_origin("127.0.0.1:8088", Some("http://evil.example"), None));
        assert!(same_origin("127.0.0.1:8088", None, Some("http://127.0.0.1:8088/approvals")));
        assert!(!same_origin("127.0.0.1:8088", None, Some("http://127.0.0.1:80880/x")));
        assert!(!same_origin("127.0.0.1:8088", None, None));
    }
}
