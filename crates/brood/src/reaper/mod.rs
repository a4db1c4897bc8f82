//! Learning that a child exited: the choice between the two exit watchers.
//!
//! brood has two ways to learn that a child exited, and picks one per process:
//!
//! - **[`Strategy::Pidfd`]** (Linux 5.4+): every child gets a pidfd. The task
//!   awaiting a child registers that pidfd with its Tokio reactor and reaps
//!   the child itself when it turns readable (`waitid(P_PIDFD)`). No signal
//!   handler is installed at all.
//! - **[`Strategy::Signal`]** (every Unix; Linux when pidfds are missing or
//!   denied): one SIGCHLD handler tells a background thread *which* child
//!   exited, and that thread reaps exactly that child and wakes exactly its
//!   waiters. See the `table` module for why this is O(1) per exit.
//!
//! The environment variable `BROOD_REAPER` forces the choice:
//!
//! | value | effect |
//! | --- | --- |
//! | unset, empty or `auto` | probe pidfd support once, use it if it works |
//! | `pidfd` | use pidfds; the first spawn fails if the kernel lacks them |
//! | `signal` | use SIGCHLD even where pidfds work |
//!
//! Any other value makes spawning fail with an error that names the variable.
//!
//! ```
//! let strategy = brood::reaper::current();
//! println!("children are watched through {strategy:?}");
//! ```

mod background;
mod sleep;
pub(crate) mod table;
pub(crate) mod watchlist;

use crate::child::shared::Shared;
use crate::sync::Arc;
use std::io;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

pub(crate) use sleep::Sleep;

/// Every live child brood spawned, on either path, by pid. The SIGCHLD
/// dispatcher reaps from it; in subreaper mode it is how adopted orphans are
/// told apart from our own children.
static TABLE: LazyLock<table::Table<Shared>> = LazyLock::new(table::Table::new);

/// How brood learns that children exited. Chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// A pidfd per child, polled by the Tokio reactor (Linux).
    Pidfd,
    /// A SIGCHLD handler and an O(1)-per-exit dispatcher (all Unix).
    Signal,
}

/// The environment variable that forces a strategy.
pub const ENV_VAR: &str = "BROOD_REAPER";

/// Why the configured strategy cannot be used.
#[derive(Clone, Debug)]
struct ConfigError {
    kind: io::ErrorKind,
    message: String,
    /// The probe failed for lack of resources, not for lack of support.
    transient: bool,
}

impl ConfigError {
    fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

static CHOICE: OnceLock<Result<Strategy, ConfigError>> = OnceLock::new();

fn pidfd_support() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        crate::sys::linux::probe_pidfd()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pidfds exist only on Linux",
        ))
    }
}

/// Whether a failed probe says nothing about support: the process was out of
/// descriptors or memory at the time.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}

fn choose(setting: Option<&str>) -> Result<Strategy, ConfigError> {
    let probe_failed = |e: io::Error, message: String| ConfigError {
        kind: if out_of_resources(&e) {
            e.kind()
        } else {
            io::ErrorKind::Unsupported
        },
        message,
        transient: out_of_resources(&e),
    };
    match setting {
        None | Some("") | Some("auto") => match pidfd_support() {
            Ok(()) => Ok(Strategy::Pidfd),
            Err(e) if out_of_resources(&e) => Err(probe_failed(
                e,
                "brood: cannot choose an exit watcher now: out of descriptors".into(),
            )),
            Err(_) => Ok(Strategy::Signal),
        },
        Some("pidfd") => match pidfd_support() {
            Ok(()) => Ok(Strategy::Pidfd),
            Err(e) => {
                let message = format!("{ENV_VAR}=pidfd, but pidfds cannot be used here: {e}");
                Err(probe_failed(e, message))
            }
        },
        Some("signal") => Ok(Strategy::Signal),
        Some(other) => Err(ConfigError {
            kind: io::ErrorKind::InvalidInput,
            message: format!(
                "invalid {ENV_VAR} value {other:?}: expected \"auto\", \"pidfd\" or \"signal\""
            ),
            transient: false,
        }),
    }
}

fn choice() -> Result<Strategy, ConfigError> {
    if let Some(cached) = CHOICE.get() {
        return cached.clone();
    }
    let decided = match std::env::var(ENV_VAR) {
        Ok(value) => choose(Some(&value)),
        Err(std::env::VarError::NotPresent) => choose(None),
        Err(std::env::VarError::NotUnicode(value)) => Err(ConfigError {
            kind: io::ErrorKind::InvalidInput,
            message: format!("invalid {ENV_VAR} value {value:?}: not UTF-8"),
            transient: false,
        }),
    };
    match decided {
        // The probe could not tell (no descriptor free for it): decide later.
        Err(ConfigError {
            transient: true, ..
        }) => decided,
        _ => CHOICE.get_or_init(|| decided).clone(),
    }
}

/// The strategy this process uses, deciding it on first call.
///
/// # Panics
///
/// If `BROOD_REAPER` holds an invalid value, or `pidfd` where pidfds are
/// unavailable. [`try_current`] returns that error instead, and so does every
/// spawn.
pub fn current() -> Strategy {
    match try_current() {
        Ok(strategy) => strategy,
        Err(e) => panic!("{e}"),
    }
}

/// The strategy this process uses, or why the configured one is unusable.
pub fn try_current() -> io::Result<Strategy> {
    choice().map_err(|e| e.to_io())
}

/// A spawn in progress: holds the machinery that must exist *before* the
/// child does (on the SIGCHLD path, the handler and the dispatcher thread, or
/// an early exit would go unnoticed), and keeps subreaper mode from adopting
/// the child before it is registered.
pub(crate) struct SpawnTicket {
    pub(crate) strategy: Strategy,
}

impl SpawnTicket {
    /// Registers the spawned child so that the dispatcher knows it as ours.
    pub(crate) fn track(&self, shared: &Arc<Shared>) {
        TABLE.register(shared.pid(), shared);
        if let Some(bg) = background::try_get() {
            bg.note_activity();
        }
    }
}

impl Drop for SpawnTicket {
    fn drop(&mut self) {
        if TABLE.spawn_finished() {
            // Orphans were deferred while this spawn was in flight.
            if let Ok(bg) = background::get() {
                bg.wake_to_dispatch();
            }
        }
    }
}

/// Prepares a spawn; see [`SpawnTicket`].
pub(crate) fn prepare_spawn() -> io::Result<SpawnTicket> {
    let strategy = try_current()?;
    retry_deferred();
    if strategy == Strategy::Signal {
        background::get()?.ensure_sigchld()?;
    }
    TABLE.spawn_started();
    Ok(SpawnTicket { strategy })
}

/// `become_subreaper`'s part: adopt orphans from now on.
#[cfg(target_os = "linux")]
pub(crate) fn adopt_orphans() -> io::Result<()> {
    background::get()?.adopt_orphans()
}

/// Makes sure somebody other than the owning task will reap `shared`: the
/// background reaper on the pidfd path; the dispatcher already does on the
/// SIGCHLD path.
pub(crate) fn watch(shared: &Arc<Shared>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if shared.process.uses_pidfd() {
        if shared.claim_background() {
            match background::get() {
                Ok(bg) => {
                    bg.watch_pidfd(shared, background::RETRY_FIRST);
                    retry_deferred();
                }
                // No thread can be started now (EMFILE, EAGAIN): keep the
                // child and hand it over on the next use of brood.
                Err(_) => defer(shared),
            }
        }
        return Ok(());
    }
    // SIGCHLD path: tracked since spawn.
    let _ = shared;
    Ok(())
}

/// Children that needed the background reaper while it could not be started.
static DEFERRED: std::sync::Mutex<Vec<Arc<Shared>>> = std::sync::Mutex::new(Vec::new());
static HAVE_DEFERRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(target_os = "linux")]
fn defer(shared: &Arc<Shared>) {
    DEFERRED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(shared.clone());
    HAVE_DEFERRED.store(true, std::sync::atomic::Ordering::Release);
}

/// Hands deferred children to the background reaper if it can run now.
/// Costs one atomic load when there are none.
fn retry_deferred() {
    if !HAVE_DEFERRED.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Ok(bg) = background::get() {
        let waiting = {
            let mut deferred = DEFERRED.lock().unwrap_or_else(|p| p.into_inner());
            HAVE_DEFERRED.store(false, std::sync::atomic::Ordering::Release);
            std::mem::take(&mut *deferred)
        };
        for shared in waiting {
            bg.watch_pidfd(&shared, background::RETRY_FIRST);
        }
    }
}

/// Drops a reaped child from the table of live children.
pub(crate) fn forget(shared: &Shared) {
    TABLE.forget(shared.pid(), shared as *const Shared);
}

/// Sends the final SIGKILL of a graceful stop after `grace`, from the
/// background thread, unless the child has exited by then.
pub(crate) fn kill_after(shared: &Arc<Shared>, grace: Duration) -> io::Result<()> {
    background::get()?.kill_after(shared, grace);
    Ok(())
}

/// How many `wait4`/`waitid` calls brood has made in this process, for tests
/// of the O(1)-per-exit claim.
#[cfg(feature = "test-hooks")]
pub(crate) fn wait_calls() -> u64 {
    crate::sys::WAIT_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Entries in the background thread's timer heap, for tests.
#[cfg(feature = "test-hooks")]
pub(crate) fn pending_timers() -> usize {
    background::try_get().map_or(0, |bg| bg.pending_timers())
}

/// The number of live children brood is tracking, for tests.
#[cfg(feature = "test-hooks")]
pub(crate) fn tracked_children() -> usize {
    TABLE.len()
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;

    #[test]
    fn invalid_setting_names_the_variable() {
        let err = choose(Some("fast")).unwrap_err().to_io();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(text.contains("BROOD_REAPER"), "{text}");
        assert!(text.contains("fast"), "{text}");
    }

    #[test]
    fn explicit_settings() {
        assert_eq!(choose(Some("signal")).unwrap(), Strategy::Signal);
        let auto = choose(Some("auto")).unwrap();
        assert_eq!(choose(None).unwrap(), auto);
        match choose(Some("pidfd")) {
            Ok(s) => assert_eq!(s, Strategy::Pidfd),
            Err(e) => assert!(e.message.contains("BROOD_REAPER=pidfd")),
        }
    }

    #[test]
    fn debug_prints_the_variant_name() {
        assert_eq!(format!("{:?}", Strategy::Pidfd), "Pidfd");
        assert_eq!(format!("{:?}", Strategy::Signal), "Signal");
    }
}
