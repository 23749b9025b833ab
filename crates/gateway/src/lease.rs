//! A call's lease on the deployment it goes to: its place among the calls
//! in flight (for load balancing and health), and its share of the
//! deployment's own RPM/TPM caps, kept until the answer or stream ends.

use crate::Gateway;
use std::time::Duration;
use tollgate_core::Deployment;
use tollgate_routing::health::InFlight;
use tollgate_routing::limits::{Admission, Limits, Scope};

#[derive(Clone)]
pub(crate) struct DeploymentLease {
    _in_flight: Option<InFlight>,
    caps: Option<Admission>,
}

impl DeploymentLease {
    /// Replaces the tokens estimated against the deployment's TPM cap by
    /// the call's real count.
    pub(crate) fn used_tokens(&self, tokens: i64) {
        if let Some(caps) = &self.caps {
            caps.used_tokens(tokens);
        }
    }
}

impl Gateway {
    /// Takes a place on `deployment` for a call of about `estimated_tokens`,
    /// or says how long until its RPM/TPM caps have room. The caps are
    /// counted like the keys' limits: in Redis when it is configured, so
    /// they hold across replicas.
    pub(crate) async fn lease(
        &self,
        deployment: &Deployment,
        estimated_tokens: i64,
    ) -> Result<DeploymentLease, Duration> {
        let model = &deployment.entry;
        let caps = if deployment.rpm.is_some() || deployment.tpm.is_some() {
            let scope = Scope {
                name: format!("dep:{}/{}", model.provider, model.id),
                limits: Limits {
                    requests_per_minute: deployment.rpm,
                    tokens_per_minute: deployment.tpm,
                    concurrency: None,
                },
            };
            match self.limiter.acquire(vec![scope], estimated_tokens).await {
                Ok(admission) => Some(admission),
                Err(refusal) => return Err(refusal.retry_after),
            }
        } else {
            None
        };
        Ok(DeploymentLease {
            _in_flight: self.health.begin(&model.provider, &model.id),
            caps,
        })
    }
}
