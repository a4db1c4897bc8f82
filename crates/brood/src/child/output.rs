//! Collecting a child's output, optionally capped.
//!
//! Owns: [`OutputLimitExceeded`], [`WaitDelayExceeded`], the capture (in the
//! task, or on a blocking thread once the output proves large). Calls:
//! `stdio::Pipe`, `sys::fd`.

use crate::stdio::Pipe;
use crate::sys;
use std::error::Error;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
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

/// The error inside the [`io::Error`] of kind [`io::ErrorKind::TimedOut`]
/// that [`Command::output`](crate::Command::output) and
/// [`Child::wait_with_output`](crate::Child::wait_with_output) return when
/// the child exited but its pipes stayed open longer than
/// [`Command::wait_delay`](crate::Command::wait_delay) allows (a grandchild
/// holds them). brood then closed the pipes and stopped the rest of the
/// child's tree, if it was contained.
///
/// It carries the child's status and every byte read until then.
///
/// ```no_run
/// # async fn demo() {
/// use std::time::Duration;
/// let err = brood::Command::new("sh")
///     .args(["-c", "echo started; sleep 100 &"])
///     .wait_delay(Duration::from_millis(100))
///     .output()
///     .await
///     .unwrap_err();
/// let late = err.get_ref().unwrap().downcast_ref::<brood::WaitDelayExceeded>().unwrap();
/// assert!(late.output().status.success());
/// assert_eq!(late.output().stdout, b"started\n");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WaitDelayExceeded {
    delay: Duration,
    output: Output,
}

impl WaitDelayExceeded {
    pub(super) fn new(delay: Duration, output: Output) -> Self {
        WaitDelayExceeded { delay, output }
    }

    /// The child's status, and what its pipes delivered before they were
    /// closed.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Takes the [`Output`].
    pub fn into_output(self) -> Output {
        self.output
    }

    /// The wait delay that passed.
    pub fn wait_delay(&self) -> Duration {
        self.delay
    }
}

impl fmt::Display for WaitDelayExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the child exited ({}) but its output pipes were still open {:?} later; brood closed them",
            self.output.status, self.delay
        )
    }
}

impl Error for WaitDelayExceeded {}

/// The smallest read worth a system call once output turns out to be large.
const MIN_CHUNK: usize = 64 * 1024;

/// A read this large means the pipe was full (the kernel's default pipe
/// holds 64 KiB): the output is big, so the pipe is enlarged once.
const FULL_PIPE: usize = 64 * 1024;
/// What a pipe is enlarged to (clamped to the system's pipe-max-size).
const BIG_PIPE: usize = 1 << 20;

/// How often a draining thread checks whether its capture was abandoned
/// while no output arrives.
const CANCEL_CHECK_MS: i32 = 100;

/// Where a [`Sink`]'s reads come from: the reactor (in a task), or the
/// descriptor directly (on a thread that waits with `poll(2)` itself). Either
/// way `Pending` means "the pipe is empty for now".
trait Reads {
    fn probe(&mut self, pipe: &mut Pipe, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    fn spare(
        &mut self,
        pipe: &mut Pipe,
        vec: &mut Vec<u8>,
        limit: usize,
    ) -> Poll<io::Result<usize>>;
}

/// Reads through the reactor, registering the task's waker.
struct InTask<'a, 'b>(&'a mut Context<'b>);

impl Reads for InTask<'_, '_> {
    fn probe(&mut self, pipe: &mut Pipe, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        pipe.poll_read(self.0, buf)
    }

    fn spare(
        &mut self,
        pipe: &mut Pipe,
        vec: &mut Vec<u8>,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        pipe.poll_read_spare(self.0, vec, limit)
    }
}

/// Reads the descriptor directly; an empty pipe is `Pending`. Every read
/// first checks whether the capture was abandoned, so even a writer that
/// never lets the pipe run empty cannot keep the thread reading.
struct OnThread<'a> {
    abandoned: &'a AtomicBool,
}

impl OnThread<'_> {
    fn check(&self) -> io::Result<()> {
        if self.abandoned.load(Ordering::Acquire) {
            Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the output capture was abandoned",
            ))
        } else {
            Ok(())
        }
    }
}

impl Reads for OnThread<'_> {
    fn probe(&mut self, pipe: &mut Pipe, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        pending_if_empty(pipe.read_now(buf))
    }

    fn spare(
        &mut self,
        pipe: &mut Pipe,
        vec: &mut Vec<u8>,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        pending_if_empty(pipe.read_spare_now(vec, limit))
    }
}

fn pending_if_empty<T>(result: io::Result<T>) -> Poll<io::Result<T>> {
    match result {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Poll::Pending
        }
        other => Poll::Ready(other),
    }
}

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
    fn drain(&mut self, reads: &mut impl Reads, room: &mut usize) -> Poll<io::Result<()>> {
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
                ready!(reads.probe(pipe, &mut rb))?;
                let got = rb.filled();
                if !got.is_empty() {
                    let grow = self.buf.len().max(MIN_CHUNK).min(allowed);
                    self.buf.reserve_exact(grow.max(got.len()));
                    self.buf.extend_from_slice(got);
                }
                got.len()
            } else {
                ready!(reads.spare(pipe, &mut self.buf, allowed))?
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

/// The two pipes of one capture and what may still be kept.
struct Capture {
    out: Sink,
    err: Sink,
    cap: usize,
    room: usize,
}

/// How a drain pass ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// Both pipes reached EOF.
    Eof,
    /// The output passed the cap.
    OverCap,
    /// Both pipes are empty for now.
    Empty,
}

impl Capture {
    fn over(&self) -> bool {
        self.out.buf.len() + self.err.buf.len() > self.cap
    }

    /// Reads both pipes until they are empty, at EOF, or over the cap.
    fn drain(&mut self, reads: &mut impl Reads) -> io::Result<Drained> {
        let a = self.out.drain(reads, &mut self.room);
        if let Poll::Ready(Err(e)) = a {
            return Err(e);
        }
        if self.over() {
            return Ok(Drained::OverCap);
        }
        let b = self.err.drain(reads, &mut self.room);
        if let Poll::Ready(Err(e)) = b {
            return Err(e);
        }
        if self.over() {
            return Ok(Drained::OverCap);
        }
        Ok(if a.is_ready() && b.is_ready() {
            Drained::Eof
        } else {
            Drained::Empty
        })
    }

    /// Whether the output has proved large (a read filled a whole pipe).
    fn is_bulk(&self) -> bool {
        self.out.grown || self.err.grown
    }

    /// Drains to EOF (or the cap) on the calling thread, waiting in
    /// `poll(2)`. Gives up with `Interrupted` once `abandoned` is set.
    fn drain_here(&mut self, abandoned: &AtomicBool) -> io::Result<Drained> {
        let mut reads = OnThread { abandoned };
        loop {
            match self.drain(&mut reads)? {
                Drained::Empty => {}
                done => return Ok(done),
            }
            reads.check()?;
            let fd = |sink: &Sink| sink.pipe.as_ref().and_then(Pipe::raw_fd).unwrap_or(-1);
            sys::fd::poll_readable([fd(&self.out), fd(&self.err)], CANCEL_CHECK_MS)?;
        }
    }
}

/// Sets a flag when dropped: tells a draining thread that nobody waits for
/// its capture any more (the `output()` future was dropped).
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Whether a bulk capture should move to a blocking thread: on a
/// multi-thread runtime the reactor runs on one thread and the capturing
/// task on another, so every pipe edge costs two thread wake-ups; a thread
/// blocked in `poll(2)` is woken by the kernel directly. On a current-thread
/// runtime the task already wakes straight from `epoll_wait`.
fn bulk_moves_to_a_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// What a capture collected.
pub(super) enum Captured {
    /// Both pipes reached end-of-file.
    Complete { stdout: Vec<u8>, stderr: Vec<u8> },
    /// The output passed the cap; the pipes are closed.
    OverCap(OutputLimitExceeded),
    /// The cut-off came first: what was read until then; the pipes are
    /// closed.
    CutOff { stdout: Vec<u8>, stderr: Vec<u8> },
}

/// Collects `stdout` and `stderr` to EOF, or until together they pass
/// `limit`, or until `cutoff` completes.
///
/// Small outputs are read in this task. Once the output proves large (a read
/// fills a whole pipe) on a multi-thread runtime, the rest is drained on a
/// blocking thread, which is how a large capture keeps up with
/// `std::process::Command::output`. A cut-off then tells that thread to give
/// up (it notices within [`CANCEL_CHECK_MS`]) and takes back what it read.
pub(super) async fn capture(
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
    limit: Option<usize>,
    cutoff: impl Future<Output = ()>,
) -> io::Result<Captured> {
    let cap = limit.unwrap_or(usize::MAX);
    let mut capture = Capture {
        out: Sink::new(stdout),
        err: Sink::new(stderr),
        cap,
        room: cap,
    };
    let mut cutoff = pin!(cutoff);
    let may_move = bulk_moves_to_a_thread();
    // `None`: the cut-off came first.
    let mut done = poll_fn(|cx| match capture.drain(&mut InTask(cx)) {
        Ok(Drained::Empty) if may_move && capture.is_bulk() => {
            Poll::Ready(Ok(Some(Drained::Empty)))
        }
        // Checked only once both pipes are empty for now: all that was
        // written before the cut-off has been read.
        Ok(Drained::Empty) => match cutoff.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(None)),
            Poll::Pending => Poll::Pending,
        },
        Ok(other) => Poll::Ready(Ok(Some(other))),
        Err(e) => Poll::Ready(Err(e)),
    })
    .await?;
    if done == Some(Drained::Empty) {
        let abandoned = Arc::new(AtomicBool::new(false));
        let abandon = AbandonOnDrop(abandoned.clone());
        for pipe in [&mut capture.out.pipe, &mut capture.err.pipe]
            .into_iter()
            .flatten()
        {
            pipe.deregister();
        }
        let mut job = tokio::task::spawn_blocking(move || {
            let result = capture.drain_here(&abandoned);
            (capture, result)
        });
        let finished = poll_fn(|cx| {
            if let Poll::Ready(joined) = Pin::new(&mut job).poll(cx) {
                return Poll::Ready(Some(joined));
            }
            cutoff.as_mut().poll(cx).map(|()| None)
        })
        .await;
        let (moved_back, result) = match finished {
            Some(joined) => {
                let (moved_back, result) = joined.map_err(io::Error::other)?;
                (moved_back, result.map(Some))
            }
            None => {
                // Cut off: stop the thread and take back what it read. It
                // may have reached the end meanwhile; that counts.
                drop(abandon);
                let (moved_back, result) = job.await.map_err(io::Error::other)?;
                let result = match result {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                    other => other.map(Some),
                };
                (moved_back, result)
            }
        };
        capture = moved_back;
        done = result?;
    }
    let Capture {
        mut out, mut err, ..
    } = capture;
    let Some(done) = done else {
        drop(out.pipe.take());
        drop(err.pipe.take());
        return Ok(Captured::CutOff {
            stdout: out.buf,
            stderr: err.buf,
        });
    };
    if done == Drained::OverCap {
        drop(out.pipe.take());
        drop(err.pipe.take());
        let (mut stdout, mut stderr) = (out.buf, err.buf);
        let keep_out = stdout.len().min(cap);
        stdout.truncate(keep_out);
        stderr.truncate(cap - keep_out);
        return Ok(Captured::OverCap(OutputLimitExceeded {
            limit: cap,
            stdout,
            stderr,
        }));
    }
    Ok(Captured::Complete {
        stdout: out.buf,
        stderr: err.buf,
    })
}
