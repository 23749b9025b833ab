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
//!
//! `--client inline` calls the upstream with hyper's own client connection
//! instead of reqwest, polled by the task serving the call (no pool task,
//! no reqwest layers; the answer is read whole): a measure of how much of
//! the floor is the outbound client's.

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
    /// The outbound client: `reqwest` (as Tollgate's) or `inline`.
    #[arg(long, value_enum, default_value_t = Client::Reqwest)]
    client: Client,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Reqwest,
    Inline,
}

#[derive(Clone)]
struct Upstream {
    http: reqwest::Client,
    base: String,
    inline: Option<std::sync::Arc<inline::Pool>>,
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
    let base = args.upstream.trim_end_matches('/').to_owned();
    let inline = match args.client {
        Client::Reqwest => None,
        Client::Inline => Some(std::sync::Arc::new(inline::Pool::new(&base)?)),
    };
    let upstream = Upstream { http, base, inline };
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
    let answer = match &upstream.inline {
        Some(pool) => pool.send(parts.uri.path(), &parts.headers, body).await,
        None => send(&upstream, parts.uri.path(), &parts.headers, body)
            .await
            .map_err(anyhow::Error::from),
    };
    answer.unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}

mod inline {
    //! Keep-alive upstream connections, each polled by the call using it.

    use anyhow::Context;
    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, HeaderValue, Request, header};
    use axum::response::Response;
    use hyper::client::conn::http1::{Connection, SendRequest};
    use hyper_util::rt::TokioIo;
    use std::future::{Future, poll_fn};
    use std::pin::{Pin, pin};
    use std::sync::Mutex;
    use std::task::Poll;
    use tokio::net::TcpStream;

    type Conn = (SendRequest<Body>, Connection<TokioIo<TcpStream>, Body>);

    pub struct Pool {
        address: String,
        host: HeaderValue,
        idle: Mutex<Vec<Conn>>,
    }

    impl Pool {
        pub fn new(base: &str) -> anyhow::Result<Pool> {
            let address = base
                .strip_prefix("http://")
                .context("--client inline takes an http:// upstream")?
                .trim_end_matches('/')
                .to_owned();
            Ok(Pool {
                host: HeaderValue::from_str(&address).context("upstream host")?,
                address,
                idle: Mutex::new(Vec::new()),
            })
        }

        pub async fn send(
            &self,
            path: &str,
            headers: &HeaderMap,
            body: Bytes,
        ) -> anyhow::Result<Response> {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let (mut sender, mut connection) = match idle {
                Some(conn) => conn,
                None => {
                    let tcp = TcpStream::connect(&self.address).await?;
                    tcp.set_nodelay(true)?;
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?
                }
            };
            drive(&mut connection, sender.ready()).await??;
            let mut request = Request::post(path)
                .header(header::HOST, self.host.clone())
                .body(Body::from(body))?;
            for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
                if let Some(value) = headers.get(&name) {
                    request.headers_mut().insert(name, value.clone());
                }
            }
            let answer = drive(&mut connection, sender.send_request(request)).await??;
            let (parts, incoming) = answer.into_parts();
            let bytes = drive(
                &mut connection,
                axum::body::to_bytes(Body::new(incoming), 16 << 20),
            )
            .await??;
            if let Ok(mut idle) = self.idle.lock() {
                idle.push((sender, connection));
            }
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
    }

    /// Polls `work` and the connection that serves it, in this task.
    async fn drive<T>(
        connection: &mut Connection<TokioIo<TcpStream>, Body>,
        work: impl Future<Output = T>,
    ) -> anyhow::Result<T> {
        let mut work = pin!(work);
        poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match Pin::new(&mut *connection).poll(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Err(anyhow::anyhow!("upstream closed"))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
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
