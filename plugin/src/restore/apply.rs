//! The edge that talks to the target cluster: applies a [`Plan`] tier by
//! tier, items inside a tier concurrently, and reports one [`ItemResult`] per
//! item.
//!
//! Objects are sent as they are (plain JSON through `kube::Client::request`)
//! in the API version recorded in the backup; discovery on the target only
//! says whether that version is served. Transient API errors (429, 5xx,
//! broken connections) are retried with backoff.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::core::params::{GetParams, Patch, PatchParams, PostParams};
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::order::Tier;
use super::plan::{Decision, Item, Plan, Spool, Spooled};
use super::report::{Action, ExistingPolicy, ItemResult};
use super::transform::{ObjectKey, TransformOptions, resolve_owner_refs, to_body, transform};

/// The field manager recorded on objects the restore writes.
pub const FIELD_MANAGER: &str = "kubectl-backup";

/// How long to wait for a restored CRD to be Established.
const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for a terminating namespace to be gone before recreating it.
const NAMESPACE_TERMINATION_TIMEOUT: Duration = Duration::from_secs(180);

/// Attempts for one request when the API server answers 429/5xx or the connection breaks.
const ATTEMPTS: u32 = 5;

/// What a create asks to be answered with: the new object's metadata alone
/// (all the restore reads is its uid), or the whole object from a server that
/// cannot transform its answers (kube-apiserver can, for every kind).
const METADATA_ONLY: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json";

/// How the restore runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The transforms.
    pub transform: TransformOptions,
    /// `--existing-resource-policy`.
    pub existing: ExistingPolicy,
    /// Server-side dry run: nothing is persisted.
    pub dry_run: bool,
    /// Items applied at once inside a tier.
    pub concurrency: usize,
}

/// Something to tell the caller as the restore goes (progress bars, logs).
pub trait Progress: Send + Sync {
    /// A tier starts with `items` spooled items (generated ones not counted).
    fn tier(&self, tier: Tier, items: u64);
    /// One item is done.
    fn item(&self, result: &ItemResult);
}

/// A progress sink that ignores everything.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn tier(&self, _: Tier, _: u64) {}
    fn item(&self, _: &ItemResult) {}
}

/// Outcome of [`apply`]: per-item results plus warnings about the restore as a whole.
#[derive(Debug, Default)]
pub struct Applied {
    /// One per item.
    pub items: Vec<ItemResult>,
    /// Warnings (CRDs not established in time, owner references left out, …).
    pub warnings: Vec<super::report::Problem>,
}

/// Resources the target serves: (group, version, plural).
#[derive(Debug, Default)]
struct Served(HashSet<(String, String, String)>);

impl Served {
    async fn discover(client: &kube::Client) -> Served {
        let discovery = match kube::Discovery::new(client.clone()).run_aggregated().await {
            Ok(d) => Ok(d),
            Err(_) => kube::Discovery::new(client.clone()).run().await,
        };
        let mut served = HashSet::new();
        match discovery {
            Ok(discovery) => {
                for group in discovery.groups() {
                    for version in group.versions() {
                        for (resource, _) in group.versioned_resources(version) {
                            served.insert((
                                resource.group.clone(),
                                version.to_owned(),
                                resource.plural.clone(),
                            ));
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "discovery on the target failed; trying every item")
            }
        }
        Served(served)
    }

    fn serves(&self, group: &str, version: &str, resource: &str) -> bool {
        // With no discovery at all, let the API server answer for each item.
        self.0.is_empty()
            || self
                .0
                .contains(&(group.to_owned(), version.to_owned(), resource.to_owned()))
    }
}

/// Shared state of one restore.
struct Engine {
    client: kube::Client,
    options: ApplyOptions,
    plan: Plan,
    served: tokio::sync::RwLock<Served>,
    /// Source identity → uid on the target, for owner references.
    uids: Mutex<HashMap<ObjectKey, String>>,
    /// Items whose owners were restored in a later tier: patched at the end.
    pending_owners: Mutex<Vec<PendingOwners>>,
    progress: Arc<dyn Progress>,
}

#[derive(Debug)]
struct PendingOwners {
    url: String,
    name: String,
    resource: String,
    namespace: Option<String>,
    /// References already resolved (with target uids).
    kept: Vec<Value>,
    /// References to owners that had no uid yet (source uids).
    pending: Vec<Value>,
    source_namespace: Option<String>,
}

/// Apply a plan to the target cluster. Items come from `spool` tier by tier;
/// `generated` adds the restore's own items (namespaces the archive lacks,
/// volume snapshot objects) to their tiers.
pub async fn apply(
    client: kube::Client,
    options: ApplyOptions,
    plan: Plan,
    spool: Arc<Spool>,
    generated: Vec<Item>,
    progress: Arc<dyn Progress>,
) -> anyhow::Result<Applied> {
    let served = Served::discover(&client).await;
    let engine = Arc::new(Engine {
        client,
        options,
        plan,
        served: tokio::sync::RwLock::new(served),
        uids: Mutex::new(HashMap::new()),
        pending_owners: Mutex::new(Vec::new()),
        progress,
    });
    let mut generated_by_tier: HashMap<Tier, Vec<Item>> = HashMap::new();
    for item in generated {
        generated_by_tier
            .entry(Tier::of(&item.group, &item.resource))
            .or_default()
            .push(item);
    }
    let mut applied = Applied::default();
    for tier in Tier::ALL {
        let extra = generated_by_tier.remove(&tier).unwrap_or_default();
        let results = engine
            .clone()
            .apply_tier(tier, spool.clone(), extra)
            .await?;
        if tier == Tier::CustomResourceDefinitions && !engine.options.dry_run {
            let crds: Vec<String> = results
                .iter()
                .filter(|r| {
                    matches!(
                        r.action,
                        Action::Created | Action::Updated | Action::SkippedExisting
                    )
                })
                .map(|r| r.name.clone())
                .collect();
            if !crds.is_empty() {
                applied
                    .warnings
                    .extend(engine.wait_established(&crds).await);
                let served = Served::discover(&engine.client).await;
                *engine.served.write().await = served;
            }
        }
        applied.items.extend(results);
    }
    applied.warnings.extend(engine.patch_pending_owners().await);
    Ok(applied)
}

impl Engine {
    async fn apply_tier(
        self: Arc<Self>,
        tier: Tier,
        spool: Arc<Spool>,
        extra: Vec<Item>,
    ) -> anyhow::Result<Vec<ItemResult>> {
        let (tx, rx) = mpsc::channel::<Result<Spooled, super::plan::Error>>(256);
        let engine = self.clone();
        // What a restored workload controller recreates is skipped on its
        // record header alone: its object is neither read nor sent.
        let reader = tokio::task::spawn_blocking(move || -> Result<u64, super::plan::Error> {
            let mut n = 0;
            for record in spool.read(tier, |item| engine.plan.recreated(item))? {
                n += 1;
                if tx.blocking_send(record).is_err() {
                    break;
                }
            }
            Ok(n)
        });
        self.progress.tier(tier, 0);
        let started = std::time::Instant::now();
        let concurrency = self.options.concurrency.max(1);
        let spooled = tokio_stream::wrappers::ReceiverStream::new(rx);
        let extra = futures::stream::iter(extra.into_iter().map(|item| Ok(Spooled::Item(item))));
        let engine = self.clone();
        let mut results = Vec::new();
        let mut stream = extra
            .chain(spooled)
            .map(move |record| {
                let engine = engine.clone();
                async move {
                    match record {
                        Ok(Spooled::Item(item)) => engine.apply_item(item).await,
                        Ok(Spooled::Skipped(item, reason)) => {
                            Ok(Some(engine.skipped(&item, reason)))
                        }
                        Err(error) => Err(error),
                    }
                }
            })
            .buffer_unordered(concurrency);
        while let Some(result) = stream.next().await {
            if let Some(result) = result? {
                self.progress.item(&result);
                results.push(result);
            }
        }
        let spooled = reader.await??;
        if spooled > 0 || !results.is_empty() {
            tracing::debug!(?tier, spooled, results = results.len(), elapsed = ?started.elapsed(), "tier applied");
        }
        Ok(results)
    }

    /// The result of an item skipped without applying it.
    fn skipped(&self, item: &Item, reason: String) -> ItemResult {
        ItemResult {
            resource: item.resource_name(),
            namespace: item
                .namespace
                .as_deref()
                .map(|ns| self.options.transform.map_namespace(ns).to_owned()),
            name: item.name.clone(),
            action: Action::Skipped,
            message: Some(reason),
        }
    }

    /// Apply one item; `None` when it is not part of the restore after all.
    async fn apply_item(&self, item: Item) -> Result<Option<ItemResult>, super::plan::Error> {
        let resource_name = item.resource_name();
        let result = |namespace: Option<String>,
                      name: String,
                      action: Action,
                      message: Option<String>| ItemResult {
            resource: resource_name.clone(),
            namespace,
            name,
            action,
            message,
        };
        let source_namespace = item.namespace.clone();
        let target_namespace = source_namespace
            .as_deref()
            .map(|ns| self.options.transform.map_namespace(ns).to_owned());
        match self.plan.decide(&item) {
            Decision::Ignore => return Ok(None),
            Decision::Skip(reason) => return Ok(Some(self.skipped(&item, reason))),
            Decision::Apply => {}
        }
        let key = item.key();
        let facts = (!item.generated).then(|| self.plan.facts(&item));
        let mut item = item;
        let mut object = std::mem::take(&mut item.object);
        if let Some(facts) = facts {
            transform(
                &item.group,
                &item.resource,
                &mut object,
                &self.options.transform,
                &facts,
            );
        }
        let owners = resolve_owner_refs(
            &mut object,
            source_namespace.as_deref(),
            |k| self.plan.restored.contains(k),
            |k| self.uids.lock().ok().and_then(|uids| uids.get(k).cloned()),
        );
        let name = crate::json::meta_str(&object, "name")
            .unwrap_or(&item.name)
            .to_owned();
        if let Some(obj) = object.as_object_mut() {
            obj.entry("apiVersion")
                .or_insert_with(|| Value::String(item.api_version.clone()));
            obj.entry("kind")
                .or_insert_with(|| Value::String(item.kind.clone()));
        }
        let version = item
            .api_version
            .rsplit('/')
            .next()
            .unwrap_or("v1")
            .to_owned();
        let url = collection_url(
            &item.group,
            &version,
            &item.resource,
            target_namespace.as_deref(),
        );
        if !self
            .served
            .read()
            .await
            .serves(&item.group, &version, &item.resource)
        {
            if self.options.dry_run && self.plan.restored.iter().any(|k| is_crd_of(k, &item)) {
                return Ok(Some(result(
                    target_namespace,
                    name,
                    Action::Created,
                    Some("would be created once its CRD (restored by this restore) is established; not validated by the server in a dry run".into()),
                )));
            }
            return Ok(Some(result(
                target_namespace,
                name,
                Action::Failed,
                Some(format!(
                    "the target cluster does not serve {} {} (install its API or CRD first, or exclude it)",
                    item.api_version, item.resource
                )),
            )));
        }

        let body = match to_body(&object, &item.untouched) {
            Ok(body) => body,
            Err(error) => {
                return Ok(Some(result(
                    target_namespace,
                    name,
                    Action::Failed,
                    Some(format!("cannot serialize: {error}")),
                )));
            }
        };
        let (action, message, uid) = self
            .create_or_handle_existing(&item, &url, &name, body)
            .await;
        if let Some(uid) = uid
            && let Ok(mut uids) = self.uids.lock()
        {
            uids.insert(key, uid);
        }
        if !owners.pending.is_empty()
            && matches!(action, Action::Created | Action::Updated)
            && !self.options.dry_run
        {
            let kept = crate::json::meta(&object, "ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Ok(mut pending) = self.pending_owners.lock() {
                pending.push(PendingOwners {
                    url: url.clone(),
                    name: name.clone(),
                    resource: resource_name.clone(),
                    namespace: target_namespace.clone(),
                    kept,
                    pending: owners.pending,
                    source_namespace,
                });
            }
        }
        Ok(Some(result(target_namespace, name, action, message)))
    }

    async fn create_or_handle_existing(
        &self,
        item: &Item,
        url: &str,
        name: &str,
        body: Vec<u8>,
    ) -> (Action, Option<String>, Option<String>) {
        let params = PostParams {
            dry_run: self.options.dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let is_namespace = item.group.is_empty() && item.resource == "namespaces";
        let mut waited_for_termination = false;
        loop {
            let request = kube::core::Request::new(url)
                .create(&params, body.clone())
                .map(|mut request| {
                    request.headers_mut().insert(
                        http::header::ACCEPT,
                        http::HeaderValue::from_static(METADATA_ONLY),
                    );
                    request
                });
            match self.send::<Written>(request).await {
                Ok(created) => {
                    let message = self
                        .options
                        .dry_run
                        .then(|| "dry run: would be created".to_owned());
                    return (Action::Created, message, created.metadata.uid);
                }
                Err(Failure::Api(status))
                    if status.reason == "AlreadyExists" || status.code == 409 =>
                {
                    let existing = match self.get(url, name).await {
                        Ok(existing) => existing,
                        Err(failure) => {
                            return (
                                Action::Failed,
                                Some(format!("exists, but cannot be read: {failure}")),
                                None,
                            );
                        }
                    };
                    if is_namespace
                        && existing.pointer("/metadata/deletionTimestamp").is_some()
                        && !waited_for_termination
                    {
                        waited_for_termination = true;
                        if self.options.dry_run {
                            return (Action::Created, Some("dry run: the namespace is terminating; it would be recreated once gone".into()), None);
                        }
                        if let Err(message) = self.wait_gone(url, name).await {
                            return (Action::Failed, Some(message), None);
                        }
                        continue;
                    }
                    let uid = uid_of(&existing);
                    return match self.options.existing {
                        ExistingPolicy::None => (Action::SkippedExisting, None, uid),
                        ExistingPolicy::Update => {
                            let (action, message) = self.update(url, name, &body).await;
                            (action, message, uid)
                        }
                    };
                }
                Err(Failure::Api(status)) if status.code == 404 && self.options.dry_run => {
                    // The namespace (or the CRD) is created by this restore: a
                    // dry run cannot create it, so the server cannot validate this item.
                    return (
                        Action::Created,
                        Some(format!(
                            "dry run: would be created; not validated by the server ({})",
                            status.message
                        )),
                        None,
                    );
                }
                Err(failure) => return (Action::Failed, Some(failure.to_string()), None),
            }
        }
    }

    /// `--existing-resource-policy update`: merge-patch the object to the
    /// backed-up state; when the server refuses (immutable fields), patch what
    /// can change (labels, annotations) and report what could not.
    async fn update(&self, url: &str, name: &str, body: &[u8]) -> (Action, Option<String>) {
        let mut desired: Value = match serde_json::from_slice(body) {
            Ok(object) => object,
            Err(error) => return (Action::Failed, Some(format!("cannot read back: {error}"))),
        };
        if let Some(metadata) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("ownerReferences");
        }
        let params = PatchParams {
            dry_run: self.options.dry_run,
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let full = kube::core::Request::new(url).patch(name, &params, &Patch::Merge(&desired));
        match self.send::<IgnoredAny>(full).await {
            Ok(_) => (Action::Updated, None),
            Err(Failure::Api(status)) if status.code == 422 || status.code == 400 => {
                let metadata_only = json!({"metadata": {
                    "labels": desired.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
                    "annotations": desired.pointer("/metadata/annotations").cloned().unwrap_or(Value::Null),
                }});
                let request = kube::core::Request::new(url).patch(
                    name,
                    &params,
                    &Patch::Merge(&metadata_only),
                );
                match self.send::<IgnoredAny>(request).await {
                    Ok(_) => (
                        Action::Updated,
                        Some(format!(
                            "only labels and annotations were updated; the rest could not change: {}",
                            status.message
                        )),
                    ),
                    Err(failure) => (
                        Action::Failed,
                        Some(format!("cannot update: {}; {failure}", status.message)),
                    ),
                }
            }
            Err(failure) => (Action::Failed, Some(format!("cannot update: {failure}"))),
        }
    }

    async fn get(&self, url: &str, name: &str) -> Result<Value, Failure> {
        let request = kube::core::Request::new(url).get(name, &GetParams::default());
        self.send(request).await
    }

    async fn wait_gone(&self, url: &str, name: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + NAMESPACE_TERMINATION_TIMEOUT;
        loop {
            match self.get(url, name).await {
                Err(Failure::Api(status)) if status.code == 404 => return Ok(()),
                Err(failure) => {
                    return Err(format!(
                        "waiting for the terminating namespace to go: {failure}"
                    ));
                }
                Ok(_) if tokio::time::Instant::now() > deadline => {
                    return Err(format!(
                        "the namespace is still terminating after {}s; finish its deletion and re-run the restore",
                        NAMESPACE_TERMINATION_TIMEOUT.as_secs()
                    ));
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Send a request, retrying what is worth retrying; the answer is read
    /// as `T` (a small `T` skips the rest of the object without building it).
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<T, Failure> {
        let request = request.map_err(|e| Failure::Other(e.to_string()))?;
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let (parts, body) = clone_request(&request);
            let req = http::Request::from_parts(parts, body);
            match self.client.request::<T>(req).await {
                Ok(value) => return Ok(value),
                Err(kube::Error::Api(status)) => {
                    let retry = status.code == 429 || (status.code >= 500 && status.code != 501);
                    if !retry || attempt == ATTEMPTS {
                        return Err(Failure::Api(status));
                    }
                }
                Err(kube::Error::HyperError(e)) if attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, "retrying after a connection error");
                }
                Err(kube::Error::Service(e)) if attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, "retrying after a transport error");
                }
                Err(error) => return Err(Failure::Other(error.to_string())),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(Failure::Other("gave up after retries".into()))
    }

    async fn wait_established(&self, crds: &[String]) -> Vec<super::report::Problem> {
        let url = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        let deadline = tokio::time::Instant::now() + CRD_ESTABLISHED_TIMEOUT;
        let mut waiting: Vec<&String> = crds.iter().collect();
        let mut warnings = Vec::new();
        // The API server usually establishes a CRD within milliseconds: look
        // again soon, then less often.
        let mut pause = Duration::from_millis(5);
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for name in waiting {
                match self.get(url, name).await {
                    Ok(crd) if is_established(&crd) => {}
                    Ok(_) => still.push(name),
                    Err(failure) => warnings.push(super::report::Problem {
                        resource: Some("customresourcedefinitions.apiextensions.k8s.io".into()),
                        namespace: None,
                        name: Some(name.clone()),
                        message: format!("cannot check whether it is established: {failure}"),
                    }),
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                for name in waiting {
                    warnings.push(super::report::Problem {
                        resource: Some("customresourcedefinitions.apiextensions.k8s.io".into()),
                        namespace: None,
                        name: Some(name.clone()),
                        message: format!(
                            "not Established after {}s; its custom resources may fail",
                            CRD_ESTABLISHED_TIMEOUT.as_secs()
                        ),
                    });
                }
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        warnings
    }

    /// Set the owner references that named owners of later tiers, now that
    /// the owners have uids. An owner that failed to restore is left out.
    async fn patch_pending_owners(&self) -> Vec<super::report::Problem> {
        let pending = self
            .pending_owners
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let uids = self.uids.lock().map(|m| m.clone()).unwrap_or_default();
        let mut warnings = Vec::new();
        for entry in pending {
            let mut refs = entry.kept.clone();
            let mut missing = Vec::new();
            for mut owner_ref in entry.pending {
                let keys =
                    super::transform::owner_keys(&owner_ref, entry.source_namespace.as_deref());
                let uid = keys.and_then(|keys| keys.iter().find_map(|k| uids.get(k).cloned()));
                match (uid, owner_ref.as_object_mut()) {
                    (Some(uid), Some(r)) => {
                        r.insert("uid".into(), Value::String(uid));
                        refs.push(owner_ref);
                    }
                    _ => missing.push(
                        owner_ref
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_owned(),
                    ),
                }
            }
            let problem = |message: String| super::report::Problem {
                resource: Some(entry.resource.clone()),
                namespace: entry.namespace.clone(),
                name: Some(entry.name.clone()),
                message,
            };
            if !missing.is_empty() {
                warnings.push(problem(format!(
                    "owner reference to {} left out: the owner was not restored",
                    missing.join(", ")
                )));
            }
            if refs.len() == entry.kept.len() {
                continue;
            }
            let patch = json!({"metadata": {"ownerReferences": refs}});
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            };
            let request = kube::core::Request::new(&entry.url).patch(
                &entry.name,
                &params,
                &Patch::Merge(&patch),
            );
            if let Err(failure) = self.send::<IgnoredAny>(request).await {
                warnings.push(problem(format!(
                    "cannot set its owner references: {failure}"
                )));
            }
        }
        warnings
    }
}

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// The API server answered with a Status.
    Api(Box<kube::core::Status>),
    /// Anything else (transport, serialization).
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api(status) if !status.message.is_empty() => {
                write!(f, "{} ({} {})", status.message, status.code, status.reason)
            }
            Failure::Api(status) => write!(f, "HTTP {} {}", status.code, status.reason),
            Failure::Other(message) => f.write_str(message),
        }
    }
}

fn clone_request(request: &http::Request<Vec<u8>>) -> (http::request::Parts, Vec<u8>) {
    let mut builder = http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(
            request
                .headers()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    // The builder above only copies valid parts of an already-valid request.
    let (parts, ()) = match builder.body(()) {
        Ok(req) => req.into_parts(),
        Err(_) => http::Request::new(()).into_parts(),
    };
    (parts, request.body().clone())
}

/// What a restore reads of the server's answer to a create (the object, or
/// its `PartialObjectMetadata`): the new uid.
#[derive(Debug, Default, serde::Deserialize)]
struct Written {
    #[serde(default)]
    metadata: WrittenMeta,
}

#[derive(Debug, Default, serde::Deserialize)]
struct WrittenMeta {
    #[serde(default)]
    uid: Option<String>,
}

fn uid_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Established")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

fn is_crd_of(key: &ObjectKey, item: &Item) -> bool {
    key.kind == "CustomResourceDefinition"
        && key.name == format!("{}.{}", item.resource, item.group)
}

/// The collection URL of a resource: `/api/v1/namespaces/ns/configmaps`,
/// `/apis/apps/v1/deployments` (cluster-wide or cluster-scoped), …
pub fn collection_url(
    group: &str,
    version: &str,
    resource: &str,
    namespace: Option<&str>,
) -> String {
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    match namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{resource}"),
        None => format!("{base}/{resource}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_urls() {
        assert_eq!(
            collection_url("", "v1", "configmaps", Some("a")),
            "/api/v1/namespaces/a/configmaps"
        );
        assert_eq!(
            collection_url("", "v1", "namespaces", None),
            "/api/v1/namespaces"
        );
        assert_eq!(
            collection_url("apps", "v1", "deployments", Some("a")),
            "/apis/apps/v1/namespaces/a/deployments"
        );
        assert_eq!(
            collection_url(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                None
            ),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        );
    }

    #[test]
    fn established_condition() {
        assert!(is_established(&json!({"status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}})));
        assert!(!is_established(
            &json!({"status": {"conditions": [{"type": "Established", "status": "False"}]}})
        ));
        assert!(!is_established(&json!({})));
    }
}
