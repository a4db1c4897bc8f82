//! The progress bar (`--bar`, `--eta`, `--progress`), on indicatif.
//!
//! By default it is shown when stderr is a terminal; the options force it
//! on anywhere, `--quiet` off. It shows jobs done of the total (once the
//! total is known), running and failed jobs, and the estimated time left.
//!
//! The estimate counts the running jobs' elapsed time: the work left is
//! the jobs not yet finished times the mean runtime so far, less what the
//! running jobs have already done; divided by the jobs that run at once.
//! So between two completions it goes down with the clock instead of
//! climbing.

use crate::duration::human;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

/// The progress bar.
pub struct Bar {
    bar: ProgressBar,
}

/// What the bar shows.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Jobs finished.
    pub done: usize,
    /// Jobs in all, once known.
    pub total: Option<usize>,
    /// Jobs failed.
    pub failed: usize,
    /// How long each running job has run.
    pub running: Vec<Duration>,
    /// The summed runtime of finished jobs.
    pub finished_runtime: Duration,
    /// Jobs at once.
    pub slots: usize,
}

/// The estimated time left, if it can be told.
pub fn eta(c: &Counts) -> Option<Duration> {
    let total = c.total?;
    if c.done == 0 {
        return None;
    }
    let mean = c.finished_runtime.as_secs_f64() / c.done as f64;
    let left_jobs = total.saturating_sub(c.done) as f64;
    let in_progress: f64 = c.running.iter().map(|d| d.as_secs_f64().min(mean)).sum();
    let work = (left_jobs * mean - in_progress).max(0.0);
    let width = c.slots.max(1).min(total.saturating_sub(c.done).max(1)) as f64;
    Some(Duration::from_secs_f64(work / width))
}

impl Bar {
    /// A bar on stderr: drawn only if stderr is a terminal, unless
    /// `forced`.
    pub fn new(forced: bool) -> Bar {
        let target = if forced {
            ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 10)
        } else {
            ProgressDrawTarget::stderr_with_hz(10)
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{bar:20} {pos}/{len} done, {msg}")
                .expect("valid template")
                .progress_chars("#>-"),
        );
        Bar { bar }
    }

    /// Redraws with new counts.
    pub fn update(&self, c: &Counts) {
        if let Some(total) = c.total {
            self.bar.set_length(total as u64);
        }
        self.bar.set_position(c.done as u64);
        let eta = eta(c).map_or_else(|| "?".to_string(), human);
        self.bar.set_message(format!(
            "{} running, {} failed, ETA {eta}",
            c.running.len(),
            c.failed
        ));
    }

    /// Runs `f` with the bar hidden.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar from the screen.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// stderr as a terminal for indicatif, whether or not it is one (a forced
/// bar on a pipe still draws, with the same escape sequences).
struct Stderr;

impl fmt::Debug for Stderr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stderr")
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        80
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        write!(io::stderr(), "\x1b[{n}A")
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        write!(io::stderr(), "\x1b[{n}B")
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        write!(io::stderr(), "\x1b[{n}C")
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        write!(io::stderr(), "\x1b[{n}D")
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        writeln!(io::stderr(), "{s}")
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        io::stderr().write_all(s.as_bytes())
    }
    fn clear_line(&self) -> io::Result<()> {
        io::stderr().write_all(b"\r\x1b[2K")
    }
    fn flush(&self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[test]
    fn eta_goes_down_between_completions() {
        // 10 jobs of ~2 s, 2 at once; 2 done, 2 running.
        let mut c = Counts {
            done: 2,
            total: Some(10),
            failed: 0,
            running: vec![s(0.0), s(0.0)],
            finished_runtime: s(4.0),
            slots: 2,
        };
        let first = eta(&c).unwrap();
        assert_eq!(first, s(8.0));
        c.running = vec![s(1.0), s(1.0)];
        let later = eta(&c).unwrap();
        assert!(later < first, "{later:?} >= {first:?}");
        assert_eq!(later, s(7.0));
        c.total = None;
        assert_eq!(eta(&c), None);
    }
}
