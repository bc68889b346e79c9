//! The HTTPS server: routes, the TLS accept loop and graceful shutdown.
//!
//! One TLS port serves everything (`/mutate`, `/validate`, `/healthz`,
//! `/readyz`, `/metrics`); there is no plaintext port. Connections are
//! HTTP/2 or HTTP/1.1 with keep-alive (the API server reuses them).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::App;
use crate::admission::{MAX_BODY, Review, respond};
use crate::policy::{self, Context, Stage};

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn mutate(State(app): State<Arc<App>>, req: Request) -> Response {
    admit(&app, Stage::Mutate, req).await
}

async fn validate(State(app): State<Arc<App>>, req: Request) -> Response {
    admit(&app, Stage::Validate, req).await
}

async fn admit(app: &App, stage: Stage, req: Request) -> Response {
    let start = Instant::now();
    let review = match Review::from_request(req, &()).await {
        Ok(Review(review)) => review,
        Err(rejection) => {
            tracing::warn!(endpoint = stage.as_str(), error = %rejection, "malformed admission request");
            let response = rejection.into_response();
            app.metrics
                .observe_request(stage, response.status().as_u16(), start.elapsed());
            return response;
        }
    };
    let policy = app.policy();
    let state = app.state();
    let ctx = Context {
        policy: &policy,
        state: &state,
        own_namespace: &app.own_namespace,
    };
    let verdict = policy::review(&review, stage, &ctx);
    if let Some((name, outcome)) = verdict.decision {
        app.metrics.observe_decision(stage, name, outcome);
        tracing::info!(
            uid = %review.uid,
            endpoint = stage.as_str(),
            kind = %review.kind.kind,
            namespace = review.namespace.as_deref().unwrap_or(""),
            name = %review.name,
            operation = ?review.operation,
            dry_run = review.dry_run,
            policy = name.as_str(),
            decision = outcome.as_str(),
            warnings = ?verdict.warnings,
            denials = ?verdict.denials,
            "admission decision"
        );
    } else {
        tracing::debug!(
            uid = %review.uid,
            endpoint = stage.as_str(),
            kind = %review.kind.kind,
            namespace = review.namespace.as_deref().unwrap_or(""),
            name = %review.name,
            "no policy applies"
        );
    }
    let answer = respond(&review, verdict);
    let response = axum::Json(answer).into_response();
    app.metrics
        .observe_request(stage, response.status().as_u16(), start.elapsed());
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the StorageClass cache has not synced (or the server is shutting down)\n",
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// Serve `router` over TLS on `listener` until `shutdown` completes, then
/// stop accepting and let open connections finish (at most `drain`).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(
            async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        router.clone().oneshot(req.map(axum::body::Body::new))
                    },
                );
                let conn = builder.serve_connection(TokioIo::new(tls), service);
                if let Err(error) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
    drop(listener);
    tracing::info!("no longer accepting connections; draining");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain timeout; closing remaining connections"),
    }
}
