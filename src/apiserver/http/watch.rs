//! Watch streams: registry events framed in the negotiated form (JSON lines, protobuf frames, Tables).

pub use crate::apiserver::authz::User;
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::negotiate::*;
use crate::apiserver::http::request::Query;
use crate::apiserver::registry::cached_object::Obj;
use crate::apiserver::registry::store::{Registry, WatchItem};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;
use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::header;
use serde_json::{json, Value};

pub(crate) async fn watch_response(
    reg: &Registry,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
    out: Output,
) -> ApiResult<Response> {
    let events = reg.watch(info, ns, q).await?;
    let body =
        watch_frames(events, info.clone(), q.clone(), out).map(Ok::<_, std::convert::Infallible>);
    let content_type = if out == Output::Protobuf {
        protobuf::WATCH_MEDIA_TYPE
    } else {
        "application/json"
    };
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// One watch event as a frame of the negotiated format (a JSON line, or a length-prefixed protobuf
/// `WatchEvent`). A cached object's JSON is copied as it is, not encoded again.
pub(crate) fn watch_frame(out: Output, event_type: &str, object: &Obj) -> Result<Vec<u8>, String> {
    if out == Output::Protobuf {
        let view = object.view();
        let field = |f: &str| view.get(f).and_then(Value::as_str).unwrap_or("");
        let message = object.protobuf_message()?;
        return protobuf::encode_watch_event_message(
            event_type,
            field("apiVersion"),
            field("kind"),
            &message,
        );
    }
    let mut line = Vec::with_capacity(64);
    line.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut line, event_type).map_err(|e| e.to_string())?;
    line.extend_from_slice(b",\"object\":");
    object.write_json(&mut line);
    line.extend_from_slice(b"}\n");
    Ok(line)
}

/// The frames of a watch response. An event that can't be encoded ends the watch with an ERROR event
/// (upstream's internal-error Status, code 500) rather than being skipped: the client then knows it
/// missed something and re-lists.
pub(crate) fn watch_frames(
    events: futures::stream::BoxStream<'static, WatchItem>,
    info: ResourceInfo,
    q: Query,
    out: Output,
) -> impl futures::Stream<Item = bytes::Bytes> {
    let mut first = true;
    // The formats whose frames are the same for every watcher (shared through the cache's events).
    let shared_media_type = match out {
        Output::Json => Some("application/json"),
        Output::Protobuf => Some(protobuf::WATCH_MEDIA_TYPE),
        _ => None,
    };
    events.scan(false, move |ended, item: WatchItem| {
        if *ended {
            return futures::future::ready(None);
        }
        let WatchItem {
            event_type,
            object,
            shared,
        } = item;
        // The object as every watcher of this format is sent it: encoded once for all of them.
        if let (Some(ev), Some(media_type)) = (&shared, shared_media_type) {
            if let Ok(frame) = ev.frame(event_type, media_type, || {
                watch_frame(out, event_type, &object)
            }) {
                return futures::future::ready(Some(frame));
            }
        }
        let object = match out {
            Output::Table if event_type != "ERROR" && event_type != "BOOKMARK" => {
                let object = object.tree();
                let t = table_doc(&info, std::slice::from_ref(&*object), &q, first, json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}));
                first = false;
                Obj::from(t)
            }
            Output::PartialMetadata if event_type != "ERROR" && event_type != "BOOKMARK" => {
                Obj::from(partial_metadata(&object.tree()))
            }
            _ => object,
        };
        let frame = watch_frame(out, event_type, &object).or_else(|e| {
            *ended = true;
            let kind = object.view().get("kind").and_then(Value::as_str).unwrap_or("object");
            let message = format!("unable to encode watch object {kind}: {e}");
            tracing::warn!("watch of {}: {message}", info.group_resource());
            let status = ApiError::internal(message.clone())
                .with_details(json!({"causes": [{"message": message}]}))
                .to_status();
            watch_frame(out, "ERROR", &Obj::from(status))
        });
        // Not even the error could be encoded: end the stream, the client re-watches.
        futures::future::ready(frame.ok().map(bytes::Bytes::from))
    })
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use crate::apiserver::catalog::Catalog;

    /// An event that can't be encoded ends the watch with a 500 ERROR event: nothing after it is
    /// sent, and nothing is skipped silently.
    #[tokio::test]
    async fn unencodable_event_ends_the_watch_with_an_error() {
        let info = Catalog::builtin()
            .find("", "v1", "configmaps")
            .cloned()
            .unwrap();
        let cm = |name: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": "5"}})
        };
        let items = vec![
            WatchItem::own("ADDED", cm("a")),
            WatchItem::own(
                "ADDED",
                json!({"apiVersion": "v1", "kind": "NoSuchKind", "metadata": {}}),
            ),
            WatchItem::own("ADDED", cm("c")),
        ];
        let stream = futures::stream::iter(items).boxed();
        let frames: Vec<bytes::Bytes> =
            watch_frames(stream, info, Query::default(), Output::Protobuf)
                .collect()
                .await;
        assert_eq!(frames.len(), 2);
        let (ty, obj, _) = protobuf::decode_watch_frame(&frames[0]).unwrap().unwrap();
        assert_eq!(
            (ty.as_str(), obj["metadata"]["name"].as_str()),
            ("ADDED", Some("a"))
        );
        let (ty, status, _) = protobuf::decode_watch_frame(&frames[1]).unwrap().unwrap();
        assert_eq!(ty, "ERROR");
        assert_eq!(status["code"], 500);
        assert_eq!(status["reason"], "InternalError");
        let message = status["message"].as_str().unwrap();
        assert!(
            message
                .starts_with("Internal error occurred: unable to encode watch object NoSuchKind"),
            "{message}"
        );
    }
}
