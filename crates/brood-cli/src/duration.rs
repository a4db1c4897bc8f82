//! Parsing durations such as `500ms`, `2s`, `1.5s`, `1m`, `1h` or `3`
//! (a plain number is seconds).

use std::time::Duration;

/// Parses a duration: a non-negative decimal number (digits, at most one
/// `.`) followed by an optional unit: `ms`, `s`, `m` or `h`. No unit means
/// seconds. Exponents, signs, `inf` and `NaN` are rejected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 500ms, 2s, 1.5s, 1m)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let dots = number.len() - digits;
    if digits == 0 || dots > 1 {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
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
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5."), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "s",
            "ms",
            "-1s",
            "+1s",
            "1.2.3s",
            "1e3",
            "inf",
            "NaN",
            "1 s",
            "1sec",
            "1d",
            "1S",
            " 1s",
            "1s ",
            ".",
            "..s",
            "1_000ms",
            "99999999999999999999999h",
        ] {
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
