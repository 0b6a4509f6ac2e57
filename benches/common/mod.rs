//! Helpers the catalogue benches share: `/proc` readings, sizes on disk, latency percentiles.

use std::path::Path;
use std::time::{Duration, Instant};

use toolwarden::catalogue::{Catalogue, SearchQuery};

/// Peak resident memory (VmHWM, KiB) of a process: `"self"` or a pid.
pub(crate) fn vm_hwm_kib(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads) of a process so far: on a machine shared with other work, wall time
/// alone says little. Linux reports it in clock ticks of 1/100 s on every mainstream architecture.
pub(crate) fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are plain.
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    Some(Duration::from_millis((fields.get(11)? + fields.get(12)?) * 10))
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return std::fs::metadata(path).map_or(0, |m| m.len()) };
    entries.filter_map(Result::ok).map(|e| dir_size(&e.path())).sum()
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Every query `rounds` times through the library, sorted latencies.
pub(crate) fn latencies(catalogue: &mut Catalogue, queries: &[SearchQuery], rounds: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(queries.len() * rounds);
    for _ in 0..rounds {
        for q in queries {
            let started = Instant::now();
            std::hint::black_box(catalogue.search(q).expect("search"));
            out.push(started.elapsed());
        }
    }
    out.sort();
    out
}
