//! Durations on the command line: plain seconds (`2.5`) as GNU parallel
//! takes them, or humantime's spans (`500ms`, `1h30m`, `2d`).

use std::time::Duration;

/// Parses a duration: a non-negative decimal number of seconds, or a
/// humantime span such as `500ms`, `30s`, `1h30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad =
        |why: &str| format!("invalid duration {text:?} ({why}; expected e.g. 2.5, 500ms, 1h30m)");
    let plain = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if plain {
        let secs: f64 = text.parse().map_err(|_| bad("not a number"))?;
        return Duration::try_from_secs_f64(secs).map_err(|_| bad("out of range"));
    }
    humantime::parse_duration(text).map_err(|e| bad(&e.to_string()))
}

/// Formats a duration for people: `850ms`, `2.31s`, `3m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.2}s")
    } else if secs < 3600.0 {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let s = d.as_secs();
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_forms() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86400)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "-1s", "1.2.3", "inf", "NaN", "1x", "soon", "1e3"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn human_format() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(2310)), "2.31s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
        assert_eq!(human(Duration::from_secs(3720)), "1h02m");
    }
}
