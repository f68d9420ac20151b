//! Core routes: health, readiness, metrics, benchmark baseline.

pub mod bench;
pub mod health;
