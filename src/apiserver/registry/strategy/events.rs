//! Events, core/v1 and events.k8s.io/v1 (upstream's `pkg/registry/core/event/strategy.go`).

use super::{Plain, Printer};

/// Events: recorders PUT them, which creates them.
pub const EVENTS: Plain = Plain::new(Printer::Event).create_on_update();
