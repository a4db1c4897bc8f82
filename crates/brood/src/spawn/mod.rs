//! brood's own spawn, above the system layer: what to spawn
//! ([`plan::SpawnPlan`]) and what a std command holds
//! ([`std_shape`]). The primitive itself is `crate::sys::spawn`.
//!
//! Not wired into [`crate::Command`] yet: `Command::spawn` still goes
//! through std. See `docs/DESIGN.md`, "brood's own spawn".

#![cfg_attr(not(test), allow(dead_code))]

#[cfg(test)]
mod measure;
pub(crate) mod plan;
pub(crate) mod std_shape;
#[cfg(test)]
mod tests;
