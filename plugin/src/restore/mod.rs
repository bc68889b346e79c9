//! `kubectl backup restore`: put a backup back into the same or another cluster.
//!
//! The pure decisions live in [`select`] (what), [`transform`] (how each
//! object changes) and [`order`] (in which order); the edges read the archive
//! and talk to the cluster.

pub mod order;
pub mod plan;
pub mod report;
pub mod select;
pub mod transform;
