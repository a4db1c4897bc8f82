//! Collecting a child's output, optionally capped.

use super::Child;
use crate::stdio::Pipe;
use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::process::Output;
use std::task::{ready, Context, Poll};
use tokio::io::ReadBuf;

/// The error inside the [`io::Error`] that [`Command::output`](crate::Command::output)
/// and [`Child::wait_with_output`](crate::Child::wait_with_output) return when
/// the child wrote more than [`Command::max_output`](crate::Command::max_output)
/// allows. It carries everything captured up to the cap.
///
/// ```no_run
/// # async fn demo() {
/// let err = brood::Command::new("yes").max_output(4096).output().await.unwrap_err();
/// if let Some(over) = err.get_ref().and_then(|e| e.downcast_ref::<brood::OutputLimitExceeded>()) {
///     assert_eq!(over.stdout().len() + over.stderr().len(), over.limit());
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLimitExceeded {
    limit: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl OutputLimitExceeded {
    /// The cap that was exceeded, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Standard output captured before the cap was reached.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Standard error captured before the cap was reached.
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// Takes the captured (stdout, stderr).
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout, self.stderr)
    }
}

impl fmt::Display for OutputLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the child's output exceeded the limit of {} bytes and the child was stopped",
            self.limit
        )
    }
}

impl Error for OutputLimitExceeded {}

/// The smallest read worth a system call once output turns out to be large.
const MIN_CHUNK: usize = 64 * 1024;

/// A read this large means the pipe was full (the kernel's default pipe
/// holds 64 KiB): the output is big, so the pipe is enlarged once.
const FULL_PIPE: usize = 64 * 1024;
/// What a pipe is enlarged to (clamped to the system's pipe-max-size).
const BIG_PIPE: usize = 1 << 20;

/// One pipe being drained into a buffer.
struct Sink {
    pipe: Option<Pipe>,
    buf: Vec<u8>,
    grown: bool,
}

impl Sink {
    fn new(pipe: Option<Pipe>) -> Self {
        Sink {
            pipe,
            buf: Vec::new(),
            grown: false,
        }
    }

    /// Reads until EOF or `Pending`. `room` is how many more bytes may be
    /// kept (`usize::MAX`: no cap); reading one byte past it is how the cap is
    /// detected. Returns `Ready(Ok(()))` at EOF.
    fn poll_drain(&mut self, cx: &mut Context<'_>, room: &mut usize) -> Poll<io::Result<()>> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            let allowed = room.saturating_add(1);
            let n = if self.buf.capacity() == self.buf.len() {
                // Full (or never allocated): probe with a small stack read so
                // that short outputs allocate exactly and EOF never forces a
                // doubling at the end.
                let mut probe = [0u8; 64];
                let take = probe.len().min(allowed);
                let mut rb = ReadBuf::new(&mut probe[..take]);
                ready!(pipe.poll_read(cx, &mut rb))?;
                let got = rb.filled();
                if !got.is_empty() {
                    let grow = self.buf.len().max(MIN_CHUNK).min(allowed);
                    self.buf.reserve_exact(grow.max(got.len()));
                    self.buf.extend_from_slice(got);
                }
                got.len()
            } else {
                ready!(pipe.poll_read_spare(cx, &mut self.buf, allowed))?
            };
            if n == 0 {
                self.pipe = None;
                return Poll::Ready(Ok(()));
            }
            if n >= FULL_PIPE && !self.grown {
                self.grown = true;
                pipe.grow(BIG_PIPE);
            }
            if n > *room {
                // More than the cap allows arrived; the caller sees it.
                *room = 0;
                return Poll::Ready(Ok(()));
            }
            *room -= n;
        }
    }
}

/// Collects stdout and stderr to EOF while waiting for the exit.
pub(super) async fn collect(child: &mut Child, limit: Option<usize>) -> io::Result<Output> {
    let mut out = Sink::new(child.stdout.take().map(|p| p.pipe));
    let mut err = Sink::new(child.stderr.take().map(|p| p.pipe));
    let cap = limit.unwrap_or(usize::MAX);
    let mut room = cap;
    let mut exceeded = false;
    let drained = poll_fn(|cx| {
        let a = out.poll_drain(cx, &mut room)?;
        if over(&out, &err, cap) {
            exceeded = true;
            return Poll::Ready(Ok::<_, io::Error>(()));
        }
        let b = err.poll_drain(cx, &mut room)?;
        if over(&out, &err, cap) {
            exceeded = true;
            return Poll::Ready(Ok(()));
        }
        if a.is_ready() && b.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await;
    drained?;
    if exceeded {
        drop(out.pipe.take());
        drop(err.pipe.take());
        child.stop().await?;
        let (mut stdout, mut stderr) = (out.buf, err.buf);
        let keep_out = stdout.len().min(cap);
        stdout.truncate(keep_out);
        stderr.truncate(cap - keep_out);
        return Err(io::Error::other(OutputLimitExceeded {
            limit: cap,
            stdout,
            stderr,
        }));
    }
    let status = child.wait_exit().await.status()?;
    Ok(Output {
        status,
        stdout: out.buf,
        stderr: err.buf,
    })
}

fn over(out: &Sink, err: &Sink, cap: usize) -> bool {
    out.buf.len() + err.buf.len() > cap
}
