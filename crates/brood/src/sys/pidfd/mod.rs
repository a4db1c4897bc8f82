//! Process descriptors (pidfds): Linux 5.4+ has them, other systems get
//! stand-ins that fail with `Unsupported`.
//!
//! Both files provide the same items: [`SUPPORTED`], `open`, `send_signal`,
//! `waitid` and `probe`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::*;
