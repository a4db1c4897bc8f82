//! Input sources: the `:::` words, files (`::::`, `-a`) and stdin, split
//! into records at the delimiter (`-d`, `-0`, newline by default) and into
//! columns at `--colsep`.
//!
//! A file is read whole before any job starts, so an unreadable file is an
//! error with no job run. A lone stdin source is read by a thread as
//! records arrive, so jobs start while a slow producer is still writing.

use crate::separators::SourceSpec;
use regex::bytes::Regex;
use std::io::{self, BufRead, IsTerminal, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tokio::sync::mpsc;

/// One input record: its columns (one without `--colsep`).
pub type Record = Vec<Vec<u8>>;

/// How records are cut out of a file or stdin.
#[derive(Clone, Debug)]
pub struct Splitter {
    /// The record delimiter.
    pub delimiter: Vec<u8>,
    /// The column separator, if any.
    pub colsep: Option<Regex>,
}

impl Default for Splitter {
    fn default() -> Splitter {
        Splitter {
            delimiter: b"\n".to_vec(),
            colsep: None,
        }
    }
}

impl Splitter {
    /// A record from its raw bytes: split into columns, each trimmed of
    /// surrounding blanks (`--colsep` implies GNU parallel's `--trim rl`).
    pub fn record(&self, raw: Vec<u8>) -> Record {
        match &self.colsep {
            None => vec![raw],
            Some(re) => re.split(&raw).map(|c| c.trim_ascii().to_vec()).collect(),
        }
    }

    /// Splits a whole file's bytes into records. A final record without a
    /// delimiter counts; a trailing delimiter does not start an empty one.
    pub fn records(&self, bytes: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match find(rest, &self.delimiter) {
                Some(i) => {
                    out.push(self.record(rest[..i].to_vec()));
                    rest = &rest[i + self.delimiter.len()..];
                }
                None => {
                    out.push(self.record(rest.to_vec()));
                    break;
                }
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return hay.iter().position(|&b| b == needle[0]);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a `-d` delimiter: one character or a C-style escape (`\n`,
/// `\t`, `\0`, `\\`, `\xHH`, octal `\NNN`, ...), as GNU parallel does.
pub fn parse_delimiter(text: &str) -> Result<Vec<u8>, String> {
    let bad = || {
        format!(
            "invalid delimiter {text:?}: expected a character or an escape like \\t, \\0, \\x1f"
        )
    };
    let bytes = text.as_bytes();
    let out = if let Some(esc) = text.strip_prefix('\\') {
        match esc {
            "n" => vec![b'\n'],
            "t" => vec![b'\t'],
            "r" => vec![b'\r'],
            "0" => vec![0],
            "\\" => vec![b'\\'],
            "a" => vec![7],
            "b" => vec![8],
            "f" => vec![12],
            "v" => vec![11],
            _ if esc.starts_with('x') && esc.len() > 1 => {
                vec![u8::from_str_radix(&esc[1..], 16).map_err(|_| bad())?]
            }
            _ if !esc.is_empty() && esc.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {
                vec![u8::from_str_radix(esc, 8).map_err(|_| bad())?]
            }
            _ => return Err(bad()),
        }
    } else {
        bytes.to_vec()
    };
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Reads one source whole. Errors name the file.
pub fn read_source(spec: &SourceSpec, splitter: &Splitter) -> Result<Vec<Record>, String> {
    match spec {
        SourceSpec::Args(words) => Ok(words
            .iter()
            .map(|w| splitter.record(w.as_bytes().to_vec()))
            .collect()),
        SourceSpec::File(path) if is_stdin(path) => {
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read inputs from stdin: {e}"))?;
            Ok(splitter.records(&bytes))
        }
        SourceSpec::File(path) => match std::fs::read(path) {
            Ok(bytes) => Ok(splitter.records(&bytes)),
            Err(e) => Err(format!("cannot read input file {}: {e}", path.display())),
        },
    }
}

/// Whether a file source means stdin (`-`).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Records read from stdin by a thread, as they arrive. `hint`: say so
/// when stdin is a terminal (not with `--quiet`).
pub fn stream_stdin(splitter: Splitter, hint: bool) -> mpsc::UnboundedReceiver<io::Result<Record>> {
    let (tx, rx) = mpsc::unbounded_channel();
    if hint && io::stdin().is_terminal() {
        crate::say(format_args!(
            "brood: reading inputs from the terminal, one per line (Ctrl-D ends)\n"
        ));
    }
    std::thread::Builder::new()
        .name("brood-stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut lock = stdin.lock();
            let last = *splitter.delimiter.last().expect("delimiter not empty");
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let mut chunk = Vec::new();
                match lock.read_until(last, &mut chunk) {
                    Ok(0) => break,
                    Ok(_) => pending.extend_from_slice(&chunk),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
                // A multi-byte delimiter ends a record only when all of it
                // has arrived.
                if pending.ends_with(&splitter.delimiter) {
                    pending.truncate(pending.len() - splitter.delimiter.len());
                    if tx
                        .send(Ok(splitter.record(std::mem::take(&mut pending))))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if !pending.is_empty() {
                let _ = tx.send(Ok(splitter.record(pending)));
            }
        })
        .expect("spawning the stdin reader thread");
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(s: &Splitter, b: &[u8]) -> Vec<Vec<String>> {
        s.records(b)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| String::from_utf8(c).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lines() {
        let s = Splitter::default();
        assert!(recs(&s, b"").is_empty());
        assert_eq!(recs(&s, b"a\nb\n"), [["a"], ["b"]]);
        assert_eq!(recs(&s, b"a\nb"), [["a"], ["b"]]);
        assert_eq!(recs(&s, b"a\n\nb\n"), [["a"], [""], ["b"]]);
    }

    #[test]
    fn delimiters_and_columns() {
        assert_eq!(parse_delimiter("\\0").unwrap(), [0]);
        assert_eq!(parse_delimiter(",").unwrap(), b",");
        assert_eq!(parse_delimiter("\\x1f").unwrap(), [0x1f]);
        assert_eq!(parse_delimiter("\\012").unwrap(), [b'\n']);
        assert!(parse_delimiter("\\q").is_err());
        assert!(parse_delimiter("").is_err());
        let s = Splitter {
            delimiter: vec![0],
            colsep: Some(Regex::new(",+").unwrap()),
        };
        assert_eq!(recs(&s, b"a, b,,c\0d\0"), [vec!["a", "b", "c"], vec!["d"]]);
    }
}
