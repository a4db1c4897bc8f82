//! `tracing` events (feature `tracing`): spawn, exit, signal, orphan reaped,
//! and a contained tree's signals and end.
//!
//! Owns nothing. Calls nothing in brood: callers pass plain values, so every
//! layer may emit events.

use crate::rusage::ResourceUsage;
use crate::signal::Signal;
use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::process::ExitStatus;

pub(crate) fn spawn(pid: u32, command: &std::process::Command, strategy: impl Debug) {
    tracing::debug!(target: "brood", pid, program = ?command.get_program(), ?strategy, "spawned");
}

pub(crate) fn exit(pid: u32, status: io::Result<ExitStatus>, usage: Option<ResourceUsage>) {
    match status {
        Ok(status) => {
            let usage = usage.unwrap_or_default();
            tracing::debug!(
                target: "brood",
                pid,
                %status,
                user_us = usage.user_time().as_micros() as u64,
                system_us = usage.system_time().as_micros() as u64,
                max_rss = usage.max_rss(),
                "exited"
            );
        }
        Err(error) => tracing::warn!(target: "brood", pid, %error, "exit status lost"),
    }
}

pub(crate) fn signal(pid: u32, signal: Signal, group: bool) {
    tracing::debug!(target: "brood", pid, ?signal, group, "signal sent");
}

pub(crate) fn orphan_reaped(pid: u32) {
    tracing::debug!(target: "brood", pid, "orphan reaped");
}

pub(crate) fn tree_signalled(
    cgroup: &Path,
    signal: Signal,
    outcome: Result<(usize, bool), &io::Error>,
) {
    match outcome {
        Ok((members, frozen)) => tracing::debug!(
            target: "brood",
            cgroup = %cgroup.display(),
            ?signal,
            members,
            frozen,
            "tree signalled"
        ),
        Err(error) => tracing::warn!(
            target: "brood",
            cgroup = %cgroup.display(),
            ?signal,
            %error,
            "tree signal failed"
        ),
    }
}

pub(crate) fn tree_ended(cgroup: &Path, removed: Result<(), &io::Error>) {
    match removed {
        Ok(()) => {
            tracing::debug!(target: "brood", cgroup = %cgroup.display(), "tree ended, cgroup removed")
        }
        Err(error) => tracing::warn!(
            target: "brood",
            cgroup = %cgroup.display(),
            %error,
            "tree ended, cgroup not removed"
        ),
    }
}
