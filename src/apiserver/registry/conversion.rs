//! Resources served in one version and stored in another, as upstream's storage versions: a row with a
//! [`Conversion`] shares its storage prefix with the row of the version it is stored as, and the
//! registry converts at its edges (objects going to storage, objects read from storage, the cache or a
//! watch). So an object written through either version is one object, seen through both.
//!
//! Today: events.k8s.io/v1 Events, stored as core/v1 Events under `/registry/events/` (upstream's
//! `pkg/apis/events/v1/conversion.go`): `kubectl describe` and `kubectl events` (core/v1) show what
//! the scheduler and the controllers record through the newer API.

use serde_json::{Map, Value};

/// How a served version maps to its storage version and back.
#[derive(Clone, Copy, Debug)]
pub struct Conversion {
    pub to_storage: fn(Value) -> Value,
    pub from_storage: fn(Value) -> Value,
}

impl Conversion {
    pub fn served(conversion: Option<Conversion>, obj: Value) -> Value {
        match conversion {
            Some(c) => (c.from_storage)(obj),
            None => obj,
        }
    }
}

/// events.k8s.io/v1 Event ⇄ core/v1 Event.
pub const EVENTS_V1: Conversion = Conversion {
    to_storage: event_to_core,
    from_storage: event_from_core,
};

/// (events.k8s.io/v1 field, core/v1 field); every other field has one name in both.
const EVENT_RENAMES: [(&str, &str); 7] = [
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn event_to_core(obj: Value) -> Value {
    renamed(obj, "v1", |(served, stored)| (served, stored))
}

fn event_from_core(obj: Value) -> Value {
    renamed(obj, "events.k8s.io/v1", |(served, stored)| (stored, served))
}

fn renamed(
    obj: Value,
    api_version: &str,
    direction: fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Value {
    let Value::Object(mut m) = obj else {
        return obj;
    };
    let mut out = Map::with_capacity(m.len());
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    m.remove("apiVersion");
    m.remove("kind");
    for (k, v) in m {
        let name = EVENT_RENAMES
            .iter()
            .map(|r| direction(*r))
            .find(|(from, _)| *from == k)
            .map_or(k, |(_, to)| to.to_string());
        out.insert(name, v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_through_core() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "eventTime": "2026-12-04T10:00:00.000000Z", "reason": "Scheduled", "type": "Normal",
            "action": "Binding", "note": "Successfully assigned ns/p to n",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-h",
            "series": {"count": 2, "lastObservedTime": "2026-12-04T10:00:01.000000Z"},
            "deprecatedCount": 3,
        });
        let core = (EVENTS_V1.to_storage)(v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "Successfully assigned ns/p to n");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["reportingComponent"], "default-scheduler");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        assert_eq!((EVENTS_V1.from_storage)(core), v1);
    }
}
