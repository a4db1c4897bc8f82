//! System calls of the cgroup v2 layer (`crate::cgroup`): Linux has them,
//! other systems get stand-ins that fail with `Unsupported`.
//!
//! Both files provide the same items: `SUPPORTED`, the two file-system
//! magic numbers, `fs_type`, `open_at`, `open_file_at`, `mkdir_at`,
//! `rmdir_at`, `access_at` and `poll_priority`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::*;
