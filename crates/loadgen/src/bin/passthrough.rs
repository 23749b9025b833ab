//! `tollgate-passthrough`: the floor under Tollgate's added latency in
//! `scripts/load`. A bare pass-through on the same HTTP stack as Tollgate
//! (Tollgate's connection loop, axum and hyper serving, Tollgate's provider
//! transport calling, the same allocator and runtime), with none of its work: no key, no routing, no
//! billing, no log. What it adds over the mock provider alone is what any
//! gateway built on this stack pays for the extra hop on this machine.
//!
//! `tollgate-passthrough --listen 127.0.0.1:0 --upstream http://127.0.0.1:9999`
//! prints `tollgate-passthrough listening on http://ADDR`, then forwards
//! every POST to the same path on the upstream (body, `authorization` and
//! `content-type` as sent; the answer streamed back as it comes).
//!
//! `--client reqwest` calls the upstream with reqwest instead (pooled, its
//! connections polled by their own tasks: how Tollgate called a plain-HTTP
//! provider before `tollgate_providers::transport`), to measure what that
//! transport saves.

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use std::time::Duration;
use tollgate_api::server::{ServerLimits, serve, shutdown_signal};
use tollgate_providers::transport::{Http, Outgoing, Timeouts};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "A bare HTTP pass-through: the floor of a gateway's added latency")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// e.g. http://127.0.0.1:9999 (paths are appended as received).
    #[arg(long)]
    upstream: String,
    /// The outbound client: `tollgate` (Tollgate's provider transport) or `reqwest`.
    #[arg(long, value_enum, default_value_t = Client::Tollgate)]
    client: Client,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Tollgate,
    Reqwest,
}

#[derive(Clone)]
enum Upstream {
    Tollgate { http: Http, base: String },
    Reqwest { http: reqwest::Client, base: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args.upstream.trim_end_matches('/').to_owned();
    let upstream = match args.client {
        Client::Tollgate => Upstream::Tollgate {
            // Tollgate's own timeouts (its defaults).
            http: Http::new(Timeouts {
                connect: Duration::from_secs(10),
                read: Duration::from_secs(300),
            })?,
            base,
        },
        Client::Reqwest => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            // The settings of Tollgate's reqwest client that bear on a plain call.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .build()
                .context("building the HTTP client")?;
            Upstream::Reqwest { http, base }
        }
    };
    let app = axum::Router::new()
        .fallback(axum::routing::post(forward))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!(
        "tollgate-passthrough listening on http://{}",
        listener.local_addr()?
    );
    // Tollgate's own limits (its defaults); served until SIGTERM or Ctrl-C
    // (an exit, not a kill: a profile-guided build's training writes its
    // counts at exit).
    let limits = ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 10_000,
    };
    serve(listener, app, limits, shutdown_signal()).await;
    Ok(())
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let answer = match &upstream {
        Upstream::Tollgate { http, base } => {
            forward_tollgate(http, base, parts.uri.path(), &parts.headers, body).await
        }
        Upstream::Reqwest { http, base } => {
            forward_reqwest(http, base, parts.uri.path(), &parts.headers, body).await
        }
    };
    answer.unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}

/// The headers passed on: the key and the body's type.
const FORWARDED: [&str; 2] = ["authorization", "content-type"];

async fn forward_tollgate(
    http: &Http,
    base: &str,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> anyhow::Result<Response> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut outgoing = Outgoing::post(format!("{base}{path}")).body(body);
    if let Some(key) = text("authorization") {
        outgoing = outgoing.key("authorization", key)?;
    }
    if let Some(kind) = text("content-type") {
        outgoing = outgoing.header("content-type", kind)?;
    }
    let answer = http.send(outgoing).await?;
    let (status, kind) = (answer.status(), content_type(answer.headers()));
    relay(status, kind, Body::from_stream(answer.bytes_stream()))
}

async fn forward_reqwest(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> anyhow::Result<Response> {
    let mut outgoing = http.post(format!("{base}{path}")).body(body);
    for name in FORWARDED {
        if let Some(value) = headers.get(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await?;
    let (status, kind) = (answer.status(), content_type(answer.headers()));
    relay(status, kind, Body::from_stream(answer.bytes_stream()))
}

fn content_type(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(header::CONTENT_TYPE).cloned()
}

/// The upstream's answer, as it streams, with its status and body type.
fn relay(status: StatusCode, kind: Option<HeaderValue>, body: Body) -> anyhow::Result<Response> {
    let mut response = Response::builder().status(status);
    if let Some(kind) = kind {
        response = response.header(header::CONTENT_TYPE, kind);
    }
    Ok(response.body(body)?)
}
