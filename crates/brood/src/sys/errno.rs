//! Turning C return values into [`io::Error`], and classifying errnos.
//!
//! Owns: `cvt`, `cvt_retry`, the out-of-resources test. Calls: nothing.

use std::io;

/// Turns a C return value of `-1` into the thread's current `errno`.
pub(crate) fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], but retries the call while it fails with `EINTR`.
pub(crate) fn cvt_retry<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether `e` says the process ran out of descriptors or memory
/// (`EMFILE`, `ENFILE`, `ENOMEM`): a failure that says nothing about what
/// the kernel supports, and may not happen again.
pub(crate) fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}
