//! Plain-HTTP calls on keep-alive HTTP/1.1 connections, each polled by the
//! task whose call it carries: no connection task, no hand-over between
//! tasks, so an answer is read as soon as the socket has it.
//!
//! A connection is checked out of the [`Pool`] for one call, driven by that
//! call while the request goes out and the answer's head comes back, then
//! by its [`Body`] while the answer is read; once the body is read to its
//! end, the connection goes back to the pool. A body dropped before its end
//! closes its connection. An idle connection is polled by nobody: one the
//! provider closed meanwhile is seen (and dropped) at its next checkout.
//! While few calls are in flight, a call's connection's wakes of its task
//! are answered in place ([`Wakes`]).

use super::{Timeouts, USER_AGENT, origin_form};
use crate::error::ProviderError;
use bytes::{Bytes, BytesMut};
use foldhash::HashMap;
use futures::Stream;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tollgate_core::wakes::{InFlightCall, InFlightCalls, Wakes};

/// How long a connection may stay idle in the pool (reqwest's setting too).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per endpoint host (reqwest's setting too).
pub(super) const MAX_IDLE_PER_HOST: usize = 1024;

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One keep-alive connection: the sending half and the connection itself.
struct Live {
    sender: SendRequest<Full<Bytes>>,
    link: Link,
}

impl Live {
    /// Whether an idle connection is still open: polling it reads what the
    /// provider sent meanwhile, its close included.
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.link.poll(&mut cx).is_pending() && !self.sender.is_closed()
    }
}

/// The connection's own future, which moves the bytes.
struct Link {
    connection: Conn,
    /// It has completed, and is never polled again.
    ended: bool,
    /// Whoever drives the connection polls it through this.
    wakes: Wakes,
}

impl Link {
    /// Drives the connection: reads the socket, writes what is queued.
    /// Ready once the connection has ended: closed or broken.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProviderError>> {
        if self.ended {
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut self.connection).poll(cx);
        if polled.is_ready() {
            self.ended = true;
        }
        polled.map_err(|e| unreachable(&e))
    }

    /// Polls `work` and this connection, which serves it, in this task
    /// (their wakes answered in place if `in_place`). The connection ending
    /// before `work` completes is an error: it never will.
    async fn drive<T>(
        &mut self,
        work: impl Future<Output = T>,
        in_place: bool,
    ) -> Result<T, ProviderError> {
        let mut work = pin!(work);
        let wakes = self.wakes.clone();
        poll_fn(|cx| {
            wakes.poll(cx, in_place, |cx| {
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                let Poll::Ready(ended) = self.poll(cx) else {
                    return Poll::Pending;
                };
                // The connection's end may have settled `work` (an answer
                // followed by a close, or a request handed back unsent).
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                Poll::Ready(Err(ended.err().unwrap_or_else(closed)))
            })
        })
        .await
    }
}

fn closed() -> ProviderError {
    ProviderError::Connect("the connection closed".into())
}

struct Idle {
    live: Live,
    since: Instant,
}

/// A plain-HTTP URL, parsed once.
pub struct Endpoint {
    /// `host:port` as the pool knows it.
    address: String,
    /// The host to connect to (an IPv6 address without its brackets).
    host: String,
    port: u16,
    host_header: HeaderValue,
    path: http::uri::PathAndQuery,
}

impl Endpoint {
    /// `None` unless `url` is `http://` without credentials.
    pub(super) fn parse(url: &str) -> Option<Endpoint> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let (path, host_header) = origin_form(&uri)?;
        Some(Endpoint {
            address: format!("{}:{port}", authority.host()),
            host,
            port,
            host_header,
            path,
        })
    }
}

/// Idle connections by endpoint address.
pub(super) struct Pool {
    timeouts: Timeouts,
    idle: Mutex<HashMap<String, VecDeque<Idle>>>,
    /// Calls between their request and the end of their answer's body:
    /// while they are few, a connection's wakes are answered in place.
    in_flight: Arc<InFlightCalls>,
}

impl Pool {
    pub(super) fn new(timeouts: Timeouts) -> Pool {
        Pool {
            timeouts,
            idle: Mutex::new(HashMap::default()),
            in_flight: Arc::new(InFlightCalls::new()),
        }
    }

    /// Sends one request and returns the answer's head and its body.
    pub(super) async fn send(
        self: &Arc<Self>,
        endpoint: &Arc<Endpoint>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Box<Body>), ProviderError> {
        let mut request = Request::post(endpoint.path.clone())
            .body(Full::new(body))
            .map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
        let sent = request.headers_mut();
        sent.insert(header::HOST, endpoint.host_header.clone());
        sent.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        sent.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        sent.extend(headers);
        let busy = self.in_flight.enter();

        // A pooled connection the provider closed just as this call took it
        // hands the request back unsent: it goes out once more, on a new
        // connection.
        let (mut live, reused) = match self.checkout(&endpoint.address) {
            Some(live) => (live, true),
            None => (self.connect(endpoint).await?, false),
        };
        let answer = match self.exchange(&mut live, request).await {
            Ok(answer) => answer,
            Err(Unsent::Again(request)) if reused => {
                live = self.connect(endpoint).await?;
                self.exchange(&mut live, *request)
                    .await
                    .map_err(Unsent::into_error)?
            }
            Err(unsent) => return Err(unsent.into_error()),
        };
        let (parts, incoming) = answer.into_parts();
        let body = Box::new(Body {
            wakes: live.link.wakes.clone(),
            _in_flight: busy,
            read: Reading {
                incoming,
                live: Some(live),
                pool: Arc::clone(self),
                endpoint: Arc::clone(endpoint),
                deadline: Box::pin(tokio::time::sleep(self.timeouts.read)),
                finished: false,
            },
        });
        Ok((parts.status, parts.headers, body))
    }

    /// Writes the request and reads the answer's head, driving the
    /// connection meanwhile.
    async fn exchange(
        &self,
        live: &mut Live,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, Unsent> {
        let Live { sender, link } = live;
        let in_place = self.in_flight.quiet();
        if !matches!(link.drive(sender.ready(), in_place).await, Ok(Ok(()))) {
            return Err(Unsent::Again(Box::new(request)));
        }
        let exchange = link.drive(sender.try_send_request(request), in_place);
        match tokio::time::timeout(self.timeouts.read, exchange).await {
            Err(_) => Err(Unsent::Failed(ProviderError::Timeout)),
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(mut refused))) => match refused.take_message() {
                Some(request) => Err(Unsent::Again(Box::new(request))),
                None => Err(Unsent::Failed(unreachable(&refused.into_error()))),
            },
            Ok(Err(closed)) => Err(Unsent::Failed(closed)),
        }
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<Live, ProviderError> {
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        let tcp = tokio::time::timeout(self.timeouts.connect, connect)
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| unreachable(&e))?;
        Ok(Live {
            sender,
            link: Link {
                connection,
                ended: false,
                wakes: Wakes::new(),
            },
        })
    }

    /// The most recently used idle connection still open, if any.
    fn checkout(&self, address: &str) -> Option<Live> {
        let mut idle = self.idle.lock().ok()?;
        let connections = idle.get_mut(address)?;
        while let Some(Idle { mut live, since }) = connections.pop_back() {
            if since.elapsed() < IDLE_TIMEOUT && live.is_open() {
                return Some(live);
            }
        }
        None
    }

    fn checkin(&self, address: &str, live: Live) {
        if live.sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if !idle.contains_key(address) {
            idle.insert(address.to_owned(), VecDeque::new());
        }
        let Some(connections) = idle.get_mut(address) else {
            return;
        };
        while connections
            .front()
            .is_some_and(|c| c.since.elapsed() >= IDLE_TIMEOUT)
        {
            connections.pop_front();
        }
        if connections.len() < MAX_IDLE_PER_HOST {
            connections.push_back(Idle {
                live,
                since: Instant::now(),
            });
        }
    }
}

/// Why a request got no answer.
enum Unsent {
    /// The connection was closed before the request went out: it can go
    /// out on another.
    Again(Box<Request<Full<Bytes>>>),
    Failed(ProviderError),
}

impl Unsent {
    fn into_error(self) -> ProviderError {
        match self {
            Unsent::Again(_) => closed(),
            Unsent::Failed(e) => e,
        }
    }
}

fn unreachable(e: &hyper::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Connect(e.to_string())
    }
}

/// An answer's body, driving its connection while it is read; at its end
/// the connection goes back to the pool.
pub struct Body {
    /// A copy of its connection's (`read`, which holds the connection,
    /// is borrowed while polled through it).
    wakes: Wakes,
    _in_flight: InFlightCall,
    read: Reading,
}

struct Reading {
    incoming: Incoming,
    live: Option<Live>,
    pool: Arc<Pool>,
    endpoint: Arc<Endpoint>,
    /// When the wait for the next bytes times out.
    deadline: Pin<Box<Sleep>>,
    /// The body has ended, or failed: nothing more comes.
    finished: bool,
}

impl Body {
    /// The whole body.
    pub(super) async fn collect(mut self: Box<Self>) -> Result<Bytes, ProviderError> {
        let mut first: Option<Bytes> = None;
        let mut rest = BytesMut::new();
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await {
            let chunk = chunk?;
            match &first {
                None => first = Some(chunk),
                Some(head) => {
                    if rest.is_empty() {
                        rest.extend_from_slice(head);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        Ok(if rest.is_empty() {
            first.unwrap_or_default()
        } else {
            rest.freeze()
        })
    }
}

impl Stream for Body {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Body { wakes, read, .. } = self.get_mut();
        let in_place = read.pool.in_flight.quiet();
        wakes.poll(cx, in_place, |cx| read.poll_next(cx))
    }
}

impl Reading {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProviderError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        loop {
            // The connection reads the socket into the body: poll it first.
            if let Some(live) = &mut self.live
                && live.link.poll(cx).is_ready()
            {
                // Closed or broken: the body reports which, from what it got.
                self.live = None;
            }
            match Pin::new(&mut self.incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    let next = tokio::time::Instant::now() + self.pool.timeouts.read;
                    self.deadline.as_mut().reset(next);
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.live = None;
                    self.finished = true;
                    let error = if e.is_timeout() {
                        ProviderError::Timeout
                    } else {
                        ProviderError::InvalidResponse(e.to_string())
                    };
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    // The whole answer came (a cut one is an error): the
                    // connection can carry another.
                    if let Some(live) = self.live.take() {
                        self.pool.checkin(&self.endpoint.address, live);
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if self.deadline.as_mut().poll(cx).is_ready() {
                        self.live = None;
                        self.finished = true;
                        return Poll::Ready(Some(Err(ProviderError::Timeout)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The direct path against a provider on a real socket, whose every
    //! byte and close the test decides.

    use super::*;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    const SSE_HEAD: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    fn chunk(data: &str) -> String {
        format!("{:x}\r\n{data}\r\n", data.len())
    }

    /// Reads one request (head, then a `content-length` body); false at
    /// the connection's end.
    async fn read_request(tcp: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return false,
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        tcp.read_exact(&mut body).await.is_ok()
    }

    /// A provider whose `n`-th connection (from 0) is served by `serve`;
    /// returns its URL and how many connections it accepted.
    async fn provider<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(count.fetch_add(1, SeqCst), tcp));
            }
        });
        (url, accepted)
    }

    fn pool() -> Arc<Pool> {
        Arc::new(Pool::new(Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_millis(300),
        }))
    }

    async fn call(pool: &Arc<Pool>, url: &str) -> Result<Box<Body>, ProviderError> {
        let endpoint = Arc::new(Endpoint::parse(url).unwrap());
        let body = Bytes::from_static(br#"{"model":"m"}"#);
        let (status, _, body) = pool.send(&endpoint, HeaderMap::new(), body).await?;
        assert_eq!(status, StatusCode::OK);
        Ok(body)
    }

    #[tokio::test]
    async fn a_call_counts_in_flight_until_its_body_is_read_or_dropped() {
        let (url, _) = provider(|_, mut tcp| async move {
            while read_request(&mut tcp).await {
                tcp.write_all(OK.as_bytes()).await.unwrap();
            }
        })
        .await;
        let pool = pool();
        let first = call(&pool, &url).await.unwrap();
        let second = call(&pool, &url).await.unwrap();
        assert_eq!(pool.in_flight.count(), 2);
        assert_eq!(
            first.collect().await.unwrap(),
            OK.split("\r\n\r\n").nth(1).unwrap()
        );
        assert_eq!(pool.in_flight.count(), 1);
        drop(second);
        assert_eq!(pool.in_flight.count(), 0);
        // A call refused before any answer counts no longer either.
        let closed = "http://127.0.0.1:9/v1/chat/completions";
        assert!(call(&pool, closed).await.is_err());
        assert_eq!(pool.in_flight.count(), 0);
    }

    #[tokio::test]
    async fn a_connection_is_reused_and_one_the_provider_closed_is_replaced() {
        let (url, accepted) = provider(|n, mut tcp| async move {
            while read_request(&mut tcp).await {
                tcp.write_all(OK.as_bytes()).await.unwrap();
                // The first connection closes after one answer, as a
                // provider's keep-alive timeout would close it.
                if n == 0 {
                    return;
                }
            }
        })
        .await;
        let pool = pool();

        for _ in 0..3 {
            let body = call(&pool, &url).await.unwrap().collect().await.unwrap();
            assert_eq!(body, r#"{"ok":true}"#);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        assert_eq!(accepted.load(SeqCst), 2, "closed once, then reused");
    }

    #[tokio::test]
    async fn a_streamed_answer_arrives_as_it_is_sent_and_frees_its_connection_at_its_end() {
        let second = Arc::new(Notify::new());
        let go = Arc::clone(&second);
        let (url, accepted) = provider(move |_, mut tcp| {
            let go = Arc::clone(&go);
            async move {
                read_request(&mut tcp).await;
                let first = format!("{SSE_HEAD}{}", chunk("data: 1\n\n"));
                tcp.write_all(first.as_bytes()).await.unwrap();
                go.notified().await;
                let rest = format!("{}0\r\n\r\n", chunk("data: 2\n\n"));
                tcp.write_all(rest.as_bytes()).await.unwrap();
                while read_request(&mut tcp).await {
                    tcp.write_all(OK.as_bytes()).await.unwrap();
                }
            }
        })
        .await;
        let pool = pool();

        let mut stream = call(&pool, &url).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap(), "data: 1\n\n");
        second.notify_one();
        assert_eq!(stream.next().await.unwrap().unwrap(), "data: 2\n\n");
        assert!(stream.next().await.is_none());
        let body = call(&pool, &url).await.unwrap().collect().await.unwrap();

        assert_eq!(body, r#"{"ok":true}"#);
        assert_eq!(accepted.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let first_closed = Arc::new(AtomicBool::new(false));
        let closed = Arc::clone(&first_closed);
        let (url, accepted) = provider(move |n, mut tcp| {
            let closed = Arc::clone(&closed);
            async move {
                read_request(&mut tcp).await;
                if n == 0 {
                    let first = format!("{SSE_HEAD}{}", chunk("data: 1\n\n"));
                    tcp.write_all(first.as_bytes()).await.unwrap();
                    let mut rest = [0u8; 1];
                    let eof = matches!(tcp.read(&mut rest).await, Ok(0));
                    closed.store(eof, SeqCst);
                } else {
                    tcp.write_all(OK.as_bytes()).await.unwrap();
                }
            }
        })
        .await;
        let pool = pool();

        let mut stream = call(&pool, &url).await.unwrap();
        assert!(stream.next().await.unwrap().is_ok());
        drop(stream);
        let body = call(&pool, &url).await.unwrap().collect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        assert_eq!(body, r#"{"ok":true}"#);
        assert_eq!(accepted.load(SeqCst), 2);
        assert!(first_closed.load(SeqCst), "the provider saw the close");
    }

    #[tokio::test]
    async fn a_provider_that_stops_sending_times_out() {
        let (url, _) = provider(|n, mut tcp| async move {
            read_request(&mut tcp).await;
            // The first never answers; the second stops halfway.
            if n == 1 {
                let half = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial";
                tcp.write_all(half.as_bytes()).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        })
        .await;
        let pool = pool();

        let no_head = call(&pool, &url).await.err();
        let no_end = call(&pool, &url).await.unwrap().collect().await;

        assert!(
            matches!(no_head, Some(ProviderError::Timeout)),
            "{no_head:?}"
        );
        assert!(matches!(no_end, Err(ProviderError::Timeout)), "{no_end:?}");
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_a_connect_error_worth_a_fallback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        drop(listener);

        let error = call(&pool(), &url).await.err().unwrap();

        assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
        assert!(error.is_retryable());
    }
}
