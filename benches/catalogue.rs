//! The catalogue at scale: import + classify + index of a generated catalogue, then search latency.
//!
//! `cargo bench --bench catalogue` builds a realistic catalogue (default 250,000 tools over 2,500 servers,
//! `TOOLWARDEN_BENCH_TOOLS=N` to change), ingests it in batches through the public `Catalogue` API into a
//! temp dir, and reports: time to import + classify + index, peak memory (VmHWM), database and index size,
//! and search latency p50/p99 over a fixed set of queries with and without filters. Baselines measured in
//! the same run: classifying the same tools alone (the floor for an import) and answering a query by
//! scanning the whole store (what a search would cost without the index).
//!
//! Under `cargo test` (no `--bench` argument) it runs a small catalogue once, as a smoke test.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use toolwarden::catalogue::{Catalogue, SearchQuery};
use toolwarden::classify::Classifier;
use toolwarden::model::{Category, Risk, ServerSnapshot, Tool};

mod common;
use common::{cpu_time, dir_size, latencies, ms, percentile, vm_hwm_kib};

const FAMILIES: &[&str] = &[
    "github",
    "gitlab",
    "jira",
    "slack",
    "stripe",
    "postgres",
    "filesystem",
    "shell",
    "kubernetes",
    "aws-s3",
    "shopify",
    "notion",
    "gmail",
    "calendar",
    "salesforce",
    "zendesk",
    "twilio",
    "docker",
    "redis",
    "mongodb",
    "linear",
    "figma",
    "sentry",
    "datadog",
    "paypal",
    "hubspot",
    "confluence",
    "dropbox",
    "terraform",
    "bigquery",
];

/// Verbs with the description templates real servers use for them.
const VERBS: &[(&str, &str)] = &[
    ("get", "Get a single {n} by its id. Returns the full {n} object with all its fields."),
    ("list", "List {n}s, newest first. Supports pagination with `cursor` and `limit`."),
    ("search", "Search {n}s by free text. Matches titles and bodies; read-only."),
    ("read", "Read the contents of a {n}. Does not modify anything."),
    ("describe", "Describe a {n}: metadata, owners and current status."),
    ("fetch", "Fetch a {n} from the remote service and return it as JSON."),
    ("create", "Create a new {n} with the given fields and return it."),
    ("update", "Update fields of an existing {n}. Only the fields given are changed."),
    ("add", "Add a {n} to its parent collection."),
    ("upload", "Upload a {n}. Overwrites an existing {n} with the same name."),
    ("send", "Send a {n} to the given recipients on behalf of the user."),
    ("delete", "Permanently delete a {n}. This cannot be undone."),
    ("remove", "Remove a {n} and everything attached to it."),
    ("drop", "Drop the {n} and all its data."),
    ("purge", "Purge every {n} older than the given date, in bulk."),
    ("archive", "Archive a {n}; archived {n}s are hidden but kept."),
    ("run", "Run a {n} with the given arguments and return its output."),
    ("execute", "Execute arbitrary commands against the {n}. Use with care."),
    ("query", "Run a SQL query on the {n} and return the rows."),
    ("deploy", "Deploy the {n} to the target environment (production by default)."),
    ("restart", "Restart a {n}. Running work is interrupted."),
    ("refund", "Refund a payment for a {n}, fully or partially, to the original card."),
    ("charge", "Charge the customer's card for a {n}."),
    ("transfer", "Transfer money between accounts for a {n}."),
    ("merge", "Merge a {n} into its target branch."),
];

const NOUNS: &[&str] = &[
    "repository",
    "issue",
    "pull_request",
    "branch",
    "file",
    "directory",
    "user",
    "customer",
    "order",
    "payment",
    "invoice",
    "table",
    "database",
    "record",
    "message",
    "channel",
    "pod",
    "deployment",
    "bucket",
    "object",
    "document",
    "page",
    "ticket",
    "event",
    "contact",
    "subscription",
    "webhook",
    "secret",
    "job",
    "pipeline",
];

const EXTRA: &[&str] = &[
    "Requires the `repo` scope.",
    "Rate limited to 100 calls per minute.",
    "The result is cached for 60 seconds.",
    "Returns an error when the caller lacks permission.",
    "Timestamps are ISO 8601 in UTC.",
    "Large results are truncated; use the cursor to page.",
    "See the API reference for every field of the response object and the errors it may return.",
    "Works on the default workspace unless `workspace_id` is given.",
];

/// A small deterministic generator (xorshift), so every run builds the same catalogue.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn camel(words: &[&str]) -> String {
    let mut out = String::new();
    for (i, word) in words.iter().flat_map(|w| w.split('_')).enumerate() {
        if i == 0 {
            out.push_str(word);
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

fn schema(rng: &mut Rng, verb: &str, noun: &str) -> Value {
    let mut props = serde_json::Map::new();
    props.insert(format!("{noun}_id"), json!({"type": "string", "description": format!("The {noun} id")}));
    match verb {
        "list" | "search" => {
            props.insert("query".into(), json!({"type": "string"}));
            props.insert("limit".into(), json!({"type": "integer", "minimum": 1, "maximum": 100}));
            props.insert("cursor".into(), json!({"type": "string"}));
        }
        "create" | "update" | "add" => {
            props.insert("fields".into(), json!({"type": "object", "additionalProperties": {"type": "string"}}));
        }
        "refund" | "charge" | "transfer" => {
            props.insert("amount".into(), json!({"type": "number", "description": "In minor units"}));
            props.insert("currency".into(), json!({"type": "string", "enum": ["usd", "eur", "gbp"]}));
        }
        "run" | "execute" => {
            props.insert("command".into(), json!({"type": "string"}));
            props.insert("args".into(), json!({"type": "array", "items": {"type": "string"}}));
        }
        "query" => {
            props.insert("sql".into(), json!({"type": "string"}));
        }
        _ => {}
    }
    if rng.chance(10) {
        props.insert("action".into(), json!({"type": "string", "enum": ["get", "update", "delete"]}));
    }
    if rng.chance(10) {
        return json!({"type": "object", "properties": {"target": {"$ref": "#/$defs/target"}},
                      "$defs": {"target": {"type": "object", "properties": props}}});
    }
    json!({"type": "object", "properties": props, "required": [format!("{noun}_id")]})
}

fn tool(rng: &mut Rng, family: &str, used: &mut std::collections::HashSet<String>) -> Tool {
    loop {
        let (verb, template) = *rng.pick(VERBS);
        let noun = *rng.pick(NOUNS);
        let name = match rng.next() % 5 {
            0 => format!("{verb}_{noun}"),
            1 => camel(&[verb, noun]),
            2 => format!("{verb}-{}", noun.replace('_', "-")),
            3 => format!("{}.{verb}", noun.replace('_', "")),
            _ => format!("{}_{verb}_{noun}", family.replace('-', "_")),
        };
        let name = if used.contains(&name) { format!("{name}_{}", rng.next() % 1000) } else { name };
        if !used.insert(name.clone()) {
            continue;
        }
        let mut description = template.replace("{n}", &noun.replace('_', " "));
        for _ in 0..rng.next() % 4 {
            description.push(' ');
            let extra: &&str = rng.pick(EXTRA);
            description.push_str(extra);
        }
        let mut tool = Tool::named(name).with_description(description).with_input_schema(schema(rng, verb, noun));
        if rng.chance(40) {
            let read = matches!(verb, "get" | "list" | "search" | "read" | "describe" | "fetch");
            let destructive = matches!(verb, "delete" | "remove" | "drop" | "purge");
            tool = tool.with_annotations(json!({"readOnlyHint": read, "destructiveHint": destructive,
                                                "openWorldHint": rng.chance(50)}));
        }
        if rng.chance(20) {
            tool.title = Some(format!("{} {}", verb, noun.replace('_', " ")));
        }
        return tool;
    }
}

fn server(rng: &mut Rng, i: usize, tools: usize) -> ServerSnapshot {
    let family = FAMILIES[i % FAMILIES.len()];
    let mut used = std::collections::HashSet::new();
    ServerSnapshot {
        server: format!("{family}-{i}"),
        tools: (0..tools).map(|_| tool(rng, family, &mut used)).collect(),
        ..ServerSnapshot::default()
    }
}

const WORDS: &[&str] = &[
    "delete",
    "delete file",
    "refund",
    "create issue",
    "list repositories",
    "run sql query",
    "send message channel",
    "deploy",
    "customer",
    "upload bucket object",
    "permanently",
    "transfer money",
    "get user",
    "archive",
    "restart pod",
    "invoice",
    "search tickets",
    "drop table",
    "webhook secret",
    "merge pull request",
];

fn queries(servers: usize) -> (Vec<SearchQuery>, Vec<SearchQuery>) {
    let plain: Vec<SearchQuery> =
        WORDS.iter().map(|w| SearchQuery { text: Some((*w).into()), limit: 20, ..SearchQuery::default() }).collect();
    let mut filtered = Vec::new();
    for (i, w) in WORDS.iter().enumerate() {
        let mut q = SearchQuery { text: Some((*w).into()), limit: 20, ..SearchQuery::default() };
        match i % 4 {
            0 => q.min_risk = Some(Risk::High),
            1 => q.categories = vec![Category::Destructive, Category::Financial],
            2 => q.server = Some(format!("{}-{}", FAMILIES[i % FAMILIES.len()], i % servers.max(1))),
            _ => q.risks = vec![Risk::Low, Risk::Critical],
        }
        filtered.push(q);
    }
    filtered.push(SearchQuery { min_risk: Some(Risk::Critical), limit: 20, ..SearchQuery::default() });
    filtered.push(SearchQuery { categories: vec![Category::Financial], limit: 20, ..SearchQuery::default() });
    (plain, filtered)
}

fn main() {
    if let Ok(filter) = std::env::var("TOOLWARDEN_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let default = if benching { 250_000 } else { 2_000 };
    let total: usize = std::env::var("TOOLWARDEN_BENCH_TOOLS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let per_server = 100.min(total.max(1));
    let servers = total.div_ceil(per_server);
    let batch_servers: usize =
        std::env::var("TOOLWARDEN_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(250).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let classifier = Classifier::builtin();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // Baseline 1: classifying every tool, nothing else (generation time excluded).
    let mut classify_time = Duration::ZERO;
    let mut rng_copy = Rng(rng.0);
    for i in 0..servers {
        let snap = server(&mut rng_copy, i, per_server.min(total - i * per_server));
        let started = Instant::now();
        for t in &snap.tools {
            std::hint::black_box(classifier.classify(t));
        }
        classify_time += started.elapsed();
    }

    // The import: generation excluded, everything the catalogue does included (store, classify, index, merges).
    let mut catalogue = Catalogue::open(dir.path()).expect("open");
    let mut import_time = Duration::ZERO;
    let mut import_cpu = Duration::ZERO;
    let mut i = 0;
    while i < servers {
        let batch: Vec<ServerSnapshot> = (i..(i + batch_servers).min(servers))
            .map(|s| server(&mut rng, s, per_server.min(total - s * per_server)))
            .collect();
        let (started, cpu) = (Instant::now(), cpu_time("self").unwrap_or_default());
        let reports = catalogue.ingest_many(&batch, &classifier).expect("ingest");
        import_time += started.elapsed();
        import_cpu += cpu_time("self").unwrap_or_default().saturating_sub(cpu);
        assert_eq!(reports.len(), batch.len());
        i += batch_servers;
    }
    let (started, cpu) = (Instant::now(), cpu_time("self").unwrap_or_default());
    catalogue.close().expect("close");
    import_time += started.elapsed();
    import_cpu += cpu_time("self").unwrap_or_default().saturating_sub(cpu);

    let started = Instant::now();
    let mut catalogue = Catalogue::open(dir.path()).expect("reopen");
    let open_time = started.elapsed();
    let (_, tools) = catalogue.counts().expect("counts");
    assert_eq!(tools, total);

    let db = dir_size(&dir.path().join("catalogue.db"))
        + dir_size(&dir.path().join("catalogue.db-wal"))
        + dir_size(&dir.path().join("catalogue.db-shm"));
    let index = dir_size(&dir.path().join("index"));

    let (plain, filtered) = queries(servers);
    let rounds = if benching { 50 } else { 2 };
    latencies(&mut catalogue, &plain, 2); // warm the page cache and the searcher
    let plain_lat = latencies(&mut catalogue, &plain, rounds);
    let filtered_lat = latencies(&mut catalogue, &filtered, rounds);

    // Baseline 2: answering "delete" by scanning every stored tool.
    let started = Instant::now();
    let mut matches = 0usize;
    catalogue
        .for_each_tool(&[], |r| -> Result<(), toolwarden::store::StoreError> {
            let hay = format!("{} {}", r.tool.name, r.tool.description.as_deref().unwrap_or(""));
            matches += usize::from(hay.to_lowercase().contains("delete"));
            Ok(())
        })
        .expect("scan");
    let scan_time = started.elapsed();
    std::hint::black_box(matches);

    let console = console_latencies(dir.path(), &catalogue, if benching { 200 } else { 3 });
    // What the front page's facets cost in the library, without HTTP or HTML.
    let mut facet_lat: Vec<Duration> = (0..if benching { 100 } else { 2 })
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(
                catalogue.facets(&SearchQuery { limit: 50, ..SearchQuery::default() }, 25).expect("facets"),
            );
            started.elapsed()
        })
        .collect();
    facet_lat.sort();

    let p50 = percentile(&plain_lat, 0.5);
    println!("catalogue benchmark: {total} tools, {servers} servers, batches of {batch_servers} servers");
    println!(
        "import + classify + index: {:.2} s ({:.0} tools/s); classify alone (baseline): {:.2} s, so the catalogue costs {:.1}x classification",
        import_time.as_secs_f64(),
        total as f64 / import_time.as_secs_f64(),
        classify_time.as_secs_f64(),
        import_time.as_secs_f64() / classify_time.as_secs_f64().max(1e-9)
    );
    println!("import CPU time (all threads): {:.2} s", import_cpu.as_secs_f64());
    println!("peak memory (VmHWM): {:.0} MiB", vm_hwm_kib("self").unwrap_or(0) as f64 / 1024.0);
    println!("database: {:.1} MiB, index: {:.1} MiB", db as f64 / 1048576.0, index as f64 / 1048576.0);
    println!("open (with index check): {}", ms(open_time));
    println!(
        "search, words only ({} samples): p50 {}, p99 {}",
        plain_lat.len(),
        ms(p50),
        ms(percentile(&plain_lat, 0.99))
    );
    println!(
        "search, with filters ({} samples): p50 {}, p99 {}",
        filtered_lat.len(),
        ms(percentile(&filtered_lat, 0.5)),
        ms(percentile(&filtered_lat, 0.99))
    );
    println!(
        "full scan of the store for \"delete\" (baseline): {}, so an indexed search (p50) is {:.0}x faster",
        ms(scan_time),
        scan_time.as_secs_f64() / p50.as_secs_f64().max(1e-9)
    );
    println!(
        "facets of the whole catalogue (library): p50 {}, p99 {}",
        ms(percentile(&facet_lat, 0.5)),
        ms(percentile(&facet_lat, 0.99))
    );
    for (page, lat) in &console {
        println!(
            "console page {page} ({} samples, over loopback HTTP): p50 {}, p99 {} ({:.1}x the words-only search p50)",
            lat.len(),
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            percentile(lat, 0.5).as_secs_f64() / p50.as_secs_f64().max(1e-9)
        );
    }
}

/// The web console (`toolwarden serve`) over this catalogue: each catalogue page fetched `rounds` times by a
/// plain HTTP/1.1 client on loopback, one at a time; latencies from connect to the last byte.
fn console_latencies(dir: &std::path::Path, catalogue: &Catalogue, rounds: usize) -> Vec<(String, Vec<Duration>)> {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = toolwarden::web::Config {
        listen: addr,
        data_dir: dir.to_path_buf(),
        queue: toolwarden::approvals::Queue::open(dir, None, "toolwarden").expect("queue"),
        auth_tokens: None,
        allowed_hosts: Vec::new(),
        decider: "bench".into(),
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(toolwarden::web::serve(config)).expect("serve");
    });
    let get = |path: &str| -> (Duration, usize) {
        let started = Instant::now();
        let mut s = loop {
            match std::net::TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        let took = started.elapsed();
        assert!(body.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]));
        (took, body.len())
    };
    let first = catalogue.servers().expect("servers").into_iter().next().expect("a server").name;
    let tool = catalogue.tools(std::slice::from_ref(&first)).expect("tools")[0].tool.name.clone();
    let pages = [
        "/".to_string(),
        "/?q=delete".to_string(),
        "/?q=refund+payment&category=financial".to_string(),
        "/?risk=critical&risk=high".to_string(),
        format!("/server?name={first}"),
        format!("/tool?server={first}&name={tool}"),
        "/servers".to_string(),
    ];
    pages
        .iter()
        .map(|page| {
            get(page); // warm
            let mut lat: Vec<Duration> = (0..rounds).map(|_| get(page).0).collect();
            lat.sort();
            (page.clone(), lat)
        })
        .collect()
}
