//! What an organization's settings mean for a data-plane call: which
//! models it may use (`allowed_models`) and which power level `"model":
//! "auto"` uses when the call names none (`default_power_level`). Both are
//! read from the key cache: no database round trip.
//!
//! A model outside the allow-list, named in `model` or in a `models`
//! fallback list, is refused with 403 (`model_not_allowed`): the model
//! exists (it is in `GET /api/v1/models`), this organization may not use
//! it. `auto` only considers the allowed models of its power level; if none
//! is allowed, that is a 403 too.

use crate::error::ApiError;
use std::sync::Arc;
use tollgate_core::{ModelEntry, PowerLevel};
use tollgate_tenants::Principal;

/// The power level of a call that names none.
pub fn default_level(principal: &Principal) -> PowerLevel {
    principal
        .default_power_level
        .unwrap_or(PowerLevel::Balanced)
}

/// The candidates this organization may use, in their order.
pub fn allowed_candidates(
    principal: &Principal,
    asked: &str,
    level: PowerLevel,
    candidates: Vec<Arc<ModelEntry>>,
) -> Result<Vec<Arc<ModelEntry>>, ApiError> {
    if principal.allowed_models.is_none() {
        return Ok(candidates);
    }
    if asked == tollgate_routing::AUTO {
        let allowed: Vec<_> = candidates
            .into_iter()
            .filter(|m| principal.may_use_model(&m.id))
            .collect();
        if allowed.is_empty() {
            return Err(not_allowed(format!(
                "no model of power level `{}` is allowed for this organization",
                level.as_str()
            )));
        }
        return Ok(allowed);
    }
    if let Some(refused) = candidates.iter().find(|m| !principal.may_use_model(&m.id)) {
        return Err(not_allowed(format!(
            "model `{}` is not allowed for this organization",
            refused.id
        )));
    }
    Ok(candidates)
}

fn not_allowed(message: String) -> ApiError {
    let mut err = ApiError::forbidden(message);
    err.code = "model_not_allowed";
    err
}
