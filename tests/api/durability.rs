//! Settlements never wait on the database and survive what a data centre
//! does to it (issues 11 and 16): a gateway killed with SIGKILL under load,
//! and PostgreSQL cut off or blackholed through a proxy the test controls.
//! After each, the money invariants hold: every answered call is billed
//! exactly once, the ledger sums to the balance, no balance went below its
//! overdraft limit (0), and `reserved` is back to 0 when idle.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tollgate_tests::binary::{GatewayProcess, ProcessLog};
use tollgate_tests::chaos::{ChaosProxy, Mode};
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{
    ADMIN_TOKEN, Backend, DEFAULT_CONFIG, MockProvider, TestDatabase, chat_body, client,
    test_backend, test_master_key,
};

/// The default test catalog, and a model of a second provider: an
/// organization's own key for it (BYOK) is looked up on its first call.
fn chaos_config(mock: &str) -> String {
    DEFAULT_CONFIG.replace("{MOCK}", mock).replacen(
        "models:\n",
        &format!(
            "  other: {{ kind: openai, base_url: \"{mock}\", api_key: \"sk-other-key\" }}\n\
             models:\n\
             \x20 - {{ id: other-model, provider: other, tier: 1, quality: 70, max_output_tokens: 1000,\n\
             \x20     price: {{ input_per_mtok: 0.15, output_per_mtok: 0.60 }} }}\n"
        ),
        1,
    )
}

/// A database, a mock provider and the settings of the gateway processes.
struct Setup {
    dir: TempDir,
    mock: MockProvider,
    db: TestDatabase,
    envs: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Setup {
    async fn new(extra: &[(&str, &str)]) -> Setup {
        let mock = MockProvider::start().await;
        let dir = TempDir::new();
        let db = TestDatabase::create(&dir.0).await;
        let config = dir.0.join("tollgate.yaml");
        std::fs::write(&config, chaos_config(&mock.base_url())).unwrap();
        let mut envs = vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("TOLLGATE_CONFIG".to_owned(), config.display().to_string()),
            ("TOLLGATE_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
            (
                "TOLLGATE_MASTER_KEY".to_owned(),
                test_master_key().expose_secret().to_owned(),
            ),
        ];
        for (k, v) in extra {
            envs.retain(|(name, _)| name != k);
            envs.push(((*k).to_owned(), (*v).to_owned()));
        }
        Setup {
            dir,
            mock,
            db,
            envs,
            http: client(),
        }
    }

    /// A setup whose gateways reach PostgreSQL through a proxy the test
    /// controls, with `lease_idle_ms`; `None` (skipped) on SQLite.
    async fn through_postgres_proxy(lease_idle_ms: &str) -> Option<(Setup, ChaosProxy)> {
        if test_backend() == Backend::Sqlite {
            eprintln!("skipped on SQLite: database faults need PostgreSQL through a proxy");
            return None;
        }
        let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await;
        let mut setup = Setup::new(&[("TOLLGATE_LEASE_IDLE_MS", lease_idle_ms)]).await;
        let proxied = setup
            .db
            .url
            .replace("127.0.0.1:5432", &proxy.addr.to_string());
        setup.envs.retain(|(k, _)| k != "DATABASE_URL");
        setup.envs.push(("DATABASE_URL".to_owned(), proxied));
        Some((setup, proxy))
    }

    /// [`Setup::through_postgres_proxy`] in plain text, so that the proxy
    /// can see each `COMMIT` go by.
    async fn through_plain_postgres_proxy(lease_idle_ms: &str) -> Option<(Setup, ChaosProxy)> {
        let (mut setup, proxy) = Setup::through_postgres_proxy(lease_idle_ms).await?;
        for (name, url) in &mut setup.envs {
            if name == "DATABASE_URL" {
                url.push_str(if url.contains('?') { "&" } else { "?" });
                url.push_str("sslmode=disable");
            }
        }
        Some((setup, proxy))
    }

    /// A gateway process in the setup's directory (so every process of a
    /// test shares one data directory, and so one journal directory).
    async fn gateway(&self) -> GatewayProcess {
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        GatewayProcess::serve(&self.dir.0, &envs).await
    }

    /// Like [`Setup::gateway`], its log captured.
    async fn gateway_capturing(&self) -> (GatewayProcess, ProcessLog) {
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        GatewayProcess::serve_capturing(&self.dir.0, &envs).await
    }

    async fn admin_post(&self, gw: &str, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{gw}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// An organization in `requests` mode (each call costs exactly 1) with
    /// `credits`, and a key: `(org, key)`.
    async fn funded_org(&self, gw: &str, credits: i64) -> (String, String) {
        self.funded_org_with(gw, credits, json!({})).await
    }

    /// [`Setup::funded_org`] with more settings of its key (limits).
    async fn funded_org_with(&self, gw: &str, credits: i64, key: Value) -> (String, String) {
        let org = self
            .admin_post(
                gw,
                "/api/v1/organizations",
                json!({"name": "Acme", "billing_mode": "requests"}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.admin_post(
            gw,
            &format!("/api/v1/organizations/{org}/credits/grants"),
            json!({"amount": credits}),
        )
        .await;
        let mut body = json!({"name": "chaos"});
        if let (Some(body), Some(key)) = (body.as_object_mut(), key.as_object()) {
            body.extend(key.clone());
        }
        let key = self
            .admin_post(gw, &format!("/api/v1/organizations/{org}/api-keys"), body)
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        (org, key)
    }

    /// `tollgate_dependency_errors_total{dependency="redis"}` of a gateway.
    async fn redis_errors(&self, gw: &str) -> u64 {
        let metrics = tollgate_tests::metrics::scrape(&self.http, gw).await;
        let name = "tollgate_dependency_errors_total";
        tollgate_tests::metrics::value(&metrics, name, &[("dependency", "redis")]) as u64
    }

    async fn ready(&self, gw: &str) -> u16 {
        let response = self.http.get(format!("{gw}/ready")).send().await.unwrap();
        response.status().as_u16()
    }

    async fn chat(&self, gw: &str, key: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.chat_model(gw, key, "gpt-4o-mini").await
    }

    async fn chat_model(
        &self,
        gw: &str,
        key: &str,
        model: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(format!("{gw}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model))
            .timeout(Duration::from_secs(20))
            .send()
            .await
    }
}

/// Tollgate's warnings and errors in a log, each with how many times it
/// was logged (told apart by where and what, not by their fields).
fn warnings(log: &str) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in log.lines() {
        if !(line.contains(" WARN ") || line.contains(" ERROR ")) {
            continue;
        }
        let Some(at) = line.find("tollgate") else {
            continue;
        };
        let what = &line[at..];
        let what = what.split(" error=").next().unwrap_or(what);
        let what = what.split(" status=").next().unwrap_or(what);
        *counts.entry(what.to_owned()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The organization's books, read from the database itself.
#[derive(Debug)]
struct Books {
    balance: i64,
    reserved: i64,
    ledger_sum: i64,
    /// The lowest balance any ledger row recorded.
    lowest_balance: i64,
    /// Request ids of the usage records, and of the ledger's usage rows.
    usage: Vec<String>,
    ledger_usage: Vec<String>,
}

/// One column of the rows `sql` selects for the organization (`$1`).
async fn column<T>(pool: &sqlx::AnyPool, sql: &str, org: &str) -> Vec<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
{
    sqlx::query_scalar::<_, T>(sql)
        .bind(org)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// One connection to the test database, read directly.
async fn connect(database_url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .unwrap()
}

async fn books(database_url: &str, org: &str) -> Books {
    let pool = &connect(database_url).await;
    let one = |sql| async move { column::<i64>(pool, sql, org).await[0] };
    let ids = |sql| column::<String>(pool, sql, org);
    // Usage first: a settlement commits its usage record, ledger row and
    // balance together, so once the usage read shows a call, the reads
    // after it show its charge too (read the other way round, a commit in
    // between made the balance lag the usage the caller waited for).
    let usage = ids("SELECT request_id FROM usage_records WHERE organization_id = $1").await;
    let ledger_usage =
        ids("SELECT request_id FROM ledger_entries WHERE organization_id = $1 AND kind = 'usage'")
            .await;
    let books = Books {
        balance: one("SELECT balance FROM credit_accounts WHERE organization_id = $1").await,
        reserved: one("SELECT reserved FROM credit_accounts WHERE organization_id = $1").await,
        ledger_sum: one(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE organization_id = $1",
        )
        .await,
        lowest_balance: one(
            "SELECT CAST(COALESCE(MIN(balance_after), 0) AS BIGINT) FROM ledger_entries WHERE organization_id = $1",
        )
        .await,
        usage,
        ledger_usage,
    };
    pool.close().await;
    books
}

/// Waits until nothing of the organization is reserved (its leases went
/// back), then checks the invariants against the calls answered 200 and
/// returns the books.
async fn check_invariants(
    database_url: &str,
    org: &str,
    granted: i64,
    answered: &HashSet<String>,
) -> Books {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut b = books(database_url, org).await;
    while b.reserved != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        b = books(database_url, org).await;
    }
    assert_eq!(b.reserved, 0, "reserved is back to 0 when idle: {b:?}");
    let usage: HashSet<&String> = b.usage.iter().collect();
    assert_eq!(usage.len(), b.usage.len(), "one usage record per call");
    let ledger: HashSet<&String> = b.ledger_usage.iter().collect();
    assert_eq!(
        ledger.len(),
        b.ledger_usage.len(),
        "one ledger entry per call"
    );
    assert_eq!(usage, ledger, "usage records = ledger entries");
    let unbilled: Vec<&String> = answered.iter().filter(|id| !usage.contains(id)).collect();
    assert!(unbilled.is_empty(), "answered but unbilled: {unbilled:?}");
    assert_eq!(
        b.ledger_sum,
        b.balance - granted + granted,
        "the ledger sums to the balance"
    );
    assert_eq!(
        b.balance,
        granted - b.usage.len() as i64,
        "each call cost 1"
    );
    assert!(
        b.lowest_balance >= 0,
        "no balance below its overdraft limit: {b:?}"
    );
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_under_load_bills_every_answered_call_exactly_once() {
    let setup = Arc::new(
        Setup::new(&[
            // Commits far apart, so that many answered calls are only in
            // the journal when the gateway is killed.
            ("TOLLGATE_COMMIT_INTERVAL_MS", "300"),
            ("TOLLGATE_INSTANCE_TIMEOUT_MS", "1000"),
            ("TOLLGATE_LEASE_IDLE_MS", "200"),
        ])
        .await,
    );
    let mut victim = setup.gateway().await;
    // On PostgreSQL a second replica keeps serving and returns the dead
    // one's leases; SQLite is single-node.
    let survivor = match test_backend() {
        Backend::Postgres => Some(setup.gateway().await),
        Backend::Sqlite => None,
    };
    let mut urls = vec![victim.base_url.clone()];
    urls.extend(survivor.iter().map(|s| s.base_url.clone()));
    const GRANTED: i64 = 1_000_000;
    let (org, key) = setup.funded_org(&urls[0], GRANTED).await;

    const WORKERS: usize = 6;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (setup, urls, key, stop) = (setup.clone(), urls.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let url = &urls[i % urls.len()];
                    i += 1;
                    match setup.chat(url, &key).await {
                        Ok(r) if r.status() == 200 => {
                            answered.push(request_id(&r));
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        // The killed gateway.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    victim.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    victim.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = HashSet::new();
    for w in workers {
        answered.extend(w.await.unwrap());
    }
    assert!(answered.len() > 20, "steady load: {} calls", answered.len());

    // A restart on the same data directory replays the journal.
    let _restarted = setup.gateway().await;

    let b = check_invariants(&setup.db.url, &org, GRANTED, &answered).await;
    let at_mock = setup.mock.request_count();
    assert!(
        b.usage.len() <= at_mock && at_mock - b.usage.len() <= WORKERS,
        "provider-answered calls ({at_mock}) are billed ({}), but for those in flight at the kill",
        b.usage.len()
    );
    assert!(
        b.usage.len() - answered.len() <= WORKERS,
        "billed but unanswered: only calls in flight at the kill"
    );
}

/// A gateway whose PostgreSQL goes through a proxy: an outage of `mode`
/// for a few seconds (far longer than the old settlement retries) while an
/// organization with a lease keeps calling.
/// An outage of `length` (from the first refused call) in `mode`.
async fn a_database_outage(mode: Mode, length: Duration) {
    let Some((setup, proxy)) = Setup::through_postgres_proxy("2000").await else {
        return;
    };
    let (gw, log) = setup.gateway_capturing().await;
    const GRANTED: i64 = 1000;
    let (leased_org, leased_key) = setup.funded_org(&gw.base_url, GRANTED).await;
    let (cold_org, cold_key) = setup.funded_org(&gw.base_url, GRANTED).await;
    // An organization and key made on another replica: this gateway has
    // nothing of them in memory (key, provider credentials, lease).
    let (_stranger_org, stranger_key) = {
        let other = setup.gateway().await;
        setup.funded_org(&other.base_url, GRANTED).await
    };
    let mut answered = HashSet::new();
    let first = setup.chat(&gw.base_url, &leased_key).await.unwrap();
    assert_eq!(first.status(), 200);
    answered.insert(request_id(&first));

    proxy.set(mode);
    let outage = Instant::now();
    let log_at_outage = log.text().len();
    let started = Instant::now();
    assert_eq!(setup.ready(&gw.base_url).await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "/ready took {:?}",
        started.elapsed()
    );

    // Calls served from the lease this gateway holds keep being served.
    for _ in 0..8 {
        let started = Instant::now();
        let r = setup.chat(&gw.base_url, &leased_key).await.unwrap();
        assert_eq!(r.status(), 200, "served from the lease during the outage");
        assert!(started.elapsed() < Duration::from_secs(1));
        answered.insert(request_id(&r));
    }
    // Their settlements wait in the journal, and the backlog shows.
    let queued = queue_depth(&setup, &gw.base_url).await;
    assert!(
        queued >= 8.0,
        "settlement queue depth {queued} during the outage"
    );

    // Calls that need the database fail fast, 503 with Retry-After, never
    // a 500: a first lease (`cold`), a key this gateway never saw
    // (`stranger`), the organization's key for a provider it has not
    // called yet (`other-model`: is there a key of its own?).
    for _ in 0..2 {
        for (key, model) in [
            (&cold_key, "gpt-4o-mini"),
            (&stranger_key, "gpt-4o-mini"),
            (&leased_key, "other-model"),
        ] {
            let started = Instant::now();
            let refused = setup.chat_model(&gw.base_url, key, model).await.unwrap();
            let took = started.elapsed();
            assert_eq!(refused.status(), 503, "{model}");
            assert!(refused.headers().contains_key("retry-after"));
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"]["code"], "service_unavailable");
            assert!(took < Duration::from_secs(2), "the refusal took {took:?}");
        }
    }

    tokio::time::sleep(length.saturating_sub(outage.elapsed())).await;
    let during = log
        .text()
        .get(log_at_outage..)
        .unwrap_or_default()
        .to_owned();
    proxy.set(Mode::Pass);
    // The outage is said once (then summarised), not once per call.
    for (warning, count) in warnings(&during) {
        assert!(
            count <= 2,
            "{count} times during the outage: {warning}\n{during}"
        );
    }

    // Recovery needs no restart.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = setup.chat(&gw.base_url, &cold_key).await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(setup.ready(&gw.base_url).await, 200);
    let b = check_invariants(&setup.db.url, &leased_org, GRANTED, &answered).await;
    assert_eq!(
        b.usage.len(),
        answered.len(),
        "every answered call billed once"
    );
    // Committed in the background: after an outage, within the
    // committer's retry backoff (at most 2 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut cold = books(&setup.db.url, &cold_org).await;
    while cold.usage.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cold = books(&setup.db.url, &cold_org).await;
    }
    assert_eq!((cold.balance, cold.usage.len()), (GRANTED - 1, 1));
    // And the backlog is gone once committed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while queue_depth(&setup, &gw.base_url).await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "settlements still queued after recovery"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `tollgate_settlement_queue_depth`: settlements journaled, not yet committed.
async fn queue_depth(setup: &Setup, gw: &str) -> f64 {
    let metrics = tollgate_tests::metrics::scrape(&setup.http, gw).await;
    tollgate_tests::metrics::value(&metrics, "tollgate_settlement_queue_depth", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_database_loses_no_answered_call_and_fails_fast() {
    // As long as the outage that once left answered calls unbilled (about
    // 40 s): longer than the database timeout, the commit retries of then
    // and an instance's heartbeat timeout (30 s).
    a_database_outage(Mode::Cut, Duration::from_secs(45)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blackholed_database_loses_no_answered_call_and_fails_fast() {
    // Ten times as long as the settlement retries lasted before (0.6 s).
    a_database_outage(Mode::Blackhole, Duration::from_secs(6)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_database_still_bills_every_call() {
    let Some((setup, proxy)) = Setup::through_postgres_proxy("200").await else {
        return;
    };
    let gw = setup.gateway().await;
    const GRANTED: i64 = 1000;
    let (org, key) = setup.funded_org(&gw.base_url, GRANTED).await;

    proxy.set(Mode::Slow(Duration::from_millis(50)));
    let mut answered = HashSet::new();
    for _ in 0..20 {
        let started = Instant::now();
        let r = setup.chat(&gw.base_url, &key).await.unwrap();
        let took = started.elapsed();
        // Never a hang: a first call's few database steps (key, provider
        // credentials, lease) take about 1.7 s at this pace, each bounded.
        assert!(took < Duration::from_secs(5), "a call took {took:?}");
        if r.status() == 200 {
            answered.insert(request_id(&r));
        } else {
            assert_eq!(r.status(), 503, "slow, never a 500");
        }
    }
    proxy.set(Mode::Pass);

    assert!(!answered.is_empty());
    let b = check_invariants(&setup.db.url, &org, GRANTED, &answered).await;
    assert_eq!(b.usage.len(), answered.len());
}

/// A lease top-up whose `COMMIT` outlasts the call's database timeout: the
/// call is answered 503 at its timeout, but the top-up is not abandoned
/// mid-commit (it would commit all the same, unknown to the gateway, and
/// stay reserved until the gateway stops). It ends in the background, and
/// the idle lease it made goes back to the balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_that_commits_after_its_call_gave_up_goes_back_to_the_balance() {
    if test_backend() == Backend::Sqlite {
        eprintln!("skipped on SQLite: a slow commit needs a PostgreSQL deferred trigger");
        return;
    }
    let setup = Setup::new(&[
        ("TOLLGATE_DB_TIMEOUT_MS", "300"),
        ("TOLLGATE_LEASE_IDLE_MS", "200"),
    ])
    .await;
    let gw = setup.gateway().await;
    const GRANTED: i64 = 1000;
    let (org, key) = setup.funded_org(&gw.base_url, GRANTED).await;

    // Every new lease row makes its transaction's COMMIT take 2 s.
    let pool = connect(&setup.db.url).await;
    for sql in [
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON credit_leases \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let started = Instant::now();
    let r = setup.chat(&gw.base_url, &key).await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503, "the top-up outlasted the call's timeout");
    assert!(
        took < Duration::from_millis(1500),
        "the call waited {took:?}"
    );
    sqlx::query("DROP TRIGGER slow_commit ON credit_leases")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // What the late top-up set aside comes back: `reserved` returns to 0.
    check_invariants(&setup.db.url, &org, GRANTED, &HashSet::new()).await;
    let r = setup.chat(&gw.base_url, &key).await.unwrap();
    assert_eq!(r.status(), 200);
    let b = check_invariants(
        &setup.db.url,
        &org,
        GRANTED,
        &HashSet::from([request_id(&r)]),
    )
    .await;
    assert_eq!(b.usage.len(), 1);
}

/// A lease top-up that PostgreSQL committed but whose reply never came back
/// (the connection died on the way): the gateway reads the top-up's id
/// back, so what it set aside is the lease's, spent from and returned when
/// idle, rather than reserved for good with no lease in memory to return it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_commit_whose_reply_was_lost_is_read_back() {
    let Some((setup, proxy)) = Setup::through_plain_postgres_proxy("200").await else {
        return;
    };
    let (gw, log) = setup.gateway_capturing().await;
    const GRANTED: i64 = 1000;
    let (org, key) = setup.funded_org(&gw.base_url, GRANTED).await;
    proxy.lose_top_up_commit_reply();

    let mut answered = HashSet::new();
    for _ in 0..3 {
        let r = setup.chat(&gw.base_url, &key).await.unwrap();
        // The first call waits for the read-back, within its timeout.
        if r.status() == 200 {
            answered.insert(request_id(&r));
        } else {
            assert_eq!(r.status(), 503, "slow, never a 500");
        }
    }

    assert!(
        !proxy.commit_reply_armed(),
        "no top-up commit went through the proxy"
    );
    // What the top-up set aside went back once the lease was idle.
    let b = check_invariants(&setup.db.url, &org, GRANTED, &answered).await;
    assert_eq!(b.usage.len(), answered.len(), "billed once each");
    let text = log.text();
    assert!(
        text.contains("was committed: read back"),
        "the unknown outcome was not read back:\n{text}"
    );
}

/// A settlement batch that PostgreSQL committed but whose reply never came
/// back (the connection died on the way): the committer cannot know the
/// outcome, reads the batch's request ids back, and neither writes it again
/// nor takes it for lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settlement_commit_whose_reply_was_lost_is_read_back_not_repeated() {
    let Some((setup, proxy)) = Setup::through_plain_postgres_proxy("0").await else {
        return;
    };
    let (gw, log) = setup.gateway_capturing().await;
    const GRANTED: i64 = 1000;
    let (org, key) = setup.funded_org(&gw.base_url, GRANTED).await;
    proxy.lose_settlement_commit_reply();

    let mut answered = HashSet::new();
    for _ in 0..3 {
        let r = setup.chat(&gw.base_url, &key).await.unwrap();
        assert_eq!(r.status(), 200);
        answered.insert(request_id(&r));
    }

    // The committer learns of the lost reply when the connection closes.
    let resolved = "read back, not written again";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.text().contains(resolved) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(
        !proxy.commit_reply_armed(),
        "no settlement commit went through the proxy"
    );
    let text = log.text();
    assert!(
        text.contains(resolved),
        "the unknown outcome was not read back:\n{text}"
    );
    let b = check_invariants(&setup.db.url, &org, GRANTED, &answered).await;
    assert_eq!(b.usage.len(), answered.len(), "billed once each");
    for wrong in ["duplicate key", "cannot be written", "could not be written"] {
        assert!(!text.contains(wrong), "{wrong}:\n{text}");
    }
}

/// A gateway whose Redis (the shared rate-limit counters, on an organization
/// with a limit) goes through a proxy: a fault of `mode` between two healthy
/// phases. Calls go on, counted in this process, without waiting long on
/// Redis, and every one is billed once.
async fn a_redis_fault(mode: Mode) {
    let proxy = ChaosProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let redis = format!("redis://{}", proxy.addr);
    let prefix = format!("chaos-{}", uuid::Uuid::new_v4().simple());
    let setup = Setup::new(&[
        ("REDIS_URL", redis.as_str()),
        ("TOLLGATE_REDIS_PREFIX", prefix.as_str()),
        ("TOLLGATE_LEASE_IDLE_MS", "200"),
    ])
    .await;
    let gw = setup.gateway().await;
    const GRANTED: i64 = 1000;
    let (org, key) = setup
        .funded_org_with(&gw.base_url, GRANTED, json!({"rpm_limit": 10_000}))
        .await;
    let mut answered = HashSet::new();
    let mut errors = Vec::new();
    for phase in [Mode::Pass, mode, Mode::Pass] {
        proxy.set(phase);
        for _ in 0..5 {
            let started = Instant::now();
            let r = setup.chat(&gw.base_url, &key).await.unwrap();
            assert_eq!(r.status(), 200, "rate limits fail open while Redis is away");
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "{phase:?}: a call took {took:?}"
            );
            answered.insert(request_id(&r));
        }
        errors.push(setup.redis_errors(&gw.base_url).await);
    }
    if matches!(mode, Mode::Cut | Mode::Blackhole) {
        // The limiter did go to Redis, and found it away.
        assert!(errors[1] > errors[0], "{errors:?}");
    }

    let b = check_invariants(&setup.db.url, &org, GRANTED, &answered).await;
    assert_eq!(b.usage.len(), answered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_redis_neither_stops_calls_nor_loses_their_billing() {
    a_redis_fault(Mode::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blackholed_redis_neither_stops_calls_nor_loses_their_billing() {
    a_redis_fault(Mode::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_redis_neither_stops_calls_nor_loses_their_billing() {
    a_redis_fault(Mode::Slow(Duration::from_millis(50))).await;
}

/// A request id of an answered call.
fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// One value of the test database, read directly; `binds` are `$1`, ….
async fn scalar(database_url: &str, sql: &str, binds: &[&str]) -> i64 {
    let pool = connect(database_url).await;
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let value = query.fetch_one(&pool).await.unwrap();
    pool.close().await;
    value
}

/// What a replica says of its fence: `/ready`'s status and error code, and
/// the `tollgate_instance_fenced` gauge.
async fn fencing(setup: &Setup, gw: &str) -> (u16, Option<String>, f64) {
    let response = setup.http.get(format!("{gw}/ready")).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().map(str::to_owned);
    let metrics = tollgate_tests::metrics::scrape(&setup.http, gw).await;
    let gauge = tollgate_tests::metrics::value(&metrics, "tollgate_instance_fenced", &[]);
    (status, code, gauge)
}

/// Replica A is cut off from PostgreSQL past the instance timeout while
/// replica B runs and returns A's leases. A then refuses calls (503)
/// instead of spending the lease it still holds in memory, which B may
/// lease again, and says it is fenced (`/ready` 503 `instance_fenced`, the
/// gauge at 1); once reconnected, A finds its row gone, drops its leases,
/// registers again and serves calls from fresh leases, ready again. The books stay
/// right: the ledger sums to the balance, every provider-answered call is
/// billed once, no balance went below 0, and `reserved` is the sum of the
/// leases the database holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_past_the_instance_timeout_stops_spending_then_registers_again() {
    // Leases never idle during the test: A still holds its lease in memory
    // when it is cut off, and only fencing can stop it from spending it.
    let Some((mut setup, proxy)) = Setup::through_postgres_proxy("600000").await else {
        return;
    };
    // Heartbeats every second; A fences itself 2 s after its last one, B
    // takes it for dead after 3 s.
    setup
        .envs
        .push(("TOLLGATE_INSTANCE_TIMEOUT_MS".to_owned(), "3000".to_owned()));
    let a = setup.gateway().await;
    let b = {
        // B reaches PostgreSQL directly.
        let mut envs: Vec<(&str, &str)> = setup
            .envs
            .iter()
            .filter(|(k, _)| k != "DATABASE_URL")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        envs.push(("DATABASE_URL", setup.db.url.as_str()));
        GatewayProcess::serve(&setup.dir.0, &envs).await
    };
    const GRANTED: i64 = 40;
    let (org, key) = setup.funded_org(&b.base_url, GRANTED).await;
    let instances = "SELECT CAST(COUNT(*) AS BIGINT) FROM gateway_instances";
    assert_eq!(scalar(&setup.db.url, instances, &[]).await, 2);

    // Each replica leases part of the balance (16 credits) for its first call.
    let mut answered = HashSet::new();
    for gw in [&a.base_url, &b.base_url] {
        let r = setup.chat(gw, &key).await.unwrap();
        assert_eq!(r.status(), 200);
        answered.insert(request_id(&r));
    }

    // Both settlements committed: what A answered before the cut and had
    // not committed yet would lower the balance beyond the lease B returns
    // (the bound in README "Billing"); this test is about what comes after.
    let deadline = Instant::now() + Duration::from_secs(5);
    while books(&setup.db.url, &org).await.usage.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the first calls were not committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fencing(&setup, &a.base_url).await,
        (200, None, 0.0),
        "A is ready and not fenced before the cut"
    );
    proxy.set(Mode::Cut);
    // B takes A for dead and returns its leases.
    let deadline = Instant::now() + Duration::from_secs(15);
    while scalar(&setup.db.url, instances, &[]).await != 1 {
        assert!(Instant::now() < deadline, "B never returned A's leases");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A is fenced (2 s after its last heartbeat, before B's 3 s), says
    // so, and leaves B ready.
    let (status, code, gauge) = fencing(&setup, &a.base_url).await;
    assert_eq!(status, 503, "a fenced replica is not ready");
    assert_eq!(code.as_deref(), Some("instance_fenced"));
    assert_eq!(gauge, 1.0, "tollgate_instance_fenced");
    assert_eq!(fencing(&setup, &b.base_url).await, (200, None, 0.0));
    // A still holds 15 credits in memory, but B may lease them again: A
    // refuses calls, fast, as a call that needs the database.
    for _ in 0..3 {
        let started = Instant::now();
        let refused = setup.chat(&a.base_url, &key).await.unwrap();
        assert_eq!(refused.status(), 503, "A spends a lease it no longer has");
        assert!(refused.headers().contains_key("retry-after"));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "service_unavailable");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // B spends all that is left, A's former lease included.
    let mut by_b = 0;
    loop {
        let r = setup.chat(&b.base_url, &key).await.unwrap();
        if r.status() == 402 {
            break;
        }
        assert_eq!(r.status(), 200);
        answered.insert(request_id(&r));
        by_b += 1;
        assert!(by_b <= GRANTED, "B answered more calls than were paid for");
    }
    assert_eq!(
        answered.len() as i64,
        GRANTED,
        "the balance is spent exactly"
    );

    // Reconnected, A registers again and serves calls from fresh leases.
    proxy.set(Mode::Pass);
    setup
        .admin_post(
            &b.base_url,
            &format!("/api/v1/organizations/{org}/credits/grants"),
            json!({"amount": 10}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = setup.chat(&a.base_url, &key).await.unwrap();
        if r.status() == 200 {
            answered.insert(request_id(&r));
            break;
        }
        assert_eq!(r.status(), 503, "A refuses until it registered again");
        assert!(Instant::now() < deadline, "A never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        scalar(&setup.db.url, instances, &[]).await,
        2,
        "A registered again"
    );
    assert_eq!(
        fencing(&setup, &a.base_url).await,
        (200, None, 0.0),
        "A is ready again, no longer fenced"
    );
    for _ in 0..4 {
        let r = setup.chat(&a.base_url, &key).await.unwrap();
        assert_eq!(r.status(), 200);
        answered.insert(request_id(&r));
    }

    // The books, once both replicas committed what they answered.
    let granted = GRANTED + 10;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut books_now = books(&setup.db.url, &org).await;
    while books_now.usage.len() < answered.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        books_now = books(&setup.db.url, &org).await;
    }
    let usage: HashSet<&String> = books_now.usage.iter().collect();
    assert_eq!(
        usage.len(),
        books_now.usage.len(),
        "one usage record per call"
    );
    assert!(
        answered.iter().all(|id| usage.contains(id)),
        "answered calls are billed"
    );
    assert_eq!(
        books_now.usage.len(),
        setup.mock.request_count(),
        "usage records = calls the provider answered"
    );
    assert_eq!(
        books_now.ledger_sum, books_now.balance,
        "the ledger sums to the balance"
    );
    assert_eq!(books_now.balance, granted - answered.len() as i64);
    assert!(
        books_now.lowest_balance >= 0,
        "no balance below its overdraft limit: {books_now:?}"
    );
    let leased = scalar(
        &setup.db.url,
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_leases WHERE organization_id = $1",
        &[&org],
    )
    .await;
    assert_eq!(
        books_now.reserved, leased,
        "reserved is the sum of the leases"
    );
}
