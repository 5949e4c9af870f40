//! rkube: a Kubernetes cluster in one Rust binary.
//!
//! One folder per component: [`apiserver`] (the REST + watch API, the only user of [`storage`]),
//! [`pki`] (the cluster CA and the certificates every component authenticates with).

pub mod apiserver;
pub mod pki;
pub mod storage;
