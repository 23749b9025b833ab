//! The credit invariant across real `tollgate` processes: concurrent calls
//! split over two gateways sharing one PostgreSQL never overspend, and a
//! gateway killed with SIGKILL mid-stream leaves no balance or budget blocked.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tollgate_tests::binary::GatewayProcess;
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{
    ADMIN_TOKEN, Backend, DEFAULT_CONFIG, Fault, MockProvider, TestDatabase, chat_body, client,
    test_backend, test_master_key,
};

/// One database, one mock provider and the settings every gateway process
/// of a test shares.
struct Cluster {
    dir: TempDir,
    mock: MockProvider,
    _db: TestDatabase,
    envs: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Cluster {
    async fn new() -> Cluster {
        let mock = MockProvider::start().await;
        let dir = TempDir::new();
        let db = TestDatabase::create(&dir.0).await;
        let config = dir.0.join("tollgate.yaml");
        std::fs::write(&config, DEFAULT_CONFIG.replace("{MOCK}", &mock.base_url())).unwrap();
        let envs = vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("TOLLGATE_CONFIG".to_owned(), config.display().to_string()),
            ("TOLLGATE_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
            (
                "TOLLGATE_MASTER_KEY".to_owned(),
                test_master_key().expose_secret().to_owned(),
            ),
            // Heartbeats every ~330 ms; a silent instance is dead after 1 s.
            ("TOLLGATE_INSTANCE_TIMEOUT_MS".to_owned(), "1000".to_owned()),
        ];
        Cluster {
            dir,
            mock,
            _db: db,
            envs,
            http: client(),
        }
    }

    async fn gateway(&self) -> GatewayProcess {
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        GatewayProcess::serve(&self.dir.0, &envs).await
    }

    async fn admin(
        &self,
        gw: &GatewayProcess,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let url = format!("{}{path}", gw.base_url);
        let request = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or_default()),
            _ => self.http.get(url),
        };
        let response = request.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// An organization in `requests` mode (each call costs exactly 1) with
    /// `credits`, and a key with `budget` (a `total` one) if given: `(org, key)`.
    async fn funded_org(
        &self,
        gw: &GatewayProcess,
        credits: i64,
        budget: Option<i64>,
    ) -> (String, String) {
        let org = self
            .admin(
                gw,
                "POST",
                "/api/v1/organizations",
                Some(json!({"name": "Acme", "billing_mode": "requests"})),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.admin(
            gw,
            "POST",
            &format!("/api/v1/organizations/{org}/credits/grants"),
            Some(json!({"amount": credits})),
        )
        .await;
        let mut key_body = json!({"name": "process test"});
        if let Some(amount) = budget {
            key_body["budget"] = json!({"amount": amount, "period": "total"});
        }
        let key = self
            .admin(
                gw,
                "POST",
                &format!("/api/v1/organizations/{org}/api-keys"),
                Some(key_body),
            )
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        (org, key)
    }

    async fn credits(&self, gw: &GatewayProcess, org: &str) -> Value {
        self.admin(
            gw,
            "GET",
            &format!("/api/v1/organizations/{org}/credits"),
            None,
        )
        .await
    }

    /// Waits until every gateway's settlements so far are committed: a
    /// read through a gateway waits for its own, and through another may
    /// lag by a commit interval (README, Billing).
    async fn settled(&self, gws: &[GatewayProcess], org: &str) {
        for gw in gws {
            self.credits(gw, org).await;
        }
    }

    async fn chat(&self, gw: &GatewayProcess, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", gw.base_url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// `calls` concurrent calls split over `gateways` against a balance for
/// `credits`, while the balance is sampled; then checks the invariant.
async fn calls_over_processes_never_overspend(gateways: usize, calls: usize, credits: i64) {
    let cluster = Arc::new(Cluster::new().await);
    let mut gws = Vec::new();
    for _ in 0..gateways {
        gws.push(cluster.gateway().await);
    }
    let gws = Arc::new(gws);
    let (org, key) = cluster.funded_org(&gws[0], credits, None).await;

    let done = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(AtomicI64::new(i64::MAX));
    let sampler = {
        let (cluster, gws, org, done, lowest) = (
            cluster.clone(),
            gws.clone(),
            org.clone(),
            done.clone(),
            lowest.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let balance = cluster.credits(&gws[i % gws.len()], &org).await["balance"]
                    .as_i64()
                    .unwrap();
                lowest.fetch_min(balance, Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let results = futures::future::join_all((0..calls).map(|i| {
        let (cluster, gws, key) = (cluster.clone(), gws.clone(), key.clone());
        async move {
            let r = cluster
                .chat(&gws[i % gws.len()], &key, &chat_body("gpt-4o-mini"))
                .await;
            let id = r.headers()["x-tollgate-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            (r.status().as_u16(), id)
        }
    }))
    .await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    cluster.settled(&gws, &org).await;

    let successes: HashSet<&str> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, id)| id.as_str())
        .collect();
    assert!(
        results.iter().all(|(s, _)| *s == 200 || *s == 402),
        "{results:?}"
    );
    let ok = successes.len() as i64;
    assert!(
        ok > 0 && ok <= credits,
        "{ok} successes for {credits} credits"
    );
    let balance = cluster.credits(&gws[1 % gateways], &org).await["balance"]
        .as_i64()
        .unwrap();
    assert!(
        balance >= 0 && lowest.load(Ordering::Relaxed) >= 0,
        "the balance never goes below 0"
    );
    assert_eq!(
        balance,
        credits - ok,
        "successes times the cost (1) equals the spend"
    );
    let ledger = cluster
        .admin(
            &gws[0],
            "GET",
            &format!("/api/v1/organizations/{org}/credits/transactions?limit=1000"),
            None,
        )
        .await;
    let ledger_sum: i64 = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(ledger_sum, balance, "the ledger sums to the balance");
    let usage = cluster
        .admin(
            &gws[1 % gateways],
            "GET",
            &format!("/api/v1/organizations/{org}/usage?limit=1000"),
            None,
        )
        .await;
    let recorded: Vec<&str> = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        recorded.len(),
        successes.len(),
        "one usage record per success"
    );
    assert_eq!(recorded.into_iter().collect::<HashSet<_>>(), successes);
    assert_eq!(
        cluster.mock.request_count() as i64,
        ok,
        "refused calls never reach the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_never_overspend_a_shared_balance() {
    if test_backend() == Backend::Sqlite {
        eprintln!(
            "skipped on SQLite: two gateway processes need a shared PostgreSQL \
             (run with TOLLGATE_TEST_DATABASE=postgres); SQLite is single-node"
        );
        return;
    }
    calls_over_processes_never_overspend(2, 300, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_gateway_process_never_overspends_a_balance() {
    calls_over_processes_never_overspend(1, 200, 40).await;
}

/// Starts a stream through `gw` that stalls after its first chunk, and
/// returns once the client has read that chunk (the call is mid-stream).
async fn stalled_stream(cluster: &Cluster, gw: &GatewayProcess, key: &str) -> reqwest::Response {
    cluster.mock.push_fault(Fault::StallStreamAfter(1));
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let mut response = cluster.chat(gw, key, &body).await;
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first chunk arrives")
        .unwrap();
    assert!(first.is_some_and(|c| !c.is_empty()));
    response
}

/// Waits until the organization has nothing reserved, as `gw` sees it.
async fn until_nothing_reserved(
    cluster: &Cluster,
    gw: &GatewayProcess,
    org: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let credits = cluster.credits(gw, org).await;
        if credits["reserved"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still reserved after {within:?}: {credits}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_stream_blocks_no_balance_or_budget() {
    let cluster = Cluster::new().await;
    let mut first = cluster.gateway().await;
    // A balance and a key budget for exactly one call.
    let (org, key) = cluster.funded_org(&first, 1, Some(1)).await;
    // On PostgreSQL, a second live instance returns the dead one's holds.
    let survivor = match test_backend() {
        Backend::Postgres => Some(cluster.gateway().await),
        Backend::Sqlite => None,
    };
    let stream = stalled_stream(&cluster, &first, &key).await;
    assert_eq!(
        cluster.credits(&first, &org).await["reserved"],
        1,
        "the stream holds the credit"
    );

    first.child.kill().unwrap(); // SIGKILL: no shutdown, no settlement
    first.child.wait().unwrap();
    drop(stream);
    let next = match survivor {
        Some(gw) => {
            until_nothing_reserved(&cluster, &gw, &org, Duration::from_secs(10)).await;
            gw
        }
        // On SQLite (one node) the next start returns an earlier run's holds.
        None => {
            let gw = cluster.gateway().await;
            until_nothing_reserved(&cluster, &gw, &org, Duration::from_secs(1)).await;
            gw
        }
    };

    assert_eq!(
        cluster.credits(&next, &org).await["balance"],
        1,
        "the killed stream was not billed"
    );
    let answer = cluster.chat(&next, &key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(
        answer.status(),
        200,
        "the balance and the key budget are spendable again"
    );
    assert_eq!(cluster.credits(&next, &org).await["balance"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_never_overspend_a_key_budget() {
    if test_backend() == Backend::Sqlite {
        eprintln!(
            "skipped on SQLite: two gateway processes need a shared PostgreSQL \
             (run with TOLLGATE_TEST_DATABASE=postgres); SQLite is single-node"
        );
        return;
    }
    let cluster = Arc::new(Cluster::new().await);
    let gws = Arc::new([cluster.gateway().await, cluster.gateway().await]);
    // The balance covers every call; the key's budget only 25 of them.
    let (org, key) = cluster.funded_org(&gws[0], 10_000, Some(25)).await;

    let statuses = futures::future::join_all((0..200).map(|i| {
        let (cluster, gws, key) = (cluster.clone(), gws.clone(), key.clone());
        async move {
            let r = cluster
                .chat(&gws[i % 2], &key, &chat_body("gpt-4o-mini"))
                .await;
            r.status().as_u16()
        }
    }))
    .await;

    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 402),
        "{statuses:?}"
    );
    assert!(ok > 0 && ok <= 25, "{ok} successes for a budget of 25");
    cluster.settled(gws.as_slice(), &org).await;
    let keys = cluster
        .admin(
            &gws[1],
            "GET",
            &format!("/api/v1/organizations/{org}/api-keys"),
            None,
        )
        .await;
    assert_eq!(
        keys["data"][0]["budget"]["spent"], ok,
        "the key's spend is its successes"
    );
    assert_eq!(
        cluster.credits(&gws[0], &org).await["balance"],
        10_000 - ok,
        "the organization paid exactly the successes"
    );
}
