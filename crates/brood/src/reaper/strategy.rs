//! Choosing the exit watcher, once per process, from `BROOD_REAPER` and a
//! probe of what the kernel allows.
//!
//! Owns: [`Strategy`], [`ENV_VAR`], [`current`], [`try_current`] (public,
//! re-exported by `reaper`) and the process's choice. Calls: `sys::pidfd`
//! (the probe), `sys::errno`.

use crate::sys;
use std::io;
use std::sync::OnceLock;

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

/// Whether pidfds can be used for children here (`sys::pidfd::probe`).
fn pidfd_support() -> io::Result<()> {
    sys::pidfd::probe()
}

fn choose(setting: Option<&str>) -> Result<Strategy, ConfigError> {
    let probe_failed = |e: io::Error, message: String| ConfigError {
        kind: if sys::errno::out_of_resources(&e) {
            e.kind()
        } else {
            io::ErrorKind::Unsupported
        },
        message,
        transient: sys::errno::out_of_resources(&e),
    };
    match setting {
        None | Some("") | Some("auto") => match pidfd_support() {
            Ok(()) => Ok(Strategy::Pidfd),
            Err(e) if sys::errno::out_of_resources(&e) => Err(probe_failed(
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
