//! The controllers a real control plane runs that tools can observe, in one
//! background loop: CRD naming/establishing and cleanup, the namespace
//! lifecycle (Terminating → contents removed → finalizers → gone) and
//! owner-reference garbage collection (background, foreground, orphan).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;

use super::api::{Api, meta_str, now};
use super::crd;
use super::resources::{ResourceType, StorageKey};
use super::store::EventType;

/// How often the controllers look at the cluster.
const TICK: Duration = Duration::from_millis(50);

fn crd_key() -> StorageKey {
    StorageKey {
        group: "apiextensions.k8s.io".into(),
        plural: "customresourcedefinitions".into(),
    }
}

fn ns_key() -> StorageKey {
    StorageKey {
        group: String::new(),
        plural: "namespaces".into(),
    }
}

/// Run the controllers until the runtime shuts down.
pub async fn run(api: Arc<Api>) {
    let mut events = api.store.subscribe();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // Anything deleted or newly terminating since the last tick?
        let mut gc_needed = false;
        loop {
            match events.try_recv() {
                Ok(ev) => {
                    // Deletions free dependents; new owner references may point at owners
                    // that do not exist (which the real collector deletes too).
                    if ev.kind == EventType::Deleted
                        || meta_str(&ev.object, "deletionTimestamp").is_some()
                        || ev.object.pointer("/metadata/ownerReferences").is_some()
                    {
                        gc_needed = true;
                    }
                }
                Err(TryRecvError::Lagged(_)) => gc_needed = true,
                Err(_) => break,
            }
        }
        let api2 = api.clone();
        // The work is synchronous and may scan many objects: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            reconcile_crds(&api2);
            reconcile_namespaces(&api2);
            reconcile_claims(&api2);
            if gc_needed {
                collect_garbage(&api2);
            }
        })
        .await;
    }
}

/// Establish new CRDs, serve their current versions, and clean up deleted ones.
pub fn reconcile_crds(api: &Api) {
    let Some(crd_type) = api.type_for(&crd_key()) else {
        return;
    };
    type Types = Box<dyn FnOnce() -> Vec<Arc<ResourceType>>>;
    let mut served: Vec<(String, String, Types)> = Vec::new();
    for c in api.store.all(&crd_key()) {
        let name = meta_str(&c, "name").unwrap_or("").to_owned();
        if meta_str(&c, "deletionTimestamp").is_some() {
            cleanup_crd(api, &crd_type, &c, &name);
            // Still served while its objects are being removed.
            let rv = meta_str(&c, "resourceVersion").unwrap_or("").to_owned();
            let c2 = c.clone();
            served.push((name, rv, Box::new(move || crd::resource_types(&c2))));
            continue;
        }
        if !crd::is_established(&c) {
            let mut new = (*c).clone();
            let status = crd::established_status(&c, &now());
            if let Some(m) = new.as_object_mut() {
                m.insert("status".into(), status);
            }
            let rv = meta_str(&c, "resourceVersion").map(str::to_owned);
            let _ = api
                .store
                .update(&crd_key(), None, &name, new, rv.as_deref());
        }
        let rv = meta_str(&c, "resourceVersion").unwrap_or("").to_owned();
        let c2 = c.clone();
        served.push((name, rv, Box::new(move || crd::resource_types(&c2))));
    }
    let mut reg = api.registry.write().unwrap_or_else(|e| e.into_inner());
    let names: HashSet<String> = served.iter().map(|(n, _, _)| n.clone()).collect();
    for (name, rv, types) in served {
        if reg.custom_version(&name) != Some(rv.as_str()) {
            reg.set_custom(&name, &rv, types());
        }
    }
    let stale: Vec<String> = reg
        .custom_names()
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    for n in stale {
        reg.remove_custom(&n);
    }
}

fn cleanup_crd(api: &Api, crd_type: &ResourceType, c: &Value, name: &str) {
    let group = c
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = c
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let key = StorageKey {
        group: group.to_owned(),
        plural: plural.to_owned(),
    };
    let objects = api.store.all(&key);
    if !objects.is_empty() {
        let types = crd::resource_types(c);
        for o in objects {
            let ns = meta_str(&o, "namespace").map(str::to_owned);
            let n = meta_str(&o, "name").unwrap_or("").to_owned();
            match types.first() {
                Some(rt) => api.delete_internal(rt, ns.as_deref(), &n),
                None => {
                    let _ = api.store.delete(&key, ns.as_deref(), &n, None);
                }
            }
        }
        return;
    }
    remove_finalizer(api, crd_type, None, name, crd::CLEANUP_FINALIZER);
}

/// Drop `finalizer` from an object; if it was the last one of an object being
/// deleted, the object goes.
fn remove_finalizer(api: &Api, rt: &ResourceType, ns: Option<&str>, name: &str, finalizer: &str) {
    let key = rt.storage_key();
    let Some(o) = api.store.get(&key, ns, name) else {
        return;
    };
    let mut new = (*o).clone();
    let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(Value::Array(list)) = meta.get_mut("finalizers") else {
        return;
    };
    let before = list.len();
    list.retain(|f| f != finalizer);
    if list.len() == before {
        return;
    }
    let empty = list.is_empty();
    if empty {
        meta.remove("finalizers");
    }
    let rv = meta_str(&o, "resourceVersion").map(str::to_owned);
    if empty && meta_str(&o, "deletionTimestamp").is_some() {
        if let Ok(stored) = api.store.update(&key, ns, name, new, rv.as_deref()) {
            let rv = meta_str(&stored, "resourceVersion").map(str::to_owned);
            let _ = api.store.delete(&key, ns, name, rv.as_deref());
        }
    } else {
        let _ = api.store.update(&key, ns, name, new, rv.as_deref());
    }
}

/// The PV controller's part that is visible without a storage backend: pending
/// claims without a class get the default one (RetroactiveDefaultStorageClass), and
/// claims of a class with Immediate binding are marked for its provisioner.
pub fn reconcile_claims(api: &Api) {
    let pvc_key = StorageKey {
        group: String::new(),
        plural: "persistentvolumeclaims".into(),
    };
    let claims = api.store.all(&pvc_key);
    if claims.is_empty() {
        return;
    }
    let classes = api.store.all(&StorageKey {
        group: "storage.k8s.io".into(),
        plural: "storageclasses".into(),
    });
    let is_default = |sc: &Value| {
        sc.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| {
                a.get("storageclass.kubernetes.io/is-default-class") == Some(&json!("true"))
            })
    };
    let default_class = classes
        .iter()
        .filter(|sc| is_default(sc))
        .max_by(|a, b| meta_str(a, "creationTimestamp").cmp(&meta_str(b, "creationTimestamp")))
        .and_then(|sc| meta_str(sc, "name").map(str::to_owned));
    for pvc in claims {
        if pvc.pointer("/status/phase").and_then(Value::as_str) != Some("Pending")
            || pvc.pointer("/spec/volumeName").is_some()
            || meta_str(&pvc, "deletionTimestamp").is_some()
        {
            continue;
        }
        let mut new = (*pvc).clone();
        if new.pointer("/spec/storageClassName").is_none()
            && let (Some(dc), Some(spec)) = (
                &default_class,
                new.get_mut("spec").and_then(Value::as_object_mut),
            )
        {
            spec.insert("storageClassName".into(), json!(dc));
        }
        let class = new
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(sc) = classes
            .iter()
            .find(|sc| !class.is_empty() && meta_str(sc, "name") == Some(class))
        {
            let immediate = sc
                .get("volumeBindingMode")
                .and_then(Value::as_str)
                .unwrap_or("Immediate")
                == "Immediate";
            let provisioner = sc
                .get("provisioner")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if immediate
                && !provisioner.is_empty()
                && let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut)
            {
                let ann = meta.entry("annotations").or_insert_with(|| json!({}));
                if let Some(a) = ann.as_object_mut() {
                    for k in [
                        "volume.beta.kubernetes.io/storage-provisioner",
                        "volume.kubernetes.io/storage-provisioner",
                    ] {
                        a.entry(k).or_insert_with(|| json!(provisioner));
                    }
                }
            }
        }
        if new != *pvc {
            let ns = meta_str(&pvc, "namespace").map(str::to_owned);
            let name = meta_str(&pvc, "name").unwrap_or("").to_owned();
            let rv = meta_str(&pvc, "resourceVersion").map(str::to_owned);
            let _ = api
                .store
                .update(&pvc_key, ns.as_deref(), &name, new, rv.as_deref());
        }
    }
}

/// Namespaces being deleted: remove their contents, report what is left, and drop the
/// `kubernetes` finalizer once empty.
pub fn reconcile_namespaces(api: &Api) {
    let Some(ns_type) = api.type_for(&ns_key()) else {
        return;
    };
    for n in api.store.all(&ns_key()) {
        if meta_str(&n, "deletionTimestamp").is_none() {
            continue;
        }
        let name = meta_str(&n, "name").unwrap_or("").to_owned();
        let mut remaining_finalizers: HashSet<String> = HashSet::new();
        let mut remaining = 0usize;
        for key in api.store.tables() {
            let rt = api.type_for(&key);
            if rt.as_ref().is_some_and(|t| !t.namespaced) {
                continue;
            }
            let page = api.store.list(&key, Some(&name), None, None, |_| true);
            for o in page.items {
                remaining += 1;
                let oname = meta_str(&o, "name").unwrap_or("").to_owned();
                for f in o
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    remaining_finalizers.insert(f.to_owned());
                }
                if meta_str(&o, "deletionTimestamp").is_some() {
                    continue;
                }
                match &rt {
                    Some(rt) => api.delete_internal(rt, Some(&name), &oname),
                    None => {
                        let _ = api.store.delete(&key, Some(&name), &oname, None);
                    }
                }
            }
        }
        if remaining > 0 && !api.store.namespace_has_content(&name) {
            remaining = 0;
        }
        if remaining == 0 {
            // Content gone: the namespace controller removes the `kubernetes` spec finalizer.
            let mut new = (*n).clone();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
            let rv = meta_str(&n, "resourceVersion").map(str::to_owned);
            let meta_finalizers = n
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if meta_finalizers {
                let _ = api.store.update(&ns_key(), None, &name, new, rv.as_deref());
            } else {
                let _ = api.store.delete(&ns_key(), None, &name, rv.as_deref());
            }
        } else if !remaining_finalizers.is_empty() {
            set_terminating_conditions(api, &ns_type, &n, remaining, &remaining_finalizers);
        }
    }
}

fn set_terminating_conditions(
    api: &Api,
    _ns_type: &ResourceType,
    n: &Value,
    remaining: usize,
    finalizers: &HashSet<String>,
) {
    let mut fs: Vec<&String> = finalizers.iter().collect();
    fs.sort();
    let t = meta_str(n, "deletionTimestamp").unwrap_or("").to_owned();
    let cond = |ty: &str, status: &str, reason: &str, message: String| json!({"type": ty, "status": status, "lastTransitionTime": t, "reason": reason, "message": message});
    let conditions = json!([
        cond(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into()
        ),
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into()
        ),
        cond(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into()
        ),
        cond(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {remaining} objects remain")
        ),
        cond(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                fs.iter()
                    .map(|f| format!("{f} in {remaining} resource instances"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        ),
    ]);
    if n.pointer("/status/conditions") == Some(&conditions) {
        return;
    }
    let mut new = n.clone();
    if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("conditions".into(), conditions);
    }
    let name = meta_str(n, "name").unwrap_or("").to_owned();
    let rv = meta_str(n, "resourceVersion").map(str::to_owned);
    let _ = api.store.update(&ns_key(), None, &name, new, rv.as_deref());
}

fn owner_kind_served(registry: &super::resources::Registry, owner_ref: &Value) -> bool {
    let api_version = owner_ref["apiVersion"].as_str().unwrap_or("");
    let kind = owner_ref["kind"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    registry.group(group).is_some_and(|g| {
        g.versions
            .iter()
            .filter(|v| v.version == version)
            .any(|v| v.resources.iter().any(|r| r.kind == kind))
    })
}

/// Owner-reference garbage collection: dependents of deleted owners are deleted
/// (background), owners deleting in the foreground wait for their dependents, and
/// orphaning owners release them first.
pub fn collect_garbage(api: &Api) {
    let registry = api.registry();
    let tables = api.store.tables();
    let mut live_uids: HashSet<String> = HashSet::new();
    let mut all: Vec<(StorageKey, Arc<Value>)> = Vec::new();
    for key in &tables {
        for o in api.store.all(key) {
            if let Some(uid) = meta_str(&o, "uid") {
                live_uids.insert(uid.to_owned());
            }
            all.push((key.clone(), o));
        }
    }
    // Owners in foreground deletion / orphaning, by uid.
    let mut foreground: HashSet<String> = HashSet::new();
    let mut orphaning: HashSet<String> = HashSet::new();
    let mut owners: Vec<(StorageKey, Arc<Value>)> = Vec::new();
    for (key, o) in &all {
        if meta_str(o, "deletionTimestamp").is_none() {
            continue;
        }
        let fs: Vec<&str> = o
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let uid = meta_str(o, "uid").unwrap_or("").to_owned();
        if fs.contains(&"foregroundDeletion") {
            foreground.insert(uid.clone());
            owners.push((key.clone(), o.clone()));
        }
        if fs.contains(&"orphan") {
            orphaning.insert(uid);
            owners.push((key.clone(), o.clone()));
        }
    }
    let mut has_dependents: HashSet<String> = HashSet::new();
    for (key, o) in &all {
        let Some(refs) = o
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let ns = meta_str(o, "namespace").map(str::to_owned);
        let name = meta_str(o, "name").unwrap_or("").to_owned();
        let uids: Vec<&str> = refs.iter().filter_map(|r| r["uid"].as_str()).collect();
        if uids.iter().any(|u| orphaning.contains(*u)) {
            // Orphan: drop the references to the orphaning owners.
            let mut new = (**o).clone();
            if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut)
                && let Some(Value::Array(rs)) = meta.get_mut("ownerReferences")
            {
                rs.retain(|r| !r["uid"].as_str().is_some_and(|u| orphaning.contains(u)));
                if rs.is_empty() {
                    meta.remove("ownerReferences");
                }
            }
            let rv = meta_str(o, "resourceVersion").map(str::to_owned);
            let _ = api
                .store
                .update(key, ns.as_deref(), &name, new, rv.as_deref());
            continue;
        }
        for u in &uids {
            if foreground.contains(*u) {
                has_dependents.insert((*u).to_owned());
            }
        }
        // An owner of a kind the server does not serve cannot be looked up: the real
        // collector leaves such dependents alone (and retries).
        let resolvable = refs.iter().all(|r| owner_kind_served(&registry, r));
        let all_gone = resolvable
            && uids
                .iter()
                .all(|u| !live_uids.contains(*u) || foreground.contains(*u));
        if all_gone
            && !uids.is_empty()
            && meta_str(o, "deletionTimestamp").is_none()
            && let Some(rt) = api.type_for(key)
        {
            api.delete_internal(&rt, ns.as_deref(), &name);
        }
    }
    for (key, o) in owners {
        let uid = meta_str(&o, "uid").unwrap_or("").to_owned();
        let ns = meta_str(&o, "namespace").map(str::to_owned);
        let name = meta_str(&o, "name").unwrap_or("").to_owned();
        let Some(rt) = api.type_for(&key) else {
            continue;
        };
        if orphaning.contains(&uid) {
            remove_finalizer(api, &rt, ns.as_deref(), &name, "orphan");
        }
        if foreground.contains(&uid) && !has_dependents.contains(&uid) {
            remove_finalizer(api, &rt, ns.as_deref(), &name, "foregroundDeletion");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::api::WriteOptions;

    #[test]
    fn dangling_owners_are_collected_unless_their_kind_is_unknown() {
        let api = Api::new("CA".into()).unwrap();
        api.bootstrap().unwrap();
        let cm = api.lookup("", "v1", "configmaps").unwrap();
        let opts = WriteOptions::default();
        for (name, api_version, kind) in [
            ("dangling", "apps/v1", "Deployment"),
            ("ghost", "nosuch.example.com/v1", "Ghost"),
        ] {
            api.create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": name, "ownerReferences": [
                    {"apiVersion": api_version, "kind": kind, "name": "x", "uid": "00000000-0000-0000-0000-000000000000"}]}}),
                &opts,
            )
            .unwrap();
        }
        collect_garbage(&api);
        assert!(api.get(&cm, Some("default"), "dangling").is_err());
        assert!(api.get(&cm, Some("default"), "ghost").is_ok());
    }
}
