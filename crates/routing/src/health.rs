//! Deployment health: a circuit breaker per deployment (a model on a
//! provider), with latency and error rate, so that routing skips what is
//! failing without sending it a request.
//!
//! - Closed: calls go through. `failure_threshold` retryable failures in a
//!   row open the circuit; so does one failure that carries `Retry-After`
//!   (the provider said when to come back).
//! - Open: the deployment is skipped until its cooldown ends: the
//!   provider's `Retry-After` when it sent one (at most `max_cooldown`),
//!   else `cooldown`.
//! - Half-open: after the cooldown, one call (the probe) goes through; its
//!   success closes the circuit, its failure opens it again. Other calls
//!   keep skipping the deployment while the probe is out, and a probe that
//!   never reports back (its caller went away) is replaced after `cooldown`.
//!
//! In-process; with Redis, [`SharedCooldowns`] tells the other replicas
//! about every circuit opened here (see `docs/routing.md`).

use hashbrown::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the breaker behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Retryable failures in a row that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit stays open.
    pub cooldown: Duration,
    /// The longest cooldown a provider's `Retry-After` may ask for.
    pub max_cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

/// A circuit's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "healthy",
            CircuitState::Open => "cooldown",
            CircuitState::HalfOpen => "probing",
        }
    }
}

/// What [`Health::check`] decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Call it.
    Available,
    /// Skip it; it may be tried again after this long.
    CoolingDown(Duration),
}

/// One deployment's health, as `GET /api/v1/routing/health` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentHealth {
    /// `provider/model`.
    pub deployment: String,
    pub state: CircuitState,
    /// Exponentially weighted mean time to the first byte, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Exponentially weighted share of failed calls, 0 to 1.
    pub error_rate: f64,
    pub requests: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// Time left in the cooldown, when open.
    pub cooldown_remaining: Option<Duration>,
}

const LATENCY_WEIGHT: f64 = 0.2;
const ERROR_WEIGHT: f64 = 0.1;

#[derive(Debug, Default)]
struct Deployment {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// When the half-open probe went out.
    probe_since: Option<Instant>,
    latency_ms: Option<f64>,
    error_rate: f64,
    requests: u64,
    failures: u64,
    /// Calls in flight (see [`InFlight`]).
    in_flight: Arc<AtomicU32>,
}

/// One call in flight on a deployment, counted until the last clone is
/// dropped (for a stream: its end).
#[derive(Debug, Clone)]
pub struct InFlight {
    _count: Arc<InFlightCount>,
}

#[derive(Debug)]
struct InFlightCount(Arc<AtomicU32>);

impl Drop for InFlightCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the balancer reads of a deployment (see [`crate::balance`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeploymentLoad {
    /// Its circuit is open: it would be skipped.
    pub cooling: bool,
    /// Exponentially weighted mean time to the first byte, in milliseconds.
    pub latency_ms: Option<f64>,
    pub in_flight: u32,
}

impl Deployment {
    fn state(&self, now: Instant) -> CircuitState {
        match (self.open_until, self.probe_since) {
            (Some(until), _) if now < until => CircuitState::Open,
            (Some(_), _) | (None, Some(_)) => CircuitState::HalfOpen,
            (None, None) => CircuitState::Closed,
        }
    }
}

/// The health of every deployment seen. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Health {
    config: HealthConfig,
    /// provider → model → health: looked up without building a key.
    deployments: Mutex<HashMap<String, HashMap<String, Deployment>>>,
    /// Circuits opened here since the last [`Health::take_opened`], for
    /// sharing with other replicas.
    opened: Mutex<Vec<(String, String, Duration)>>,
}

/// The name a deployment is known by.
pub fn deployment_name(provider: &str, model: &str) -> String {
    format!("{provider}/{model}")
}

impl Health {
    pub fn new(config: HealthConfig) -> Health {
        Health {
            config,
            deployments: Mutex::new(HashMap::default()),
            opened: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> HealthConfig {
        self.config
    }

    /// Whether a call may go to `deployment` now. After a cooldown, the
    /// first caller gets [`Availability::Available`] and is the probe.
    pub fn check(&self, provider: &str, model: &str, now: Instant) -> Availability {
        let Ok(mut map) = self.deployments.lock() else {
            return Availability::Available;
        };
        let Some(d) = map.get_mut(provider).and_then(|m| m.get_mut(model)) else {
            return Availability::Available;
        };
        match d.state(now) {
            CircuitState::Closed => Availability::Available,
            CircuitState::Open => Availability::CoolingDown(
                d.open_until
                    .map_or(Duration::ZERO, |until| until.saturating_duration_since(now)),
            ),
            CircuitState::HalfOpen => {
                let probe_lost = d.probe_since.is_some_and(|since| {
                    now.saturating_duration_since(since) >= self.config.cooldown
                });
                if d.probe_since.is_none() || probe_lost {
                    d.open_until = None;
                    d.probe_since = Some(now);
                    Availability::Available
                } else {
                    Availability::CoolingDown(Duration::from_secs(1))
                }
            }
        }
    }

    /// Counts one call in flight on the deployment until the returned
    /// guard (and every clone of it) is dropped.
    pub fn begin(&self, provider: &str, model: &str) -> Option<InFlight> {
        let mut map = self.deployments.lock().ok()?;
        let counter = entry(&mut map, provider, model).in_flight.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        Some(InFlight {
            _count: Arc::new(InFlightCount(counter)),
        })
    }

    /// The deployment's cooldown, latency and calls in flight, without
    /// changing anything (unlike [`Health::check`], which starts probes).
    pub fn load(&self, provider: &str, model: &str, now: Instant) -> DeploymentLoad {
        let Ok(map) = self.deployments.lock() else {
            return DeploymentLoad::default();
        };
        let Some(d) = map.get(provider).and_then(|m| m.get(model)) else {
            return DeploymentLoad::default();
        };
        DeploymentLoad {
            cooling: d.state(now) == CircuitState::Open,
            latency_ms: d.latency_ms,
            in_flight: d.in_flight.load(Ordering::Relaxed),
        }
    }

    /// A call that reached its first byte after `latency`: closes the circuit.
    pub fn success(&self, provider: &str, model: &str, latency: Duration) {
        let Ok(mut map) = self.deployments.lock() else {
            return;
        };
        let d = entry(&mut map, provider, model);
        let ms = latency.as_secs_f64() * 1000.0;
        d.latency_ms = Some(match d.latency_ms {
            Some(mean) => mean + LATENCY_WEIGHT * (ms - mean),
            None => ms,
        });
        d.error_rate *= 1.0 - ERROR_WEIGHT;
        d.requests += 1;
        d.consecutive_failures = 0;
        d.open_until = None;
        d.probe_since = None;
    }

    /// A retryable failure (connect error, timeout, 429, 5xx), with the
    /// provider's `Retry-After` if it sent one. Returns whether the circuit
    /// is now open.
    pub fn failure(
        &self,
        provider: &str,
        model: &str,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> bool {
        let Ok(mut map) = self.deployments.lock() else {
            return false;
        };
        let d = entry(&mut map, provider, model);
        d.error_rate += ERROR_WEIGHT * (1.0 - d.error_rate);
        d.requests += 1;
        d.failures += 1;
        d.consecutive_failures = d.consecutive_failures.saturating_add(1);
        let probe_failed = d.probe_since.take().is_some();
        if probe_failed
            || retry_after.is_some()
            || d.consecutive_failures >= self.config.failure_threshold.max(1)
        {
            // The provider's word wins over the configured cooldown.
            let wait = retry_after
                .unwrap_or(self.config.cooldown)
                .min(self.config.max_cooldown);
            d.open_until = Some(now + wait);
            if let Ok(mut opened) = self.opened.lock() {
                opened.push((provider.to_owned(), model.to_owned(), wait));
            }
            return true;
        }
        false
    }

    /// The circuits opened here since the last call: `(provider, model, cooldown)`.
    pub fn take_opened(&self) -> Vec<(String, String, Duration)> {
        self.opened
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }

    /// Puts back circuits [`Health::take_opened`] returned but that could
    /// not be shared.
    pub fn reopened(&self, opened: Vec<(String, String, Duration)>) {
        if let Ok(mut o) = self.opened.lock() {
            o.extend(opened);
        }
    }

    /// Another replica opened this deployment's circuit for `remaining`:
    /// skip it here too, unless it is already open for longer.
    pub fn cool_down(&self, provider: &str, model: &str, remaining: Duration, now: Instant) {
        let Ok(mut map) = self.deployments.lock() else {
            return;
        };
        let d = entry(&mut map, provider, model);
        let until = now + remaining;
        if d.open_until.is_none_or(|u| u < until) && d.probe_since.is_none() {
            d.open_until = Some(until);
        }
    }

    /// Every deployment seen, by name.
    pub fn snapshot(&self, now: Instant) -> Vec<DeploymentHealth> {
        let Ok(map) = self.deployments.lock() else {
            return Vec::new();
        };
        let mut list: Vec<DeploymentHealth> = map
            .iter()
            .flat_map(|(provider, models)| models.iter().map(move |(m, d)| (provider, m, d)))
            .map(|(provider, model, d)| {
                let state = d.state(now);
                DeploymentHealth {
                    deployment: deployment_name(provider, model),
                    state,
                    latency_ms: d.latency_ms,
                    error_rate: d.error_rate,
                    requests: d.requests,
                    failures: d.failures,
                    consecutive_failures: d.consecutive_failures,
                    cooldown_remaining: (state == CircuitState::Open)
                        .then(|| d.open_until.map(|u| u.saturating_duration_since(now)))
                        .flatten(),
                }
            })
            .collect();
        list.sort_by(|a, b| a.deployment.cmp(&b.deployment));
        list
    }
}

/// The deployment's entry, made on its first use: the names are copied
/// only then (every call enters its deployment twice).
fn entry<'a>(
    map: &'a mut HashMap<String, HashMap<String, Deployment>>,
    provider: &str,
    model: &str,
) -> &'a mut Deployment {
    map.entry_ref(provider)
        .or_default()
        .entry_ref(model)
        .or_default()
}

/// The wait before retry round `round` (1, 2, …): exponential from `base`,
/// capped at `cap`, with full jitter (uniform in 0..=that).
pub fn backoff(round: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base
        .saturating_mul(2u32.saturating_pow(round.saturating_sub(1)))
        .min(cap);
    let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=ms))
}

/// Cooldowns shared through Redis: each replica publishes the circuits it
/// opens into one hash, `{prefix}:cooldowns` (field `provider/model`, value
/// the end of the cooldown on Redis's clock), and applies those of the
/// others. Run [`SharedCooldowns::sync`] every few hundred milliseconds;
/// while Redis is down, cooldowns stay per replica.
pub struct SharedCooldowns {
    client: redis::Client,
    key: String,
    connection: Option<redis::aio::ConnectionManager>,
    sync: redis::Script,
}

/// KEYS[1]: the hash. ARGV: pairs of field and cooldown in ms to publish.
/// Drops ended cooldowns; returns pairs of field and ms left.
const SYNC_COOLDOWNS_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 2 do
  local until_ms = now + tonumber(ARGV[i + 1])
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if until_ms > old then redis.call('HSET', KEYS[1], ARGV[i], until_ms) end
end
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now
  if left > 0 then
    out[#out + 1] = all[i]
    out[#out + 1] = left
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
";

impl SharedCooldowns {
    pub fn new(url: &str, prefix: &str) -> Result<SharedCooldowns, redis::RedisError> {
        Ok(SharedCooldowns {
            client: redis::Client::open(url)?,
            key: format!("{prefix}:cooldowns"),
            connection: None,
            sync: redis::Script::new(SYNC_COOLDOWNS_LUA),
        })
    }

    /// Publishes the circuits opened here, then applies everyone's.
    pub async fn sync(&mut self, health: &Health) -> redis::RedisResult<()> {
        let mut conn = match &self.connection {
            Some(conn) => conn.clone(),
            None => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(500)))
                    .set_response_timeout(Some(Duration::from_millis(500)))
                    .set_number_of_retries(1);
                let conn =
                    redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
                        .await?;
                self.connection = Some(conn.clone());
                conn
            }
        };
        let opened = health.take_opened();
        let mut call = self.sync.key(&self.key);
        for (provider, model, wait) in &opened {
            call.arg(deployment_name(provider, model))
                .arg(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        let found: Vec<redis::Value> = match call.invoke_async(&mut conn).await {
            Ok(found) => found,
            Err(e) => {
                // Not published: keep them for the next round.
                health.reopened(opened);
                return Err(e);
            }
        };
        let now = Instant::now();
        for pair in found.chunks(2) {
            let (Some(redis::Value::BulkString(field)), Some(redis::Value::Int(left))) =
                (pair.first(), pair.get(1))
            else {
                continue;
            };
            let field = String::from_utf8_lossy(field);
            let Some((provider, model)) = field.split_once('/') else {
                continue;
            };
            let remaining = Duration::from_millis(u64::try_from(*left).unwrap_or(0));
            health.cool_down(provider, model, remaining, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(threshold: u32) -> Health {
        Health::new(HealthConfig {
            failure_threshold: threshold,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(60),
        })
    }

    #[test]
    fn repeated_failures_open_the_circuit_until_the_cooldown_ends() {
        let h = health(2);
        let t0 = Instant::now();
        assert!(!h.failure("p", "m", None, t0));
        assert_eq!(h.check("p", "m", t0), Availability::Available);
        assert!(h.failure("p", "m", None, t0));
        assert_eq!(
            h.check("p", "m", t0 + Duration::from_secs(4)),
            Availability::CoolingDown(Duration::from_secs(6))
        );
        // After the cooldown: one probe, the others keep skipping.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(h.check("p", "m", later), Availability::Available);
        assert!(matches!(
            h.check("p", "m", later),
            Availability::CoolingDown(_)
        ));
        h.success("p", "m", Duration::from_millis(50));
        assert_eq!(h.check("p", "m", later), Availability::Available);
        assert_eq!(h.snapshot(later)[0].state, CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let h = health(1);
        let t0 = Instant::now();
        h.failure("p", "m", None, t0);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(h.check("p", "m", later), Availability::Available);
        assert!(h.failure("p", "m", None, later));
        assert!(matches!(
            h.check("p", "m", later),
            Availability::CoolingDown(_)
        ));
    }

    #[test]
    fn retry_after_opens_at_once_for_as_long_as_asked_within_the_cap() {
        let h = health(5);
        let t0 = Instant::now();
        assert!(h.failure("p", "m", Some(Duration::from_secs(20)), t0));
        assert_eq!(
            h.check("p", "m", t0),
            Availability::CoolingDown(Duration::from_secs(20))
        );
        h.failure("p", "x", Some(Duration::from_secs(3600)), t0);
        assert_eq!(
            h.check("p", "x", t0),
            Availability::CoolingDown(Duration::from_secs(60))
        );
    }

    #[test]
    fn latency_and_error_rate_are_weighted_means() {
        let h = health(5);
        h.success("p", "m", Duration::from_millis(100));
        h.success("p", "m", Duration::from_millis(200));
        h.failure("p", "m", None, Instant::now());
        let s = &h.snapshot(Instant::now())[0];
        assert!((s.latency_ms.unwrap() - 120.0).abs() < 1e-6);
        assert!(s.error_rate > 0.09 && s.error_rate < 0.11);
        assert_eq!((s.requests, s.failures), (3, 1));
    }

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        for round in 1..10 {
            let wait = backoff(round, Duration::from_millis(100), Duration::from_secs(2));
            assert!(wait <= Duration::from_secs(2));
            assert!(wait <= Duration::from_millis(100) * 2u32.pow(round - 1));
        }
    }
}
