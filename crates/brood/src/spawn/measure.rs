//! Parent CPU per spawn: std's `posix_spawn`, brood's clone3, and the fork
//! fallback, each uncontained and into a cgroup (an existing one, and one
//! made for the spawn, as containment does), from a small parent and from
//! one with 1 GiB of touched memory. A measurement, not a test: it is
//! ignored by default and asserts nothing. Run it with
//!
//! ```text
//! cargo test --release -p brood --lib spawn::measure -- --ignored --nocapture
//! ```
//!
//! It prints each method's median parent CPU per spawn as a ratio to std's
//! from the same parent, measured side by side (the methods take turns,
//! one spawn each, so drift affects all alike).

use super::plan::SpawnPlan;
use super::tests::TestCgroup;
use crate::sys::spawn::test_support::thread_cpu;
use crate::sys::spawn::{Choice, Support, Vehicle};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Std,
    /// std's spawn and then `pidfd_open`, as brood's pidfd path does for an
    /// uncontained child: the fair peer of clone3, which returns a pidfd
    /// from birth.
    StdPidfd,
    /// `StdPidfd` with an empty environment (`env_clear`), which std, too,
    /// must build at each spawn: with `Clone3EmptyEnv`, it tells the
    /// environment snapshot from the rest of the clone3 spawn.
    StdPidfdEmptyEnv,
    Clone3EmptyEnv,
    Clone3,
    Clone3Cgroup,
    /// clone3, with the plan read from a std `Command` (its `{:#?}`).
    Clone3FromStd,
    Fork,
    ForkCgroup,
    /// clone3 into a cgroup made for the spawn and removed after it, as
    /// containment does: the first process of a new cgroup costs the kernel
    /// more than one joining a cgroup that has had members.
    Clone3FreshCgroup,
    /// The same cgroup's life (mkdir, open, rmdir) with no spawn at all.
    FreshCgroupAlone,
}

const METHODS: [Method; 11] = [
    Method::Std,
    Method::StdPidfd,
    Method::StdPidfdEmptyEnv,
    Method::Clone3EmptyEnv,
    Method::Clone3,
    Method::Clone3Cgroup,
    Method::Clone3FromStd,
    Method::Fork,
    Method::ForkCgroup,
    Method::Clone3FreshCgroup,
    Method::FreshCgroupAlone,
];

/// The parent CPU of one spawn of `/bin/true` (the wait is not counted).
fn one(method: Method, cgroup: &TestCgroup, support: &Support) -> Duration {
    let opened = cgroup.open();
    let dir = opened.as_fd();
    let plan = SpawnPlan::new("/bin/true");
    if let Method::Clone3FreshCgroup | Method::FreshCgroupAlone = method {
        let fresh = cgroup.path.join("fresh");
        let start = thread_cpu();
        std::fs::create_dir(&fresh).unwrap();
        let dir = std::fs::File::open(&fresh).unwrap();
        if method == Method::Clone3FreshCgroup {
            let child = plan
                .spawn_with(Some(dir.as_fd()), support, Choice::Auto)
                .unwrap();
            assert_eq!(child.vehicle, Vehicle::Clone3);
            crate::sys::process::wait4(child.pid, false).unwrap();
        }
        drop(dir);
        std::fs::remove_dir(&fresh).unwrap();
        return thread_cpu() - start;
    }
    let (choice, into, vehicle) = match method {
        Method::Std => {
            let mut command = Command::new("/bin/true");
            let start = thread_cpu();
            let mut child = command.spawn().unwrap();
            let spent = thread_cpu() - start;
            child.wait().unwrap();
            return spent;
        }
        Method::StdPidfd | Method::StdPidfdEmptyEnv => {
            let mut command = Command::new("/bin/true");
            if method == Method::StdPidfdEmptyEnv {
                command.env_clear();
            }
            let start = thread_cpu();
            let mut child = command.spawn().unwrap();
            let pidfd = crate::sys::pidfd::open(child.id()).unwrap();
            let spent = thread_cpu() - start;
            child.wait().unwrap();
            // Closed outside the measured span, as clone3's pidfd is below.
            drop(pidfd);
            return spent;
        }
        Method::Clone3FromStd => {
            let command = Command::new("/bin/true");
            let start = thread_cpu();
            let plan = SpawnPlan::from_std(&command, None).unwrap();
            let child = plan.spawn_with(None, support, Choice::Auto).unwrap();
            let spent = thread_cpu() - start;
            crate::sys::process::wait4(child.pid, false).unwrap();
            return spent;
        }
        Method::Clone3EmptyEnv => {
            let mut plan = SpawnPlan::new("/bin/true");
            plan.env_clear();
            let start = thread_cpu();
            let child = plan.spawn_with(None, support, Choice::Auto).unwrap();
            let spent = thread_cpu() - start;
            assert_eq!(child.vehicle, Vehicle::Clone3);
            crate::sys::process::wait4(child.pid, false).unwrap();
            return spent;
        }
        Method::Clone3 => (Choice::Auto, None, Vehicle::Clone3),
        Method::Clone3Cgroup => (Choice::Auto, Some(dir), Vehicle::Clone3),
        Method::Fork => (Choice::Fork, None, Vehicle::Fork),
        Method::ForkCgroup => (Choice::Fork, Some(dir), Vehicle::Fork),
        Method::Clone3FreshCgroup | Method::FreshCgroupAlone => unreachable!("handled above"),
    };
    let start = thread_cpu();
    let child = plan.spawn_with(into, support, choice).unwrap();
    let spent = thread_cpu() - start;
    assert_eq!(child.vehicle, vehicle);
    crate::sys::process::wait4(child.pid, false).unwrap();
    spent
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn measure(label: &str, rounds: usize, cgroup: &TestCgroup) {
    let support = Support::new();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); METHODS.len()];
    for round in 0..rounds + 5 {
        for (index, method) in METHODS.iter().enumerate() {
            let spent = one(*method, cgroup, &support);
            // The first rounds warm caches and this thread's child stack.
            if round >= 5 {
                samples[index].push(spent);
            }
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let std = medians[0].as_secs_f64();
    println!("{label} ({rounds} spawns each, median parent CPU per spawn, ÷ std):");
    for (method, m) in METHODS.iter().zip(&medians) {
        println!(
            "  {:<18} {:>7.2}x",
            format!("{method:?}"),
            m.as_secs_f64() / std
        );
    }
}

#[test]
#[ignore = "a measurement; run it in release mode with --ignored --nocapture"]
fn parent_cpu_per_spawn() {
    let cgroup = TestCgroup::new("measure");
    measure("small parent", 400, &cgroup);

    let gib = 1 << 30;
    let mut memory = vec![0u8; gib];
    // Touch every page, so that each is mapped (and a fork must copy its
    // page-table entry).
    for page in memory.chunks_mut(4096) {
        page[0] = 1;
    }
    measure("parent with 1 GiB touched", 60, &cgroup);
    assert_eq!(
        memory
            .iter()
            .step_by(4096)
            .map(|&b| b as usize)
            .sum::<usize>(),
        gib / 4096
    );
}
