//! brood's own spawn, above the system layer: what to spawn
//! ([`plan::SpawnPlan`]) and what a std command holds
//! ([`std_shape`]). The primitive itself is `crate::sys::spawn`.
//!
//! Only contained children (`Containment::Cgroup`) are spawned this way, so
//! that they start in their cgroup; see `docs/DESIGN.md`, "Atomic
//! placement".
//!
//! Owns nothing itself. Calls: `sys::spawn`, `sys::fd`.

#[cfg(test)]
mod measure;
pub(crate) mod plan;
pub(crate) mod std_shape;
#[cfg(test)]
mod tests;
