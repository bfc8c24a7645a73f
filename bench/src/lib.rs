//! weft-bench: the benchmark rig. `weft-bench` runs the data-plane
//! comparison (direct, weft-proxy and Envoy, one hop and a pair) and the control-plane
//! benchmark (`ads-load` against weft-controller), then writes `bench/RESULTS.md`.
//!
//! Pure logic (statistics, parsers, config text, tables) lives in plain functions with unit
//! tests; the modules that start processes and measure are never run by tests.
//! `symbol_order` records the layout of weft-proxy's release code with the same rig.

pub mod ads;
pub mod cp;
pub mod dp;
pub mod h2load;
pub mod machine;
pub mod meshconfig;
pub mod procfs;
pub mod profile;
pub mod report;
pub mod runner;
pub mod stats;
pub mod symbol_order;
