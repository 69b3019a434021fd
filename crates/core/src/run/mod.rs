//! Running replication: the pipeline wiring (`pipeline`), the `replicate` command around it, one controller
//! per service (`service`), the throttle and the copy progress line.

pub mod pipeline;
pub mod progress;
pub mod replicate;
pub mod service;
pub mod throttle;
