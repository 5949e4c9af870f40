//! Wire formats: how objects are written on (and read from) the wire besides plain JSON.
//!
//! [`protobuf`] is upstream's `application/vnd.kubernetes.protobuf` codec, driven by a generated field
//! table; [`table`] renders `meta.k8s.io/v1` Tables (what `kubectl get` prints) with upstream's
//! columns per kind; [`quantity`] parses and canonicalizes resource quantities as upstream prints them.
//! Content negotiation (which of these a request gets) lives with the handlers in `http`.

pub mod protobuf;
pub mod quantity;
pub mod table;
