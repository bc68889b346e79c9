//! The in-memory object store: one ordered table per resource (all versions
//! of a group/resource share it, as in etcd), a single global
//! resourceVersion counter, and the event history that watches replay.
//!
//! Keys are what etcd would hold after `/registry/<resource>/`: `name` for
//! cluster-scoped objects, `namespace/name` for namespaced ones, so iteration
//! order and continue tokens are those of the real server.
//!
//! Objects are stored without `kind`/`apiVersion` (the handler adds them for
//! the version asked for), with `metadata.resourceVersion` kept current.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use super::resources::StorageKey;

/// How many past events a watch can start from (the "watch cache" window).
const HISTORY: usize = 100_000;
/// The first resourceVersion handed out; a watch or continue token older than the window
/// gets 410, like `resourceVersion=1` on a real server.
const FIRST_RV: u64 = 100;

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug)]
pub struct Event {
    /// The revision of this change.
    pub rv: u64,
    /// Which table.
    pub key: StorageKey,
    /// Namespace of the object (None for cluster-scoped).
    pub namespace: Option<String>,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for DELETED: its last state, with the deletion revision).
    pub object: Arc<Value>,
    /// The object before the change (MODIFIED/DELETED), for selector transitions.
    pub old: Option<Arc<Value>>,
}

/// Store write errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Create of an existing key.
    #[error("already exists")]
    AlreadyExists,
    /// Update/delete of a missing key.
    #[error("not found")]
    NotFound,
    /// The precondition resourceVersion did not match.
    #[error("resourceVersion conflict")]
    Conflict,
}

/// Cluster IPs and node ports held by Services. The API server keeps these
/// in allocator bitmaps beside the objects; here they follow every write of
/// a Service, so allocating one never scans all Services.
#[derive(Debug, Default, Clone)]
pub struct ServiceAllocations {
    /// Every entry of every Service's `spec.clusterIPs`.
    pub cluster_ips: Arc<HashSet<String>>,
    /// Every `spec.ports[].nodePort`.
    pub node_ports: Arc<HashSet<u64>>,
}

impl ServiceAllocations {
    fn held(service: &Value) -> (Vec<&str>, Vec<u64>) {
        let spec = service.get("spec");
        let ips = spec
            .and_then(|s| s.get("clusterIPs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let ports = spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
            .collect();
        (ips, ports)
    }

    /// `old` was replaced by `new` (either may be absent).
    fn replace(&mut self, old: Option<&Value>, new: Option<&Value>) {
        if let Some(old) = old {
            let (ips, ports) = Self::held(old);
            let cluster_ips = Arc::make_mut(&mut self.cluster_ips);
            for ip in ips {
                cluster_ips.remove(ip);
            }
            let node_ports = Arc::make_mut(&mut self.node_ports);
            for p in ports {
                node_ports.remove(&p);
            }
        }
        if let Some(new) = new {
            let (ips, ports) = Self::held(new);
            Arc::make_mut(&mut self.cluster_ips).extend(ips.into_iter().map(str::to_owned));
            Arc::make_mut(&mut self.node_ports).extend(ports);
        }
    }
}

fn is_services(key: &StorageKey) -> bool {
    key.group.is_empty() && key.plural == "services"
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    tables: HashMap<StorageKey, BTreeMap<String, Arc<Value>>>,
    services: ServiceAllocations,
    history: VecDeque<Arc<Event>>,
    /// Events after this revision are all in `history`.
    floor: u64,
}

/// The store. Cheap operations under one mutex; serialization happens outside it.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
}

/// The table key of an object.
pub fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// The `(start, end)` bounds of the keys under `prefix` (`ns/` for one namespace).
fn prefix_range(prefix: &str) -> (Bound<String>, Bound<String>) {
    if prefix.is_empty() {
        return (Bound::Unbounded, Bound::Unbounded);
    }
    // Prefixes end with '/', whose successor is '0'.
    let mut end = prefix.to_owned();
    end.pop();
    end.push('0');
    (Bound::Included(prefix.to_owned()), Bound::Excluded(end))
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Past events to replay and the receiver of the following ones.
pub type Subscription = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The matching objects.
    pub items: Vec<Arc<Value>>,
    /// Key (relative to the listed prefix) of the last item, when more keys follow.
    pub continue_after: Option<String>,
    /// Keys after the last item (for remainingItemCount).
    pub remaining: usize,
    /// The store revision the list was served at.
    pub rv: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        let (events, _) = broadcast::channel(65_536);
        Store {
            inner: Mutex::new(Inner {
                rv: FIRST_RV,
                floor: FIRST_RV,
                ..Default::default()
            }),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one
        // insert), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current (latest) revision.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Oldest revision still readable by watches and continue tokens.
    pub fn floor(&self) -> u64 {
        self.lock().floor
    }

    fn record(&self, inner: &mut Inner, event: Event) {
        let event = Arc::new(event);
        inner.history.push_back(event.clone());
        while inner.history.len() > HISTORY {
            if let Some(old) = inner.history.pop_front() {
                inner.floor = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.events.send(event);
    }

    /// Get one object.
    pub fn get(&self, key: &StorageKey, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .tables
            .get(key)
            .and_then(|t| t.get(&object_key(namespace, name)))
            .cloned()
    }

    /// Insert a new object; returns it with its resourceVersion.
    pub fn create(
        &self,
        key: &StorageKey,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Arc<Value>, Error> {
        let mut inner = self.lock();
        let okey = object_key(namespace, name);
        if inner.tables.get(key).is_some_and(|t| t.contains_key(&okey)) {
            return Err(Error::AlreadyExists);
        }
        Ok(self.write(
            &mut inner,
            key,
            namespace,
            okey,
            obj,
            EventType::Added,
            None,
        ))
    }

    /// Replace an existing object if its stored resourceVersion is `expected_rv`
    /// (when given); returns the stored object.
    pub fn update(
        &self,
        key: &StorageKey,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        expected_rv: Option<&str>,
    ) -> Result<Arc<Value>, Error> {
        let mut inner = self.lock();
        let okey = object_key(namespace, name);
        let old = inner
            .tables
            .get(key)
            .and_then(|t| t.get(&okey))
            .cloned()
            .ok_or(Error::NotFound)?;
        if let Some(want) = expected_rv
            && rv_of(&old) != Some(want)
        {
            return Err(Error::Conflict);
        }
        Ok(self.write(
            &mut inner,
            key,
            namespace,
            okey,
            obj,
            EventType::Modified,
            Some(old),
        ))
    }

    /// Store `obj` under the next resourceVersion and record the watch event
    /// (shared by create and update).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        inner: &mut Inner,
        key: &StorageKey,
        namespace: Option<&str>,
        okey: String,
        mut obj: Value,
        kind: EventType,
        old: Option<Arc<Value>>,
    ) -> Arc<Value> {
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        inner
            .tables
            .entry(key.clone())
            .or_default()
            .insert(okey, obj.clone());
        if is_services(key) {
            inner.services.replace(old.as_deref(), Some(&obj));
        }
        self.record(
            inner,
            Event {
                rv,
                key: key.clone(),
                namespace: namespace.map(str::to_owned),
                kind,
                object: obj.clone(),
                old,
            },
        );
        obj
    }

    /// Remove an object if its resourceVersion is `expected_rv` (when given); returns its
    /// last state stamped with the deletion revision.
    pub fn delete(
        &self,
        key: &StorageKey,
        namespace: Option<&str>,
        name: &str,
        expected_rv: Option<&str>,
    ) -> Result<Arc<Value>, Error> {
        let mut inner = self.lock();
        let okey = object_key(namespace, name);
        let old = inner
            .tables
            .get(key)
            .and_then(|t| t.get(&okey))
            .cloned()
            .ok_or(Error::NotFound)?;
        if let Some(want) = expected_rv
            && rv_of(&old) != Some(want)
        {
            return Err(Error::Conflict);
        }
        if let Some(t) = inner.tables.get_mut(key) {
            t.remove(&okey);
        }
        if is_services(key) {
            inner.services.replace(Some(&old), None);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        self.record(
            &mut inner,
            Event {
                rv,
                key: key.clone(),
                namespace: namespace.map(str::to_owned),
                kind: EventType::Deleted,
                object: last.clone(),
                old: Some(old),
            },
        );
        Ok(last)
    }

    /// List objects of `key` under `namespace` (None: all), starting at `start`
    /// (a key relative to the prefix, inclusive), keeping those `filter` accepts,
    /// at most `limit` of them.
    pub fn list(
        &self,
        key: &StorageKey,
        namespace: Option<&str>,
        start: Option<&str>,
        limit: Option<usize>,
        filter: impl Fn(&Value) -> bool,
    ) -> Page {
        let inner = self.lock();
        let rv = inner.rv;
        let Some(table) = inner.tables.get(key) else {
            return Page {
                items: Vec::new(),
                continue_after: None,
                remaining: 0,
                rv,
            };
        };
        let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
        let (lo, hi) = prefix_range(&prefix);
        let lo = match start {
            Some(s) => Bound::Included(format!("{prefix}{s}")),
            None => lo,
        };
        let mut items = Vec::new();
        let mut iter = table.range((lo, hi.clone()));
        let mut last_key: Option<&String> = None;
        for (k, v) in iter.by_ref() {
            if filter(v) {
                items.push(v.clone());
                last_key = Some(k);
                if limit.is_some_and(|l| items.len() >= l) {
                    break;
                }
            }
        }
        let mut remaining = 0;
        let mut continue_after = None;
        if limit.is_some_and(|l| items.len() >= l)
            && let Some(last) = last_key
        {
            remaining = table.range((Bound::Excluded(last.clone()), hi)).count();
            if remaining > 0 {
                continue_after = Some(last[prefix.len()..].to_owned());
            }
        }
        Page {
            items,
            continue_after,
            remaining,
            rv,
        }
    }

    /// Every object of `key` (all namespaces), without copying them.
    pub fn all(&self, key: &StorageKey) -> Vec<Arc<Value>> {
        self.lock()
            .tables
            .get(key)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The cluster IPs and node ports Services hold now.
    pub fn service_allocations(&self) -> ServiceAllocations {
        self.lock().services.clone()
    }

    /// The keys of all non-empty tables.
    pub fn tables(&self) -> Vec<StorageKey> {
        self.lock()
            .tables
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Does any object live in `namespace` (in any table)?
    pub fn namespace_has_content(&self, namespace: &str) -> bool {
        let prefix = format!("{namespace}/");
        let inner = self.lock();
        inner
            .tables
            .values()
            .any(|t| t.range(prefix_range(&prefix)).next().is_some())
    }

    /// Subscribe to events of `key` after revision `from`: the events already in history,
    /// plus a receiver for the following ones. `Err(floor)` when `from` is too old.
    pub fn watch_from(&self, key: &StorageKey, from: u64) -> Result<Subscription, u64> {
        let inner = self.lock();
        if from < inner.floor {
            return Err(inner.floor);
        }
        let backlog = inner
            .history
            .iter()
            .filter(|e| e.rv > from && &e.key == key)
            .cloned()
            .collect();
        Ok((backlog, self.events.subscribe()))
    }

    /// Subscribe to events of `key` and take a snapshot of `namespace` (None: all) at the
    /// same revision, for watches that start with the current state.
    pub fn watch_with_snapshot(
        &self,
        key: &StorageKey,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
        let items = inner
            .tables
            .get(key)
            .map(|t| {
                t.range(prefix_range(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.rv, self.events.subscribe())
    }

    /// Subscribe to all future events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> StorageKey {
        StorageKey {
            group: String::new(),
            plural: "configmaps".into(),
        }
    }

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name}})
    }

    #[test]
    fn crud_and_resource_versions() {
        let s = Store::new();
        let a = s.create(&key(), Some("ns"), "a", obj("a")).unwrap();
        assert_eq!(rv_of(&a), Some("101"));
        assert_eq!(
            s.create(&key(), Some("ns"), "a", obj("a")).unwrap_err(),
            Error::AlreadyExists
        );
        assert_eq!(
            s.update(&key(), Some("ns"), "a", obj("a"), Some("1"))
                .unwrap_err(),
            Error::Conflict
        );
        let a2 = s
            .update(&key(), Some("ns"), "a", obj("a"), Some("101"))
            .unwrap();
        assert_eq!(rv_of(&a2), Some("102"));
        let gone = s.delete(&key(), Some("ns"), "a", None).unwrap();
        assert_eq!(rv_of(&gone), Some("103"));
        assert!(s.get(&key(), Some("ns"), "a").is_none());
        assert_eq!(
            s.delete(&key(), Some("ns"), "a", None).unwrap_err(),
            Error::NotFound
        );
    }

    #[test]
    fn list_pages_by_key_order_within_a_namespace() {
        let s = Store::new();
        for (ns, n) in [("b", "x"), ("a", "z"), ("a", "y"), ("a-b", "q"), ("a", "w")] {
            s.create(&key(), Some(ns), n, obj(n)).unwrap();
        }
        let names = |p: &Page| {
            p.items
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let p = s.list(&key(), Some("a"), None, Some(2), |_| true);
        assert_eq!(names(&p), ["w", "y"]);
        assert_eq!(p.continue_after.as_deref(), Some("y"));
        assert_eq!(p.remaining, 1);
        let p = s.list(&key(), Some("a"), Some("y\u{0}"), Some(2), |_| true);
        assert_eq!(names(&p), ["z"]);
        assert!(p.continue_after.is_none());
        // All namespaces: etcd key order ("a-b/" sorts before "a/").
        let p = s.list(&key(), None, None, None, |_| true);
        assert_eq!(names(&p), ["q", "w", "y", "z", "x"]);
        let p = s.list(&key(), None, None, Some(2), |_| true);
        assert_eq!(p.continue_after.as_deref(), Some("a/w"));
        assert!(s.namespace_has_content("a-b"));
        assert!(!s.namespace_has_content("c"));
    }

    #[test]
    fn watch_history_and_floor() {
        let s = Store::new();
        s.create(&key(), Some("ns"), "a", obj("a")).unwrap();
        s.create(&key(), Some("ns"), "b", obj("b")).unwrap();
        let (backlog, _rx) = s.watch_from(&key(), 101).unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].rv, 102);
        assert_eq!(s.watch_from(&key(), 1).unwrap_err(), 100);
    }
}
