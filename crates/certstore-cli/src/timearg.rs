//! Times and durations as operators type them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant, unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At(pub i64);

/// Seconds since the unix epoch now.
pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `2027-01-31T00:00:00Z` (RFC 3339, any offset), `@1800000000`, `+30d`, `-1h`.
pub fn parse_at(text: &str) -> Result<At, String> {
    if let Some(secs) = text.strip_prefix('@') {
        return secs
            .parse::<i64>()
            .map(At)
            .map_err(|_| format!("{text:?}: expected @ followed by unix seconds"));
    }
    for (sign, factor) in [('+', 1i64), ('-', -1i64)] {
        if let Some(rest) = text.strip_prefix(sign) {
            let d = parse_duration(rest)?;
            let secs = i64::try_from(d.as_secs()).map_err(|_| format!("{text:?}: too far"))?;
            return Ok(At(now_unix() + factor * secs));
        }
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| At(t.unix_timestamp()))
        .map_err(|e| {
            format!("{text:?}: expected RFC 3339 (2027-01-31T00:00:00Z), @UNIX_SECONDS or +DURATION ({e})")
        })
}

/// A positive duration with one unit: `500ms`, `10s`, `5m`, `2h`, `30d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: missing unit (ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number followed by ms, s, m, h or d"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (ms, s, m, h or d)"
            ));
        }
    };
    let millis = n
        .checked_mul(millis_per_unit)
        .ok_or_else(|| format!("{text:?}: too long"))?;
    if millis == 0 {
        return Err(format!("{text:?}: must be greater than zero"));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "10", "s", "1.5s", "0s", "10w", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants() {
        assert_eq!(parse_at("@0"), Ok(At(0)));
        assert_eq!(parse_at("2000-02-29T00:00:00Z"), Ok(At(951_782_400)));
        assert_eq!(parse_at("2000-02-29T01:00:00+01:00"), Ok(At(951_782_400)));
        let At(later) = parse_at("+1d").unwrap();
        let At(earlier) = parse_at("-1d").unwrap();
        // The two "now"s may straddle a second.
        assert!((later - earlier - 2 * 86_400).abs() <= 1);
        assert!(parse_at("tomorrow").is_err());
        assert!(parse_at("@x").is_err());
    }
}
