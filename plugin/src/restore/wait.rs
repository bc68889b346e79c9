//! `--wait`: after the restore, wait until what it created is ready to use:
//! workloads rolled out, claims bound, snapshots ready. What is not ready in
//! time becomes a warning; the restore itself is not failed by it (the
//! objects are there, a controller is still working on them).

use std::time::Duration;

use kube::core::params::GetParams;
use serde_json::Value;

use super::report::{Action, ItemResult, Problem};

/// Is a restored object ready? `None` for kinds the restore does not wait for.
pub fn readiness(group: &str, resource: &str, obj: &Value) -> Option<bool> {
    let int = |path: &str| obj.pointer(path).and_then(Value::as_i64);
    let observed = || {
        int("/status/observedGeneration").unwrap_or(0) >= int("/metadata/generation").unwrap_or(0)
    };
    match (group, resource) {
        ("apps", "deployments") => {
            let want = int("/spec/replicas").unwrap_or(1);
            Some(
                observed()
                    && int("/status/updatedReplicas").unwrap_or(0) >= want
                    && int("/status/availableReplicas").unwrap_or(0) >= want,
            )
        }
        ("apps", "statefulsets") => {
            let want = int("/spec/replicas").unwrap_or(1);
            Some(observed() && int("/status/readyReplicas").unwrap_or(0) >= want)
        }
        ("apps", "daemonsets") => {
            let want = int("/status/desiredNumberScheduled").unwrap_or(0);
            Some(
                observed()
                    && obj.pointer("/status/desiredNumberScheduled").is_some()
                    && int("/status/numberReady").unwrap_or(0) >= want,
            )
        }
        ("", "persistentvolumeclaims") => {
            Some(obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound"))
        }
        ("snapshot.storage.k8s.io", "volumesnapshots") => {
            Some(obj.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true))
        }
        _ => None,
    }
}

/// A restored object to wait for: where to GET it and how to name it.
#[derive(Debug, Clone)]
pub struct Waitable {
    /// API group.
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Collection URL.
    pub url: String,
    /// The item's result (for naming it in warnings).
    pub item: ItemResult,
}

/// Poll every waitable until it is ready or `timeout` passes; returns one
/// warning per object that is not ready.
pub async fn wait_ready(
    client: &kube::Client,
    mut waiting: Vec<Waitable>,
    timeout: Duration,
) -> Vec<Problem> {
    waiting.retain(|w| matches!(w.item.action, Action::Created | Action::Updated));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Vec<(Waitable, String)> = Vec::new();
    while !waiting.is_empty() {
        last.clear();
        let mut still = Vec::new();
        for w in waiting {
            let request = kube::core::Request::new(&w.url).get(&w.item.name, &GetParams::default());
            let state = match request {
                Ok(req) => match client.request::<Value>(req).await {
                    Ok(obj) if readiness(&w.group, &w.resource, &obj) == Some(true) => continue,
                    Ok(obj) => describe_state(&obj),
                    Err(error) => format!("cannot read it: {error}"),
                },
                Err(error) => error.to_string(),
            };
            last.push((w.clone(), state));
            still.push(w);
        }
        waiting = still;
        if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).min(timeout)).await;
    }
    last.into_iter()
        .filter(|(w, _)| {
            waiting
                .iter()
                .any(|still| still.url == w.url && still.item.name == w.item.name)
        })
        .map(|(w, state)| {
            super::report::item_problem(
                &w.item,
                format!(
                    "not ready after {}: {state}",
                    humantime::format_duration(timeout)
                ),
            )
        })
        .collect()
}

/// A short description of an object's status for a warning.
fn describe_state(obj: &Value) -> String {
    match obj.get("status") {
        None | Some(Value::Null) => "no status yet (is its controller running?)".to_owned(),
        Some(status) => {
            let mut text = status.to_string();
            if text.len() > 200 {
                text.truncate(200);
                text.push('…');
            }
            format!("status {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deployments_are_ready_when_rolled_out() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3}});
        assert_eq!(readiness("apps", "deployments", &d), Some(true));
        d["status"]["availableReplicas"] = json!(2);
        assert_eq!(readiness("apps", "deployments", &d), Some(false));
        d["status"]["availableReplicas"] = json!(3);
        d["status"]["observedGeneration"] = json!(1);
        assert_eq!(
            readiness("apps", "deployments", &d),
            Some(false),
            "an old status does not count"
        );
        let zero = json!({"spec": {"replicas": 0}, "status": {}});
        assert_eq!(readiness("apps", "deployments", &zero), Some(true));
        assert_eq!(
            readiness("apps", "deployments", &json!({"spec": {}})),
            Some(false),
            "replicas default to 1"
        );
    }

    #[test]
    fn other_kinds() {
        assert_eq!(
            readiness(
                "apps",
                "statefulsets",
                &json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 2}})
            ),
            Some(true)
        );
        assert_eq!(
            readiness(
                "apps",
                "daemonsets",
                &json!({"status": {"desiredNumberScheduled": 3, "numberReady": 3}})
            ),
            Some(true)
        );
        assert_eq!(
            readiness("apps", "daemonsets", &json!({"status": {}})),
            Some(false)
        );
        assert_eq!(
            readiness(
                "",
                "persistentvolumeclaims",
                &json!({"status": {"phase": "Bound"}})
            ),
            Some(true)
        );
        assert_eq!(
            readiness(
                "",
                "persistentvolumeclaims",
                &json!({"status": {"phase": "Pending"}})
            ),
            Some(false)
        );
        assert_eq!(
            readiness(
                "snapshot.storage.k8s.io",
                "volumesnapshots",
                &json!({"status": {"readyToUse": true}})
            ),
            Some(true)
        );
        assert_eq!(readiness("", "configmaps", &json!({})), None);
    }
}
