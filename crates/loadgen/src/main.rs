//! The load generator of `scripts/load`: POSTs a chat body (or `--body`,
//! for the other inbound APIs) over keep-alive connections and prints one
//! `key=value` result line (milliseconds).
//!
//! - Open loop (default): request i is due at start + i / rate, whatever the
//!   server does. At most `--connections` requests are in flight; a due
//!   request that finds none free waits for one, and its latency counts from
//!   the moment it was DUE, so a stalled server is not hidden by the client
//!   waiting for it (coordinated omission, as wrk2 corrects it). Otherwise
//!   latency counts from the moment it is sent: the runtime's timer fires up
//!   to a millisecond after the due time, and that lag is the generator's,
//!   not the server's (reported apart as `lag_p50` / `lag_p99`). A request
//!   sent more than 10 ms after it was due counts as `late`.
//! - Closed loop (`--closed`): `--connections` clients each send the next
//!   request as soon as the last answer is in, for throughput (as wrk does).
//! - `--stream`: `stream: true` (a `--body` asks for its stream itself);
//!   `ttfb_*` is the time from the same start as the latency to the first
//!   body byte.
//!
//! Result keys: sent ok non2xx errors rate p50 p90 p99 p999 max late lag_p50
//! lag_p99, and
//! with `--stream` ttfb_p50 ttfb_p90 ttfb_p99 ttfb_p999.

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(about = "Fixed-rate and closed-loop HTTP load for scripts/load")]
struct Args {
    /// e.g. http://127.0.0.1:8080/v1/chat/completions
    #[arg(long)]
    url: String,
    /// Bearer key.
    #[arg(long)]
    key: String,
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Most connections (and requests in flight).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds a request may take before it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Ask for a streamed answer and measure the time to its first byte.
    #[arg(long)]
    stream: bool,
    /// Closed loop: each connection sends again as soon as it has an answer.
    #[arg(long)]
    closed: bool,
    /// A file whose content is sent as the JSON body, as it is (instead of
    /// a one-message chat completion for `--model`).
    #[arg(long)]
    body: Option<std::path::PathBuf>,
}

/// What one request gave: `None` for a transport error or timeout.
struct Outcome {
    status: Option<u16>,
    /// Nanoseconds from start (see [`Call::send`]) to the last body byte.
    latency: u64,
    /// Nanoseconds from start to the first body byte.
    ttfb: Option<u64>,
    /// Nanoseconds from due to sent.
    lag: u64,
    late: bool,
}

struct Call {
    http: reqwest::Client,
    url: reqwest::Url,
    auth: String,
    body: &'static str,
    timeout: Duration,
}

impl Call {
    /// Sends one request due at `due`. Latency counts from `due` when
    /// `queued` (it waited for a free connection: the server's doing), else
    /// from now.
    async fn send(&self, due: Instant, queued: bool) -> Outcome {
        let sent = Instant::now();
        let lag = sent.saturating_duration_since(due);
        let late = lag > Duration::from_millis(10);
        let from = if queued { due } else { sent };
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let result = tokio::time::timeout(self.timeout, async {
            let mut response = self
                .http
                .post(self.url.clone())
                .header("authorization", &self.auth)
                .header("content-type", "application/json")
                .body(self.body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let mut ttfb = None;
            while let Some(chunk) = response.chunk().await? {
                if ttfb.is_none() && !chunk.is_empty() {
                    ttfb = Some(nanos(from.elapsed()));
                }
            }
            Ok::<_, reqwest::Error>((status, ttfb))
        })
        .await;
        match result {
            Ok(Ok((status, ttfb))) => Outcome {
                status: Some(status),
                latency: nanos(from.elapsed()),
                ttfb,
                lag: nanos(lag),
                late,
            },
            Ok(Err(_)) | Err(_) => Outcome {
                status: None,
                latency: nanos(from.elapsed()),
                ttfb: None,
                lag: nanos(lag),
                late,
            },
        }
    }
}

/// Nearest rank: the smallest value with at least p% of values at or below it.
fn percentile(sorted: &[u64], p: f64) -> String {
    if sorted.is_empty() {
        return "nan".to_owned();
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let value = sorted[rank.clamp(1, sorted.len()) - 1];
    format!("{:.3}", value as f64 / 1e6)
}

async fn open_loop(args: &Args, call: Arc<Call>) -> (Vec<Outcome>, Duration) {
    let total = (args.rate * args.seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let permits = Arc::new(Semaphore::new(args.connections.max(1)));
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let (permit, queued) = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => match Arc::clone(&permits).acquire_owned().await {
                Ok(permit) => (permit, true),
                Err(_) => break,
            },
        };
        let call = Arc::clone(&call);
        tasks.push(tokio::spawn(async move {
            let outcome = call.send(due, queued).await;
            drop(permit);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(outcome) = task.await {
            outcomes.push(outcome);
        }
    }
    (outcomes, start.elapsed())
}

async fn closed_loop(args: &Args, call: Arc<Call>) -> (Vec<Outcome>, Duration) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let clients: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let call = Arc::clone(&call);
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while Instant::now() < end {
                    outcomes.push(call.send(Instant::now(), false).await);
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for client in clients {
        if let Ok(mut some) = client.await {
            outcomes.append(&mut some);
        }
    }
    (outcomes, start.elapsed())
}

fn report(args: &Args, outcomes: &[Outcome], elapsed: Duration) -> String {
    let ok = outcomes
        .iter()
        .filter(|o| o.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    let errors = outcomes.iter().filter(|o| o.status.is_none()).count();
    let mut latency: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.status.is_some())
        .map(|o| o.latency)
        .collect();
    latency.sort_unstable();
    let mut ttfb: Vec<u64> = outcomes.iter().filter_map(|o| o.ttfb).collect();
    ttfb.sort_unstable();
    let mut lag: Vec<u64> = outcomes.iter().map(|o| o.lag).collect();
    lag.sort_unstable();
    let mut line = format!(
        "sent={} ok={ok} non2xx={} errors={errors} rate={:.1} p50={} p90={} p99={} p999={} max={} late={} lag_p50={} lag_p99={}",
        outcomes.len(),
        outcomes.len() - ok - errors,
        ok as f64 / elapsed.as_secs_f64().max(1e-9),
        percentile(&latency, 50.0),
        percentile(&latency, 90.0),
        percentile(&latency, 99.0),
        percentile(&latency, 99.9),
        percentile(&latency, 100.0),
        outcomes.iter().filter(|o| o.late).count(),
        percentile(&lag, 50.0),
        percentile(&lag, 99.0),
    );
    if args.stream {
        line.push_str(&format!(
            " ttfb_p50={} ttfb_p90={} ttfb_p99={} ttfb_p999={}",
            percentile(&ttfb, 50.0),
            percentile(&ttfb, 90.0),
            percentile(&ttfb, 99.0),
            percentile(&ttfb, 99.9),
        ));
    }
    line
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections.max(1))
        .tcp_nodelay(true)
        .http1_only()
        .build()
        .context("building the HTTP client")?;
    let body = match &args.body {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --body {}", path.display()))?,
        None => format!(
            r#"{{"model":"{}","messages":[{{"role":"user","content":"Say hello"}}]{}}}"#,
            args.model,
            if args.stream { r#","stream":true"# } else { "" }
        ),
    };
    let call = Arc::new(Call {
        http,
        url: reqwest::Url::parse(&args.url).context("--url")?,
        auth: format!("Bearer {}", args.key),
        body: Box::leak(body.into_boxed_str()),
        timeout: Duration::from_secs_f64(args.timeout),
    });
    let (outcomes, elapsed) = if args.closed {
        closed_loop(&args, call).await
    } else {
        open_loop(&args, call).await
    };
    println!("{}", report(&args, &outcomes, elapsed));
    Ok(())
}
