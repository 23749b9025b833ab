//! `tollgate-passthrough`: the floor under Tollgate's added latency in
//! `scripts/load`. A bare pass-through on the same HTTP stack as Tollgate
//! (axum and hyper serving, reqwest calling, the same allocator and
//! runtime), with none of its work: no key, no routing, no billing, no log.
//! What it adds over the mock provider alone is what any gateway built on
//! this stack pays for the extra hop on this machine.
//!
//! `tollgate-passthrough --listen 127.0.0.1:0 --upstream http://127.0.0.1:9999`
//! prints `tollgate-passthrough listening on http://ADDR`, then forwards
//! every POST to the same path on the upstream (body, `authorization` and
//! `content-type` as sent; the answer streamed back as it comes).

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use clap::Parser;

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
}

#[derive(Clone)]
struct Upstream {
    http: reqwest::Client,
    base: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The settings of Tollgate's provider client that bear on a plain call.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let upstream = Upstream {
        http,
        base: args.upstream.trim_end_matches('/').to_owned(),
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
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match send(&upstream, parts.uri.path(), &parts.headers, body).await {
        Ok(response) => response,
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn send(
    upstream: &Upstream,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, reqwest::Error> {
    let mut outgoing = upstream
        .http
        .post(format!("{}{path}", upstream.base))
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await?;
    let mut response = Response::builder().status(answer.status());
    if let Some(kind) = answer.headers().get(header::CONTENT_TYPE) {
        response = response.header(header::CONTENT_TYPE, kind);
    }
    Ok(response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}
