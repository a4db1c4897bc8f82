//! `tracing` events (feature `tracing`): spawn, exit, signal, orphan reaped.

use crate::child::exit::Exit;
use crate::reaper::Strategy;
use crate::signal::Signal;

pub(crate) fn spawn(pid: u32, command: &std::process::Command, strategy: Strategy) {
    tracing::debug!(target: "brood", pid, program = ?command.get_program(), ?strategy, "spawned");
}

pub(crate) fn exit(pid: u32, exit: &Exit) {
    match exit.status() {
        Ok(status) => {
            let usage = exit.usage().unwrap_or_default();
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
