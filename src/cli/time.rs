//! Durations and points in time as people type them: `90`, `30s`, `10m`, `2h`, `1d`, or an RFC 3339 time.

use std::time::Duration;

use super::UsageError;

/// `90` (seconds), `30s`, `10m`, `2h`, `1d`.
pub(crate) fn parse_duration(flag: &str, text: &str) -> Result<Duration, UsageError> {
    let bad = || UsageError(format!("{flag} {text:?}: expected a duration such as 90, 30s, 10m, 2h or 1d"));
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(bad()),
    };
    let secs = n * scale;
    if !(secs > 0.0 && secs.is_finite() && secs < 1e10) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An RFC 3339 time, or a duration meaning "that long ago"; returned in the store's time format.
pub(crate) fn parse_since(text: &str) -> Result<String, UsageError> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(crate::store::format_time(at));
    }
    let ago = parse_duration("--since", text).map_err(|_| {
        UsageError(format!("--since {text:?}: expected an RFC 3339 time (2026-01-31T12:00:00Z) or 10m, 2h, 1d"))
    })?;
    let ago = jiff::SignedDuration::try_from(ago).map_err(|e| UsageError(format!("--since {text:?}: {e}")))?;
    let at = jiff::Timestamp::now().checked_sub(ago).unwrap_or(jiff::Timestamp::MIN);
    Ok(crate::store::format_time(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("--for", "10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("--for", "90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("--for", "1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("--for", "10y").is_err());
        assert!(parse_duration("--for", "-1m").is_err());
        assert_eq!(parse_since("2026-01-31T12:00:00+01:00").unwrap(), "2026-01-31T11:00:00.000Z");
        assert!(parse_since("2h").unwrap() < crate::store::format_time(jiff::Timestamp::now()));
        assert!(parse_since("yesterday").is_err());
    }
}
