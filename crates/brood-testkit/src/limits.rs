//! Resource limits (`getrlimit`/`setrlimit`), for tests that run out of
//! descriptors or processes on purpose and for the benchmark, whose
//! pidfd-based rows hold one descriptor per live child.

use std::io;

/// The limits the tests and the benchmark change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `RLIMIT_NOFILE`: open descriptors.
    OpenFiles,
    /// `RLIMIT_NPROC`: processes of the real user id (root is exempt).
    Processes,
}

/// A soft and a hard limit; `libc::RLIM_INFINITY` is unlimited.
pub type Limit = libc::rlimit;

/// The current limits of `resource`.
pub fn get(resource: Resource) -> Limit {
    let mut limit = Limit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit. (The resource constants
    // are spelled out per arm because their type differs between C
    // libraries.)
    let rc = unsafe {
        match resource {
            Resource::OpenFiles => libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            Resource::Processes => libc::getrlimit(libc::RLIMIT_NPROC, &mut limit),
        }
    };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    limit
}

/// Sets the limits of `resource`.
pub fn set(resource: Resource, limit: Limit) -> io::Result<()> {
    // SAFETY: `limit` is a valid rlimit, read by the call.
    let rc = unsafe {
        match resource {
            Resource::OpenFiles => libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            Resource::Processes => libc::setrlimit(libc::RLIMIT_NPROC, &limit),
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the soft limit of `resource`, keeping the hard one.
pub fn set_soft(resource: Resource, soft: libc::rlim_t) -> io::Result<()> {
    let hard = get(resource).rlim_max;
    set(
        resource,
        Limit {
            rlim_cur: soft,
            rlim_max: hard,
        },
    )
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit
/// in force afterwards (unchanged if raising failed).
pub fn raise_open_files() -> u64 {
    let Limit { rlim_cur, rlim_max } = get(Resource::OpenFiles);
    if rlim_cur < rlim_max && set_soft(Resource::OpenFiles, rlim_max).is_ok() {
        return rlim_max;
    }
    rlim_cur
}
