//! The HTTP edge: everything between a TCP connection and the registry.
//!
//! Start at [`handlers`]: `handle` → `route` (authentication, health, impersonation, authorization,
//! in-flight limits) → `Dispatch::run`, which names the resource from the [`request`] path and calls
//! the verb's handler. [`server`] accepts TLS connections (client certificates), [`body`] decodes
//! request bodies with upstream's bounds, [`limits`] holds the in-flight caps and the request deadline,
//! [`health`] answers `/livez` and `/readyz`, [`metrics`] counts every request and answers `/metrics`, [`discovery`] the discovery documents, and
//! [`pod_connect`] the pod streams (log, exec, attach, portforward), [`node_proxy`] and [`proxy`] the
//! `nodes/`, `pods/` and `services/` proxies.

pub mod body;
pub mod component_status;
pub mod decode;
pub mod discovery;
pub mod go_json;
pub mod go_type_error;
pub mod handlers;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod negotiate;
pub mod node_proxy;
pub mod pod_connect;
pub mod proxy;
pub mod request;
pub mod resource;
pub mod resource_metrics;
pub mod scale;
pub mod server;
pub mod verbs;
pub mod watch;
