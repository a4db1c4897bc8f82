//! A SIGCHLD handler the host installed before brood keeps being called.

use brood::reaper::Strategy;
use brood::Command;
use brood_testkit::{bounded, eventually, runtime, worker, TEST_LIMIT};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

static HOST_CALLS: AtomicUsize = AtomicUsize::new(0);
static HOST_LAST_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn host_handler_siginfo(
    _: libc::c_int,
    info: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    HOST_CALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    if let Some(info) = unsafe { info.as_ref() } {
        // SAFETY: SIGCHLD fills the _sigchld member.
        HOST_LAST_PID.store(unsafe { info.si_pid() }, Ordering::SeqCst);
    }
}

extern "C" fn host_handler_plain(_: libc::c_int) {
    HOST_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn host_handler_worker(siginfo: bool) {
    // SAFETY: installing a handler that only touches atomics.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        if siginfo {
            action.sa_sigaction = host_handler_siginfo as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        } else {
            action.sa_sigaction = host_handler_plain as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
        }
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()),
            0
        );
    }
    assert_eq!(brood::reaper::current(), Strategy::Signal);
    let rt = runtime::multi_thread(2);
    rt.block_on(bounded(TEST_LIMIT, async {
        // One at a time, so that no two SIGCHLDs can merge.
        for i in 0..5 {
            let mut child = Command::new("sh")
                .args(["-c", &format!("exit {i}")])
                .spawn()
                .unwrap();
            let pid = child.handle().id();
            assert_eq!(child.wait().await.unwrap().code(), Some(i));
            let seen = eventually(Duration::from_secs(5), || {
                HOST_CALLS.load(Ordering::SeqCst) > i as usize
                    && (!siginfo || HOST_LAST_PID.load(Ordering::SeqCst) == pid as i32)
            })
            .await;
            assert!(
                seen,
                "host handler not called for child {i}: {} calls, last pid {}",
                HOST_CALLS.load(Ordering::SeqCst),
                HOST_LAST_PID.load(Ordering::SeqCst)
            );
        }
    }));
}

#[test]
fn host_sigchld_siginfo_handler_is_still_called() {
    if worker::is_worker() {
        host_handler_worker(true);
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("signal"))]).assert_ok();
}

#[test]
fn host_sigchld_plain_handler_is_still_called() {
    if worker::is_worker() {
        host_handler_worker(false);
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("signal"))]).assert_ok();
}
