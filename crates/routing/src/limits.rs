//! Rate limits: requests per minute, tokens per minute and calls in flight,
//! for any number of scopes at once (an API key and its organization).
//!
//! A call is admitted only if every scope has room, and then counts in
//! every scope; the check and the count are one step, so concurrent calls
//! never both take the last slot.
//!
//! - Requests: a sliding window (a log of admission times): admitted while
//!   fewer than the limit were admitted in the last 60 seconds. Exact, with
//!   no burst of twice the limit at a minute's boundary.
//! - Tokens: a fixed window, one per wall-clock minute. The call counts its estimate (prompt bytes / 4 plus the
//!   requested `max_tokens`) when admitted, and is corrected to its real
//!   usage when it settles. Admitted while the minute's tokens plus the
//!   estimate stay within the limit; a call larger than the whole limit is
//!   admitted only into an empty minute, so it is never locked out forever.
//! - Concurrency: a lease per call in flight, returned when the call (or
//!   its stream) ends. In Redis a lease also expires after
//!   [`RateLimiter::lease_ttl`], so a replica that dies cannot hold slots.
//!
//! In-process by default. With Redis, the counters live in Redis and one Lua
//! script checks and counts atomically, with Redis's own clock: the limits
//! hold exactly across replicas. If Redis cannot be reached, the call is
//! checked against this process's own counters instead (fail open to the
//! in-process limiter, with a warning), and Redis is tried again after
//! [`REDIS_RETRY`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tollgate_core::outage::{Dependency, OutageLog};

/// Logged once per outage and then as a periodic summary, not per call.
static REDIS_DOWN: OutageLog = OutageLog::new(
    Dependency::Redis,
    "Redis is unreachable: rate limits are counted in this process only until it is back",
);

/// How long the limiter keeps to the in-process counters after Redis failed.
pub const REDIS_RETRY: Duration = Duration::from_secs(5);
const WINDOW_MS: i64 = 60_000;

/// One scope's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub concurrency: Option<i64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.tokens_per_minute.is_none()
            && self.concurrency.is_none()
    }
}

/// A named counter set (`key:<id>`, `org:<id>`) and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub limits: Limits,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Concurrency,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests per minute",
            LimitKind::Tokens => "tokens per minute",
            LimitKind::Concurrency => "concurrent requests",
        }
    }
}

/// Where a scope stands, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: i64,
    pub remaining: i64,
    /// Until the window resets.
    pub reset: Duration,
}

/// The tightest requests and tokens quotas over the scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    pub requests: Option<Quota>,
    pub tokens: Option<Quota>,
}

impl Quotas {
    fn merge(&mut self, requests: Option<Quota>, tokens: Option<Quota>) {
        fn tighter(a: Option<Quota>, b: Option<Quota>) -> Option<Quota> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
                (a, b) => a.or(b),
            }
        }
        self.requests = tighter(self.requests, requests);
        self.tokens = tighter(self.tokens, tokens);
    }
}

/// A refused call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: LimitKind,
    /// The scope that refused (`key:…` or `org:…`).
    pub scope: String,
    pub limit: i64,
    pub retry_after: Duration,
    pub quotas: Quotas,
}

/// An admitted call. Dropping it (the last clone) returns its concurrency
/// leases.
#[derive(Clone)]
pub struct Admission(Arc<AdmissionInner>);

struct AdmissionInner {
    limiter: RateLimiter,
    scopes: Vec<Scope>,
    lease: String,
    estimate: i64,
    /// Counted in Redis (`false`: in this process).
    shared: bool,
    quotas: Quotas,
    settled: Mutex<bool>,
}

impl Admission {
    /// A call without any limit: counts nothing.
    pub fn unlimited(limiter: &RateLimiter) -> Admission {
        Admission(Arc::new(AdmissionInner {
            limiter: limiter.clone(),
            scopes: Vec::new(),
            lease: String::new(),
            estimate: 0,
            shared: false,
            quotas: Quotas::default(),
            settled: Mutex::new(true),
        }))
    }

    pub fn quotas(&self) -> Quotas {
        self.0.quotas
    }

    /// Replaces the estimate by the call's real token count (once). In this
    /// process at once; in Redis in a task of its own, so that the answer
    /// does not wait for a round trip to Redis (the count lands one round
    /// trip after it).
    pub fn used_tokens(&self, tokens: i64) {
        {
            let Ok(mut settled) = self.0.settled.lock() else {
                return;
            };
            if *settled {
                return;
            }
            *settled = true;
        }
        let delta = tokens - self.0.estimate;
        if delta == 0
            || !self
                .0
                .scopes
                .iter()
                .any(|s| s.limits.tokens_per_minute.is_some())
        {
            return;
        }
        self.0
            .limiter
            .add_tokens(&self.0.scopes, delta, self.0.shared);
    }
}

impl Drop for AdmissionInner {
    fn drop(&mut self) {
        if !self.scopes.iter().any(|s| s.limits.concurrency.is_some()) {
            return;
        }
        let scopes = std::mem::take(&mut self.scopes);
        let lease = std::mem::take(&mut self.lease);
        if !self.shared {
            self.limiter.0.local.release(&scopes, &lease);
            return;
        }
        let limiter = self.limiter.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { limiter.release_shared(&scopes, &lease).await });
        }
    }
}

/// The limiter: in-process, or shared through Redis. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter(Arc<LimiterInner>);

struct LimiterInner {
    local: Local,
    redis: Option<Shared>,
    lease_ttl: Duration,
}

impl RateLimiter {
    /// Counters in this process only.
    pub fn in_process() -> RateLimiter {
        RateLimiter(Arc::new(LimiterInner {
            local: Local::default(),
            redis: None,
            lease_ttl: Duration::from_secs(600),
        }))
    }

    /// Counters in the Redis at `url`, under keys starting with `prefix`.
    /// Connects lazily: a Redis that is down at start is tried again later.
    pub fn with_redis(url: &str, prefix: &str) -> Result<RateLimiter, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(RateLimiter(Arc::new(LimiterInner {
            local: Local::default(),
            redis: Some(Shared {
                client,
                prefix: prefix.to_owned(),
                connection: tokio::sync::Mutex::new(None),
                down_until: Mutex::new(None),
                acquire: redis::Script::new(ACQUIRE_LUA),
                add_tokens: redis::Script::new(ADD_TOKENS_LUA),
            }),
            lease_ttl: Duration::from_secs(600),
        })))
    }

    /// Whether counters are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.0.redis.is_some()
    }

    /// How long a Redis concurrency lease lives if never returned.
    pub fn lease_ttl(&self) -> Duration {
        self.0.lease_ttl
    }

    /// Admits a call of `estimate` tokens in every scope, or refuses it.
    pub async fn acquire(&self, scopes: Vec<Scope>, estimate: i64) -> Result<Admission, Refusal> {
        let scopes: Vec<Scope> = scopes
            .into_iter()
            .filter(|s| !s.limits.is_unlimited())
            .collect();
        if scopes.is_empty() {
            return Ok(Admission::unlimited(self));
        }
        let lease = format!("{:016x}", rand::random::<u64>());
        let estimate = estimate.max(0);
        if let Some(shared) = &self.0.redis {
            match shared
                .acquire(&scopes, estimate, &lease, self.0.lease_ttl)
                .await
            {
                Ok(result) => {
                    REDIS_DOWN.recovered();
                    return result
                        .map(|quotas| self.admitted(scopes, lease, estimate, true, quotas));
                }
                Err(e) => shared.failed(&e),
            }
        }
        self.0
            .local
            .acquire(&scopes, estimate, &lease, now_ms())
            .map(|quotas| self.admitted(scopes, lease, estimate, false, quotas))
    }

    fn admitted(
        &self,
        scopes: Vec<Scope>,
        lease: String,
        estimate: i64,
        shared: bool,
        quotas: Quotas,
    ) -> Admission {
        Admission(Arc::new(AdmissionInner {
            limiter: self.clone(),
            scopes,
            lease,
            estimate,
            shared,
            quotas,
            settled: Mutex::new(false),
        }))
    }

    /// Adds `delta` tokens to the scopes' minute: in this process at once;
    /// in Redis (`shared`) in a task of its own, so that no call waits for
    /// the round trip.
    fn add_tokens(&self, scopes: &[Scope], delta: i64, shared: bool) {
        if !(shared && self.0.redis.is_some()) {
            self.0.local.add_tokens(scopes, delta, now_ms());
            return;
        }
        let (limiter, scopes) = (self.clone(), scopes.to_vec());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { limiter.add_tokens_shared(&scopes, delta).await });
        }
    }

    async fn add_tokens_shared(&self, scopes: &[Scope], delta: i64) {
        if let Some(redis) = &self.0.redis
            && let Err(e) = redis.add_tokens(scopes, delta).await
        {
            redis.failed(&e);
        }
    }

    async fn release_shared(&self, scopes: &[Scope], lease: &str) {
        if let Some(redis) = &self.0.redis
            && let Err(e) = redis.release(scopes, lease).await
        {
            // The lease expires on its own after `lease_ttl`.
            redis.failed(&e);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))
}

// ---- in process ----

#[derive(Default)]
struct Local {
    counters: Mutex<HashMap<String, Counter>>,
}

#[derive(Default)]
struct Counter {
    window: i64,
    /// Admission times (ms) in the last minute, oldest first.
    requests: std::collections::VecDeque<i64>,
    tokens: i64,
    leases: Vec<String>,
}

impl Counter {
    fn roll(&mut self, window: i64, now: i64) {
        if self.window != window {
            self.window = window;
            self.tokens = 0;
        }
        while self.requests.front().is_some_and(|&t| t <= now - WINDOW_MS) {
            self.requests.pop_front();
        }
    }

    /// Until the oldest counted request leaves the sliding window.
    fn requests_reset(&self, now: i64) -> i64 {
        self.requests
            .front()
            .map_or(WINDOW_MS, |&t| t + WINDOW_MS - now)
    }
}

impl Local {
    fn acquire(
        &self,
        scopes: &[Scope],
        estimate: i64,
        lease: &str,
        now: i64,
    ) -> Result<Quotas, Refusal> {
        let window = now.div_euclid(WINDOW_MS);
        let reset = (window + 1) * WINDOW_MS - now;
        let Ok(mut counters) = self.counters.lock() else {
            return Ok(Quotas::default());
        };
        // Drop idle counters now and then, so the map stays small.
        if counters.len() > 10_000 {
            counters.retain(|_, c| {
                c.window == window || !c.leases.is_empty() || !c.requests.is_empty()
            });
        }
        let mut states = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let counter = counters.entry(scope.name.clone()).or_default();
            counter.roll(window, now);
            let leases = i64::try_from(counter.leases.len()).unwrap_or(i64::MAX);
            states.push(Observed {
                requests: i64::try_from(counter.requests.len()).unwrap_or(i64::MAX),
                requests_reset: counter.requests_reset(now),
                tokens: counter.tokens,
                leases,
            });
        }
        decide(scopes, &states, estimate, reset)?;
        let mut quotas = Quotas::default();
        for (scope, seen) in scopes.iter().zip(&states) {
            if let Some(counter) = counters.get_mut(&scope.name) {
                if scope.limits.requests_per_minute.is_some() {
                    counter.requests.push_back(now);
                }
                counter.tokens += estimate;
                if scope.limits.concurrency.is_some() {
                    counter.leases.push(lease.to_owned());
                }
            }
            let (r, t) = quotas_after(scope, seen, Some(estimate), reset);
            quotas.merge(r, t);
        }
        Ok(quotas)
    }

    fn add_tokens(&self, scopes: &[Scope], delta: i64, now: i64) {
        let window = now.div_euclid(WINDOW_MS);
        if let Ok(mut counters) = self.counters.lock() {
            for scope in scopes {
                if let Some(counter) = counters.get_mut(&scope.name)
                    && counter.window == window
                {
                    counter.tokens = (counter.tokens + delta).max(0);
                }
            }
        }
    }

    fn release(&self, scopes: &[Scope], lease: &str) {
        if let Ok(mut counters) = self.counters.lock() {
            for scope in scopes {
                if let Some(counter) = counters.get_mut(&scope.name) {
                    counter.leases.retain(|l| l != lease);
                }
            }
        }
    }
}

/// One scope's counters before the call.
struct Observed {
    requests: i64,
    /// Milliseconds until the oldest counted request leaves the window.
    requests_reset: i64,
    tokens: i64,
    leases: i64,
}

/// The rule both backends follow (the Lua script mirrors it).
fn decide(scopes: &[Scope], seen: &[Observed], estimate: i64, reset: i64) -> Result<(), Refusal> {
    let quotas = || {
        let mut q = Quotas::default();
        for (scope, s) in scopes.iter().zip(seen) {
            let (r, t) = quotas_after(scope, s, None, reset);
            q.merge(r, t);
        }
        q
    };
    for (scope, s) in scopes.iter().zip(seen) {
        let l = scope.limits;
        let refuse = |kind, limit, retry_after| Refusal {
            kind,
            scope: scope.name.clone(),
            limit,
            retry_after,
            quotas: quotas(),
        };
        if let Some(limit) = l.requests_per_minute
            && s.requests >= limit
        {
            return Err(refuse(LimitKind::Requests, limit, millis(s.requests_reset)));
        }
        if let Some(limit) = l.tokens_per_minute
            && s.tokens > 0
            && s.tokens + estimate > limit
        {
            return Err(refuse(LimitKind::Tokens, limit, millis(reset)));
        }
        if let Some(limit) = l.concurrency
            && s.leases >= limit
        {
            return Err(refuse(
                LimitKind::Concurrency,
                limit,
                Duration::from_secs(1),
            ));
        }
    }
    Ok(())
}

/// The quotas left after this call: `admitted` counts it (one request and
/// `estimate` tokens); a refused call counts nothing.
fn quotas_after(
    scope: &Scope,
    seen: &Observed,
    admitted: Option<i64>,
    reset: i64,
) -> (Option<Quota>, Option<Quota>) {
    let added_requests = i64::from(admitted.is_some());
    let added_tokens = admitted.unwrap_or(0);
    let requests = scope.limits.requests_per_minute.map(|limit| Quota {
        limit,
        remaining: (limit - seen.requests - added_requests).max(0),
        reset: millis(seen.requests_reset),
    });
    let tokens = scope.limits.tokens_per_minute.map(|limit| Quota {
        limit,
        remaining: (limit - seen.tokens - added_tokens).max(0),
        reset: millis(reset),
    });
    (requests, tokens)
}

// ---- Redis ----

struct Shared {
    client: redis::Client,
    prefix: String,
    connection: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    down_until: Mutex<Option<Instant>>,
    acquire: redis::Script,
    add_tokens: redis::Script,
}

/// KEYS: per scope its base key. ARGV: estimate, lease, lease ttl ms, then
/// per scope rpm, tpm, concurrency (-1: none).
/// Returns {1, reset_ms, per scope: requests, requests reset ms, tokens}
/// when admitted (the counts before this call), {0, reset_ms, scope index,
/// kind, the same counts} when refused, with kind 1 requests, 2 tokens,
/// 3 concurrency. Requests are a sliding log (a sorted set of admission
/// times); tokens a fixed window per minute.
const ACQUIRE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = math.floor(now / 60000)
local reset = (window + 1) * 60000 - now
local estimate = tonumber(ARGV[1])
local lease = ARGV[2]
local lease_ttl = tonumber(ARGV[3])
local n = #KEYS
local counts = {}
local refused = nil
for i = 1, n do
  local base = KEYS[i]
  local rpm = tonumber(ARGV[1 + 3 * i])
  local tpm = tonumber(ARGV[2 + 3 * i])
  local conc = tonumber(ARGV[3 + 3 * i])
  local requests = 0
  local requests_reset = 60000
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', base .. ':r', '-inf', now - 60000)
    requests = redis.call('ZCARD', base .. ':r')
    local oldest = redis.call('ZRANGE', base .. ':r', 0, 0, 'WITHSCORES')
    if oldest[2] then requests_reset = tonumber(oldest[2]) + 60000 - now end
  end
  local tokens = tonumber(redis.call('GET', base .. ':t:' .. window) or '0')
  local leases = 0
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', base .. ':c', '-inf', now - lease_ttl)
    leases = redis.call('ZCARD', base .. ':c')
  end
  counts[#counts + 1] = requests
  counts[#counts + 1] = requests_reset
  counts[#counts + 1] = tokens
  if refused == nil then
    if rpm >= 0 and requests >= rpm then refused = {i, 1}
    elseif tpm >= 0 and tokens > 0 and tokens + estimate > tpm then refused = {i, 2}
    elseif conc >= 0 and leases >= conc then refused = {i, 3}
    end
  end
end
if refused ~= nil then
  local out = {0, reset, refused[1], refused[2]}
  for _, c in ipairs(counts) do out[#out + 1] = c end
  return out
end
for i = 1, n do
  local base = KEYS[i]
  local tk = base .. ':t:' .. window
  if tonumber(ARGV[1 + 3 * i]) >= 0 then
    redis.call('ZADD', base .. ':r', now, lease)
    redis.call('PEXPIRE', base .. ':r', 60000)
  end
  redis.call('INCRBY', tk, estimate)
  redis.call('PEXPIRE', tk, 120000)
  if tonumber(ARGV[3 + 3 * i]) >= 0 then
    redis.call('ZADD', base .. ':c', now, lease)
    redis.call('PEXPIRE', base .. ':c', lease_ttl)
  end
end
local out = {1, reset}
for _, c in ipairs(counts) do out[#out + 1] = c end
return out
";

/// KEYS: per scope its base key. ARGV: the token delta for this minute.
const ADD_TOKENS_LUA: &str = r"
local t = redis.call('TIME')
local window = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / 60000)
for i = 1, #KEYS do
  local k = KEYS[i] .. ':t:' .. window
  local v = redis.call('INCRBY', k, ARGV[1])
  if v < 0 then redis.call('SET', k, 0) end
  redis.call('PEXPIRE', k, 120000)
end
return 1
";

impl Shared {
    fn base(&self, scope: &Scope) -> String {
        format!("{}:rl:{}", self.prefix, scope.name)
    }

    fn failed(&self, e: &redis::RedisError) {
        REDIS_DOWN.failed(e);
        if let Ok(mut down) = self.down_until.lock() {
            *down = Some(Instant::now() + REDIS_RETRY);
        }
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let down = self.down_until.lock().ok().and_then(|d| *d);
        if down.is_some_and(|until| Instant::now() < until) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis was unreachable moments ago",
            )));
        }
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let conn =
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn acquire(
        &self,
        scopes: &[Scope],
        estimate: i64,
        lease: &str,
        lease_ttl: Duration,
    ) -> redis::RedisResult<Result<Quotas, Refusal>> {
        let mut conn = self.connection().await?;
        let mut call = self.acquire.prepare_invoke();
        call.arg(estimate)
            .arg(lease)
            .arg(i64::try_from(lease_ttl.as_millis()).unwrap_or(i64::MAX));
        for scope in scopes {
            call.key(self.base(scope));
            let l = scope.limits;
            call.arg(l.requests_per_minute.unwrap_or(-1))
                .arg(l.tokens_per_minute.unwrap_or(-1))
                .arg(l.concurrency.unwrap_or(-1));
        }
        let out: Vec<i64> = call.invoke_async(&mut conn).await?;
        let malformed =
            || redis::RedisError::from((redis::ErrorKind::Parse, "unexpected script answer"));
        let (&admitted, &reset) = (
            out.first().ok_or_else(malformed)?,
            out.get(1).ok_or_else(malformed)?,
        );
        let counts_from = if admitted == 1 { 2 } else { 4 };
        let counts = out.get(counts_from..).ok_or_else(malformed)?;
        let seen: Vec<Observed> = counts
            .chunks(3)
            .map(|c| Observed {
                requests: c.first().copied().unwrap_or(0),
                requests_reset: c.get(1).copied().unwrap_or(WINDOW_MS),
                tokens: c.get(2).copied().unwrap_or(0),
                leases: 0,
            })
            .collect();
        if admitted == 1 {
            let mut quotas = Quotas::default();
            for (scope, s) in scopes.iter().zip(&seen) {
                let (r, t) = quotas_after(scope, s, Some(estimate), reset);
                quotas.merge(r, t);
            }
            return Ok(Ok(quotas));
        }
        let index = usize::try_from(out.get(2).copied().unwrap_or(1) - 1).unwrap_or(0);
        let scope = scopes.get(index).ok_or_else(malformed)?;
        let (kind, limit, retry_after) = match out.get(3).copied().unwrap_or(1) {
            2 => (
                LimitKind::Tokens,
                scope.limits.tokens_per_minute,
                millis(reset),
            ),
            3 => (
                LimitKind::Concurrency,
                scope.limits.concurrency,
                Duration::from_secs(1),
            ),
            _ => (
                LimitKind::Requests,
                scope.limits.requests_per_minute,
                millis(seen.get(index).map_or(WINDOW_MS, |s| s.requests_reset)),
            ),
        };
        let mut quotas = Quotas::default();
        for (scope, s) in scopes.iter().zip(&seen) {
            let (r, t) = quotas_after(scope, s, None, reset);
            quotas.merge(r, t);
        }
        Ok(Err(Refusal {
            kind,
            scope: scope.name.clone(),
            limit: limit.unwrap_or(0),
            retry_after,
            quotas,
        }))
    }

    async fn add_tokens(&self, scopes: &[Scope], delta: i64) -> redis::RedisResult<()> {
        let mut conn = self.connection().await?;
        let mut call = self.add_tokens.prepare_invoke();
        for scope in scopes
            .iter()
            .filter(|s| s.limits.tokens_per_minute.is_some())
        {
            call.key(self.base(scope));
        }
        call.arg(delta);
        let _: i64 = call.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn release(&self, scopes: &[Scope], lease: &str) -> redis::RedisResult<()> {
        let mut conn = self.connection().await?;
        for scope in scopes.iter().filter(|s| s.limits.concurrency.is_some()) {
            let _: i64 = redis::cmd("ZREM")
                .arg(format!("{}:c", self.base(scope)))
                .arg(lease)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(name: &str, rpm: Option<i64>, tpm: Option<i64>, conc: Option<i64>) -> Scope {
        Scope {
            name: name.to_owned(),
            limits: Limits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                concurrency: conc,
            },
        }
    }

    #[tokio::test]
    async fn requests_per_minute_hold_and_report_the_reset() {
        let limiter = RateLimiter::in_process();
        for remaining in [1, 0] {
            let a = limiter
                .acquire(vec![scope("key:a", Some(2), None, None)], 0)
                .await
                .unwrap();
            assert_eq!(a.quotas().requests.unwrap().remaining, remaining);
        }
        let refused = limiter
            .acquire(vec![scope("key:a", Some(2), None, None)], 0)
            .await
            .err()
            .unwrap();
        assert_eq!(refused.kind, LimitKind::Requests);
        assert!(refused.retry_after <= Duration::from_secs(60));
    }

    #[tokio::test]
    async fn the_tightest_scope_refuses_and_nothing_is_counted() {
        let limiter = RateLimiter::in_process();
        let both = || {
            vec![
                scope("key:a", Some(5), None, None),
                scope("org:o", Some(1), None, None),
            ]
        };
        limiter.acquire(both(), 0).await.unwrap();
        let refused = limiter.acquire(both(), 0).await.err().unwrap();
        assert_eq!(refused.scope, "org:o");
        // The key's count was not raised by the refused call.
        let a = limiter
            .acquire(vec![scope("key:a", Some(5), None, None)], 0)
            .await
            .unwrap();
        assert_eq!(a.quotas().requests.unwrap().remaining, 3);
    }

    #[tokio::test]
    async fn tokens_are_estimated_then_corrected() {
        let limiter = RateLimiter::in_process();
        let s = || vec![scope("key:t", None, Some(100), None)];
        let a = limiter.acquire(s(), 80).await.unwrap();
        assert!(limiter.acquire(s(), 30).await.is_err());
        a.used_tokens(10);
        limiter.acquire(s(), 30).await.unwrap();
    }

    #[tokio::test]
    async fn a_concurrency_lease_returns_when_dropped() {
        let limiter = RateLimiter::in_process();
        let s = || vec![scope("key:c", None, None, Some(1))];
        let a = limiter.acquire(s(), 0).await.unwrap();
        let refused = limiter.acquire(s(), 0).await.err().unwrap();
        assert_eq!(refused.kind, LimitKind::Concurrency);
        drop(a);
        limiter.acquire(s(), 0).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_open_to_the_process_counters() {
        let limiter = RateLimiter::with_redis("redis://127.0.0.1:1", "t").unwrap();
        let s = || vec![scope("key:r", Some(1), None, None)];
        limiter.acquire(s(), 0).await.unwrap();
        assert!(limiter.acquire(s(), 0).await.is_err());
    }
}

/// With the machine's Redis at 127.0.0.1:6379; a unique prefix per test.
#[cfg(test)]
mod redis_tests {
    use super::*;

    fn prefix() -> String {
        format!("tollgate-unit-{:016x}", rand::random::<u64>())
    }

    fn scope(rpm: Option<i64>, conc: Option<i64>) -> Vec<Scope> {
        vec![Scope {
            name: "key:shared".to_owned(),
            limits: Limits {
                requests_per_minute: rpm,
                tokens_per_minute: None,
                concurrency: conc,
            },
        }]
    }

    #[tokio::test]
    async fn tokens_counted_in_redis_are_corrected_in_the_background_for_every_replica() {
        let prefix = prefix();
        let a = RateLimiter::with_redis("redis://127.0.0.1:6379", &prefix).unwrap();
        let b = RateLimiter::with_redis("redis://127.0.0.1:6379", &prefix).unwrap();
        let s = || {
            vec![Scope {
                name: "key:tokens".to_owned(),
                limits: Limits {
                    tokens_per_minute: Some(100),
                    ..Limits::default()
                },
            }]
        };
        let call = a.acquire(s(), 80).await.unwrap();
        assert!(
            b.acquire(s(), 30).await.is_err(),
            "the estimate counts on both"
        );

        // Returns at once (no await): the count goes to Redis on its own.
        call.used_tokens(10);

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while b.acquire(s(), 30).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the other replica never saw the real count"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn two_limiters_on_one_redis_share_requests_and_leases() {
        let prefix = prefix();
        let a = RateLimiter::with_redis("redis://127.0.0.1:6379", &prefix).unwrap();
        let b = RateLimiter::with_redis("redis://127.0.0.1:6379", &prefix).unwrap();
        let mut admitted = 0;
        for i in 0..6 {
            let limiter = if i % 2 == 0 { &a } else { &b };
            if limiter.acquire(scope(Some(3), None), 0).await.is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3);

        let lease = a.acquire(scope(None, Some(1)), 0).await.unwrap();
        let refused = b.acquire(scope(None, Some(1)), 0).await.err().unwrap();
        assert_eq!(refused.kind, LimitKind::Concurrency);
        drop(lease);
        // The lease is returned by a task; give it a moment.
        for _ in 0..50 {
            if b.acquire(scope(None, Some(1)), 0).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the lease never came back");
    }
}
