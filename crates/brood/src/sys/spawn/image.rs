//! What the child needs between clone and exec, prepared by the parent.
//!
//! Everything is allocated before the clone: the child only reads these
//! arrays, so it never allocates, locks or touches libc state.
//!
//! Owns: [`ChildImage`], [`CStringArray`], the libc's `PATH` search rules
//! (`search`). Calls nothing.

use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;
use std::ptr;

/// A NULL-terminated array of C strings that owns its strings, as `execve`
/// takes for `argv` and `envp`.
pub(crate) struct CStringArray {
    strings: Vec<CString>,
    /// Pointers into `strings`, then a null. A `CString`'s heap buffer does
    /// not move when the `Vec<CString>` reallocates, so pushing keeps the
    /// earlier pointers valid.
    pointers: Vec<*const c_char>,
}

impl CStringArray {
    /// An empty array with room for `capacity` strings.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut pointers = Vec::with_capacity(capacity + 1);
        pointers.push(ptr::null());
        CStringArray {
            strings: Vec::with_capacity(capacity),
            pointers,
        }
    }

    /// Appends `s`.
    pub(crate) fn push(&mut self, s: CString) {
        let last = self.pointers.len() - 1;
        self.pointers[last] = s.as_ptr();
        self.pointers.push(ptr::null());
        self.strings.push(s);
    }

    /// The strings, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &CStr> {
        self.strings.iter().map(CString::as_c_str)
    }

    /// Whether it holds none.
    pub(crate) fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// The NULL-terminated pointer array.
    pub(crate) fn as_ptr(&self) -> *const *const c_char {
        self.pointers.as_ptr()
    }
}

impl std::fmt::Debug for CStringArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.strings.iter()).finish()
    }
}

/// How this libc's `execvp`/`posix_spawnp` search `PATH`, which the child
/// reproduces so that brood finds (or fails to find) exactly what std would.
pub(crate) mod search {
    /// The search path used when `PATH` is unset (`confstr(_CS_PATH)`).
    #[cfg(not(target_env = "musl"))]
    pub(crate) const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";
    #[cfg(target_env = "musl")]
    pub(crate) const DEFAULT_PATH: &[u8] = b"/usr/local/bin:/bin:/usr/bin";

    /// Errors after which the search goes on to the next `PATH` entry
    /// (besides `EACCES`, which is remembered and reported if nothing is
    /// found). Any other error ends the search.
    #[cfg(not(target_env = "musl"))]
    pub(crate) const CONTINUE_ON: [i32; 5] = [
        libc::ENOENT,
        libc::ESTALE,
        libc::ENOTDIR,
        libc::ENODEV,
        libc::ETIMEDOUT,
    ];
    #[cfg(target_env = "musl")]
    pub(crate) const CONTINUE_ON: [i32; 2] = [libc::ENOENT, libc::ENOTDIR];
}

/// Everything the child does between clone and exec.
///
/// Built by the spawn plan; consumed by [`super::spawn`].
#[derive(Debug)]
pub(crate) struct ChildImage {
    /// The paths to `execve`, in order; more than one only for a `PATH`
    /// search. Empty when the search failed before trying anything.
    pub(crate) candidates: CStringArray,
    /// Whether the program named a path (contains `/`): then the first
    /// error ends the search.
    pub(crate) direct: bool,
    /// The errno when `candidates` is empty (say, `ENOENT` for an empty name).
    pub(crate) no_candidate_errno: i32,
    /// argv, including `argv[0]`.
    pub(crate) argv: CStringArray,
    /// The complete environment.
    pub(crate) envp: CStringArray,
    /// Leave the libc-internal signals (32 and 33 with glibc) ignored, as
    /// glibc's `posix_spawn` does.
    pub(crate) ignore_internal_signals: bool,
    /// Descriptors to `dup2` onto 0, 1 and 2; `None` inherits ours. Each is
    /// above 2, so no order of the three `dup2`s overwrites a later source.
    pub(crate) stdio: [Option<RawFd>; 3],
    /// `setgid` before exec.
    pub(crate) gid: Option<u32>,
    /// `setuid` before exec; also drops supplementary groups first, as std
    /// does (an `EPERM` from that is ignored).
    pub(crate) uid: Option<u32>,
    /// `chdir` before exec.
    pub(crate) cwd: Option<CString>,
    /// `setpgid(0, pgroup)` before exec.
    pub(crate) pgroup: Option<i32>,
    /// Tests only: before anything else, write our pid (4 bytes) to the
    /// first descriptor and wait for a byte on the second, so that a test
    /// can signal a child that has not exec'd yet.
    #[cfg(test)]
    pub(crate) pause: Option<(RawFd, RawFd)>,
}
