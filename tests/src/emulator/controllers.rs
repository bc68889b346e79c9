//! The controllers a real control plane runs that tools can observe, in one
//! background loop: CRD naming/establishing and cleanup, the namespace
//! lifecycle (Terminating → contents removed → finalizers → gone),
//! owner-reference garbage collection (background, foreground, orphan), the
//! PV controller's default-class and provisioner annotations, and the
//! deployment, replica-set and stateful-set controllers (Pods stay Pending:
//! there is no scheduler or kubelet, as on the recorded cluster).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;

use super::api::{Api, meta, meta_str, now};
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
    // Work noticed but not yet done: it waits while the passes are over budget.
    let mut gc_needed = false;
    let mut workloads = Changed::default();
    // Objects written with owner references since the last tick: their owners
    // are looked up one by one, and only a missing one calls for a full pass.
    let mut dependents: Vec<Arc<super::store::Event>> = Vec::new();
    let mut budget = PassBudget::default();
    loop {
        interval.tick().await;
        loop {
            match events.try_recv() {
                Ok(ev) => {
                    workloads.note(&ev);
                    // Deletions free dependents; new owner references may point at owners
                    // that do not exist (which the real collector deletes too).
                    if ev.kind == EventType::Deleted
                        || meta_str(&ev.object, "deletionTimestamp").is_some()
                    {
                        gc_needed = true;
                    } else if meta(&ev.object)
                        .and_then(|m| m.get("ownerReferences"))
                        .is_some()
                    {
                        dependents.push(ev);
                    }
                }
                Err(TryRecvError::Lagged(_)) => {
                    gc_needed = true;
                    workloads = Changed::everything();
                }
                Err(_) => break,
            }
        }
        let (run_workloads, run_gc) = if budget.allows(std::time::Instant::now()) {
            (
                std::mem::take(&mut workloads),
                std::mem::take(&mut gc_needed),
            )
        } else {
            (Changed::default(), false)
        };
        let check = std::mem::take(&mut dependents);
        let api2 = api.clone();
        // The work is synchronous and may scan many objects: keep it off the async workers.
        let (spent, dangling) = tokio::task::spawn_blocking(move || {
            reconcile_crds(&api2);
            reconcile_namespaces(&api2);
            reconcile_claims(&api2);
            let started = std::time::Instant::now();
            let dangling = !run_gc && check.iter().any(|ev| !owners_live(&api2, ev));
            if !run_workloads.is_empty() {
                reconcile_workloads_in(&api2, &run_workloads);
            }
            if run_workloads.stateful_sets {
                reconcile_stateful_sets(&api2);
            }
            if run_gc {
                collect_garbage(&api2);
            }
            (started.elapsed(), dangling)
        })
        .await
        .unwrap_or_default();
        gc_needed |= dangling;
        budget.spent(std::time::Instant::now(), spent);
    }
}

/// The workload objects that changed since the workload controllers' last
/// pass, as `(namespace, name)`: each controller looks at the objects it
/// manages that changed, or whose dependents did, as the real controllers'
/// work queues do.
#[derive(Debug, Default)]
pub struct Changed {
    /// Look at every workload (after missed events).
    all: bool,
    deployments: HashSet<(String, String)>,
    replica_sets: HashSet<(String, String)>,
    stateful_sets: bool,
}

impl Changed {
    /// Everything counts as changed.
    pub fn everything() -> Changed {
        Changed {
            all: true,
            stateful_sets: true,
            ..Changed::default()
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.deployments.is_empty() && self.replica_sets.is_empty()
    }

    /// Take note of a change: a Deployment or ReplicaSet itself, or the
    /// controller (by its owner reference) of a ReplicaSet or Pod.
    fn note(&mut self, ev: &super::store::Event) {
        let ns = ev.namespace.clone().unwrap_or_default();
        let controller = |kind: &str| {
            meta(&ev.object)
                .and_then(|m| m.get("ownerReferences"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == true && r["kind"] == kind)
                .and_then(|r| r["name"].as_str())
                .map(|name| (ns.clone(), name.to_owned()))
        };
        let name = || {
            (
                ns.clone(),
                meta_str(&ev.object, "name").unwrap_or("").to_owned(),
            )
        };
        match (ev.key.group.as_str(), ev.key.plural.as_str()) {
            ("apps", "deployments") => {
                self.deployments.insert(name());
            }
            ("apps", "replicasets") => {
                self.replica_sets.insert(name());
                self.deployments.extend(controller("Deployment"));
            }
            ("apps", "statefulsets") => self.stateful_sets = true,
            ("", "pods") => {
                self.replica_sets.extend(controller("ReplicaSet"));
                self.stateful_sets |= controller("StatefulSet").is_some();
            }
            _ => {}
        }
    }

    fn deployment(&self, ns: &str, name: &str) -> bool {
        self.all || self.deployments.contains(&(ns.to_owned(), name.to_owned()))
    }

    fn replica_set(&self, ns: &str, name: &str) -> bool {
        self.all
            || self
                .replica_sets
                .contains(&(ns.to_owned(), name.to_owned()))
    }
}

/// Do all the owners that `ev`'s object names exist, with the uids it names,
/// and not terminating? Owners of kinds the server does not serve count as
/// live: the collector leaves their dependents alone.
fn owners_live(api: &Api, ev: &super::store::Event) -> bool {
    let refs = meta(&ev.object)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array);
    refs.into_iter().flatten().all(|r| {
        let (group, version, kind) = owner_gvk(r);
        let Some(rt) = api.lookup_kind(group, version, kind) else {
            return true;
        };
        let namespace = if rt.namespaced {
            ev.namespace.as_deref()
        } else {
            None
        };
        let name = r["name"].as_str().unwrap_or("");
        api.store
            .get(&rt.storage_key(), namespace, name)
            .is_some_and(|owner| {
                meta_str(&owner, "uid") == r["uid"].as_str()
                    && meta_str(&owner, "deletionTimestamp").is_none()
            })
    })
}

/// The workload controllers and the garbage collector make full passes over
/// the cluster. Like the real ones, they lag behind a burst of writes rather
/// than compete with it: after a pass that took `d`, the next waits at least
/// `4·d`, so they use at most a fifth of a core. A pass over a small cluster
/// takes microseconds, so this never delays them by more than a tick there.
#[derive(Debug, Default)]
struct PassBudget {
    not_before: Option<std::time::Instant>,
}

impl PassBudget {
    fn allows(&self, now: std::time::Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    fn spent(&mut self, now: std::time::Instant, took: Duration) {
        self.not_before = Some(now + took * 4);
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

/// `rand.SafeEncodeString` of the decimal FNV-32a hash of a pod template, as the
/// deployment controller names ReplicaSets (`<deployment>-<hash>`).
pub fn pod_template_hash(template: &Value) -> String {
    /// FNV-1a of the bytes written through it.
    struct Fnv(u32);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for &b in buf {
                self.0 ^= u32::from(b);
                self.0 = self.0.wrapping_mul(0x0100_0193);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // Every pass hashes every Deployment's template: stream it, do not build its text.
    let mut fnv = Fnv(0x811c_9dc5);
    let _ = serde_json::to_writer(&mut fnv, template);
    fnv.0
        .to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

fn controller_ref(kind: &str, owner: &Value) -> Value {
    json!([{
        "apiVersion": "apps/v1", "kind": kind,
        "name": meta_str(owner, "name").unwrap_or(""),
        "uid": meta_str(owner, "uid").unwrap_or(""),
        "controller": true, "blockOwnerDeletion": true
    }])
}

/// `objects` grouped by the uid of their controller (the owner reference with
/// `controller: true`), built once per pass so that each owner finds its
/// dependents without scanning every object again.
fn by_controller(objects: &[Arc<Value>]) -> HashMap<&str, Vec<&Arc<Value>>> {
    let mut out: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
    for o in objects {
        let refs = o
            .get("metadata")
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array);
        for r in refs.into_iter().flatten() {
            if r["controller"] == true
                && let Some(uid) = r["uid"].as_str()
            {
                out.entry(uid).or_default().push(o);
            }
        }
    }
    out
}

/// The deployment and replica-set controllers: each Deployment gets a ReplicaSet
/// for its current pod template (older ones are scaled to zero), each ReplicaSet
/// gets its Pods (which stay Pending: there is no scheduler or kubelet).
pub fn reconcile_workloads(api: &Api) {
    reconcile_workloads_in(api, &Changed::everything());
}

/// [`reconcile_workloads`] for the Deployments and ReplicaSets in `changed`.
fn reconcile_workloads_in(api: &Api, changed: &Changed) {
    if changed.all {
        reconcile_workloads_of(api, None, changed);
        return;
    }
    let namespaces: std::collections::BTreeSet<&str> = changed
        .deployments
        .iter()
        .chain(&changed.replica_sets)
        .map(|(ns, _)| ns.as_str())
        .collect();
    for ns in namespaces {
        reconcile_workloads_of(api, Some(ns), changed);
    }
}

/// [`reconcile_workloads_in`] for one namespace (`None`: all of them).
fn reconcile_workloads_of(api: &Api, namespace: Option<&str>, changed: &Changed) {
    let key = |g: &str, p: &str| StorageKey {
        group: g.into(),
        plural: p.into(),
    };
    let (Some(rs_type), Some(pod_type)) = (
        api.type_for(&key("apps", "replicasets")),
        api.type_for(&key("", "pods")),
    ) else {
        return;
    };
    let opts = super::api::WriteOptions {
        field_manager: "kube-controller-manager".into(),
        ..Default::default()
    };
    let objects = |k: StorageKey| api.store.list(&k, namespace, None, None, |_| true).items;
    let deployments = objects(key("apps", "deployments"));
    let replica_sets = objects(key("apps", "replicasets"));
    let rs_by_owner = by_controller(&replica_sets);
    // ReplicaSets made in this pass get their Pods in this pass too.
    let mut made: HashSet<(String, String)> = HashSet::new();
    for d in deployments.iter().filter(|d| {
        meta_str(d, "deletionTimestamp").is_none()
            && changed.deployment(
                meta_str(d, "namespace").unwrap_or(""),
                meta_str(d, "name").unwrap_or(""),
            )
    }) {
        let ns = meta_str(d, "namespace").unwrap_or("").to_owned();
        let uid = meta_str(d, "uid").unwrap_or("");
        let empty = json!({});
        let template = d.pointer("/spec/template").unwrap_or(&empty);
        let hash = pod_template_hash(template);
        let name = format!("{}-{hash}", meta_str(d, "name").unwrap_or(""));
        let replicas = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let owned = rs_by_owner.get(uid).cloned().unwrap_or_default();
        let revision = owned.len() as i64 + 1;
        let current = owned
            .iter()
            .find(|rs| meta_str(rs, "name") == Some(name.as_str()));
        match current {
            None => {
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels["pod-template-hash"] = json!(hash);
                let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut rs_template = template.clone();
                rs_template["metadata"]["labels"] = labels.clone();
                let rs = json!({
                    "metadata": {"name": name, "namespace": ns, "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                            "deployment.kubernetes.io/max-replicas": (replicas + (replicas + 3) / 4).to_string(),
                            "deployment.kubernetes.io/revision": revision.to_string()},
                        "ownerReferences": controller_ref("Deployment", d)},
                    "spec": {"replicas": replicas, "selector": selector, "template": rs_template}
                });
                if api.create(&rs_type, Some(&ns), rs, &opts).is_ok() {
                    made.insert((ns.clone(), name.clone()));
                }
            }
            Some(rs) if rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(replicas) => {
                let body = json!({"spec": {"replicas": replicas}}).to_string();
                let _ = api.patch(
                    &rs_type,
                    Some(&ns),
                    &name,
                    super::patch::PatchType::Merge,
                    body.as_bytes(),
                    None,
                    &opts,
                );
            }
            Some(_) => {}
        }
        for old in owned
            .iter()
            .filter(|rs| meta_str(rs, "name") != Some(name.as_str()))
        {
            if old.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0) {
                let old_name = meta_str(old, "name").unwrap_or("").to_owned();
                let _ = api.patch(
                    &rs_type,
                    Some(&ns),
                    &old_name,
                    super::patch::PatchType::Merge,
                    br#"{"spec":{"replicas":0}}"#,
                    None,
                    &opts,
                );
            }
        }
    }
    let replica_sets = objects(key("apps", "replicasets"));
    let pods = objects(key("", "pods"));
    let pods_by_owner = by_controller(&pods);
    for rs in replica_sets.iter().filter(|r| {
        let (ns, name) = (
            meta_str(r, "namespace").unwrap_or(""),
            meta_str(r, "name").unwrap_or(""),
        );
        meta_str(r, "deletionTimestamp").is_none()
            && (changed.replica_set(ns, name) || made.contains(&(ns.to_owned(), name.to_owned())))
    }) {
        let ns = meta_str(rs, "namespace").unwrap_or("").to_owned();
        let uid = meta_str(rs, "uid").unwrap_or("");
        let want = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let mut have: Vec<&Arc<Value>> = pods_by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| meta_str(p, "deletionTimestamp").is_none())
            .collect();
        for _ in have.len()..want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let pod = json!({
                "metadata": {"generateName": format!("{}-", meta_str(rs, "name").unwrap_or("")),
                    "namespace": ns,
                    "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                    "ownerReferences": controller_ref("ReplicaSet", rs)},
                "spec": template.get("spec").cloned().unwrap_or(json!({}))
            });
            let _ = api.create(&pod_type, Some(&ns), pod, &opts);
        }
        have.sort_by_key(|p| meta_str(p, "creationTimestamp").map(str::to_owned));
        while have.len() > want {
            if let Some(p) = have.pop() {
                let name = meta_str(p, "name").unwrap_or("").to_owned();
                api.delete_internal(&pod_type, Some(&ns), &name);
            }
        }
    }
}

/// The stateful-set controller: claims from `volumeClaimTemplates` and pods named
/// `<name>-<ordinal>`. With the default OrderedReady policy only ordinal 0 is created,
/// because it never becomes Ready without a kubelet; with Parallel all are.
pub fn reconcile_stateful_sets(api: &Api) {
    let key = |g: &str, p: &str| StorageKey {
        group: g.into(),
        plural: p.into(),
    };
    let (Some(pod_type), Some(pvc_type)) = (
        api.type_for(&key("", "pods")),
        api.type_for(&key("", "persistentvolumeclaims")),
    ) else {
        return;
    };
    let opts = super::api::WriteOptions {
        field_manager: "kube-controller-manager".into(),
        ..Default::default()
    };
    for sts in api.store.all(&key("apps", "statefulsets")) {
        if meta_str(&sts, "deletionTimestamp").is_some() {
            continue;
        }
        let ns = meta_str(&sts, "namespace").unwrap_or("").to_owned();
        let name = meta_str(&sts, "name").unwrap_or("").to_owned();
        let replicas = sts
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let parallel = sts
            .pointer("/spec/podManagementPolicy")
            .and_then(Value::as_str)
            == Some("Parallel");
        let wanted = if parallel { replicas } else { replicas.min(1) };
        let selector_labels = sts
            .pointer("/spec/selector/matchLabels")
            .cloned()
            .unwrap_or(json!({}));
        let templates = sts
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for ordinal in 0..wanted {
            let pod_name = format!("{name}-{ordinal}");
            for t in &templates {
                let claim = format!("{}-{pod_name}", meta_str(t, "name").unwrap_or(""));
                if api
                    .store
                    .get(&pvc_type.storage_key(), Some(&ns), &claim)
                    .is_some()
                {
                    continue;
                }
                let mut labels = t.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
                if let (Some(l), Some(sel)) = (labels.as_object_mut(), selector_labels.as_object())
                {
                    for (k, v) in sel {
                        l.insert(k.clone(), v.clone());
                    }
                }
                let pvc = json!({"metadata": {"name": claim, "namespace": ns, "labels": labels},
                                 "spec": t.get("spec").cloned().unwrap_or(json!({}))});
                let _ = api.create(&pvc_type, Some(&ns), pvc, &opts);
            }
            if api
                .store
                .get(&pod_type.storage_key(), Some(&ns), &pod_name)
                .is_some()
            {
                continue;
            }
            let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
            labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
            let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
            spec["hostname"] = json!(pod_name);
            if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str) {
                spec["subdomain"] = json!(svc);
            }
            let volumes: Vec<Value> = templates
                .iter()
                .map(|t| {
                    let v = meta_str(t, "name").unwrap_or("");
                    json!({"name": v, "persistentVolumeClaim": {"claimName": format!("{v}-{pod_name}")}})
                })
                .collect();
            if !volumes.is_empty() {
                let list = spec
                    .get("volumes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                spec["volumes"] = Value::Array(volumes.into_iter().chain(list).collect());
            }
            let mut sts_ref = controller_ref("StatefulSet", &sts);
            sts_ref[0]["apiVersion"] = json!("apps/v1");
            let pod = json!({"metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                                          "ownerReferences": sts_ref},
                             "spec": spec});
            let _ = api.create(&pod_type, Some(&ns), pod, &opts);
        }
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
    let pods = api.store.all(&StorageKey {
        group: String::new(),
        plural: "pods".into(),
    });
    for pvc in &claims {
        // The pvc-protection controller: a claim being deleted keeps its finalizer
        // only while a pod still uses it.
        if meta_str(pvc, "deletionTimestamp").is_some() {
            let ns = meta_str(pvc, "namespace");
            let name = meta_str(pvc, "name").unwrap_or("");
            let in_use = pods.iter().any(|p| {
                meta_str(p, "namespace") == ns
                    && !matches!(
                        p.pointer("/status/phase").and_then(Value::as_str),
                        Some("Succeeded" | "Failed")
                    )
                    && p.pointer("/spec/volumes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|v| {
                            v.pointer("/persistentVolumeClaim/claimName") == Some(&json!(name))
                        })
            });
            if !in_use && let Some(rt) = api.type_for(&pvc_key) {
                remove_finalizer(api, &rt, ns, name, "kubernetes.io/pvc-protection");
            }
        }
    }
    // The pv-protection controller: an unbound volume being deleted loses its finalizer.
    let pv_key = StorageKey {
        group: String::new(),
        plural: "persistentvolumes".into(),
    };
    if let Some(pv_type) = api.type_for(&pv_key) {
        for pv in api.store.all(&pv_key) {
            if meta_str(&pv, "deletionTimestamp").is_some()
                && pv.pointer("/status/phase").and_then(Value::as_str) != Some("Bound")
            {
                let name = meta_str(&pv, "name").unwrap_or("").to_owned();
                remove_finalizer(api, &pv_type, None, &name, "kubernetes.io/pv-protection");
            }
        }
    }
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

/// The group, version and kind an owner reference names.
fn owner_gvk(owner_ref: &Value) -> (&str, &str, &str) {
    let api_version = owner_ref["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    (group, version, owner_ref["kind"].as_str().unwrap_or(""))
}

fn owner_kind_served(registry: &super::resources::Registry, owner_ref: &Value) -> bool {
    let (group, version, kind) = owner_gvk(owner_ref);
    registry.lookup_kind(group, version, kind).is_some()
}

/// Owner-reference garbage collection: dependents of deleted owners are deleted
/// (background), owners deleting in the foreground wait for their dependents, and
/// orphaning owners release them first.
pub fn collect_garbage(api: &Api) {
    let registry = api.registry();
    let tables = api.store.tables();
    let mut all: Vec<(StorageKey, Arc<Value>)> = Vec::new();
    for key in &tables {
        for o in api.store.all(key) {
            all.push((key.clone(), o));
        }
    }
    let live_uids: HashSet<&str> = all.iter().filter_map(|(_, o)| meta_str(o, "uid")).collect();
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
        let ns = meta_str(o, "namespace");
        let name = meta_str(o, "name").unwrap_or("");
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
            let _ = api.store.update(key, ns, name, new, rv.as_deref());
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
            api.delete_internal(&rt, ns, name);
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
    fn the_template_hash_is_fnv_1a_of_the_compact_json() {
        // FNV-1a (32 bit) of the template's compact JSON text is 1362378906;
        // each decimal digit picks a character, as the Deployment controller's does.
        let template = json!({"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(pod_template_hash(&template), "57b67cdf4b");
    }

    #[test]
    fn full_passes_wait_four_times_as_long_as_the_last_one_took() {
        let mut budget = PassBudget::default();
        let t0 = std::time::Instant::now();
        assert!(budget.allows(t0));
        budget.spent(t0, Duration::from_millis(100));
        assert!(!budget.allows(t0 + Duration::from_millis(399)));
        assert!(budget.allows(t0 + Duration::from_millis(400)));
    }

    fn event(key: StorageKey, namespace: &str, object: Value) -> super::super::store::Event {
        super::super::store::Event {
            rv: 1,
            key,
            namespace: Some(namespace.to_owned()),
            kind: EventType::Added,
            object: Arc::new(object),
            old: None,
        }
    }

    fn apps(plural: &str) -> StorageKey {
        StorageKey {
            group: "apps".into(),
            plural: plural.into(),
        }
    }

    fn deployment(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"a": name}},
            "template": {"metadata": {"labels": {"a": name}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
    }

    #[test]
    fn changes_mark_the_object_and_its_controller() {
        let mut changed = Changed::default();
        assert!(changed.is_empty());
        let owned_by = |kind: &str, name: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": true}]);
        changed.note(&event(
            apps("deployments"),
            "a",
            json!({"metadata": {"name": "web"}}),
        ));
        changed.note(&event(
            apps("replicasets"),
            "a",
            json!({"metadata": {"name": "api-1", "ownerReferences": owned_by("Deployment", "api")}}),
        ));
        let pod_key = StorageKey {
            group: String::new(),
            plural: "pods".into(),
        };
        changed.note(&event(
            pod_key.clone(),
            "b",
            json!({"metadata": {"name": "db-1-x", "ownerReferences": owned_by("ReplicaSet", "db-1")}}),
        ));
        assert!(changed.deployment("a", "web"));
        assert!(changed.deployment("a", "api"));
        assert!(changed.replica_set("a", "api-1"));
        assert!(changed.replica_set("b", "db-1"));
        assert!(!changed.deployment("b", "web"));
        assert!(!changed.replica_set("a", "db-1"));
        assert!(!changed.stateful_sets);
        changed.note(&event(
            pod_key,
            "b",
            json!({"metadata": {"name": "db-0", "ownerReferences": owned_by("StatefulSet", "db")}}),
        ));
        assert!(changed.stateful_sets);
        assert!(Changed::everything().deployment("any", "thing"));
    }

    #[test]
    fn only_changed_deployments_are_reconciled() {
        let api = Api::new("CA".into()).unwrap();
        api.bootstrap().unwrap();
        let deployments = api.lookup("apps", "v1", "deployments").unwrap();
        let opts = WriteOptions::default();
        for name in ["one", "two"] {
            api.create(&deployments, Some("default"), deployment(name), &opts)
                .unwrap();
        }
        let mut changed = Changed::default();
        changed.deployments.insert(("default".into(), "one".into()));
        reconcile_workloads_in(&api, &changed);
        let owner_of = |o: &Arc<Value>| o["metadata"]["ownerReferences"][0]["name"].clone();
        let replica_sets = api.store.all(&apps("replicasets"));
        assert_eq!(
            replica_sets.iter().map(owner_of).collect::<Vec<_>>(),
            vec![json!("one")]
        );
        // The ReplicaSet made in the pass got its Pod in the same pass.
        let pods = api.store.all(&StorageKey {
            group: String::new(),
            plural: "pods".into(),
        });
        assert_eq!(pods.len(), 1);
        reconcile_workloads(&api);
        assert_eq!(api.store.all(&apps("replicasets")).len(), 2);
    }

    #[test]
    fn owners_are_looked_up_by_kind_name_and_uid() {
        let api = Api::new("CA".into()).unwrap();
        api.bootstrap().unwrap();
        let deployments = api.lookup("apps", "v1", "deployments").unwrap();
        let created = api
            .create(
                &deployments,
                Some("default"),
                deployment("web"),
                &WriteOptions::default(),
            )
            .unwrap();
        let uid = meta_str(&created.object, "uid").unwrap().to_owned();
        let dependent = |namespace: &str, api_version: &str, kind: &str, name: &str, uid: &str| {
            event(
                StorageKey {
                    group: String::new(),
                    plural: "configmaps".into(),
                },
                namespace,
                json!({"metadata": {"name": "dep", "ownerReferences": [
                    {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}]}}),
            )
        };
        assert!(owners_live(
            &api,
            &dependent("default", "apps/v1", "Deployment", "web", &uid)
        ));
        // Another uid: the owner was replaced by a namesake.
        assert!(!owners_live(
            &api,
            &dependent("default", "apps/v1", "Deployment", "web", "other")
        ));
        assert!(!owners_live(
            &api,
            &dependent("default", "apps/v1", "Deployment", "gone", &uid)
        ));
        // Owners are in the dependent's namespace.
        assert!(!owners_live(
            &api,
            &dependent("elsewhere", "apps/v1", "Deployment", "web", &uid)
        ));
        // A kind the server does not serve: left to the full pass's rule (left alone).
        assert!(owners_live(
            &api,
            &dependent("default", "nosuch.example.com/v1", "Ghost", "g", "x")
        ));
    }

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
