//! The `x-tollgate-*` header names (contract section 3, and the request
//! options a client may send), in one place.

/// Unique id of the request (set on every response).
pub const REQUEST_ID: &str = "x-tollgate-request-id";
/// Catalog id of the model that answered.
pub const MODEL: &str = "x-tollgate-model";
/// Provider that answered.
pub const PROVIDER: &str = "x-tollgate-provider";
/// `true` when the organization's own key paid the provider.
pub const BYOK: &str = "x-tollgate-byok";
/// What was deducted, in the organization's unit.
pub const COST: &str = "x-tollgate-cost";
/// How many provider calls the request took, fallbacks and retries included.
pub const ATTEMPTS: &str = "x-tollgate-attempts";
/// Request option: the power level for `"model": "auto"`.
pub const POWER_LEVEL: &str = "x-tollgate-power-level";
/// Request option: the client's own timeout, in milliseconds.
pub const TIMEOUT_MS: &str = "x-tollgate-timeout-ms";
