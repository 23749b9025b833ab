//! How a provider call travels. A plain-HTTP endpoint reached without a
//! proxy (a local vLLM or Ollama, a sidecar, the mock provider) gets a
//! direct HTTP/1.1 connection, polled by the task making the call
//! ([`direct`]); every other endpoint (TLS, HTTP/2, a proxy from the
//! environment) goes through reqwest.
//!
//! The adapters only see [`Outgoing`] and [`Answer`]: which way a call went
//! changes neither what is sent nor how an answer or an error reads. Public
//! for `tollgate-passthrough`, the benchmark's floor, which forwards on it.

mod direct;

use crate::error::ProviderError;
use bytes::Bytes;
use foldhash::HashMap;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use serde::Serialize;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

/// The `User-Agent` of every provider call.
const USER_AGENT: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));

/// The environment variables through which reqwest sends plain-HTTP calls
/// to a proxy. While one is set, every call goes through reqwest, which
/// honours them (and `NO_PROXY`).
const HTTP_PROXY_VARIABLES: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// The transport's settings.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read: Duration,
}

/// Both ways a call can go, shared by every call.
#[derive(Clone)]
pub struct Http {
    reqwest: reqwest::Client,
    /// `None` while a proxy is configured for plain HTTP.
    direct: Option<Arc<direct::Pool>>,
}

impl Http {
    pub fn new(timeouts: Timeouts) -> Result<Http, ProviderError> {
        // reqwest is built without a default TLS backend (ring builds far
        // faster than aws-lc); install ring unless the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let reqwest = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .pool_idle_timeout(direct::IDLE_TIMEOUT)
            .pool_max_idle_per_host(direct::MAX_IDLE_PER_HOST)
            .tcp_nodelay(true)
            // Tollgate retries and falls back itself; reqwest's own retry
            // layer would copy every request's headers in case it retries.
            .retry(reqwest::retry::never())
            // A provider API answers; a redirect there is a misconfigured
            // base URL, better seen as its 3xx than followed with the key.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        let proxied = HTTP_PROXY_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let direct = (!proxied).then(|| Arc::new(direct::Pool::new(timeouts)));
        Ok(Http { reqwest, direct })
    }

    /// Sends `request` and returns the answer once its head has arrived,
    /// whatever its status.
    pub async fn send(&self, request: Outgoing) -> Result<Answer, ProviderError> {
        let Outgoing { url, headers, body } = request;
        match (&self.direct, route(&url)) {
            (Some(pool), Route::Direct(endpoint)) => {
                let (status, headers, body) = pool.send(&endpoint, headers, body).await?;
                Ok(Answer(AnswerBody::Direct {
                    status,
                    headers,
                    body,
                }))
            }
            (_, route) => {
                let mut call = match route {
                    Route::Reqwest(url) => self.reqwest.post(url),
                    // Plain HTTP while a proxy is configured (reqwest
                    // sends it through the proxy), or not a URL at all
                    // (reqwest reports why).
                    Route::Direct(_) | Route::Invalid => self.reqwest.post(url.as_str()),
                };
                call = call.headers(headers).body(body);
                let response = call.send().await.map_err(ProviderError::from_reqwest)?;
                Ok(Answer(AnswerBody::Reqwest(response)))
            }
        }
    }
}

/// A request to a provider: always a POST of one body.
pub struct Outgoing {
    url: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Outgoing {
    pub fn post(url: impl Into<String>) -> Outgoing {
        Outgoing {
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (`name` in lowercase). A value a header cannot carry
    /// (a key with a line break, say) fails the call as unreachable, never
    /// naming the value.
    pub fn header(self, name: &'static str, value: &str) -> Result<Outgoing, ProviderError> {
        self.with(name, value, false)
    }

    /// Adds the header that carries the provider key, marked sensitive so
    /// that no debug output shows it.
    pub fn key(self, name: &'static str, value: &str) -> Result<Outgoing, ProviderError> {
        self.with(name, value, true)
    }

    fn with(
        mut self,
        name: &'static str,
        value: &str,
        sensitive: bool,
    ) -> Result<Outgoing, ProviderError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            ProviderError::Connect(format!("the `{name}` header cannot carry the value given"))
        })?;
        value.set_sensitive(sensitive);
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(self)
    }

    /// The body, as it is.
    pub fn body(mut self, body: Bytes) -> Outgoing {
        self.body = body;
        self
    }

    /// The body, as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Outgoing, ProviderError> {
        let json =
            serde_json::to_vec(body).map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
        self.body = Bytes::from(json);
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(self)
    }
}

/// A provider's answer: its status and headers, and a body still to read.
pub struct Answer(AnswerBody);

enum AnswerBody {
    /// reqwest's response holds its own status and headers.
    Reqwest(reqwest::Response),
    Direct {
        status: StatusCode,
        headers: HeaderMap,
        body: Box<direct::Body>,
    },
}

impl Answer {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            AnswerBody::Reqwest(response) => response.status(),
            AnswerBody::Direct { status, .. } => *status,
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        match &self.0 {
            AnswerBody::Reqwest(response) => response.headers(),
            AnswerBody::Direct { headers, .. } => headers,
        }
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, ProviderError> {
        match self.0 {
            AnswerBody::Reqwest(response) => {
                response.bytes().await.map_err(ProviderError::from_reqwest)
            }
            AnswerBody::Direct { body, .. } => body.collect().await,
        }
    }

    /// The whole body as text (lossy); empty when it cannot be read.
    pub async fn text(self) -> String {
        match self.bytes().await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// The body as it arrives.
    pub fn bytes_stream(self) -> BoxStream<'static, Result<Bytes, ProviderError>> {
        match self.0 {
            AnswerBody::Reqwest(response) => response
                .bytes_stream()
                .map(|chunk| chunk.map_err(ProviderError::from_reqwest))
                .boxed(),
            AnswerBody::Direct { body, .. } => Box::into_pin(body),
        }
    }
}

/// Which way a URL goes.
#[derive(Clone)]
enum Route {
    Direct(Arc<direct::Endpoint>),
    Reqwest(reqwest::Url),
    Invalid,
}

/// Routes already worked out, by URL text: parsing a URL costs more than
/// building the rest of the request, and a catalog has few endpoints.
static ROUTES: LazyLock<RwLock<HashMap<String, Route>>> = LazyLock::new(RwLock::default);

fn route(url: &str) -> Route {
    if let Some(route) = ROUTES.read().ok().and_then(|r| r.get(url).cloned()) {
        return route;
    }
    let route = match direct::Endpoint::parse(url) {
        Some(endpoint) => Route::Direct(Arc::new(endpoint)),
        None => match reqwest::Url::parse(url) {
            Ok(parsed) => Route::Reqwest(parsed),
            Err(_) => Route::Invalid,
        },
    };
    if let Ok(mut routes) = ROUTES.write() {
        if routes.len() >= 1024 {
            routes.clear();
        }
        routes.insert(url.to_owned(), route.clone());
    }
    route
}

/// The request line's target and the `Host` of a plain-HTTP URL.
fn origin_form(uri: &Uri) -> Option<(http::uri::PathAndQuery, HeaderValue)> {
    let authority = uri.authority()?;
    let host = HeaderValue::from_str(authority.as_str()).ok()?;
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    Some((path, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_direct_and_everything_else_through_reqwest() {
        assert!(matches!(
            route("http://127.0.0.1:8000/v1/chat/completions"),
            Route::Direct(_)
        ));
        assert!(matches!(
            route("http://localhost/v1beta/models/m:generateContent?alt=sse"),
            Route::Direct(_)
        ));
        assert!(matches!(
            route("https://api.openai.com/v1/chat/completions"),
            Route::Reqwest(_)
        ));
        // Credentials in the URL: reqwest turns them into basic auth.
        assert!(matches!(
            route("http://user:pass@127.0.0.1:8000/v1/embeddings"),
            Route::Reqwest(_)
        ));
        assert!(matches!(route("not a url"), Route::Invalid));
    }

    #[test]
    fn the_request_line_keeps_the_query_and_the_host_keeps_the_port() {
        let uri: Uri = "http://[::1]:11434/v1beta/models/m:streamGenerateContent?alt=sse"
            .parse()
            .unwrap();
        let (path, host) = origin_form(&uri).unwrap();
        assert_eq!(
            path.as_str(),
            "/v1beta/models/m:streamGenerateContent?alt=sse"
        );
        assert_eq!(host, "[::1]:11434");
    }

    #[test]
    fn keys_are_marked_sensitive_and_invalid_values_are_not_echoed() {
        let request = Outgoing::post("http://127.0.0.1:9/v1")
            .key("authorization", "Bearer sk-secret")
            .unwrap();
        assert!(request.headers["authorization"].is_sensitive());
        assert!(!format!("{:?}", request.headers).contains("sk-secret"));

        let refused = Outgoing::post("http://127.0.0.1:9/v1")
            .key("x-api-key", "sk-bad\nvalue")
            .err()
            .unwrap();
        assert!(!refused.to_string().contains("sk-bad"), "{refused}");
    }
}
