//! The web console (`toolwarden serve`) and the static catalogue (`toolwarden site`).
//!
//! Why it is built so:
//! - Pages are HTML rendered on the server from the catalogue, the approval queue and the audit; they work
//!   without JavaScript. The one script (embedded, like the stylesheet) only refreshes the approval queue,
//!   copies rules, and searches the static site. Nothing is fetched from elsewhere, so the binary is the
//!   whole console and the Content-Security-Policy can forbid everything but the console's own files.
//! - Every text from a server goes through [`html`]; [`auth`] checks Host, login, Origin and CSRF before a
//!   handler runs; a request that fails a check is refused with the reason.
//! - The catalogue and the queue are SQLite and tantivy: their calls block, so each request runs them on the
//!   blocking pool, one catalogue connection behind a lock (reads take milliseconds, see the bench).
//! - Approving here is the same code as `toolwarden approvals approve` ([`crate::approvals::Queue`]), with the
//!   logged-in identity as the decider, so the proxy audits it the same way.

mod auth;
mod console;
mod html;
mod pages;
pub mod site;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::approvals::Queue;
use crate::catalogue::{Catalogue, CatalogueError};
use crate::classify::Classifier;
use crate::journal::Journal;
use crate::policy::Profile;
use crate::store::{AuditQuery, Decision};
use pages::{SearchForm, Site};

/// The most bytes of a form body read.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// The most audit rows a page reads.
const AUDIT_ROWS: usize = 5000;
/// The servers shown in the search page's server facet.
const FACET_SERVERS: usize = 25;

pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                              connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the console stopped: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Queue(#[from] crate::approvals::QueueError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// What `serve` needs.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The approval queue (local, or shared through Redis).
    pub queue: Queue,
    /// token → identity; required unless `listen` is loopback.
    pub auth_tokens: Option<HashMap<String, String>>,
    /// More names the console may be reached by (behind a reverse proxy).
    pub allowed_hosts: Vec<String>,
    /// The decider recorded when there are no logins.
    pub decider: String,
}

struct App {
    catalogue: Mutex<Catalogue>,
    journal: Journal,
    queue: Queue,
    auth: auth::Auth,
    classifier: Classifier,
}

/// Serve the console until the process is stopped. Says where on stderr.
pub async fn serve(config: Config) -> Result<(), WebError> {
    let catalogue = Catalogue::open(&config.data_dir)?;
    let journal = Journal::open(&config.data_dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebError::Bind { addr: config.listen, source })?;
    let bound = listener.local_addr().map_err(WebError::Serve)?;
    let app = Arc::new(App {
        catalogue: Mutex::new(catalogue),
        journal,
        queue: config.queue,
        auth: auth::Auth::new(config.auth_tokens, config.decider, bound, &config.allowed_hosts),
        classifier: Classifier::builtin(),
    });
    let router = axum::Router::new().fallback(handle).with_state(app);
    eprintln!("toolwarden console on http://{bound}/");
    axum::serve(listener, router).await.map_err(WebError::Serve)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Add the headers every response carries.
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn plain(status: StatusCode, why: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{why}\n")).into_response()
}

fn page(status: StatusCode, html: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn cookie(sid: &str) -> String {
    format!("{}={sid}; Path=/; HttpOnly; SameSite=Strict", auth::COOKIE)
}

async fn handle(axum::extract::State(app): axum::extract::State<Arc<App>>, req: Request<Body>) -> Response {
    secured(dispatch(app, req).await)
}

async fn dispatch(app: Arc<App>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let host = header_str(&parts.headers, header::HOST).map(str::to_string);
    if !app.auth.host_allowed(host.as_deref()) {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            "this console does not answer to that Host (see --allowed-host)",
        );
    }
    let host = host.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/assets/style.css") => {
            return ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "max-age=3600")], STYLE)
                .into_response();
        }
        (&Method::GET, "/assets/app.js") => {
            return ([(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "max-age=3600")], SCRIPT)
                .into_response();
        }
        (&Method::GET, "/healthz") => return plain(StatusCode::OK, "ok"),
        _ => {}
    }
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and POST");
    }
    let mut pairs = html::parse_pairs(parts.uri.query().unwrap_or(""));
    if method == Method::POST {
        let origin = header_str(&parts.headers, header::ORIGIN);
        let referer = header_str(&parts.headers, header::REFERER);
        if !auth::same_origin(&host, origin, referer) {
            return plain(
                StatusCode::FORBIDDEN,
                "refused: a state-changing request must come from the console's own pages (Origin)",
            );
        }
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
        };
        pairs = html::parse_pairs(&String::from_utf8_lossy(&bytes));
    }
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    if path == "/login" && app.auth.logins() {
        if method != Method::POST {
            return page(StatusCode::OK, console::login_page(None));
        }
        return match app.auth.login(get("token").as_deref().unwrap_or("")) {
            Some(sid) => {
                let mut r = redirect("/");
                if let Ok(v) = HeaderValue::from_str(&cookie(&sid)) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            None => page(StatusCode::UNAUTHORIZED, console::login_page(Some("That token is not valid."))),
        };
    }
    let bearer =
        header_str(&parts.headers, header::AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    let Some(visitor) = app.auth.who(header_str(&parts.headers, header::COOKIE), bearer) else {
        return if method == Method::POST {
            plain(StatusCode::UNAUTHORIZED, "log in first")
        } else {
            redirect("/login")
        };
    };
    if method == Method::POST && bearer.is_none() && !app.auth.csrf_ok(&visitor.sid, get("csrf").as_deref()) {
        return plain(StatusCode::FORBIDDEN, "refused: missing or wrong CSRF token (reload the page and try again)");
    }
    if method == Method::POST && path == "/logout" {
        app.auth.logout(&visitor.sid);
        return redirect(if app.auth.logins() { "/login" } else { "/" });
    }
    let v = visitor.clone();
    let app2 = app.clone();
    let is_post = method == Method::POST;
    let answer = tokio::task::spawn_blocking(move || route(&app2, is_post, &path, &pairs, &v)).await;
    let mut response = match answer {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!("console: {e}");
            page(StatusCode::INTERNAL_SERVER_ERROR, pages::message(&live(&visitor), "Error", &e.to_string()))
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("the request failed: {e}")),
    };
    if visitor.new_cookie
        && let Ok(v) = HeaderValue::from_str(&cookie(&visitor.sid))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn live(v: &auth::Visitor) -> Site {
    Site::Live { csrf: v.csrf.clone(), identity: v.identity.clone(), logins: v.logins }
}

fn route(
    app: &App,
    post: bool,
    path: &str,
    pairs: &[(String, String)],
    v: &auth::Visitor,
) -> Result<Response, WebError> {
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let site = live(v);
    let profile: Profile = get("profile").and_then(|p| p.parse().ok()).unwrap_or(Profile::Balanced);
    Ok(match (post, path) {
        (false, "/") => {
            let form = SearchForm::from_pairs(pairs);
            let mut catalogue = app.catalogue();
            catalogue.refresh()?;
            let facets = catalogue.facets(&form.query, FACET_SERVERS)?;
            let hits = catalogue.search(&form.query)?;
            let findings = hits.iter().map(|h| catalogue.findings_of(&h.fingerprint)).collect::<Result<Vec<_>, _>>()?;
            page(StatusCode::OK, pages::search_page(&site, &form, &facets, &hits, &findings))
        }
        (false, "/api/search") => {
            let form = SearchForm::from_pairs(pairs);
            let mut catalogue = app.catalogue();
            catalogue.refresh()?;
            let hits = catalogue.search(&form.query)?;
            axum::Json(hits).into_response()
        }
        (false, "/servers") => page(StatusCode::OK, pages::servers_page(&site, &app.catalogue().stats()?)),
        (false, "/server") => {
            let name = get("name").unwrap_or("");
            let catalogue = app.catalogue();
            match catalogue.server(name)? {
                None => page(StatusCode::NOT_FOUND, pages::not_found(&site, &format!("No server named {name:?}."))),
                Some(s) => {
                    let mut drift = catalogue.pin_drift(name)?;
                    if let Some(d) = &mut drift {
                        catalogue.judge_drift(d, &app.classifier)?;
                    }
                    let shared = catalogue.shared_tool_names(name)?;

                    page(StatusCode::OK, pages::server_page(&site, &s, drift.as_ref(), &shared))
                }
            }
        }
        (false, "/server/policy.json") => {
            let name = get("name").unwrap_or("");
            let records = app.catalogue().tools(&[name.to_string()])?;
            if records.is_empty() {
                return Ok(plain(StatusCode::NOT_FOUND, "no such server, or it has no tools"));
            }
            let policy = crate::policy::generate(&records, profile);
            let body = serde_json::to_string_pretty(&policy).unwrap_or_default() + "\n";
            let file = format!("attachment; filename=\"{}-{profile}.json\"", pages::page_key(&[name]));
            ([(header::CONTENT_TYPE, "application/json".to_string()), (header::CONTENT_DISPOSITION, file)], body)
                .into_response()
        }
        (false, "/tool") => {
            let (server, name) = (get("server").unwrap_or(""), get("name").unwrap_or(""));
            let catalogue = app.catalogue();
            match catalogue.tool(server, name)? {
                None => {
                    page(StatusCode::NOT_FOUND, pages::not_found(&site, &format!("No tool {name:?} on {server:?}.")))
                }
                Some(detail) => {
                    let others = catalogue.other_servers_with(name, server)?;
                    let extras = site::tool_extras(&catalogue, &detail, &others, profile)?;
                    page(StatusCode::OK, pages::tool_page(&site, &detail, &extras))
                }
            }
        }
        (false, "/approvals") => {
            let all = app.queue.list(true)?;
            let (pending, decided): (Vec<_>, Vec<_>) = all.into_iter().partition(|a| a.status == "pending");
            let flash = match (get("decided").and_then(|d| d.parse::<i64>().ok()), get("status")) {
                (Some(id), Some(s @ ("approved" | "denied"))) => Some(format!("Request {id} {s}.")),
                (Some(id), Some("stale")) => Some(format!("Request {id} was no longer pending.")),
                _ => None,
            };
            page(StatusCode::OK, console::approvals_page(&site, &v.csrf, &pending, &decided, flash.as_deref()))
        }
        (false, "/approvals/rows") => {
            let pending = app.queue.list(false)?;
            page(StatusCode::OK, console::approval_rows(&v.csrf, &pending))
        }
        (false, "/approvals.json") => axum::Json(app.queue.list(false)?).into_response(),
        (true, "/approvals/decide") => {
            let Some(id) = get("id").and_then(|i| i.parse::<i64>().ok()) else {
                return Ok(plain(StatusCode::BAD_REQUEST, "which request? (id)"));
            };
            let approve = match get("action") {
                Some("approve") => true,
                Some("deny") => false,
                _ => return Ok(plain(StatusCode::BAD_REQUEST, "action must be approve or deny")),
            };
            let window = get("for").and_then(|f| f.parse::<i64>().ok()).filter(|s| *s > 0 && approve);
            let reason =
                get("reason").map(str::trim).filter(|r| !r.is_empty()).map(|r| r.chars().take(500).collect::<String>());
            let d = Decision { approve, by: &v.identity, reason: reason.as_deref(), approve_for_secs: window };
            match app.queue.decide(id, &d)? {
                None => plain(StatusCode::NOT_FOUND, "no such approval request"),
                Some((true, row)) => redirect(&format!("/approvals?decided={id}&status={}", row.status)),
                Some((false, _)) => redirect(&format!("/approvals?decided={id}&status=stale")),
            }
        }
        (false, "/audit") => {
            let form = console::AuditForm::from_pairs(pairs);
            let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
            let query = AuditQuery {
                tool: some(&form.tool),
                server: some(&form.server),
                decision: some(&form.decision),
                since: form.since(),
                limit: Some(AUDIT_ROWS),
            };
            let rows = app.journal.audit(&query)?;
            page(StatusCode::OK, console::audit_page(&site, &form, &rows, AUDIT_ROWS))
        }
        (false, "/changes") => {
            let catalogue = app.catalogue();
            let mut drifts = Vec::new();
            let mut unpinned = 0;
            for s in catalogue.servers()? {
                match catalogue.pin_drift(&s.name)? {
                    Some(mut d) => {
                        catalogue.judge_drift(&mut d, &app.classifier)?;
                        drifts.push(d);
                    }
                    None => unpinned += 1,
                }
            }
            let mut findings = Vec::new();
            catalogue.for_each_tool::<WebError>(&[], |r| {
                for f in r.classification.findings {
                    findings.push(console::FindingRow {
                        server: r.server.clone(),
                        tool: r.tool.name.clone(),
                        severity: f.severity,
                        id: f.id,
                        text: f.text,
                    });
                }
                Ok(())
            })?;
            findings.sort_by(|a, b| {
                b.severity.cmp(&a.severity).then_with(|| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)))
            });
            page(StatusCode::OK, console::changes_page(&site, &drifts, unpinned, &findings))
        }
        _ => page(StatusCode::NOT_FOUND, pages::not_found(&site, "There is no such page.")),
    })
}

impl App {
    fn catalogue(&self) -> std::sync::MutexGuard<'_, Catalogue> {
        self.catalogue.lock().unwrap_or_else(|e| e.into_inner())
    }
}
