//! The control-plane load tool (`ads-load`): N simulated proxies, each a Delta ADS stream
//! on its own connection that subscribes and ACKs like Envoy (`sim`), timestamps every
//! response (`stream`), and a scenario (`scenario`) that changes the controller's config
//! files and follows each change to the last ACK (`track`), sampling the controller's CPU
//! and memory from `/proc` meanwhile. Its report (`report`) is JSON for `weft-bench`.

pub mod report;
pub mod scenario;
pub mod sim;
pub mod stream;
pub mod track;
