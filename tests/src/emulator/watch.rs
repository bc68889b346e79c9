//! `watch=true` streams: newline-delimited `{"type","object"}` events,
//! initial ADDED events when no (or a `0`) resourceVersion is given, replay
//! from the history otherwise, a single 410 ERROR event for a version that is
//! too old, BOOKMARK events when asked for, and the server-side timeout.
//!
//! With selectors, an object that starts or stops matching is reported as
//! ADDED or DELETED, as the real watch cache does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::api::{Api, Selectors};
use super::render::Typed;
use super::resources::ResourceType;
use super::status::ApiError;
use super::store::{Event, EventType};

/// Parameters of a watch request.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `sendInitialEvents` was given (rejected: WatchList is off in 1.28).
    pub send_initial_events: bool,
}

fn line(kind: &str, rt: &ResourceType, obj: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: Typed<'a>,
    }
    let api_version = rt.api_version();
    let mut out = serde_json::to_vec(&Line {
        kind,
        object: Typed {
            kind: &rt.kind,
            api_version: &api_version,
            object: obj,
        },
    })
    .unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn raw_line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Translate a store event into what a watcher with `sel` sees, if anything.
fn visible(ev: &Event, ns: Option<&str>, sel: &Selectors) -> Option<(&'static str, Arc<Value>)> {
    if let Some(ns) = ns
        && ev.namespace.as_deref() != Some(ns)
    {
        return None;
    }
    let now = sel.matches(&ev.object);
    let before = ev.old.as_ref().is_some_and(|o| sel.matches(o));
    match ev.kind {
        EventType::Added => now.then(|| ("ADDED", ev.object.clone())),
        EventType::Deleted => before.then(|| ("DELETED", ev.object.clone())),
        EventType::Modified => match (before, now) {
            (true, true) => Some(("MODIFIED", ev.object.clone())),
            (false, true) => Some(("ADDED", ev.object.clone())),
            (true, false) => Some(("DELETED", ev.object.clone())),
            (false, false) => None,
        },
    }
}

/// Start a watch; the returned receiver yields the stream's chunks (one event each).
pub fn start(
    api: Arc<Api>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    sel: Selectors,
    opts: WatchOptions,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    if opts.send_initial_events {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            &[super::status::Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            )],
        ));
    }
    let key = rt.storage_key();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial: Vec<Bytes> = Vec::new();
    let mut last_rv: u64;
    let receiver: broadcast::Receiver<Arc<Event>>;
    match opts.resource_version.as_deref().filter(|s| !s.is_empty()) {
        None | Some("0") => {
            let (items, rv, r) = api.store.watch_with_snapshot(&key, ns.as_deref());
            for obj in items.iter().filter(|o| sel.matches(o)) {
                initial.push(line("ADDED", &rt, obj));
            }
            last_rv = rv;
            receiver = r;
        }
        Some(rv) => {
            let from: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            match api.store.watch_from(&key, from) {
                Ok((backlog, r)) => {
                    last_rv = from;
                    for ev in backlog {
                        if let Some((kind, obj)) = visible(&ev, ns.as_deref(), &sel) {
                            initial.push(line(kind, &rt, &obj));
                        }
                        last_rv = ev.rv;
                    }
                    receiver = r;
                }
                Err(floor) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": format!("too old resource version: {from} ({floor})"),
                        "reason": "Expired", "code": 410});
                    let _ = tx.try_send(raw_line(&json!({"type": "ERROR", "object": status})));
                    return Ok(rx);
                }
            }
        }
    }
    tokio::spawn(run(api, rt, ns, sel, opts, tx, initial, receiver, last_rv));
    Ok(rx)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    api: Arc<Api>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    sel: Selectors,
    opts: WatchOptions,
    tx: mpsc::Sender<Bytes>,
    initial: Vec<Bytes>,
    mut receiver: broadcast::Receiver<Arc<Event>>,
    mut last_rv: u64,
) {
    for chunk in initial {
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
    // Real servers end watches after a random 30-60 min unless told sooner.
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(1800));
    let deadline = tokio::time::Instant::now() + timeout;
    // A bookmark shortly before the end, and periodically on long watches.
    let bookmark_every = Duration::from_secs(60);
    let mut next_bookmark = if timeout > Duration::from_secs(2) {
        (tokio::time::Instant::now() + timeout - Duration::from_secs(2))
            .min(tokio::time::Instant::now() + bookmark_every)
    } else {
        deadline
    };
    let key = rt.storage_key();
    let mut bookmarks = opts.bookmarks;
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            ev = receiver.recv() => {
                match ev {
                    Ok(ev) => {
                        if ev.key != key || ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some((kind, obj)) = visible(&ev, ns.as_deref(), &sel)
                            && tx.send(line(kind, &rt, &obj)).await.is_err() {
                                return;
                            }
                    }
                    // A watcher that fell behind is ended; the client re-lists/re-watches.
                    Err(_) => return,
                }
            }
            _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                let rv = api.store.current_rv().max(last_rv);
                let bm = json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null}}});
                if tx.send(raw_line(&bm)).await.is_err() {
                    return;
                }
                next_bookmark = tokio::time::Instant::now() + bookmark_every;
                // No bookmark at the very end: the stream just closes.
                bookmarks = next_bookmark < deadline;
            }
        }
    }
}
