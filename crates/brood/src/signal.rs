//! Signal numbers, as a small copyable type.
//!
//! Owns: [`Signal`]. Calls nothing.

use std::fmt;

/// A Unix signal number.
///
/// The constants cover the signals process supervisors send; [`Signal::from_raw`]
/// accepts any other number the platform defines.
///
/// ```
/// use brood::Signal;
/// assert_eq!(Signal::from_raw(Signal::TERM.as_raw()), Signal::TERM);
/// assert_eq!(format!("{:?}", Signal::KILL), "SIGKILL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// `SIGTERM`: ask the process to terminate.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGKILL`: terminate at once; cannot be caught.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// `SIGINT`: interrupt, as Ctrl-C sends.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGHUP`: hang-up.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGQUIT`: quit with a core dump.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGUSR1`: user-defined.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`: user-defined.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGSTOP`: stop; cannot be caught.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// `SIGCONT`: continue a stopped process.
    pub const CONT: Signal = Signal(libc::SIGCONT);

    /// Wraps a raw signal number. The number is checked when the signal is
    /// sent: an invalid one makes the send fail with `EINVAL`.
    pub const fn from_raw(signal: i32) -> Signal {
        Signal(signal)
    }

    /// The raw signal number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::SIGTERM => "SIGTERM",
            libc::SIGKILL => "SIGKILL",
            libc::SIGINT => "SIGINT",
            libc::SIGHUP => "SIGHUP",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGCONT => "SIGCONT",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGABRT => "SIGABRT",
            libc::SIGSEGV => "SIGSEGV",
            _ => return None,
        })
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Signal({})", self.0),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
