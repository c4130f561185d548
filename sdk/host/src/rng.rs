//! The seeded pseudo-random generator of fault injection and campaigns,
//! shared with the seL4 runtime (see [`axolotl_swifi::Rng`]).

pub use axolotl_swifi::Rng;
