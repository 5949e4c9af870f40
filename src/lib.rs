//! rkube: a Kubernetes cluster in one Rust binary.
//!
//! One folder per component: [`apiserver`] (the REST + watch API, the only user of [`storage`]),
//! [`controllers`] (the controller manager, an API client like every component but the apiserver),
//! [`pki`] (the cluster CA and the certificates every component authenticates with).

pub mod apiserver;
pub mod cli;
pub mod controllers;
pub mod dns;
pub mod kubelet;
pub mod leader_election;
pub mod pki;
pub mod private_files;
pub mod proxy;
pub mod scheduler;
pub mod storage;
pub mod upgrade;
pub mod user_agent;
