//! Inbound billing webhooks, with signatures computed here the way Stripe
//! and Lago compute them: valid, tampered, stale, replayed, rotated secret,
//! unconfigured; and the amount rules (metadata credits, cents × 10 000).

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate_tests::{DEFAULT_CONFIG, TestApp, expect_error, message_of};

const STRIPE_SECRET: &str = "whsec_test_stripe_secret";
const LAGO_SECRET: &str = "lago-hmac-key";
/// Lago's issuer in `jwt` mode (its `LAGO_API_URL`).
const LAGO_API_URL: &str = "https://lago.example.com";
/// An RSA key pair made for these tests, standing for Lago's own (the
/// private key in PKCS#1 DER), and a private key that is not Lago's.
const LAGO_PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/lago-webhook-private.der");
const LAGO_PUBLIC_KEY: &str = include_str!("../fixtures/lago-webhook-public.pem");
const OTHER_PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/lago-other-private.der");

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `Stripe-Signature` as Stripe builds it: `t=…,v1=<hex HMAC of "t.body">`.
fn stripe_header(secret: &str, timestamp: i64, body: &str) -> String {
    let sig = hmac_sha256(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(sig))
}

/// `X-Lago-Signature` in Lago's hmac mode: base64 HMAC of the raw body.
fn lago_signature(secret: &str, body: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(secret.as_bytes(), body.as_bytes()))
}

/// `X-Lago-Signature` in Lago's `jwt` mode: an RS256 JWT of
/// `{"data": body, "iss": issuer}`.
fn lago_jwt(private_key: &[u8], issuer: &str, body: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_der(private_key);
    let claims = json!({"data": body, "iss": issuer});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

/// A gateway that verifies Lago's `jwt` mode only, with the public key as
/// Lago's `GET /api/v1/webhooks/public_key` returns it: the PEM in base64,
/// broken into lines of 60 characters (Ruby's `Base64.encode64`).
async fn spawn_lago_jwt() -> TestApp {
    let encoded = base64::engine::general_purpose::STANDARD.encode(LAGO_PUBLIC_KEY);
    let lines: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    let public_key = lines.join("\n") + "\n";
    TestApp::spawn_with(DEFAULT_CONFIG, move |s| {
        s.lago_webhook_public_key = Some(public_key);
        s.lago_api_url = format!("{LAGO_API_URL}/");
    })
    .await
}

async fn spawn(stripe_secret: Option<&str>) -> TestApp {
    let stripe = stripe_secret.map(SecretString::from);
    TestApp::spawn_with(DEFAULT_CONFIG, move |s| {
        s.stripe_webhook_secret = stripe;
        s.lago_webhook_secret = Some(SecretString::from(LAGO_SECRET));
    })
    .await
}

async fn post_stripe(app: &TestApp, signature: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/billing/webhooks/stripe"))
        .header("Stripe-Signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn post_lago(
    app: &TestApp,
    signature: &str,
    unique_key: &str,
    body: &str,
) -> reqwest::Response {
    post_lago_as(app, Some("hmac"), signature, unique_key, body).await
}

/// A Lago webhook with `X-Lago-Signature-Algorithm: algorithm` (none if `None`).
async fn post_lago_as(
    app: &TestApp,
    algorithm: Option<&str>,
    signature: &str,
    unique_key: &str,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/billing/webhooks/lago"))
        .header("X-Lago-Signature", signature)
        .header("X-Lago-Unique-Key", unique_key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(algorithm) = algorithm {
        request = request.header("X-Lago-Signature-Algorithm", algorithm);
    }
    request.send().await.unwrap()
}

fn checkout_event(
    id: &str,
    org: &str,
    metadata_credits: Option<&str>,
    amount_total: i64,
) -> String {
    let mut metadata = json!({"organization_id": org});
    if let Some(credits) = metadata_credits {
        metadata["credits"] = json!(credits);
    }
    json!({
        "id": id,
        "object": "event",
        "type": "checkout.session.completed",
        "data": {"object": {
            "id": "cs_test_1", "object": "checkout.session", "payment_status": "paid",
            "amount_total": amount_total, "currency": "usd", "metadata": metadata,
        }},
    })
    .to_string()
}

async fn status_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn stripe_event_grants_metadata_credits_once_however_often_delivered() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("tokens").await;
    let body = checkout_event("evt_once", &org, Some("50000"), 999);

    let first =
        status_of(post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), &body), &body).await)
            .await;
    let again =
        status_of(post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), &body), &body).await)
            .await;

    assert_eq!(first["status"], "granted");
    assert_eq!(first["amount"], 50000);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(app.balance(&org).await, 50000);
    let ledger = app.transactions(&org).await;
    assert_eq!(ledger.len(), 1);
    assert!(ledger[0]["reason"].as_str().unwrap().contains("evt_once"));
}

#[tokio::test]
async fn concurrent_deliveries_of_one_stripe_event_grant_once() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("tokens").await;
    let body = checkout_event("evt_race", &org, Some("700"), 0);
    let header = stripe_header(STRIPE_SECRET, now(), &body);

    let answers =
        futures::future::join_all((0..8).map(|_| post_stripe(&app, &header, &body))).await;

    for answer in answers {
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(app.balance(&org).await, 700);
    assert_eq!(app.transactions(&org).await.len(), 1);
}

#[tokio::test]
async fn stripe_tampered_body_is_refused_and_changes_nothing() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("tokens").await;
    let signed = checkout_event("evt_t", &org, Some("100"), 0);
    let tampered = checkout_event("evt_t", &org, Some("100000"), 0);

    let response = post_stripe(
        &app,
        &stripe_header(STRIPE_SECRET, now(), &signed),
        &tampered,
    )
    .await;

    let error = expect_error(response, 401).await;
    assert_eq!(error["code"], "invalid_signature");
    assert_eq!(app.balance(&org).await, 0);
}

#[tokio::test]
async fn stripe_stale_or_missing_signature_is_refused() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("tokens").await;
    let body = checkout_event("evt_stale", &org, Some("100"), 0);

    let stale = post_stripe(
        &app,
        &stripe_header(STRIPE_SECRET, now() - 301, &body),
        &body,
    )
    .await;
    let future = post_stripe(
        &app,
        &stripe_header(STRIPE_SECRET, now() + 301, &body),
        &body,
    )
    .await;
    let missing = app
        .client
        .post(app.url("/api/v1/billing/webhooks/stripe"))
        .body(body.clone())
        .send()
        .await
        .unwrap();

    assert!(message_of(&expect_error(stale, 401).await).contains("5 minutes"));
    expect_error(future, 401).await;
    assert!(message_of(&expect_error(missing, 401).await).contains("Stripe-Signature"));
    assert_eq!(app.balance(&org).await, 0);
}

#[tokio::test]
async fn stripe_rotated_secret_accepts_a_matching_second_v1() {
    // During a rotation the setting holds both secrets, and Stripe signs
    // with each: a header whose first v1 is for an unknown secret passes on
    // its second.
    let app = spawn(Some("whsec_old_one, whsec_new_one")).await;
    let org = app.create_org("tokens").await;
    let body = checkout_event("evt_rot", &org, Some("42"), 0);
    let t = now();
    let unknown = stripe_header("whsec_retired", t, &body);
    let new = stripe_header("whsec_new_one", t, &body);
    let header = format!("{unknown},v1={}", new.split_once("v1=").unwrap().1);

    let outcome = status_of(post_stripe(&app, &header, &body).await).await;

    assert_eq!(outcome["status"], "granted");
    assert_eq!(app.balance(&org).await, 42);
}

#[tokio::test]
async fn stripe_webhook_without_a_secret_answers_503() {
    let app = spawn(None).await;
    let org = app.create_org("tokens").await;
    let body = checkout_event("evt_x", &org, Some("1"), 0);

    let response = post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), &body), &body).await;

    let error = expect_error(response, 503).await;
    assert_eq!(error["code"], "webhook_not_configured");
    assert_eq!(app.balance(&org).await, 0);
}

#[tokio::test]
async fn stripe_usd_payments_without_metadata_credits_grant_cents_times_10000() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("usd").await;
    let intent = json!({
        "id": "evt_pi", "type": "payment_intent.succeeded",
        "data": {"object": {"object": "payment_intent", "amount": 9999, "amount_received": 1234,
            "currency": "usd", "metadata": {"organization_id": org}}},
    })
    .to_string();
    let invoice = json!({
        "id": "evt_in", "type": "invoice.paid",
        "data": {"object": {"object": "invoice", "amount_due": 9999, "amount_paid": 500,
            "currency": "usd", "metadata": {"organization_id": org}}},
    })
    .to_string();
    let checkout = checkout_event("evt_cs", &org, None, 2000);

    for body in [&intent, &invoice, &checkout] {
        let outcome =
            status_of(post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), body), body).await)
                .await;
        assert_eq!(outcome["status"], "granted", "{body}");
    }

    // 12.34 + 5.00 + 20.00 USD, in micro-dollars.
    assert_eq!(app.balance(&org).await, (1234 + 500 + 2000) * 10_000);
}

#[tokio::test]
async fn stripe_metadata_credits_win_over_the_amount_paid() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("usd").await;
    let body = checkout_event("evt_meta", &org, Some("3000000"), 100);

    status_of(post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), &body), &body).await).await;

    assert_eq!(app.balance(&org).await, 3_000_000);
}

#[tokio::test]
async fn stripe_events_that_do_not_pay_an_organization_change_nothing() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("tokens").await;
    let other_type = json!({"id": "evt_c", "type": "customer.created", "data": {"object": {"metadata": {"organization_id": org, "credits": "5"}}}}).to_string();
    let unknown_org = checkout_event("evt_u", "org_does_not_exist", Some("5"), 0);
    let tokens_without_credits = checkout_event("evt_n", &org, None, 5000);
    let malformed_credits = checkout_event("evt_m", &org, Some("lots"), 5000);

    for body in [
        &other_type,
        &unknown_org,
        &tokens_without_credits,
        &malformed_credits,
    ] {
        let outcome =
            status_of(post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), body), body).await)
                .await;
        assert_eq!(outcome["status"], "ignored", "{body}");
    }

    assert_eq!(app.balance(&org).await, 0);
    assert!(app.transactions(&org).await.is_empty());
}

fn lago_invoice(invoice_id: &str, org: &str, status: &str, cents: i64) -> String {
    json!({
        "webhook_type": "invoice.payment_status_updated",
        "object_type": "invoice",
        "invoice": {
            "lago_id": invoice_id, "payment_status": status, "currency": "USD",
            "total_amount_cents": cents,
            "customer": {"external_id": org, "metadata": []},
            "metadata": [],
        },
    })
    .to_string()
}

#[tokio::test]
async fn lago_paid_invoice_grants_once_per_unique_key() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("usd").await;
    let body = lago_invoice("inv_1", &org, "succeeded", 1500);
    let signature = lago_signature(LAGO_SECRET, &body);

    let first = status_of(post_lago(&app, &signature, "uk-1", &body).await).await;
    let replay = status_of(post_lago(&app, &signature, "uk-1", &body).await).await;

    assert_eq!(first["status"], "granted");
    assert_eq!(replay["status"], "duplicate");
    assert_eq!(app.balance(&org).await, 1500 * 10_000);
    assert_eq!(app.transactions(&org).await.len(), 1);
}

#[tokio::test]
async fn lago_invoice_announced_twice_under_two_keys_grants_once() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("usd").await;
    let status_update = lago_invoice("inv_credit", &org, "succeeded", 100);
    let credit_added = status_update.replace(
        "invoice.payment_status_updated",
        "invoice.paid_credit_added",
    );

    post_lago(
        &app,
        &lago_signature(LAGO_SECRET, &status_update),
        "uk-a",
        &status_update,
    )
    .await;
    let second = status_of(
        post_lago(
            &app,
            &lago_signature(LAGO_SECRET, &credit_added),
            "uk-b",
            &credit_added,
        )
        .await,
    )
    .await;

    assert_eq!(second["status"], "duplicate");
    assert_eq!(app.balance(&org).await, 100 * 10_000);
}

#[tokio::test]
async fn lago_tampered_body_is_refused_and_changes_nothing() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("usd").await;
    let signed = lago_invoice("inv_2", &org, "succeeded", 100);
    let tampered = lago_invoice("inv_2", &org, "succeeded", 100_000);

    let response = post_lago(
        &app,
        &lago_signature(LAGO_SECRET, &signed),
        "uk-2",
        &tampered,
    )
    .await;

    let error = expect_error(response, 401).await;
    assert_eq!(error["code"], "invalid_signature");
    assert_eq!(app.balance(&org).await, 0);
}

#[tokio::test]
async fn lago_jwt_signed_invoice_grants_once_per_unique_key() {
    let app = spawn_lago_jwt().await;
    let org = app.create_org("usd").await;
    let body = lago_invoice("inv_jwt", &org, "succeeded", 1500);
    let signature = lago_jwt(LAGO_PRIVATE_KEY, LAGO_API_URL, &body);
    let older = lago_invoice("inv_jwt_old", &org, "succeeded", 200);

    let first = status_of(post_lago_as(&app, Some("jwt"), &signature, "uk-j1", &body).await).await;
    let replay = status_of(post_lago_as(&app, Some("jwt"), &signature, "uk-j1", &body).await).await;
    // Lago before `X-Lago-Signature-Algorithm` signed with a JWT only.
    let without_algorithm = status_of(
        post_lago_as(
            &app,
            None,
            &lago_jwt(LAGO_PRIVATE_KEY, LAGO_API_URL, &older),
            "uk-j2",
            &older,
        )
        .await,
    )
    .await;

    assert_eq!(first["status"], "granted");
    assert_eq!(replay["status"], "duplicate");
    assert_eq!(without_algorithm["status"], "granted");
    assert_eq!(app.balance(&org).await, (1500 + 200) * 10_000);
    assert_eq!(app.transactions(&org).await.len(), 2);
}

#[tokio::test]
async fn lago_jwt_of_another_key_issuer_or_body_is_refused_and_changes_nothing() {
    let app = spawn_lago_jwt().await;
    let org = app.create_org("usd").await;
    let body = lago_invoice("inv_jwt_bad", &org, "succeeded", 1500);
    let tampered = lago_invoice("inv_jwt_bad", &org, "succeeded", 150_000);
    let cases = [
        (
            "another key",
            lago_jwt(OTHER_PRIVATE_KEY, LAGO_API_URL, &body),
        ),
        (
            "another issuer",
            lago_jwt(LAGO_PRIVATE_KEY, "https://api.getlago.com", &body),
        ),
        (
            "another body",
            lago_jwt(LAGO_PRIVATE_KEY, LAGO_API_URL, &tampered),
        ),
        ("not a JWT", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_owned()),
    ];

    for (i, (case, signature)) in cases.iter().enumerate() {
        let response =
            post_lago_as(&app, Some("jwt"), signature, &format!("uk-bad-{i}"), &body).await;

        let error = expect_error(response, 401).await;
        assert_eq!(error["code"], "invalid_signature", "{case}: {error}");
    }
    assert_eq!(app.balance(&org).await, 0);
    assert!(app.transactions(&org).await.is_empty());
}

#[tokio::test]
async fn a_lago_mode_without_its_setting_answers_503() {
    let hmac_only = spawn(None).await;
    let jwt_only = spawn_lago_jwt().await;
    let org = hmac_only.create_org("usd").await;
    let body = lago_invoice("inv_modes", &org, "succeeded", 100);

    let jwt = post_lago_as(
        &hmac_only,
        Some("jwt"),
        &lago_jwt(LAGO_PRIVATE_KEY, LAGO_API_URL, &body),
        "uk-m1",
        &body,
    )
    .await;
    let hmac = post_lago(
        &jwt_only,
        &lago_signature(LAGO_SECRET, &body),
        "uk-m2",
        &body,
    )
    .await;

    let jwt = expect_error(jwt, 503).await;
    assert_eq!(jwt["code"], "webhook_not_configured");
    assert!(
        message_of(&jwt).contains("LAGO_WEBHOOK_PUBLIC_KEY"),
        "{jwt}"
    );
    let hmac = expect_error(hmac, 503).await;
    assert!(message_of(&hmac).contains("LAGO_WEBHOOK_SECRET"), "{hmac}");
    assert_eq!(hmac_only.balance(&org).await, 0);
}

#[tokio::test]
async fn lago_metadata_names_the_organization_and_the_credits() {
    let app = spawn(Some(STRIPE_SECRET)).await;
    let org = app.create_org("requests").await;
    let body = json!({
        "webhook_type": "invoice.paid_credit_added",
        "invoice": {
            "lago_id": "inv_3", "payment_status": "succeeded", "currency": "EUR", "total_amount_cents": 900,
            "customer": {"external_id": "crm-customer-7"},
            "metadata": [{"key": "organization_id", "value": org}, {"key": "credits", "value": "250"}],
        },
    })
    .to_string();
    let pending = lago_invoice("inv_4", &org, "pending", 100);

    let paid =
        status_of(post_lago(&app, &lago_signature(LAGO_SECRET, &body), "uk-3", &body).await).await;
    let unpaid = status_of(
        post_lago(
            &app,
            &lago_signature(LAGO_SECRET, &pending),
            "uk-4",
            &pending,
        )
        .await,
    )
    .await;

    assert_eq!(paid["status"], "granted");
    assert_eq!(unpaid["status"], "ignored");
    assert_eq!(app.balance(&org).await, 250);
}

#[tokio::test]
async fn configured_stripe_event_types_grant_and_unpaid_checkouts_wait() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        s.stripe_webhook_secret = Some(SecretString::from(STRIPE_SECRET));
        s.stripe_grant_events =
            "checkout.session.completed,checkout.session.async_payment_succeeded".into();
    })
    .await;
    let org = app.create_org("usd").await;
    let unpaid = checkout_event("evt_unpaid", &org, None, 700).replace("\"paid\"", "\"unpaid\"");
    let paid_later = checkout_event("evt_later", &org, None, 700).replace(
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    );
    let not_configured = json!({
        "id": "evt_pi2", "type": "payment_intent.succeeded",
        "data": {"object": {"object": "payment_intent", "amount_received": 700,
            "currency": "usd", "metadata": {"organization_id": org}}},
    })
    .to_string();

    let mut statuses = Vec::new();
    for body in [&unpaid, &paid_later, &not_configured] {
        let outcome =
            status_of(post_stripe(&app, &stripe_header(STRIPE_SECRET, now(), body), body).await)
                .await;
        statuses.push(outcome["status"].as_str().unwrap().to_owned());
    }

    assert_eq!(statuses, ["ignored", "granted", "ignored"]);
    assert_eq!(app.balance(&org).await, 700 * 10_000);
}
