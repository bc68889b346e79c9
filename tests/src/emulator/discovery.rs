//! Discovery documents: `/version`, `/api`, `/apis`, `/api/v1`,
//! `/apis/<group>`, `/apis/<group>/<version>`, legacy and aggregated
//! (`apidiscovery.k8s.io/v2beta1`, as a v1.28 server serves it), with the
//! `Accept` negotiation and ETag handling of the recordings.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::resources::{Group, Registry, ResourceType};

/// The version this emulator reports (kubectl's dispatcher picks its client by it).
pub const GIT_VERSION: &str = "v1.28.7";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "28",
        "gitVersion": GIT_VERSION,
        "gitCommit": "c8dcb00be9961ec36d141d2e4103f85f92bcf291",
        "gitTreeState": "clean",
        "buildDate": "2024-02-14T10:32:40Z",
        "goVersion": "go1.21.7",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api` (APIVersions).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn gv(group: &str, version: &str) -> Value {
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"groupVersion": group_version, "version": version})
}

fn api_group(g: &Group) -> Value {
    json!({
        "name": g.name,
        "versions": g.versions.iter().map(|v| gv(&g.name, &v.version)).collect::<Vec<_>>(),
        "preferredVersion": g.versions.first().map(|v| gv(&g.name, &v.version)).unwrap_or(Value::Null),
    })
}

/// `/apis` as the legacy APIGroupList.
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(api_group)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` (APIGroup), None when the group is not served.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let g = reg.group(name).filter(|g| !g.name.is_empty())?;
    let mut v = api_group(&g);
    let m = v.as_object_mut()?;
    let mut out = Map::new();
    out.insert("kind".into(), json!("APIGroup"));
    out.insert("apiVersion".into(), json!("v1"));
    out.append(m);
    Some(Value::Object(out))
}

fn legacy_resource(rt: &ResourceType) -> Vec<Value> {
    let mut main = Map::new();
    main.insert("name".into(), json!(rt.plural));
    main.insert("singularName".into(), json!(rt.singular));
    main.insert("namespaced".into(), json!(rt.namespaced));
    main.insert("kind".into(), json!(rt.kind));
    main.insert("verbs".into(), json!(rt.verbs));
    if !rt.short_names.is_empty() {
        main.insert("shortNames".into(), json!(rt.short_names));
    }
    if !rt.categories.is_empty() {
        main.insert("categories".into(), json!(rt.categories));
    }
    main.insert("storageVersionHash".into(), json!(storage_version_hash(rt)));
    let mut out = vec![Value::Object(main)];
    for s in &rt.subresources {
        let mut sub = Map::new();
        sub.insert("name".into(), json!(format!("{}/{}", rt.plural, s.name)));
        sub.insert("singularName".into(), json!(""));
        sub.insert("namespaced".into(), json!(rt.namespaced));
        if !s.group.is_empty() {
            sub.insert("group".into(), json!(s.group));
        }
        if !s.version.is_empty() {
            sub.insert("version".into(), json!(s.version));
        }
        sub.insert("kind".into(), json!(s.kind));
        sub.insert("verbs".into(), json!(s.verbs));
        out.push(Value::Object(sub));
    }
    out
}

/// The storage version hash: the first 8 bytes of sha256("group/version/kind"), base64.
fn storage_version_hash(rt: &ResourceType) -> String {
    use base64::Engine;
    let digest = sha2::Sha256::digest(format!("{}/{}", rt.api_version(), rt.kind).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// `/api/v1` or `/apis/<group>/<version>` (APIResourceList), None when not served.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let g = reg.group(group)?;
    let v = g.versions.iter().find(|v| v.version == version)?;
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = v
        .resources
        .iter()
        .flat_map(|r| legacy_resource(r))
        .collect();
    let mut doc = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    });
    // The real /api/v1 document has no apiVersion.
    if group.is_empty() {
        doc.as_object_mut()?.remove("apiVersion");
    }
    Some(doc)
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let mut m = Map::new();
    m.insert("resource".into(), json!(rt.plural));
    m.insert(
        "responseKind".into(),
        json!({"group": "", "version": "", "kind": rt.kind}),
    );
    m.insert(
        "scope".into(),
        json!(if rt.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }),
    );
    m.insert("singularResource".into(), json!(rt.singular));
    m.insert("verbs".into(), json!(rt.verbs));
    if !rt.short_names.is_empty() {
        m.insert("shortNames".into(), json!(rt.short_names));
    }
    if !rt.categories.is_empty() {
        m.insert("categories".into(), json!(rt.categories));
    }
    if !rt.subresources.is_empty() {
        let subs: Vec<Value> = rt
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        m.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(m)
}

/// Aggregated discovery (APIGroupDiscoveryList v2beta1) of the core group (`core`)
/// or of all other groups.
pub fn aggregated(reg: &Registry, core: bool) -> Value {
    let items: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|g| g.name.is_empty() == core)
        .map(|g| {
            let mut meta = Map::new();
            if !g.name.is_empty() {
                meta.insert("name".into(), json!(g.name));
            }
            meta.insert("creationTimestamp".into(), Value::Null);
            json!({
                "metadata": meta,
                "versions": g.versions.iter().map(|v| json!({
                    "version": v.version,
                    "resources": v.resources.iter().map(|r| aggregated_resource(r)).collect::<Vec<_>>(),
                    "freshness": "Current",
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2beta1",
        "metadata": {},
        "items": items,
    })
}

/// The protobuf content type of `/openapi/v2` that kubectl asks for.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a valid document without definitions, as protobuf (gnostic
/// `openapi_v2.Document`) when asked for it, else JSON.
///
/// kubectl needs the document to exist (`apply`, `create` and `edit` load it for
/// client-side validation and patch metadata); with no definitions it validates
/// nothing client-side and computes strategic merge patches from its built-in Go
/// types, which is what it does for any kind a server does not describe.
pub fn openapi_v2(protobuf: bool) -> Vec<u8> {
    if !protobuf {
        return serde_json::to_vec(&json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": {},
            "definitions": {}
        }))
        .unwrap_or_default();
    }
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        // Length-delimited field; every payload here is far below 128 bytes.
        let mut out = vec![(tag << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let info = [field(1, b"Kubernetes"), field(2, GIT_VERSION.as_bytes())].concat();
    [field(1, b"2.0"), field(2, &info)].concat()
}

/// The content type of aggregated discovery responses.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Does the `Accept` header get aggregated discovery (true) or the legacy document?
/// The first media range this server can produce wins, as in the real negotiation:
/// v2beta1 aggregated, or plain JSON; `v=v2` (1.30+) is not offered by v1.28.
pub fn wants_aggregated(accept: &str) -> bool {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        if !(media == "application/json" || media == "*/*" || media == "application/*") {
            continue;
        }
        match param("as") {
            None => return false,
            Some("APIGroupDiscoveryList")
                if param("g") == Some("apidiscovery.k8s.io") && param("v") == Some("v2beta1") =>
            {
                return true;
            }
            Some(_) => continue,
        }
    }
    false
}

/// The ETag of a discovery body (quoted, upper-case hex sha512, like the real server).
pub fn etag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode_upper(Sha512::digest(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Value {
        let path = format!(
            "{}/fixtures/real-apiserver/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn accept_negotiation_follows_recordings() {
        for (name, aggregated) in [
            ("discovery-apis-aggregated-v2beta1", true),
            ("discovery-apis-accept-v2-first", true),
            ("discovery-apis-accept-v2-only", false),
            ("discovery-apis", false),
        ] {
            let rec = recorded(name);
            let accept = rec["request"]["accept"].as_str().unwrap_or("*/*");
            assert_eq!(wants_aggregated(accept), aggregated, "{name}");
        }
    }

    #[test]
    fn documents_match_recordings() {
        let reg = Registry::builtin().unwrap();
        assert_eq!(
            aggregated(&reg, false),
            recorded("discovery-apis-aggregated-v2beta1")["body"]
        );
        assert_eq!(
            aggregated(&reg, true),
            recorded("discovery-api-aggregated-v2beta1")["body"]
        );
        assert_eq!(api_group_list(&reg), recorded("discovery-apis")["body"]);
        for (g, v, name) in [
            ("", "v1", "discovery-api-v1"),
            ("apps", "v1", "discovery-apps-v1"),
            ("batch", "v1", "discovery-batch-v1"),
            ("storage.k8s.io", "v1", "discovery-storage-v1"),
        ] {
            let mut ours = resource_list(&reg, g, v).unwrap();
            let mut theirs = recorded(name)["body"].clone();
            // Hashes are derived differently; everything else must be equal.
            for doc in [&mut ours, &mut theirs] {
                for r in doc["resources"].as_array_mut().unwrap() {
                    r.as_object_mut().unwrap().remove("storageVersionHash");
                }
            }
            assert_eq!(ours, theirs, "{name}");
        }
        assert!(resource_list(&reg, "example.com", "v1").is_none());
    }
}
