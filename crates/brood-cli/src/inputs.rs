//! Where the inputs come from: the `:::` list, a file (`-a`), or stdin.
//!
//! A file is read whole before any job starts, so an unreadable file is an
//! error with no job run. Stdin is read by a thread as lines arrive, so jobs
//! start while a slow producer is still writing; the total becomes known at
//! end of input.

use crate::cli::InputSource;
use std::io::{self, BufRead, IsTerminal};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Marks a total that is not known yet.
const UNKNOWN: usize = usize::MAX;

/// A source of inputs, one byte string each.
pub enum Inputs {
    /// All inputs, known up front.
    List {
        /// The remaining inputs.
        items: std::vec::IntoIter<Vec<u8>>,
        /// How many there were.
        total: usize,
    },
    /// Lines read from stdin by a thread.
    Stream {
        /// Lines, or the read error that ended them.
        rx: mpsc::UnboundedReceiver<io::Result<Vec<u8>>>,
        /// The number of lines once end of input was reached.
        total: Arc<AtomicUsize>,
    },
}

impl Inputs {
    /// Opens `source`. Reads a file whole; errors name the file.
    pub fn open(source: &InputSource) -> Result<Inputs, String> {
        match source {
            InputSource::Args(list) => Ok(Inputs::list(
                list.iter().map(|a| a.as_bytes().to_vec()).collect(),
            )),
            InputSource::File(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Inputs::list(split_lines(&bytes))),
                Err(e) => Err(format!("cannot read input file {}: {e}", path.display())),
            },
            InputSource::Stdin => Ok(Inputs::stdin()),
        }
    }

    /// A fixed list.
    pub fn list(items: Vec<Vec<u8>>) -> Inputs {
        Inputs::List {
            total: items.len(),
            items: items.into_iter(),
        }
    }

    fn stdin() -> Inputs {
        let (tx, rx) = mpsc::unbounded_channel();
        let total = Arc::new(AtomicUsize::new(UNKNOWN));
        let done = total.clone();
        if io::stdin().is_terminal() {
            crate::say(format_args!(
                "brood: reading inputs from the terminal, one per line (Ctrl-D ends)\n"
            ));
        }
        std::thread::Builder::new()
            .name("brood-stdin".into())
            .spawn(move || {
                let mut count = 0;
                for line in io::stdin().lock().split(b'\n') {
                    let failed = line.is_err();
                    if line.is_ok() {
                        count += 1;
                    }
                    if tx.send(line).is_err() || failed {
                        return;
                    }
                }
                done.store(count, Ordering::Release);
            })
            .expect("spawning the stdin reader thread");
        Inputs::Stream { rx, total }
    }

    /// The next input; `None` at the end.
    pub async fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        match self {
            Inputs::List { items, .. } => items.next().map(Ok),
            Inputs::Stream { rx, .. } => rx.recv().await,
        }
    }

    /// The number of inputs, once known.
    pub fn total(&self) -> Option<usize> {
        match self {
            Inputs::List { total, .. } => Some(*total),
            Inputs::Stream { total, .. } => match total.load(Ordering::Acquire) {
                UNKNOWN => None,
                n => Some(n),
            },
        }
    }
}

/// Splits on `\n`; a final line without a newline counts, a trailing
/// newline does not start an empty one.
pub fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if bytes.ends_with(b"\n") || bytes.is_empty() {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(split_lines(b""), Vec::<Vec<u8>>::new());
        assert_eq!(split_lines(b"a\nb\n"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(split_lines(b"a\nb"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            split_lines(b"a\n\nb\n"),
            [b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert_eq!(split_lines(b"\n"), [Vec::<u8>::new()]);
    }

    #[tokio::test]
    async fn list_and_file() {
        let mut inputs = Inputs::open(&InputSource::Args(vec!["x".into(), "y".into()])).unwrap();
        assert_eq!(inputs.total(), Some(2));
        assert_eq!(inputs.next().await.unwrap().unwrap(), b"x");
        assert_eq!(inputs.next().await.unwrap().unwrap(), b"y");
        assert!(inputs.next().await.is_none());
        let missing = InputSource::File("/nonexistent/brood-inputs".into());
        let err = Inputs::open(&missing).err().unwrap();
        assert!(err.contains("/nonexistent/brood-inputs"), "{err}");
    }
}
