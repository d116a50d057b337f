//! costbench: replay LLM workloads across providers and rank them by cost per accepted outcome.
//!
//! The pipeline, one module a stage: [`suite`] → [`providers`] → [`run`] → [`store`] →
//! [`grade`] → [`stats`] → [`analysis`] → [`export`]. The store is the hub: everything after the run reads
//! it, so reports can be rebuilt without calling a provider.

pub mod analysis;
pub mod baseline;
pub mod cli;
pub mod compare;
pub mod config;
pub mod drilldown;
pub mod estimate;
pub mod export;
pub mod gate;
pub mod grade;
pub mod import;
pub mod labels;
pub mod providers;
pub mod reprice;
pub mod route;
pub mod run;
pub mod stats;
pub mod store;
pub mod suite;
