//! A catalogue the size of the largest public MCP indexes, built the way a user builds one: `toolwarden import
//! DIR` on a folder of captures, run as its own process.
//!
//! `cargo bench --bench import` writes synthetic captures shaped like the real corpus (`data/corpus/captures`:
//! every synthetic server is a run of 25 consecutive tools of one real server, each definition made distinct by a
//! product name and a sentence drawn from the corpus' own vocabulary) at each size of `TOOLWARDEN_BENCH_SIZES`
//! (default `10000,100000,250000,1000000` tools, the largest one 40,000 servers), and for each size reports: wall and CPU time
//! of the import, the importer's peak resident memory (VmHWM, read from `/proc` while it runs), database and index
//! size on disk, re-importing the same folder, `toolwarden stats` as a command, and search latency p50/p99 with and
//! without filters through the library. Baseline measured in the same run: `serde_json` parsing the same capture
//! files (the floor for any importer that reads them).
//!
//! Under `cargo test` (no `--bench` argument) it runs one small size once, as a smoke test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use toolwarden::catalogue::{Catalogue, SearchQuery};
use toolwarden::model::{Category, Risk};

mod common;
use common::{cpu_time, dir_size, latencies, ms, percentile, vm_hwm_kib};

/// Tools per synthetic server: 40,000 servers make a million tools.
const PER_SERVER: usize = 25;

/// Product names are two of these syllables and a number, so that every server's definitions are its own.
const SYLLABLES: &[&str] = &["ka", "lo", "mi", "tor", "ven", "dra", "plex", "qu", "zen", "rho", "sta", "nim"];

/// A small deterministic generator (xorshift), so every run builds the same folder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The real corpus: each server's tools, and every sentence of every description (the vocabulary).
fn corpus() -> (Vec<Vec<Value>>, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus/captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("data/corpus/captures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut servers = Vec::new();
    let mut sentences = Vec::new();
    for file in files {
        let capture: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("capture")).expect("json");
        let Some(tools) = capture.get("tools").and_then(Value::as_array) else { continue };
        for tool in tools {
            let description = tool.get("description").and_then(Value::as_str).unwrap_or("");
            sentences.extend(
                description.split(". ").map(str::trim).filter(|s| (20..200).contains(&s.len())).map(String::from),
            );
        }
        if !tools.is_empty() {
            servers.push(tools.clone());
        }
    }
    (servers, sentences)
}

/// Write `servers` synthetic capture files into `dir`; returns the bytes written.
fn generate(dir: &Path, servers: usize, real: &[Vec<Value>], sentences: &[String]) -> u64 {
    std::fs::create_dir_all(dir).expect("captures dir");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut bytes = 0;
    for i in 0..servers {
        let source = &real[rng.below(real.len())];
        let start = rng.below(source.len());
        let product =
            format!("{}{}{}", SYLLABLES[rng.below(SYLLABLES.len())], SYLLABLES[rng.below(SYLLABLES.len())], i);
        let mut names = std::collections::HashSet::new();
        let tools: Vec<Value> = (0..PER_SERVER)
            .map(|k| {
                let mut tool = source[(start + k) % source.len()].clone();
                let name = tool.get("name").and_then(Value::as_str).unwrap_or("tool").to_string();
                // A server shorter than 25 tools wraps around: the repeats get a suffix, as paged copies would.
                let name = if names.insert(name.clone()) { name } else { format!("{name}_{k}") };
                names.insert(name.clone());
                let description = tool.get("description").and_then(Value::as_str).unwrap_or("").to_string();
                let extra = &sentences[rng.below(sentences.len())];
                tool["name"] = Value::String(name);
                tool["description"] = Value::String(format!("{description} ({product}) {extra}."));
                tool
            })
            .collect();
        let text = serde_json::to_string(&serde_json::json!({ "tools": tools })).expect("serialize");
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("{product}.json")), text).expect("write capture");
    }
    bytes
}

/// What one run of the binary cost.
struct Run {
    wall: Duration,
    cpu: Duration,
    peak_kib: u64,
}

/// Run `toolwarden ARGS` with the data directory `data`, sampling its peak memory and CPU time until it exits.
fn toolwarden(data: &Path, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_toolwarden"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start toolwarden");
    let pid = child.id();
    let (mut peak_kib, mut cpu) = (0, Duration::ZERO);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        // VmHWM is the high-water mark: the last sample before exit is the peak but for a final spike.
        peak_kib = vm_hwm_kib(&pid.to_string()).unwrap_or(peak_kib);
        cpu = cpu_time(&pid.to_string()).unwrap_or(cpu);
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    if !status.success() {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err).ok();
        panic!("toolwarden {args:?} failed: {status}\n{err}");
    }
    Run { wall, cpu, peak_kib }
}

/// `serde_json` reading every capture of the folder into values: the floor for reading the input at all.
fn parse_baseline(dir: &Path) -> Duration {
    let started = Instant::now();
    for entry in std::fs::read_dir(dir).expect("captures").filter_map(Result::ok) {
        let text = std::fs::read_to_string(entry.path()).expect("capture");
        std::hint::black_box(serde_json::from_str::<Value>(&text).expect("json"));
    }
    started.elapsed()
}

const WORDS: &[&str] = &[
    "delete",
    "create issue",
    "list repositories",
    "run query",
    "send message",
    "deploy",
    "customer",
    "upload file",
    "refund",
    "get user",
    "search",
    "browser click",
    "calendar event",
    "transfer",
    "pull request",
    "kubernetes pod",
];

fn queries() -> (Vec<SearchQuery>, Vec<SearchQuery>) {
    let plain = WORDS.iter().map(|w| SearchQuery { text: Some((*w).into()), limit: 20, ..SearchQuery::default() });
    let filtered = WORDS.iter().enumerate().map(|(i, w)| {
        let mut q = SearchQuery { text: Some((*w).into()), limit: 20, ..SearchQuery::default() };
        match i % 3 {
            0 => q.min_risk = Some(Risk::High),
            1 => q.categories = vec![Category::Destructive, Category::Financial],
            _ => q.risks = vec![Risk::Low, Risk::Critical],
        }
        q
    });
    let bare = [
        SearchQuery { min_risk: Some(Risk::Critical), limit: 20, ..SearchQuery::default() },
        SearchQuery { categories: vec![Category::Financial], limit: 20, ..SearchQuery::default() },
    ];
    (plain.collect(), filtered.chain(bare).collect())
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("TOOLWARDEN_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| if benching { vec![10_000, 100_000, 250_000, 1_000_000] } else { vec![500] });
    let (real, sentences) = corpus();
    let tmp = tempfile::tempdir().expect("temp dir");
    // TOOLWARDEN_BENCH_KEEP=DIR keeps the generated captures and catalogues there, for profiling one import.
    let keep = std::env::var_os("TOOLWARDEN_BENCH_KEEP").map(PathBuf::from);
    let root = keep.as_deref().unwrap_or(tmp.path());
    println!(
        "import benchmark: `toolwarden import DIR` as a process, {PER_SERVER} tools per server, shapes from {} real servers",
        real.len()
    );
    for total in sizes {
        let servers = total.div_ceil(PER_SERVER);
        let captures = root.join(format!("captures-{total}"));
        let data = root.join(format!("data-{total}"));
        let bytes = generate(&captures, servers, &real, &sentences);
        let parse = parse_baseline(&captures);
        let dir = captures.to_str().expect("utf-8 temp path");

        let first = toolwarden(&data, &["import", dir]);
        let again = toolwarden(&data, &["import", dir]);
        let stats = toolwarden(&data, &["stats"]);
        let db = ["catalogue.db", "catalogue.db-wal", "catalogue.db-shm"]
            .iter()
            .map(|f| dir_size(&data.join(f)))
            .sum::<u64>();
        let index = dir_size(&data.join("index"));

        let mut catalogue = Catalogue::open(&data).expect("open");
        let (_, tools) = catalogue.counts().expect("counts");
        assert_eq!(tools, servers * PER_SERVER, "every generated tool is in the catalogue");
        let started = Instant::now();
        std::hint::black_box(catalogue.stats().expect("stats"));
        let stats_lib = started.elapsed();
        let (plain, filtered) = queries();
        let rounds = if benching { 30 } else { 1 };
        latencies(&mut catalogue, &plain, 1);
        let plain_lat = latencies(&mut catalogue, &plain, rounds);
        let filtered_lat = latencies(&mut catalogue, &filtered, rounds);
        drop(catalogue);

        println!("\n{tools} tools, {servers} servers, {:.0} MiB of captures", bytes as f64 / 1048576.0);
        println!(
            "  import: {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB; {:.0} tools/s; serde_json parsing the files alone (baseline): {:.2} s, so the import costs {:.1}x parsing",
            first.wall.as_secs_f64(),
            first.cpu.as_secs_f64(),
            first.peak_kib as f64 / 1024.0,
            tools as f64 / first.wall.as_secs_f64(),
            parse.as_secs_f64(),
            first.wall.as_secs_f64() / parse.as_secs_f64().max(1e-9),
        );
        println!(
            "  re-import (nothing changed): {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB ({:.2}x the first import)",
            again.wall.as_secs_f64(),
            again.cpu.as_secs_f64(),
            again.peak_kib as f64 / 1024.0,
            again.wall.as_secs_f64() / first.wall.as_secs_f64(),
        );
        println!(
            "  on disk: database {:.0} MiB + index {:.0} MiB = {:.2} GiB",
            db as f64 / 1048576.0,
            index as f64 / 1048576.0,
            (db + index) as f64 / 1073741824.0
        );
        println!(
            "  stats: {} as a command (process start and open included), {} in the library",
            ms(stats.wall),
            ms(stats_lib)
        );
        println!(
            "  search, words only: p50 {}, p99 {}; with filters: p50 {}, p99 {} ({} and {} samples)",
            ms(percentile(&plain_lat, 0.5)),
            ms(percentile(&plain_lat, 0.99)),
            ms(percentile(&filtered_lat, 0.5)),
            ms(percentile(&filtered_lat, 0.99)),
            plain_lat.len(),
            filtered_lat.len(),
        );
        if keep.is_none() {
            std::fs::remove_dir_all(&captures).ok();
            std::fs::remove_dir_all(&data).ok();
        }
    }
}
