//! strace -f: children are traced, so pidfds turn readable before the
//! parent may reap (the tracer holds the exit). Statuses must stay right and
//! the parent must not spin.

use brood::Command;
use brood_testkit::procfs::{child_pids, tracer_pid};
use brood_testkit::rusage::cpu_time;
use brood_testkit::{bounded, eventually, runtime, worker, TEST_LIMIT};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn strace_usable() -> bool {
    std::process::Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn strace_attached_statuses_stay_right_and_cpu_stays_low() {
    const CHILDREN: usize = 50;
    if worker::is_worker() {
        assert_ne!(tracer_pid(), Some(0), "the worker is not traced");
        let rt = runtime::multi_thread(2);
        rt.block_on(bounded(TEST_LIMIT, async {
            let mut owned = Vec::new();
            let mut handles = Vec::new();
            for i in 0..CHILDREN {
                let child = Command::new("sh")
                    .args(["-c", &format!("sleep 0.2; exit {}", i % 7)])
                    .spawn()
                    .unwrap();
                if i % 2 == 0 {
                    owned.push((i, child));
                } else {
                    // Dropped: the background reaper (edge-triggered epoll)
                    // must also cope with early readiness.
                    handles.push((i, child.handle()));
                }
            }
            let cpu0 = cpu_time();
            let wall0 = Instant::now();
            let waits: Vec<_> = owned
                .into_iter()
                .map(|(i, mut c)| tokio::spawn(async move { (i, c.wait().await) }))
                .collect();
            for (i, h) in &handles {
                assert_eq!(h.wait().await.unwrap().code(), Some((i % 7) as i32));
            }
            for w in waits {
                let (i, s) = w.await.unwrap();
                assert_eq!(s.unwrap().code(), Some((i % 7) as i32));
            }
            let cpu = cpu_time() - cpu0;
            let wall = wall0.elapsed();
            println!("waiting for {CHILDREN} traced children: cpu {cpu:?}, wall {wall:?}");
            assert!(
                cpu.as_secs_f64() < 0.5 * wall.as_secs_f64(),
                "busy loop: {cpu:?} of CPU in {wall:?}"
            );
            assert!(eventually(Duration::from_secs(10), || child_pids().is_empty()).await);
        }));
        return worker::done();
    }
    if !strace_usable() {
        eprintln!(
            "SKIPPED {}: strace is not installed or cannot trace here",
            worker::current_test()
        );
        return;
    }
    let worker = worker::command();
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-o", "/dev/null"])
        .arg(worker.get_program())
        .args(worker.get_args());
    for (k, v) in worker.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = worker::run_command(cmd, worker::LIMIT);
    eprintln!("{}", run.stdout_line("cpu"));
    run.assert_ok();
}
