//! Human units on the command line: `500ms`, `2m`, `10s` (a bare number is seconds); `10k`, `1.5M`.

use std::time::Duration;

/// Parses a duration: `250ms`, `10s`, `2m`, `1h30m`, or a bare number of seconds (`0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}` is not a non-negative duration"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 500ms, 10s, 2m"))
}

/// Parses a count: `1000`, `10k`, `1.5M`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G' | 'b' | 'B')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a count; use e.g. 500, 10k, 1.5M"))?;
    let v = v * mult;
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0) {
        return Err(format!("`{s}` is not a whole non-negative count"));
    }
    Ok(v as u64)
}

/// A count that fits in u32.
pub fn parse_count_u32(s: &str) -> Result<u32, String> {
    let v = parse_count(s)?;
    u32::try_from(v).map_err(|_| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
        assert_eq!(parse_count("10k").unwrap(), 10_000);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_count("1_000").unwrap(), 1_000);
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("lots").is_err());
    }
}
