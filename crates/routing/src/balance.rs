//! Choosing among a model's deployments: weighted random, made
//! latency-aware by the power of two choices.
//!
//! The rule, for a model with several deployments not cooling down:
//! 1. Draw two of them independently (with replacement), each with
//!    probability proportional to its weight.
//! 2. Score each: its EWMA latency to the first byte (at least
//!    [`LATENCY_FLOOR_MS`]; a deployment never called scores the floor)
//!    × (1 + its calls in flight).
//! 3. Call the second draw only if it scores clearly better, below
//!    [`CLEARLY_FASTER`] × the first's score; else the first draw.
//!
//! Deployments of equal scores thus get traffic in proportion to their
//! weights exactly; a clearly slower or busier one is passed over whenever
//! it meets a faster one, and keeps only the share where it is drawn twice
//! (weight² / total² of the traffic: a quarter for one of two equal
//! weights), which also keeps its latency measured. The other deployments
//! follow as fallbacks, best score first, and those cooling down last (the
//! relay skips them, counting their cooldowns).

use crate::health::{DeploymentLoad, Health};
use rand::Rng;
use std::sync::Arc;
use std::time::Instant;
use tollgate_core::{Deployment, ModelEntry};

/// Latencies below this count as equal: noise, not a reason to move traffic.
pub const LATENCY_FLOOR_MS: f64 = 20.0;
/// How much better the second draw must score to be called instead of the
/// first: half, so that the noise of answer lengths and load moves no
/// traffic, but a deployment twice as slow (or twice as busy) loses it.
pub const CLEARLY_FASTER: f64 = 0.5;

/// A model's deployments, the model itself when it has none listed (a model
/// made by auto-detection).
pub fn deployments(model: &Arc<ModelEntry>) -> Vec<Deployment> {
    if model.deployments.is_empty() {
        return vec![Deployment {
            entry: model.clone(),
            weight: 1,
            rpm: None,
            tpm: None,
        }];
    }
    model.deployments.to_vec()
}

/// The order to try `model`'s deployments in now: the one chosen by the
/// rule above first.
pub fn order(model: &Arc<ModelEntry>, health: &Health, now: Instant) -> Vec<Deployment> {
    let list = deployments(model);
    if list.len() == 1 {
        return list;
    }
    let loads: Vec<DeploymentLoad> = list
        .iter()
        .map(|d| health.load(&d.entry.provider, &d.entry.id, now))
        .collect();
    let order = choose(&list, &loads, &mut rand::rng());
    order.into_iter().map(|i| list[i].clone()).collect()
}

fn score(load: &DeploymentLoad) -> f64 {
    load.latency_ms.unwrap_or(0.0).max(LATENCY_FLOOR_MS) * (1.0 + f64::from(load.in_flight))
}

/// The rule of the module docs over `deployments` and their `loads` (same
/// order): indexes into `deployments`, the one to call first first.
pub fn choose(
    deployments: &[Deployment],
    loads: &[DeploymentLoad],
    rng: &mut impl Rng,
) -> Vec<usize> {
    let cooling = |i: usize| loads.get(i).is_some_and(|l| l.cooling);
    let ready: Vec<usize> = (0..deployments.len()).filter(|&i| !cooling(i)).collect();
    let scores: Vec<f64> = (0..deployments.len())
        .map(|i| loads.get(i).map_or(LATENCY_FLOOR_MS, score))
        .collect();
    let mut order = Vec::with_capacity(deployments.len());
    if let Some(first) = pick_two(deployments, &ready, &scores, rng) {
        order.push(first);
    }
    let mut rest: Vec<usize> = ready.into_iter().filter(|i| !order.contains(i)).collect();
    rest.sort_by(|&a, &b| {
        scores[a]
            .total_cmp(&scores[b])
            .then(deployments[b].weight.cmp(&deployments[a].weight))
    });
    order.extend(rest);
    order.extend((0..deployments.len()).filter(|&i| cooling(i)));
    order
}

fn pick_two(
    deployments: &[Deployment],
    ready: &[usize],
    scores: &[f64],
    rng: &mut impl Rng,
) -> Option<usize> {
    let total: u64 = ready
        .iter()
        .map(|&i| u64::from(deployments[i].weight.max(1)))
        .sum();
    if total == 0 {
        return None;
    }
    let mut draw = || {
        let mut at = rng.random_range(0..total);
        for &i in ready {
            let w = u64::from(deployments[i].weight.max(1));
            if at < w {
                return i;
            }
            at -= w;
        }
        ready[ready.len() - 1]
    };
    let (a, b) = (draw(), draw());
    Some(if scores[b] < scores[a] * CLEARLY_FASTER {
        b
    } else {
        a
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use tollgate_core::config::parse_catalog;

    fn two(weights: (u32, u32)) -> Vec<Deployment> {
        let config = format!(
            "providers:\n  a: {{ kind: openai, base_url: \"http://a/v1\" }}\n  b: {{ kind: openai, base_url: \"http://b/v1\" }}\n\
             models:\n  - {{ id: m, deployments: [{{ provider: a, weight: {} }}, {{ provider: b, weight: {} }}] }}\n",
            weights.0, weights.1
        );
        let catalog = parse_catalog(&config, |_| None).unwrap();
        catalog.model("m").unwrap().deployments.to_vec()
    }

    fn load(latency_ms: f64, in_flight: u32) -> DeploymentLoad {
        DeploymentLoad {
            cooling: false,
            latency_ms: Some(latency_ms),
            in_flight,
        }
    }

    /// Share of `runs` choices that went to deployment 0.
    fn share_of_first(deps: &[Deployment], loads: &[DeploymentLoad], runs: u32) -> f64 {
        let mut rng = StdRng::seed_from_u64(7);
        let firsts = (0..runs)
            .filter(|_| choose(deps, loads, &mut rng)[0] == 0)
            .count();
        firsts as f64 / f64::from(runs)
    }

    #[test]
    fn equal_latencies_split_traffic_by_weight() {
        let deps = two((3, 1));
        let share = share_of_first(&deps, &[load(2.0, 0), load(3.0, 0)], 20_000);
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn a_clearly_slower_deployment_keeps_only_the_draws_where_it_meets_itself() {
        let deps = two((1, 1));
        let share = share_of_first(&deps, &[load(20.0, 0), load(200.0, 0)], 20_000);
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn calls_in_flight_make_a_deployment_score_worse() {
        let deps = two((1, 1));
        let share = share_of_first(&deps, &[load(50.0, 0), load(50.0, 4)], 20_000);
        assert!(share > 0.7, "{share}");
    }

    #[test]
    fn a_cooling_deployment_is_never_first_and_comes_last() {
        let deps = two((100, 1));
        let cooling = DeploymentLoad {
            cooling: true,
            ..load(1.0, 0)
        };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(choose(&deps, &[cooling, load(30.0, 0)], &mut rng), [1, 0]);
        }
    }

    #[test]
    fn a_model_without_listed_deployments_is_its_own() {
        let deps = two((1, 1));
        let lone = Arc::new(deps[0].entry.served_by("a", "m"));
        let list = deployments(&lone);
        assert_eq!(list.len(), 1);
        assert!(Arc::ptr_eq(&list[0].entry, &lone));
    }
}
