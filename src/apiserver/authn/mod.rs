//! Authentication: who is asking.
//!
//! Client certificates signed by the cluster CA are checked during the TLS handshake (`http::server`);
//! bearer tokens (service account tokens, bound or legacy) are checked here, in [`tokens`].

pub mod bearer;
pub mod token_request;
pub mod tokens;
