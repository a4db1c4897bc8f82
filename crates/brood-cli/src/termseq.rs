//! `--termseq`: how brood stops a job, as GNU parallel's `--term-seq`.
//!
//! `TERM,200,TERM,100,TERM,50,KILL,25` sends SIGTERM to the job's process
//! group, waits up to 200 ms for the job to end, sends SIGTERM again, and
//! so on; the job may end at any point and the rest is skipped. If it
//! outlives the whole sequence, brood sends SIGKILL: a stop always ends.

use brood::Signal;
use std::time::Duration;

/// The default, as in GNU parallel.
pub const DEFAULT: &str = "TERM,200,TERM,100,TERM,50,KILL,25";

/// A parsed termination sequence: signals, each with its wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TermSeq(pub Vec<(Signal, Duration)>);

impl TermSeq {
    /// Parses `SIG,MS,SIG,MS,...`; a missing last wait is 0.
    pub fn parse(text: &str) -> Result<TermSeq, String> {
        let bad = |why: String| format!("invalid --termseq {text:?}: {why}");
        let parts: Vec<&str> = text.split(',').collect();
        let mut steps = Vec::new();
        for pair in parts.chunks(2) {
            let sig =
                signal(pair[0]).ok_or_else(|| bad(format!("unknown signal {:?}", pair[0])))?;
            let wait = match pair.get(1) {
                None => Duration::ZERO,
                Some(ms) => Duration::from_millis(
                    ms.trim()
                        .parse()
                        .map_err(|_| bad(format!("{ms:?} is not a number of milliseconds")))?,
                ),
            };
            steps.push((sig, wait));
        }
        Ok(TermSeq(steps))
    }

    /// `--grace DUR`: SIGTERM, DUR, SIGKILL.
    pub fn grace(d: Duration) -> TermSeq {
        TermSeq(vec![
            (Signal::TERM, d),
            (Signal::KILL, Duration::from_millis(25)),
        ])
    }

    /// The whole sequence's length.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|(_, d)| *d).sum()
    }
}

fn signal(name: &str) -> Option<Signal> {
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then(|| Signal::from_raw(n));
    }
    let bare = name
        .strip_prefix("SIG")
        .unwrap_or(name)
        .to_ascii_uppercase();
    Some(match bare.as_str() {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "TERM" => Signal::TERM,
        "CONT" => Signal::CONT,
        "STOP" => Signal::STOP,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default() {
        let t = TermSeq::parse(DEFAULT).unwrap();
        assert_eq!(t.0.len(), 4);
        assert_eq!(t.0[0], (Signal::TERM, Duration::from_millis(200)));
        assert_eq!(t.0[3], (Signal::KILL, Duration::from_millis(25)));
        assert_eq!(t.total(), Duration::from_millis(375));
    }

    #[test]
    fn forms() {
        assert_eq!(
            TermSeq::parse("SIGINT,10,9").unwrap().0,
            [
                (Signal::INT, Duration::from_millis(10)),
                (Signal::KILL, Duration::ZERO)
            ]
        );
        assert!(TermSeq::parse("FOO,1").is_err());
        assert!(TermSeq::parse("TERM,x").is_err());
    }
}
