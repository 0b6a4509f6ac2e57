//! Crawl benchmark: the real servers installed by `scripts/test-deps.sh`, crawled sequentially and with
//! concurrency 4 in one run, and the crawler's own overhead per server beyond the server's start-up.
//!
//! The baseline for the overhead is a minimal blocking JSON-RPC exchange (spawn, initialize, initialized,
//! tools/list, kill) written here with std only, run against the same servers in the same run: what any
//! client must pay for the server to start and answer. `crawler - baseline` is what our client adds
//! (rmcp session, async runtime, process group, raw-JSON tap, conversion).
//!
//! The sandbox column crawls each server under `--sandbox`'s bubblewrap too (when bubblewrap works here):
//! `sandboxed - crawler` is what the sandbox costs per server.
//!
//! Run: `source scripts/test-deps.sh && cargo bench --bench crawl` (set `CRAWL_BENCH_ROUNDS` to change the
//! number of rounds, default 5; medians are reported).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use toolwarden::crawl::{self, CrawlOptions, Job};
use toolwarden::model::{ServerSpec, Transport};

fn servers() -> Vec<ServerSpec> {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            eprintln!("{name} is not set: run `source scripts/test-deps.sh` first");
            std::process::exit(2)
        })
    };
    let scratch = std::env::temp_dir().join("toolwarden-crawl-bench");
    std::fs::create_dir_all(&scratch).unwrap();
    let stdio = |name: &str, command: String, args: Vec<String>, env: Vec<(&str, String)>| ServerSpec {
        name: name.into(),
        transport: Transport::Stdio {
            command,
            args,
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>(),
            cwd: None,
        },
    };
    vec![
        // Our own demo server starts in a few milliseconds, so its row measures the crawler's overhead
        // with almost no start-up noise around it.
        stdio("demo", env!("CARGO_BIN_EXE_toolwarden").to_string(), vec!["demo-server".into()], vec![]),
        stdio("everything", var("TOOLWARDEN_TEST_EVERYTHING"), vec!["stdio".into()], vec![]),
        stdio("filesystem", var("TOOLWARDEN_TEST_FILESYSTEM"), vec![scratch.display().to_string()], vec![]),
        stdio(
            "memory",
            var("TOOLWARDEN_TEST_MEMORY"),
            vec![],
            vec![("MEMORY_FILE_PATH", scratch.join("memory.jsonl").display().to_string())],
        ),
        stdio("time", var("TOOLWARDEN_TEST_TIME"), vec!["--local-timezone".into(), "UTC".into()], vec![]),
    ]
}

/// The baseline: the least a client can do to get the tool list, blocking, std only. Returns the time to the
/// `initialize` answer and the total.
fn raw_listing(spec: &ServerSpec) -> (Duration, Duration) {
    let Transport::Stdio { command, args, env, .. } = &spec.transport else { unreachable!() };
    let started = Instant::now();
    let mut child = Command::new(command)
        .args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut answer = |id: u32| {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "{} closed stdout", spec.name);
            if line.contains(&format!("\"id\":{id}")) {
                return;
            }
        }
    };
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"bench","version":"1"}}}}}}"#).unwrap();
    answer(1);
    let initialized = started.elapsed();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#).unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{}}}}"#).unwrap();
    answer(2);
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    (initialized, elapsed)
}

/// Total time, and per server (elapsed, time to an initialized session).
type PerServer = Vec<(Duration, Duration)>;

fn crawl_all(runtime: &tokio::runtime::Runtime, specs: &[ServerSpec], concurrency: usize) -> (Duration, PerServer) {
    let options = CrawlOptions { concurrency, timeout: Duration::from_secs(60), retries: 0, sandbox: None };
    let started = Instant::now();
    let mut per_server = vec![(Duration::ZERO, Duration::ZERO); specs.len()];
    runtime.block_on(async {
        let mut rx = crawl::crawl_all(specs.iter().cloned().map(Job::from).collect(), options);
        while let Some(result) = rx.recv().await {
            let listing = match &result.outcome {
                Ok(listing) => listing,
                Err(e) => panic!("{}: {e}", result.spec.name),
            };
            per_server[result.index] = (result.elapsed, listing.startup);
        }
    });
    (started.elapsed(), per_server)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must not run the servers.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds: usize = std::env::var("CRAWL_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let specs = servers();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Warm-up: the first start of node or python pays for disk caches.
    crawl_all(&runtime, &specs, 1);
    let (mut sequential, mut concurrent) = (Vec::new(), Vec::new());
    let mut baseline: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); specs.len()];
    let mut crawler: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); specs.len()];
    let mut sandboxed: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); specs.len()];
    let sandbox = match toolwarden::sandbox::Sandbox::new(toolwarden::sandbox::Limits::default()) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            eprintln!("no sandbox column: {e}");
            None
        }
    };
    for round in 0..rounds {
        // Baseline and crawler alternate per server, in swapped order every round, so machine noise and
        // warm caches hit both alike.
        for (i, spec) in specs.iter().enumerate() {
            let crawl = |sandboxed: bool| {
                let sandbox = if sandboxed { sandbox.clone() } else { None };
                let options = CrawlOptions { concurrency: 1, timeout: Duration::from_secs(60), retries: 0, sandbox };
                let job = Job { spec: spec.clone(), sandboxed };
                let result = runtime.block_on(crawl::crawl_one(i, job, &options));
                let listing = result.outcome.unwrap_or_else(|e| panic!("{}: {e}", spec.name));
                (result.elapsed, listing.startup)
            };
            if round % 2 == 0 {
                baseline[i].push(raw_listing(spec));
                crawler[i].push(crawl(false));
                if sandbox.is_some() {
                    sandboxed[i].push(crawl(true));
                }
            } else {
                if sandbox.is_some() {
                    sandboxed[i].push(crawl(true));
                }
                crawler[i].push(crawl(false));
                baseline[i].push(raw_listing(spec));
            }
        }
        sequential.push(crawl_all(&runtime, &specs, 1).0);
        concurrent.push(crawl_all(&runtime, &specs, 4).0);
    }
    let seq = median(sequential);
    let conc = median(concurrent);
    println!("crawl benchmark: {} servers, {rounds} rounds, medians", specs.len());
    println!("  sequential (concurrency 1): {:8.1} ms", ms(seq));
    println!("  concurrency 4:              {:8.1} ms", ms(conc));
    println!("  ratio concurrent/sequential: {:.2}", conc.as_secs_f64() / seq.as_secs_f64());
    println!("  per server: baseline (raw exchange) vs crawler, overhead = crawler - baseline");
    let mut overheads = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let b = median(baseline[i].iter().map(|x| x.1).collect());
        let b_init = median(baseline[i].iter().map(|x| x.0).collect());
        let c = median(crawler[i].iter().map(|x| x.0).collect());
        let c_init = median(crawler[i].iter().map(|x| x.1).collect());
        let overhead = ms(c) - ms(b);
        overheads.push(overhead);
        println!(
            "    {:<12} baseline {:7.1} ms (initialized at {:6.1})   crawler {:7.1} ms (initialized at {:6.1})   overhead {:+6.1} ms",
            spec.name,
            ms(b),
            ms(b_init),
            ms(c),
            ms(c_init),
            overhead
        );
    }
    println!("  mean overhead per server: {:+.1} ms", overheads.iter().sum::<f64>() / overheads.len() as f64);
    if sandbox.is_some() {
        println!("  the sandbox: crawler vs crawler --sandbox, per server");
        let mut costs = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let c = median(crawler[i].iter().map(|x| x.0).collect());
            let s = median(sandboxed[i].iter().map(|x| x.0).collect());
            costs.push(ms(s) - ms(c));
            println!(
                "    {:<12} crawler {:7.1} ms   sandboxed {:7.1} ms   cost {:+6.1} ms ({:.2}x)",
                spec.name,
                ms(c),
                ms(s),
                ms(s) - ms(c),
                s.as_secs_f64() / c.as_secs_f64()
            );
        }
        println!("  mean sandbox cost per server: {:+.1} ms", costs.iter().sum::<f64>() / costs.len() as f64);
    }
}
