//! Authentication: who is asking.
//!
//! Client certificates signed by the cluster CA are checked during the TLS handshake (`http::server`);
//! bearer tokens are checked here: service account tokens (bound or legacy) in [`tokens`], a joining
//! node's bootstrap tokens in [`bootstrap_token`]; [`bearer::authenticate_token`] tries both.

pub mod bearer;
pub mod bootstrap_token;
pub mod token_request;
pub mod tokens;
