//! The raw baseline: `std::process::Command::spawn` + blocking `wait`, all on
//! one thread, no runtime.

use super::{capture_argv, check, parse_stamp, self_exe};
use crate::children::Gate;
use crate::params::{Case, S1, S2, S3, S4, S5, S6};
use crate::report::Report;
use crate::scenarios::{self, LiveChildren, Scenario, Staggered};
use crate::sys::{exact_rss_kib, now_ns, usage, vm_rss_kib, Phase};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::process::{Child, Command, Stdio};

pub fn run(case: &Case, warmup: u64) -> io::Result<Report> {
    for _ in 0..warmup {
        check(Command::new("/bin/true").spawn()?.wait()?)?;
    }
    match case {
        Case::S1(p) => s1(p),
        Case::S2(p) => s2(p),
        Case::S3(p) => s3(p),
        Case::S4(p) => s4(p),
        Case::S5(p) => s5(p),
        Case::S6(p) => s6(p),
        Case::S7(p) => crate::s7::std_s7(p),
    }
}

fn s1(p: &S1) -> io::Result<Report> {
    let phase = Phase::start();
    for _ in 0..p.n {
        check(Command::new("/bin/true").spawn()?.wait()?)?;
    }
    Ok(scenarios::per_op_report(Scenario::S1, p.n, phase.end()))
}

fn s2(p: &S2) -> io::Result<Report> {
    let (n, inflight) = (p.n, p.inflight as usize);
    let mut queue: VecDeque<Child> = VecDeque::with_capacity(inflight);
    let phase = Phase::start();
    for _ in 0..n {
        if queue.len() == inflight {
            check(queue.pop_front().expect("full queue").wait()?)?;
        }
        queue.push_back(Command::new("/bin/true").spawn()?);
    }
    for mut child in queue {
        check(child.wait()?)?;
    }
    Ok(scenarios::per_op_report(Scenario::S2, n, phase.end()))
}

fn s3(p: &S3) -> io::Result<Report> {
    let (n, sleep_s) = (p.n, p.sleep_s);
    let mut children: Vec<Child> = Vec::with_capacity(n as usize);
    let exact_before_kib = exact_rss_kib()?;
    let rss_before_kib = vm_rss_kib()?;
    let phase = Phase::start();
    for _ in 0..n {
        children.push(Command::new("sleep").arg(sleep_s.to_string()).spawn()?);
    }
    let spawn_end_ns = now_ns();
    let spawn = phase.end();
    let exact_spawned_kib = exact_rss_kib()?;
    let exact_live_kib = exact_rss_kib()?;
    let mut last_resolved_ns = 0;
    for mut child in children {
        check(child.wait()?)?;
        last_resolved_ns = now_ns();
    }
    Ok(LiveChildren {
        n,
        sleep_s,
        spawn,
        spawn_end_ns,
        last_resolved_ns,
        rss_before_kib,
        after: usage(),
        exact_before_kib,
        exact_live_kib,
        exact_spawned_kib,
    }
    .report())
}

fn s4(p: &S4) -> io::Result<Report> {
    let bytes = p.bytes;
    let (program, args) = capture_argv(p);
    let mut captures = Vec::new();
    for _ in 0..p.captures {
        let phase = Phase::start();
        let output = Command::new(program).args(&args).output()?;
        let cost = phase.end();
        check(output.status)?;
        if output.stdout.len() as u64 != bytes {
            return Err(io::Error::other("short capture"));
        }
        drop(output);
        captures.push((cost.wall_us, cost.cpu_us));
    }
    Ok(scenarios::capture_report(bytes, &captures, usage()))
}

fn s5(p: &S5) -> io::Result<Report> {
    let exe = self_exe()?;
    let mut latencies = Vec::new();
    for _ in 0..p.runs {
        let mut child = Command::new(&exe)
            .arg("stamp")
            .stdout(Stdio::piped())
            .spawn()?;
        let status = child.wait()?;
        let woke = now_ns();
        check(status)?;
        let mut out = Vec::new();
        child.stdout.take().expect("piped").read_to_end(&mut out)?;
        latencies.push(woke as f64 - parse_stamp(&out)? as f64);
    }
    Ok(scenarios::latency_report(&latencies))
}

fn s6(p: &S6) -> io::Result<Report> {
    let n = p.n;
    let exe = self_exe()?;
    let gate = Gate::new()?;
    let mut children = Vec::with_capacity(n as usize);
    let total = Phase::start();
    for i in 0..n {
        let offset = scenarios::stagger_offset_ns(p, i);
        let child = Command::new(&exe)
            .arg("sleeper")
            .arg(offset.to_string())
            .stdin(gate.stdin()?)
            .spawn()?;
        children.push((child, offset));
    }
    let spawn = total.end();
    let reap = Phase::start();
    let t0 = gate.release(n)?;
    let mut lags_ns = Vec::with_capacity(n as usize);
    // Children exit in spawn order, so waiting in that order is the
    // blocking baseline's best case.
    for (mut child, offset) in children {
        check(child.wait()?)?;
        lags_ns.push(now_ns() as f64 - (t0 + offset) as f64);
    }
    Ok(Staggered {
        n,
        spawn,
        total: total.end(),
        reap: reap.end(),
        lags_ns,
        self_wait_calls: None,
    }
    .report())
}
