//! The HTTPS front: TLS (h2 and HTTP/1.1), bearer-token authentication, URL
//! routing to discovery and to the API verbs, content negotiation, and the
//! request log.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::api::{Api, DeleteOptions, Deleted, ListOptions, Selectors, WriteOptions};
use super::discovery;
use super::patch::PatchType;
use super::render;
use super::resources::ResourceType;
use super::status::{ApiError, ApiResult};
use super::watch::{self, WatchOptions};

/// One served request, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// Response status code.
    pub status: u16,
    /// `User-Agent` header.
    pub user_agent: String,
}

/// The shared, append-only log of served requests.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RequestRecord>>>,
}

impl RequestLog {
    fn push(&self, r: RequestRecord) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    /// Everything served so far, oldest first.
    pub fn entries(&self) -> Vec<RequestRecord> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forget what was logged so far.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Server state shared by all connections.
#[derive(Debug)]
pub struct Server {
    /// The API.
    pub api: Arc<Api>,
    /// The bearer token clients must present.
    pub token: String,
    /// `host:port` clients reach us on.
    pub address: String,
    /// The request log.
    pub log: RequestLog,
}

/// Accept TLS connections on `listener` until the task is dropped.
pub async fn serve(server: Arc<Server>, listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(server, req).await) }
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// What a handler answers.
struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(header::HeaderName, String)>,
    body: Body,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply::bytes(status, serde_json::to_vec(v).unwrap_or_default())
    }

    /// A single object of `rt`: typed, or its metadata alone when the
    /// client asked for `PartialObjectMetadata` (as a real server answers
    /// gets and writes alike).
    fn object(ctx: &Ctx<'_>, rt: &ResourceType, status: u16, obj: &Value) -> Reply {
        let body = match ctx.wants_metadata_only() {
            Some(api_version) => render::metadata_only(api_version, obj),
            None => render::typed(rt, obj),
        };
        Reply::bytes(status, body)
    }

    fn bytes(status: u16, b: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::from(b),
        }
    }

    fn error(e: &ApiError) -> Reply {
        match e.to_status() {
            Some(s) => Reply::json(e.code(), &s).warnings(e.warnings()),
            None => Reply {
                status: 404,
                content_type: "text/plain; charset=utf-8",
                headers: vec![(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into())],
                body: Body::from("404 page not found\n"),
            },
        }
    }

    fn warnings(mut self, warnings: &[String]) -> Reply {
        for w in warnings {
            let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
            self.headers
                .push((header::WARNING, format!("299 - \"{escaped}\"")));
        }
        self
    }
}

async fn handle(server: Arc<Server>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match axum::body::to_bytes(Body::new(req.into_body()), 512 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            let r = Reply::error(&ApiError::bad_request(format!("reading body: {e}")));
            return finish(&server, &method, &path, &query, &user_agent, r);
        }
    };
    let reply = if !authorized(&server, &path, &headers) {
        Reply::json(
            401,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        )
    } else {
        let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let ctx = Ctx {
            server: &server,
            method: &method,
            headers: &headers,
            query: &q,
            body,
            user_agent: &user_agent,
        };
        match route(&ctx, &path) {
            Ok(r) => r,
            Err(e) => Reply::error(&e),
        }
    };
    finish(&server, &method, &path, &query, &user_agent, reply)
}

fn finish(
    server: &Server,
    method: &Method,
    path: &str,
    query: &str,
    user_agent: &str,
    reply: Reply,
) -> Response<Body> {
    server.log.push(RequestRecord {
        method: method.to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        status: reply.status,
        user_agent: user_agent.to_owned(),
    });
    let mut resp = Response::new(reply.body);
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if reply.status != 304 {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(reply.content_type),
        );
    }
    let mut has_cache_control = false;
    for (k, v) in reply.headers {
        has_cache_control |= k == header::CACHE_CONTROL;
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(k, v);
        }
    }
    if !has_cache_control {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
    }
    resp
}

fn authorized(server: &Server, path: &str, headers: &HeaderMap) -> bool {
    // Like the system:public-info-viewer role: health and version are public.
    if matches!(path, "/version" | "/healthz" | "/livez" | "/readyz") {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == server.token)
}

struct Ctx<'a> {
    server: &'a Server,
    method: &'a Method,
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
    body: Bytes,
    user_agent: &'a str,
}

impl Ctx<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn header(&self, k: header::HeaderName) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn write_options(&self) -> ApiResult<WriteOptions> {
        let dry_run = match self.q("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "CreateOptions",
                    "",
                    &[super::status::Cause::not_supported(
                        "dryRun",
                        &json!([other]),
                        &["All".into()],
                    )],
                ));
            }
        };
        // The default manager is the client program's name, as on a real server.
        let default_manager = self.user_agent.split('/').next().unwrap_or("").to_owned();
        Ok(WriteOptions {
            dry_run,
            field_manager: self
                .q("fieldManager")
                .map(str::to_owned)
                .unwrap_or(default_manager),
            strict: self.q("fieldValidation") == Some("Strict"),
            force: self.q("force") == Some("true"),
        })
    }

    fn list_options(&self) -> ListOptions {
        ListOptions {
            label_selector: self
                .q("labelSelector")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            field_selector: self
                .q("fieldSelector")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            limit: self.q("limit").and_then(|l| l.parse().ok()),
            continue_token: self.q("continue").map(str::to_owned),
            resource_version: self.q("resourceVersion").map(str::to_owned),
        }
    }

    fn wants_table(&self) -> bool {
        let accept = self.header(header::ACCEPT);
        accept
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    }

    /// The `meta.k8s.io` version of `PartialObjectMetadata` when the preferred
    /// media range asks for it (`application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`).
    fn wants_metadata_only(&self) -> Option<&'static str> {
        let first = self.header(header::ACCEPT).split(',').next()?;
        let params = first.split(';').skip(1).map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim(), v.trim())
        });
        let (mut kind, mut group, mut version) = (None, None, None);
        for (k, v) in params {
            match k {
                "as" => kind = Some(v),
                "g" => group = Some(v),
                "v" => version = Some(v),
                _ => {}
            }
        }
        match (kind?, group?, version?) {
            ("PartialObjectMetadata", "meta.k8s.io", "v1") => Some("meta.k8s.io/v1"),
            ("PartialObjectMetadata", "meta.k8s.io", "v1beta1") => Some("meta.k8s.io/v1beta1"),
            _ => None,
        }
    }

    /// Decode the request body as JSON (or YAML, which kubectl never sends but users may).
    fn decode_object(&self, rt: &ResourceType) -> ApiResult<Value> {
        let ct = self.header(header::CONTENT_TYPE);
        if ct.contains("yaml") {
            let text = std::str::from_utf8(&self.body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            return serde_yaml::from_str(text).map_err(|e| ApiError::bad_request(e.to_string()));
        }
        if ct.contains("protobuf") {
            return Err(ApiError::unsupported_media_type("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml".to_string()));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            let start: String = String::from_utf8_lossy(&self.body).chars().take(30).collect();
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {} ({} ...)",
                rt.kind,
                go_json_error(&e),
                start
            ))
        })
    }

    fn delete_options(&self) -> ApiResult<DeleteOptions> {
        let mut opts = DeleteOptions {
            propagation: self.q("propagationPolicy").map(str::to_owned),
            dry_run: self.q("dryRun") == Some("All"),
            ..Default::default()
        };
        if !self.body.is_empty() {
            let v: Value = serde_json::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                opts.propagation = Some(p.to_owned());
            }
            if let Some(o) = v.get("orphanDependents").and_then(Value::as_bool) {
                opts.propagation = Some(if o { "Orphan" } else { "Background" }.into());
            }
            opts.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned);
            opts.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if v.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x == "All"))
            {
                opts.dry_run = true;
            }
        }
        Ok(opts)
    }
}

fn go_json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        e.to_string()
    }
}

fn route(ctx: &Ctx<'_>, path: &str) -> ApiResult<Reply> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let api = &ctx.server.api;
    let get_only = |r: ApiResult<Reply>| -> ApiResult<Reply> {
        if ctx.method == Method::GET || ctx.method == Method::HEAD {
            r
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segs.as_slice() {
        ["version"] => get_only(Ok(Reply::json(200, &discovery::version()))),
        ["healthz" | "livez" | "readyz"] => Ok(Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Body::from("ok"),
        }),
        ["api"] => get_only(discovery_reply(ctx, true)),
        ["apis"] => get_only(discovery_reply(ctx, false)),
        ["api", "v1"] => get_only(
            discovery::resource_list(&api.registry(), "", "v1")
                .map(|v| Reply::json(200, &v))
                .ok_or(ApiError::PageNotFound),
        ),
        ["api", "v1", rest @ ..] => resource(ctx, "", "v1", rest),
        ["apis", group] => get_only(
            discovery::group(&api.registry(), group)
                .map(|v| Reply::json(200, &v))
                .ok_or(ApiError::PageNotFound),
        ),
        ["apis", group, version] => get_only(
            discovery::resource_list(&api.registry(), group, version)
                .map(|v| Reply::json(200, &v))
                .ok_or(ApiError::PageNotFound),
        ),
        ["apis", group, version, rest @ ..] => resource(ctx, group, version, rest),
        ["openapi", "v2"] => get_only({
            let protobuf = ctx.header(header::ACCEPT).contains("protobuf");
            Ok(Reply {
                status: 200,
                content_type: if protobuf {
                    discovery::OPENAPI_V2_PROTOBUF
                } else {
                    "application/json"
                },
                headers: Vec::new(),
                body: Body::from(discovery::openapi_v2(protobuf)),
            })
        }),
        _ => Err(ApiError::PageNotFound),
    }
}

fn discovery_reply(ctx: &Ctx<'_>, core: bool) -> ApiResult<Reply> {
    let reg = ctx.server.api.registry();
    let accept = ctx.header(header::ACCEPT);
    if discovery::wants_aggregated(accept) {
        let body = serde_json::to_vec(&discovery::aggregated(&reg, core)).unwrap_or_default();
        let etag = discovery::etag(&body);
        let mut headers = vec![
            (header::CACHE_CONTROL, "public".to_owned()),
            (header::ETAG, etag.clone()),
            (header::VARY, "Accept".to_owned()),
        ];
        if ctx.header(header::IF_NONE_MATCH) == etag {
            return Ok(Reply {
                status: 304,
                content_type: discovery::AGGREGATED_CONTENT_TYPE,
                headers: std::mem::take(&mut headers),
                body: Body::empty(),
            });
        }
        return Ok(Reply {
            status: 200,
            content_type: discovery::AGGREGATED_CONTENT_TYPE,
            headers,
            body: Body::from(body),
        });
    }
    let doc = if core {
        discovery::api_versions(&ctx.server.address)
    } else {
        discovery::api_group_list(&reg)
    };
    Ok(Reply::json(200, &doc))
}

/// Where a resource URL points.
struct Target<'a> {
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_target<'a>(rest: &[&'a str]) -> Option<Target<'a>> {
    let t = |namespace, resource, name, subresource| {
        Some(Target {
            namespace,
            resource,
            name,
            subresource,
        })
    };
    match *rest {
        [res] => t(None, res, None, None),
        [res, name] => t(None, res, Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            t(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, res] => t(Some(ns), res, None, None),
        [res, name, sub] => t(None, res, Some(name), Some(sub)),
        ["namespaces", ns, res, name] => t(Some(ns), res, Some(name), None),
        ["namespaces", ns, res, name, sub] => t(Some(ns), res, Some(name), Some(sub)),
        _ => None,
    }
}

fn resource(ctx: &Ctx<'_>, group: &str, version: &str, rest: &[&str]) -> ApiResult<Reply> {
    let api = ctx.server.api.clone();
    if !api.has_group_version(group, version) {
        return Err(ApiError::PageNotFound);
    }
    let target = parse_target(rest).ok_or_else(ApiError::unknown_resource)?;
    let rt = api
        .lookup(group, version, target.resource)
        .ok_or_else(ApiError::unknown_resource)?;
    // A namespaced collection across all namespaces is fine; a namespaced item is not.
    if rt.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(ApiError::unknown_resource());
    }
    if !rt.namespaced && target.namespace.is_some() {
        return Err(ApiError::unknown_resource());
    }
    let ns = target.namespace;
    let m = ctx.method;
    let verb_allowed = |verb: &str| -> ApiResult<()> {
        if rt.has_verb(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match (target.name, target.subresource) {
        (None, _) => match *m {
            Method::GET => {
                let watch = matches!(ctx.q("watch"), Some("true" | "1"));
                if watch {
                    verb_allowed("watch")?;
                    watch_reply(ctx, api, rt, ns)
                } else {
                    verb_allowed("list")?;
                    let (metadata, items) = api.list(&rt, ns, &ctx.list_options())?;
                    if ctx.wants_table() {
                        return Ok(Reply::json(200, &render::table(&rt, &metadata, &items)));
                    }
                    Ok(Reply::bytes(200, render::list(&rt, &metadata, &items)))
                }
            }
            Method::POST => {
                verb_allowed("create")?;
                let obj = ctx.decode_object(&rt)?;
                let w = api.create(&rt, ns, obj, &ctx.write_options()?)?;
                Ok(Reply::object(ctx, &rt, w.code, &w.object).warnings(&w.warnings))
            }
            Method::DELETE => {
                verb_allowed("deletecollection")?;
                let body =
                    api.delete_collection(&rt, ns, &ctx.list_options(), &ctx.delete_options()?)?;
                Ok(Reply::bytes(200, body))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        (Some(name), None) => match *m {
            Method::GET => {
                verb_allowed("get")?;
                let obj = api.get(&rt, ns, name)?;
                if ctx.wants_table() {
                    let md = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
                    return Ok(Reply::json(200, &render::table(&rt, &md, &[obj])));
                }
                Ok(Reply::object(ctx, &rt, 200, &obj))
            }
            Method::PUT => {
                verb_allowed("update")?;
                let obj = ctx.decode_object(&rt)?;
                let w = api.update(&rt, ns, name, obj, None, &ctx.write_options()?)?;
                Ok(Reply::object(ctx, &rt, w.code, &w.object).warnings(&w.warnings))
            }
            Method::PATCH => {
                verb_allowed("patch")?;
                patch_reply(ctx, &api, &rt, ns, name, None)
            }
            Method::DELETE => {
                verb_allowed("delete")?;
                match api.delete(&rt, ns, name, &ctx.delete_options()?)? {
                    Deleted::Object(o) | Deleted::Status(o) => Ok(Reply::json(200, &o)),
                }
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        (Some(name), Some(sub)) => {
            let Some(s) = rt.subresource(sub) else {
                return Err(ApiError::unknown_resource());
            };
            if sub == "scale" && !rt.custom {
                let _ = s;
                return scale_reply(ctx, &api, &rt, ns, name);
            }
            if sub == "finalize" {
                if *m != Method::PUT {
                    return Err(ApiError::method_not_allowed());
                }
                let obj = ctx.decode_object(&rt)?;
                let w = api.update(&rt, ns, name, obj, Some("finalize"), &ctx.write_options()?)?;
                return Ok(Reply::object(ctx, &rt, w.code, &w.object).warnings(&w.warnings));
            }
            if sub != "status" {
                // Other subresources (log, exec, proxy, ...) are not emulated.
                return Err(ApiError::unknown_resource());
            }
            match *m {
                Method::GET => {
                    let obj = api.get(&rt, ns, name)?;
                    Ok(Reply::object(ctx, &rt, 200, &obj))
                }
                Method::PUT => {
                    let obj = ctx.decode_object(&rt)?;
                    let w =
                        api.update(&rt, ns, name, obj, Some("status"), &ctx.write_options()?)?;
                    Ok(Reply::object(ctx, &rt, w.code, &w.object).warnings(&w.warnings))
                }
                Method::PATCH => patch_reply(ctx, &api, &rt, ns, name, Some("status")),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

fn patch_reply(
    ctx: &Ctx<'_>,
    api: &Api,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
) -> ApiResult<Reply> {
    let ct = ctx.header(header::CONTENT_TYPE);
    let pt = PatchType::from_content_type(ct).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
            if rt.custom { "" } else { ", application/strategic-merge-patch+json" }
        ))
    })?;
    let mut opts = ctx.write_options()?;
    if pt == PatchType::Apply {
        // Apply has no default manager.
        opts.field_manager = ctx.q("fieldManager").unwrap_or("").to_owned();
    }
    let w = api.patch(rt, ns, name, pt, &ctx.body, sub, &opts)?;
    Ok(Reply::object(ctx, rt, w.code, &w.object).warnings(&w.warnings))
}

fn scale_reply(
    ctx: &Ctx<'_>,
    api: &Api,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
) -> ApiResult<Reply> {
    let current = api.get_scale(rt, ns, name)?;
    let wanted = match *ctx.method {
        Method::GET => return Ok(Reply::json(200, &current)),
        Method::PUT => ctx.decode_object(rt)?,
        Method::PATCH => {
            let ct = ctx.header(header::CONTENT_TYPE);
            let mut scale = current;
            match PatchType::from_content_type(ct) {
                Some(PatchType::Json) => super::patch::json_patch(&mut scale, &ctx.body)?,
                Some(PatchType::Merge) => super::patch::merge_patch(&mut scale, &ctx.body)?,
                Some(PatchType::StrategicMerge) => {
                    super::patch::strategic_merge_patch(&mut scale, &ctx.body)?
                }
                _ => {
                    return Err(ApiError::unsupported_media_type(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
                    ));
                }
            }
            scale
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let w = api.set_scale(rt, ns, name, &wanted, &ctx.write_options()?)?;
    Ok(Reply::json(200, &w).warnings(&[]))
}

fn watch_reply(
    ctx: &Ctx<'_>,
    api: Arc<Api>,
    rt: Arc<ResourceType>,
    ns: Option<&str>,
) -> ApiResult<Reply> {
    let sel = Selectors::parse(&rt, ctx.q("labelSelector"), ctx.q("fieldSelector"))?;
    let opts = WatchOptions {
        resource_version: ctx.q("resourceVersion").map(str::to_owned),
        bookmarks: ctx.q("allowWatchBookmarks") == Some("true"),
        timeout: ctx
            .q("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs),
        send_initial_events: ctx.q("sendInitialEvents").is_some(),
    };
    let rx = watch::start(api, rt, ns.map(str::to_owned), sel, opts)?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stream = futures::StreamExt::map(stream, Ok::<Bytes, Infallible>);
    Ok(Reply {
        status: 200,
        content_type: "application/json",
        headers: Vec::new(),
        body: Body::from_stream(stream),
    })
}

/// Bind `127.0.0.1:port` (0: any free port).
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
