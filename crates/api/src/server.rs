//! How HTTP connections are accepted and served, with the limits that keep
//! unauthenticated sockets from exhausting the gateway: at most
//! `max_connections` at once (further ones wait in the listen backlog), and a
//! header-read timeout that closes a connection whose next request has not
//! fully arrived in time (slowloris, and idle keep-alive connections alike).
//! `axum::serve` offers neither, so connections are served with hyper
//! directly, the same way it does. While few requests are in flight, a
//! connection's task answers its own wakes in place (`tollgate_core::wakes`).

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;
use tollgate_core::wakes::{InFlightCalls, Wakes};
use tower::{Service, ServiceExt};

/// The connection limits, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// From the moment a connection is ready for a request (just opened, or
    /// done with the previous one) until that request's headers are in.
    /// hyper starts this timer when the connection turns idle, so it is also
    /// the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Completes at SIGTERM or Ctrl-C: `serve`'s shutdown for a process that
/// stops on either.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing open requests and streams");
}

/// Serves `app` on `listener` until `shutdown` completes, then lets every
/// open connection finish its request in flight and waits for them all.
/// `app` is Tollgate's [`Surface`](crate::Surface), or a bare router (the
/// load benchmark's pass-through).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let requests = Arc::new(InFlightCalls::new());
    let (stop, stopped) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // The permit is taken before accepting: over the limit, connections
        // wait in the kernel's backlog and cost the process nothing.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        // Streamed answers are many small writes: each should leave at once.
        let _ = stream.set_nodelay(true);
        let counted = Arc::clone(&requests);
        let service = ServiceExt::<Request<Incoming>>::map_future(app.clone(), move |answer| {
            let request = counted.enter();
            async move {
                let answer = answer.await;
                drop(request);
                answer
            }
        });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let mut stopped = stopped.clone();
        let mut serving = Box::pin(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                // A closed or timed-out connection is the client's business.
                _ = connection.as_mut() => return,
                _ = stopped.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
        let wakes = Wakes::new();
        let quiet = Arc::clone(&requests);
        connections.spawn(std::future::poll_fn(move |cx| {
            wakes.poll(cx, quiet.quiet(), |cx| serving.as_mut().poll(cx))
        }));
    }
    drop(stopped);
    let _ = stop.send(());
    connections.close();
    connections.wait().await;
}

/// Errors of one connection (reset before it was accepted) are skipped; any
/// other (out of file descriptors) would repeat at once, so the accept loop
/// pauses first, as hyper's and axum's do.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
