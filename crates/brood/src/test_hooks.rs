//! Counters that brood's own tests and benchmark read; not part of the API.
//!
//! Compiled only with the non-default `test-hooks` feature, and hidden from
//! the documentation.
//!
//! Owns nothing. Calls: `reaper`, `sys::process` (the wait-call counter),
//! `sys::spawn` (what was learnt about clone3).

/// How many `wait4`/`waitid` calls brood has made in this process, for tests
/// of the O(1)-per-exit claim.
pub fn wait_calls() -> u64 {
    crate::sys::process::wait_calls()
}

/// Entries in the background thread's timer heap, live or cancelled.
pub fn pending_timers() -> usize {
    crate::reaper::pending_timers()
}

/// How many SIGCHLD dispatches fell back to asking the tracked children
/// somebody waits for (or has waited for, dropped, or shares through a
/// handle) because the `WNOWAIT` peek was blind: it named a zombie of ours whose
/// exit was announced and left for its owner.
pub fn blind_scans() -> u64 {
    crate::reaper::blind_scans()
}

/// SIGCHLD dispatch rounds run so far: on the background thread, and on
/// the runtimes' threads (by their listeners).
pub fn dispatch_rounds() -> (u64, u64) {
    crate::reaper::dispatch_rounds()
}

/// The number of live children brood is tracking.
pub fn tracked_children() -> usize {
    crate::reaper::tracked_children()
}

/// Whether brood has learnt that clone3 cannot place children in cgroups
/// here (denied by seccomp, or a kernel before 5.7), so that contained
/// spawns use its fork fallback.
pub fn clone3_unavailable_for_cgroups() -> bool {
    crate::sys::spawn::SUPPORT.known_unavailable(true)
}
