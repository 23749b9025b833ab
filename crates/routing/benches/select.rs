//! Candidate selection on a large catalog: 100 models served by 10
//! deployments each (one provider per deployment, 1 000 deployments).
//! Measures what routing adds to a request before the provider is called:
//! resolving the candidates (a power level's rule order, or a named model
//! with a `models` fallback list), then for every candidate the
//! context-window check, the choice among its deployments (weighted power
//! of two choices over latency and calls in flight) and the cooldown check
//! down to its first available deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tollgate_core::config::parse_catalog;
use tollgate_core::{Catalog, ModelMode, PowerLevel};
use tollgate_routing::balance::order;
use tollgate_routing::health::{Availability, Health, HealthConfig};
use tollgate_routing::{candidates_with_fallbacks, fits_context};

const MODELS: usize = 100;
const DEPLOYMENTS: usize = 10;

fn catalog(with_lists: bool) -> Catalog {
    let mut yaml = String::from("providers:\n");
    for d in 0..DEPLOYMENTS {
        yaml.push_str(&format!(
            "  p{d}: {{ kind: openai, base_url: \"http://p{d}.invalid/v1\" }}\n"
        ));
    }
    yaml.push_str("models:\n");
    for m in 0..MODELS {
        let deployments: Vec<String> = (0..DEPLOYMENTS)
            .map(|d| format!("{{ provider: p{d}, weight: {} }}", 1 + d % 3))
            .collect();
        yaml.push_str(&format!(
            "  - {{ id: m{m}, quality: {q}, context_window: {cw}, \
             price: {{ input_per_mtok: {i}, output_per_mtok: {o} }}, deployments: [{deps}] }}\n",
            q = (m * 7) % 100,
            cw = 8_000 + 1_000 * (m % 120),
            i = 0.05 + (m % 13) as f64 * 0.3,
            o = 0.2 + (m % 17) as f64 * 1.1,
            deps = deployments.join(", "),
        ));
    }
    if with_lists {
        yaml.push_str("power_levels:\n");
        for level in ["eco", "balanced", "precision"] {
            let ids: Vec<String> = (0..20).map(|m| format!("m{m}")).collect();
            yaml.push_str(&format!("  {level}: [{}]\n", ids.join(", ")));
        }
    }
    parse_catalog(&yaml, |_| None).expect("the generated catalog parses")
}

/// Every deployment seen, a tenth of them cooling down.
fn health() -> Health {
    let health = Health::new(HealthConfig {
        failure_threshold: 1,
        cooldown: Duration::from_secs(3600),
        ..HealthConfig::default()
    });
    let now = Instant::now();
    for m in 0..MODELS {
        for d in 0..DEPLOYMENTS {
            let (provider, model) = (format!("p{d}"), format!("m{m}"));
            if (m + d) % 10 == 0 {
                health.failure(&provider, &model, None, now);
            } else {
                health.success(&provider, &model, Duration::from_millis(200));
            }
        }
    }
    health
}

/// What `relay` does before its first provider call.
fn select(
    catalog: &Catalog,
    health: &Health,
    model: &str,
    fallbacks: &[String],
    level: PowerLevel,
) -> usize {
    let list =
        candidates_with_fallbacks(catalog, model, fallbacks, level, ModelMode::Chat).unwrap();
    let now = Instant::now();
    list.iter()
        .filter(|m| fits_context(m, 2_000, Some(1_000)))
        .filter(|m| {
            order(m, health, now).iter().any(|d| {
                health.check(&d.entry.provider, &d.entry.id, now) == Availability::Available
            })
        })
        .count()
}

fn bench(c: &mut Criterion) {
    let by_rule = catalog(false);
    let with_lists = catalog(true);
    let health = health();
    let fallbacks: Vec<String> = (43..52).map(|m| format!("m{m}")).collect();

    c.bench_function("auto by rule, 100 models x 10 deployments", |b| {
        b.iter(|| {
            select(
                black_box(&by_rule),
                &health,
                "auto",
                &[],
                PowerLevel::Balanced,
            )
        })
    });
    c.bench_function(
        "auto by configured list of 20 models x 10 deployments",
        |b| {
            b.iter(|| {
                select(
                    black_box(&with_lists),
                    &health,
                    "auto",
                    &[],
                    PowerLevel::Eco,
                )
            })
        },
    );
    c.bench_function("named model with 9 fallbacks", |b| {
        b.iter(|| {
            select(
                black_box(&by_rule),
                &health,
                "m42",
                &fallbacks,
                PowerLevel::Balanced,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
