//! The web console in a real browser: Debian's Chromium driven through ChromeDriver (WebDriver, by the
//! fantoccini client), over a catalogue the test builds from real servers (the demo server, PyPI's
//! `mcp-server-time`, and a captured listing with hostile text), with a real proxy holding a call for
//! approval. Screenshots of the main pages are written to `target/console-screenshots/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::proxy::{StdioProxy, runtime};
use crate::util::{Env, announced};

/// A guard against hangs, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

/// A listing whose description tries to run script and hides a character.
const HOSTILE: &str = r#"{"tools": [{"name": "render_note",
  "description": "Shows a note. <script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> Zero\u200Bwidth.",
  "inputSchema": {"type": "object", "properties": {"note": {"type": "string", "description": "</pre><b>bold</b>"}}}}]}"#;

fn chromium() -> String {
    std::env::var("TOOLWARDEN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("TOOLWARDEN_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process killed when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The catalogue every test here reads: the demo server, mcp-server-time, and the hostile listing.
fn catalogue(env: &Env) {
    env.ok(["quickstart"]);
    let time = std::env::var("TOOLWARDEN_TEST_TIME").expect("run through scripts/test");
    env.ok(["crawl", "--timeout", "60", "--stdio", &format!("'{time}' --local-timezone UTC")]);
    let file = env.write("hostile.json", HOSTILE);
    env.ok(["import", &file.display().to_string()]);
}

/// `toolwarden serve` on a free loopback port; returns the process and its base URL (no trailing slash).
fn serve(env: &Env, extra: &[&str]) -> (Killed, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("toolwarden"))
        .env_remove("TOOLWARDEN_LOG")
        .env("TOOLWARDEN_DATA_DIR", env.data_dir())
        .current_dir(env.path(""))
        .args(["serve", "--listen", "127.0.0.1:0", "--as", "security-lead"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, stderr) = announced(&mut child, "toolwarden console on ");
    std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
    (Killed(child), url.trim_end_matches('/').to_string())
}

/// A headless Chromium session through ChromeDriver.
struct Browser {
    _driver: Killed,
    client: Client,
}

impl Browser {
    async fn start(profile: &std::path::Path) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, installed by scripts/test-deps.sh)");
        let driver = Killed(driver);
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.display())]
            }
        }))
        .unwrap();
        let started = Instant::now();
        let client = loop {
            let mut builder = ClientBuilder::rustls().unwrap();
            match builder.capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(started.elapsed() < PATIENCE, "chromedriver did not start a session: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser { _driver: driver, client }
    }

    async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
    }

    /// Wait until the element matching `css` exists and its text contains `want`.
    async fn wait_text(&self, css: &str, want: &str) -> String {
        let started = Instant::now();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = el.text().await
                && t.contains(want)
            {
                return t;
            }
            assert!(started.elapsed() < PATIENCE, "{css} never showed {want:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = crate::util::repo().join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

#[test]
fn the_catalogue_search_facets_and_a_tool_page_with_its_rule() {
    let env = Env::new();
    catalogue(&env);
    let (_console, url) = serve(&env, &[]);
    runtime().block_on(async {
        let b = Browser::start(&env.path("chrome")).await;
        b.client.goto(&format!("{url}/")).await.unwrap();
        let total: usize = b.text("#result-count").await.split(' ').next().unwrap().parse().unwrap();
        assert!(total >= 17, "the demo server, mcp-server-time and the hostile listing: {total}");
        let servers = b.text("#facet-server").await;
        assert!(servers.contains("demo") && servers.contains("mcp-server-time"), "{servers}");
        b.screenshot("catalogue").await;

        // The risk facet: critical tools only, and its count is the number of rows.
        let critical = b.client.find(Locator::Css("#facet-risk a[href='/?risk=critical']")).await.unwrap();
        let facet_count: usize = critical.text().await.unwrap().split_whitespace().last().unwrap().parse().unwrap();
        critical.click().await.unwrap();
        b.wait_text("#result-count", &format!("{facet_count} tool")).await;
        let rows = b.client.find_all(Locator::Css("#results tbody tr")).await.unwrap();
        assert_eq!(rows.len(), facet_count);
        for row in rows {
            assert!(row.text().await.unwrap().starts_with("critical"));
        }

        // The search box, then the tool page: verdict, rationale, evidence in the text, the rule to copy.
        let q = b.client.find(Locator::Id("q")).await.unwrap();
        q.send_keys("refund").await.unwrap();
        b.client.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
        b.wait_text("#results", "create_refund").await;
        b.client.find(Locator::LinkText("create_refund")).await.unwrap().click().await.unwrap();
        let verdict = b.wait_text("#verdict", "critical").await;
        assert!(verdict.contains("financial"), "{verdict}");
        let rationale = b.text("#rationale").await;
        assert!(rationale.contains("money"), "{rationale}");
        let marked = b.client.find_all(Locator::Css("#description mark")).await.unwrap();
        assert!(!marked.is_empty(), "the description's evidence is highlighted");
        let rule: Value = serde_json::from_str(&b.text("#rule-json").await).unwrap();
        assert!(rule.get("create_refund").is_some(), "{rule}");
        let says = b.text("#rule-text").await;
        assert!(!says.is_empty() && says.ends_with('.'), "{says}");
        b.client.find(Locator::Css("button[data-copy]")).await.unwrap().click().await.unwrap();
        b.wait_text("button[data-copy]", "Copied").await;
        b.screenshot("tool").await;

        // The server's policy downloads as a valid, generated policy.
        let href = b.client.find(Locator::Css("a[download]")).await.unwrap().attr("href").await.unwrap().unwrap();
        let policy: Value = reqwest::get(format!("{url}{href}")).await.unwrap().json().await.unwrap();
        assert!(policy["tools"]["create_refund"].is_object(), "{policy}");

        // A narrow window: the page still has the verdict and no horizontal scroll.
        b.client.set_window_size(380, 900).await.unwrap();
        let wide: bool = b
            .client
            .execute("return document.documentElement.scrollWidth > window.innerWidth + 2", vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        assert!(!wide, "the tool page scrolls sideways at 380 px");
        b.screenshot("tool-narrow").await;
        b.close().await;
    });
}

#[test]
fn a_hostile_description_renders_as_text_and_shows_its_hidden_character() {
    let env = Env::new();
    catalogue(&env);
    let (_console, url) = serve(&env, &[]);
    runtime().block_on(async {
        let b = Browser::start(&env.path("chrome")).await;
        b.client.goto(&format!("{url}/?q=note")).await.unwrap();
        b.wait_text("#results", "render_note").await;
        b.client.find(Locator::LinkText("render_note")).await.unwrap().click().await.unwrap();
        let description = b.wait_text("#description", "<script>").await;
        assert!(description.contains("onerror"), "the markup is shown as text: {description}");
        assert!(description.contains("U+200B"), "the zero-width space is made visible: {description}");
        let schema = b.text("#schema").await;
        assert!(schema.contains("</pre><b>bold</b>"), "{schema}");
        let pwned = b.client.execute("return window.__pwned === undefined", vec![]).await.unwrap();
        assert_eq!(pwned, json!(true), "no script from the description ran");
        assert!(b.client.find_all(Locator::Css("#description script, #description img")).await.unwrap().is_empty());
        b.close().await;
    });
}

#[test]
fn a_person_approves_the_refund_an_agent_waits_on_and_the_audit_shows_it() {
    let env = Env::new();
    catalogue(&env);
    let (_console, url) = serve(&env, &[]);
    let bin = assert_cmd::cargo::cargo_bin("toolwarden").display().to_string();
    let policy = r#"{"version": "1", "default": "allow",
      "tools": {"create_refund": {"action": "approve", "reason": "refunds need a person"},
                "delete_customer": {"action": "approve", "reason": "deletions need a person"}}}"#;
    let mut proxy = StdioProxy::start_caps(
        &env,
        policy,
        &["--approval-timeout", "60", "--", &bin, "demo-server"],
        false,
        json!({}),
    );
    runtime().block_on(async {
        let b = Browser::start(&env.path("chrome")).await;
        b.client.goto(&format!("{url}/approvals")).await.unwrap();
        b.wait_text("#pending", "No call waits").await;
        // The agent asks while the page is open: the queue refreshes itself.
        let call = proxy.send(
            "tools/call",
            json!({"name": "create_refund", "arguments": {"order_id": "o-1001", "amount": 2500, "currency": "EUR"}}),
        );
        let row = b.wait_text("#pending", "create_refund").await;
        assert!(row.contains("o-1001") && row.contains("refunds need a person"), "{row}");
        b.screenshot("approvals").await;
        b.client.find(Locator::Css("#pending form.decide button.approve")).await.unwrap().click().await.unwrap();
        b.wait_text(".flash", "approved").await;
        let (answer, _) = proxy.answer(call);
        let text = answer["result"]["content"][0]["text"].as_str().unwrap_or_default().to_string();
        assert!(!text.starts_with("Refused"), "the approved call ran: {answer}");

        // A second held call, denied with a reason: the agent sees it.
        let call = proxy.send("tools/call", json!({"name": "delete_customer", "arguments": {"customer_id": "c-1"}}));
        b.client.goto(&format!("{url}/approvals")).await.unwrap();
        b.wait_text("#pending", "delete_customer").await;
        let reason = b.client.find(Locator::Css("#pending input[name=reason]")).await.unwrap();
        reason.send_keys("not in production").await.unwrap();
        b.client.find(Locator::Css("#pending button.deny")).await.unwrap().click().await.unwrap();
        b.wait_text(".flash", "denied").await;
        let (answer, _) = proxy.answer(call);
        assert!(answer.to_string().contains("not in production"), "{answer}");

        // The audit records both decisions with the console's decider, and its filter narrows to one.
        let approved = env.json(["audit", "--decision", "approved", "--format", "json"]);
        assert_eq!(approved[0]["decided_by"], json!("security-lead"), "{approved}");
        b.client.goto(&format!("{url}/audit")).await.unwrap();
        let all: usize = b.text("#audit-count").await.split(' ').next().unwrap().parse().unwrap();
        assert!(all >= 2, "{all}");
        b.client.find(Locator::Css("#audit-filter select[name=decision] option[value=denied]")).await.ok();
        b.client
            .execute("document.querySelector('#audit-filter select[name=decision]').value = 'denied'", vec![])
            .await
            .unwrap();
        b.client.find(Locator::Css("#audit-filter button")).await.unwrap().click().await.unwrap();
        b.wait_text("#audit-count", "1 decision").await;
        let rows = b.text("#audit tbody").await;
        assert!(rows.contains("delete_customer") && !rows.contains("create_refund"), "{rows}");
        b.client.goto(&format!("{url}/audit")).await.unwrap();
        b.screenshot("audit").await;
        b.close().await;
    });
    drop(proxy);
}

#[test]
fn state_changing_requests_need_the_csrf_token_origin_host_and_a_login() {
    let env = Env::new();
    catalogue(&env);
    let tokens = env.write("tokens.json", r#"{"0123456789abcdef0123": "alice"}"#);
    let (_open, url) = serve(&env, &[]);
    let (_locked, locked) = serve(&env, &["--auth-tokens", &tokens.display().to_string()]);
    runtime().block_on(async {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let host = url.trim_start_matches("http://").to_string();
        let page = http.get(format!("{url}/approvals")).send().await.unwrap();
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let form = "id=1&action=approve";
        let post = |body: String, origin: Option<String>| {
            let mut r = http
                .post(format!("{url}/approvals/decide"))
                .header("cookie", cookie.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            r.send()
        };
        let no_token = post(form.to_string(), Some(format!("http://{host}"))).await.unwrap();
        assert_eq!(no_token.status(), 403);
        assert!(no_token.text().await.unwrap().contains("CSRF"));
        let wrong = post(format!("{form}&csrf=00000000000000000000000000000000"), Some(format!("http://{host}")))
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403);
        let foreign = post(form.to_string(), Some("http://evil.example".into())).await.unwrap();
        assert_eq!(foreign.status(), 403);
        assert!(foreign.text().await.unwrap().contains("Origin"));
        let no_origin = post(form.to_string(), None).await.unwrap();
        assert_eq!(no_origin.status(), 403);
        let rebound = http.get(format!("{url}/")).header("host", "evil.example").send().await.unwrap();
        assert_eq!(rebound.status(), 421, "a DNS-rebinding Host is refused");

        // With tokens: pages need a login; a wrong token is refused; the right one opens a session.
        let first = http.get(format!("{locked}/")).send().await.unwrap();
        assert_eq!(first.status(), 303);
        assert_eq!(first.headers()["location"], "/login");
        let lhost = locked.trim_start_matches("http://").to_string();
        let login = |token: &str| {
            http.post(format!("{locked}/login"))
                .header("origin", format!("http://{lhost}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}"))
                .send()
        };
        assert_eq!(login("not-the-token").await.unwrap().status(), 401);
        let ok = login("0123456789abcdef0123").await.unwrap();
        assert_eq!(ok.status(), 303);
        let session = ok.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let page = http.get(format!("{locked}/")).header("cookie", session).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Log out alice"));
    });
    // Any other address than loopback needs tokens.
    let out = env.run(["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth-tokens"));
}

#[test]
fn the_static_site_searches_in_the_page_and_links_every_tool() {
    let env = Env::new();
    catalogue(&env);
    let out = env.path("public");
    let report = env.json(["site", "--out", &out.display().to_string(), "--format", "json"]);
    let tools = report["tools"].as_u64().unwrap();
    assert!(tools >= 17, "{report}");
    let pages = std::fs::read_dir(out.join("tools")).unwrap().count() as u64;
    assert_eq!(pages, tools, "one page per tool");
    let port = free_port();
    let _http = Killed(
        Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    runtime().block_on(async {
        let b = Browser::start(&env.path("chrome")).await;
        let started = Instant::now();
        while b.client.goto(&format!("http://127.0.0.1:{port}/index.html")).await.is_err()
            || b.client.find(Locator::Id("static-search")).await.is_err()
        {
            assert!(started.elapsed() < PATIENCE, "the static server did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        b.wait_text("#result-count", &format!("{tools} tools match")).await;
        b.client.find(Locator::Id("q")).await.unwrap().send_keys("delete customer").await.unwrap();
        b.wait_text("#static-results", "delete_customer").await;
        b.client.execute("document.getElementById('risk').value = 'critical'; document.getElementById('risk').dispatchEvent(new Event('input', {bubbles: true}))", vec![]).await.unwrap();
        b.wait_text("#static-results", "critical").await;
        b.client.find(Locator::LinkText("delete_customer")).await.unwrap().click().await.unwrap();
        b.wait_text("#verdict", "destructive").await;
        let pwned = b.client.execute("return window.__pwned === undefined", vec![]).await.unwrap();
        assert_eq!(pwned, json!(true));
        b.screenshot("static-tool").await;
        b.close().await;
    });
}
