//! The `:::` pre-pass: splits `brood run`'s words into what clap parses
//! (options and the command) and GNU parallel's input sources.
//!
//! ```text
//! brood run [OPTIONS] COMMAND... ::: a b ::: 1 2 :::: FILE... :::+ x y ::::+ FILE
//! ```
//!
//! - `::: ARGS...` is one source made of the words that follow it.
//! - `:::: FILES...` is one source per file (`-` is stdin).
//! - `:::+` and `::::+` are the same, linked to the source before them:
//!   paired line by line instead of combined with it; the shortest decides
//!   the length.
//!
//! The first separator ends the command: clap never sees the sources, so a
//! source word such as `-x` is never taken for an option. A separator is
//! recognised only as a whole word.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Where one input source's values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// The words after `:::`.
    Args(Vec<OsString>),
    /// A file (`::::` or `-a`); `-` is stdin.
    File(PathBuf),
}

/// One input source as written on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceArg {
    /// Its values.
    pub spec: SourceSpec,
    /// Linked to the previous source (`:::+`, `::::+`).
    pub linked: bool,
}

/// `brood run`'s words, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// Everything before the first separator, for clap.
    pub front: Vec<OsString>,
    /// The sources after it, in order.
    pub sources: Vec<SourceArg>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    Args { linked: bool },
    Files { linked: bool },
}

fn separator(word: &OsStr) -> Option<Sep> {
    match word.to_str()? {
        ":::" => Some(Sep::Args { linked: false }),
        ":::+" => Some(Sep::Args { linked: true }),
        "::::" => Some(Sep::Files { linked: false }),
        "::::+" => Some(Sep::Files { linked: true }),
        _ => None,
    }
}

/// Splits `words` (the words after `run`).
pub fn split(words: &[OsString]) -> Result<Split, String> {
    let Some(first) = words.iter().position(|w| separator(w).is_some()) else {
        return Ok(Split {
            front: words.to_vec(),
            sources: Vec::new(),
        });
    };
    let mut sources = Vec::new();
    let mut i = first;
    while i < words.len() {
        let sep = separator(&words[i]).expect("i is at a separator");
        let end = words[i + 1..]
            .iter()
            .position(|w| separator(w).is_some())
            .map_or(words.len(), |p| i + 1 + p);
        let values = &words[i + 1..end];
        match sep {
            Sep::Args { linked } => sources.push(SourceArg {
                spec: SourceSpec::Args(values.to_vec()),
                linked,
            }),
            Sep::Files { linked } => {
                if values.is_empty() {
                    return Err(format!(
                        "{} needs at least one file name after it",
                        words[i].to_string_lossy()
                    ));
                }
                for (n, file) in values.iter().enumerate() {
                    sources.push(SourceArg {
                        spec: SourceSpec::File(PathBuf::from(file)),
                        // `::::+ a b`: a is linked to the source before it;
                        // b is a source of its own, as in GNU parallel.
                        linked: linked && n == 0,
                    });
                }
            }
        }
        i = end;
    }
    if sources.first().is_some_and(|s| s.linked) && first == 0 {
        // Nothing before to link to: not an error, just a plain source.
        sources[0].linked = false;
    }
    Ok(Split {
        front: words[..first].to_vec(),
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    fn args(w: &[&str], linked: bool) -> SourceArg {
        SourceArg {
            spec: SourceSpec::Args(os(w)),
            linked,
        }
    }

    fn file(f: &str, linked: bool) -> SourceArg {
        SourceArg {
            spec: SourceSpec::File(f.into()),
            linked,
        }
    }

    #[test]
    fn no_separator() {
        let s = split(&os(&["-j2", "echo", "x"])).unwrap();
        assert_eq!(s.front, os(&["-j2", "echo", "x"]));
        assert!(s.sources.is_empty());
    }

    #[test]
    fn every_kind() {
        let s = split(&os(&[
            "echo", ":::", "a", "-x", ":::", ":::+", "1", "::::", "f", "g", "::::+", "h",
        ]))
        .unwrap();
        assert_eq!(s.front, os(&["echo"]));
        assert_eq!(
            s.sources,
            [
                args(&["a", "-x"], false),
                args(&[], false),
                args(&["1"], true),
                file("f", false),
                file("g", false),
                file("h", true),
            ]
        );
    }

    #[test]
    fn files_need_names() {
        assert!(split(&os(&["echo", "::::"])).unwrap_err().contains("::::"));
    }

    #[test]
    fn separator_only_as_whole_word() {
        let s = split(&os(&["echo", "a:::b", "::::x"])).unwrap();
        assert!(s.sources.is_empty());
    }
}
