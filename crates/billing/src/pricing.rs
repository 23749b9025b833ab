//! What a call costs in an organization's unit, and the most it can cost.

use tollgate_core::money::TokenUsage;
use tollgate_core::{BillingMode, Price};

/// The charge for a call with this usage: the USD list cost in micro-dollars
/// (see [`Price::cost`] for rounding), prompt plus completion tokens, or one
/// request.
pub fn charge_for(mode: BillingMode, price: &Price, usage: &TokenUsage) -> i64 {
    marked_up_charge_for(mode, price, usage, 0)
}

/// Like [`charge_for`], with the organization's markup: in `usd` mode the
/// list cost × (100 + `markup_percent`) / 100, computed exactly (token
/// costs in micro-dollars × 10⁻⁶, the per-request fee included) and rounded
/// up once to a whole micro-dollar. `tokens` and `requests` are not marked
/// up. With a markup of 0 it is exactly [`Price::cost`].
pub fn marked_up_charge_for(
    mode: BillingMode,
    price: &Price,
    usage: &TokenUsage,
    markup_percent: u32,
) -> i64 {
    match mode {
        BillingMode::Usd => marked_up_cost(price, usage, markup_percent),
        BillingMode::Tokens => usage.total().max(0),
        BillingMode::Requests => 1,
    }
}

/// The USD cost with a markup, in micro-dollars, rounded up once.
fn marked_up_cost(price: &Price, usage: &TokenUsage, markup_percent: u32) -> i64 {
    // In micro-dollars × 10⁻⁶, the per-request fee included.
    let exact = price.exact_token_cost(usage) + i128::from(price.per_request.0.max(0)) * 1_000_000;
    let scaled = exact.saturating_mul(100 + i128::from(markup_percent));
    let divisor: i128 = 100 * 1_000_000;
    i64::try_from((scaled + divisor - 1) / divisor).unwrap_or(i64::MAX)
}

/// What a call paid with the organization's own provider key (BYOK) is
/// charged: `fee_percent` % of `charge`, its charge at list price in the
/// organization's unit ([`charge_for`]), rounded up to a whole unit so that
/// a non-zero fee never rounds to nothing.
pub fn byok_charge(charge: i64, fee_percent: u32) -> i64 {
    let scaled = i128::from(charge.max(0)) * i128::from(fee_percent);
    i64::try_from((scaled + 99) / 100).unwrap_or(i64::MAX)
}

/// The most a call can cost: every prompt token it may send (an upper bound,
/// not an estimate) plus every completion token it may receive.
pub fn max_charge_for(
    mode: BillingMode,
    price: &Price,
    max_prompt_tokens: i64,
    max_completion_tokens: i64,
) -> i64 {
    max_marked_up_charge_for(mode, price, max_prompt_tokens, max_completion_tokens, 0)
}

/// [`max_charge_for`] with the organization's markup (see
/// [`marked_up_charge_for`]): the hold of a marked-up call, still never
/// below its real charge.
pub fn max_marked_up_charge_for(
    mode: BillingMode,
    price: &Price,
    max_prompt_tokens: i64,
    max_completion_tokens: i64,
    markup_percent: u32,
) -> i64 {
    let worst = TokenUsage {
        prompt_tokens: max_prompt_tokens.max(0),
        completion_tokens: max_completion_tokens.max(0),
        cached_prompt_tokens: 0,
        cache_write_tokens: 0,
    };
    marked_up_charge_for(mode, price, &worst, markup_percent)
}

/// The pricing rule of one call: what it is charged in the organization's
/// unit. A BYOK call (`byok_fee_percent` is `Some`) pays only the platform
/// fee, a share of its charge at list price (the organization's markup does
/// not apply: the provider is paid with the organization's own key); any
/// other call pays its charge with the organization's markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricingRule {
    pub mode: BillingMode,
    pub markup_percent: u32,
    /// `Some(fee)` when the organization's own key pays the provider.
    pub byok_fee_percent: Option<u32>,
}

impl PricingRule {
    /// What a call with this usage is charged.
    pub fn payable(&self, price: &Price, usage: &TokenUsage) -> i64 {
        match self.byok_fee_percent {
            Some(fee) => byok_charge(charge_for(self.mode, price, usage), fee),
            None => marked_up_charge_for(self.mode, price, usage, self.markup_percent),
        }
    }

    /// The most a call can be charged ([`PricingRule::payable`] of its
    /// worst case): its hold.
    pub fn max_payable(
        &self,
        price: &Price,
        max_prompt_tokens: i64,
        max_completion_tokens: i64,
    ) -> i64 {
        match self.byok_fee_percent {
            Some(fee) => byok_charge(
                max_charge_for(self.mode, price, max_prompt_tokens, max_completion_tokens),
                fee,
            ),
            None => max_marked_up_charge_for(
                self.mode,
                price,
                max_prompt_tokens,
                max_completion_tokens,
                self.markup_percent,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::money::UsdMicros;

    fn price() -> Price {
        Price {
            input_per_mtok: UsdMicros(150_000),
            output_per_mtok: UsdMicros(600_000),
            cached_input_per_mtok: UsdMicros(75_000),
            cache_write_per_mtok: UsdMicros(75_000),
            per_request: UsdMicros(10),
        }
    }

    #[test]
    fn each_mode_charges_its_own_unit() {
        let usage = TokenUsage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        assert_eq!(
            charge_for(BillingMode::Usd, &price(), &usage),
            150 + 60 + 10
        );
        assert_eq!(charge_for(BillingMode::Tokens, &price(), &usage), 1_100);
        assert_eq!(charge_for(BillingMode::Requests, &price(), &usage), 1);
    }

    #[test]
    fn byok_charge_is_the_fee_share_rounded_up() {
        assert_eq!(byok_charge(1_000, 0), 0);
        assert_eq!(byok_charge(1_000, 5), 50);
        assert_eq!(byok_charge(1_001, 5), 51); // 50.05 → 51
        assert_eq!(byok_charge(1, 1), 1);
        assert_eq!(byok_charge(220, 100), 220);
        assert_eq!(byok_charge(0, 50), 0);
        assert_eq!(byok_charge(-5, 50), 0);
        assert_eq!(byok_charge(i64::MAX, 100), i64::MAX);
    }

    #[test]
    fn byok_charge_of_the_maximum_covers_the_byok_charge_of_the_real_cost() {
        for fee in [0, 1, 7, 50, 100] {
            for (real, most) in [(0, 10), (9, 10), (123, 456), (1, 1)] {
                assert!(byok_charge(most, fee) >= byok_charge(real, fee));
            }
        }
    }

    #[test]
    fn without_markup_the_charge_is_the_list_cost() {
        for usage in [
            TokenUsage {
                prompt_tokens: 1_000,
                completion_tokens: 100,
                cached_prompt_tokens: 300,
                cache_write_tokens: 0,
            },
            TokenUsage {
                prompt_tokens: 7,
                completion_tokens: 3,
                cached_prompt_tokens: 0,
                cache_write_tokens: 0,
            },
        ] {
            assert_eq!(
                marked_up_charge_for(BillingMode::Usd, &price(), &usage, 0),
                price().cost(&usage).0
            );
        }
    }

    #[test]
    fn markup_multiplies_the_exact_cost_and_rounds_up_once() {
        let usage = TokenUsage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        // List: 150 + 60 + 10 = 220 micro-dollars.
        assert_eq!(
            marked_up_charge_for(BillingMode::Usd, &price(), &usage, 50),
            330
        );
        assert_eq!(
            marked_up_charge_for(BillingMode::Usd, &price(), &usage, 1000),
            2_420
        );
        // 220 × 1.07 = 235.4 → 236.
        assert_eq!(
            marked_up_charge_for(BillingMode::Usd, &price(), &usage, 7),
            236
        );
        // 7 prompt tokens at 0.15 USD/Mtok = 1.05 micro-dollars (list: 2 + 10 = 12).
        // With 10 %: (1.05 + 10) × 1.1 = 12.155 → 13; rounding the list cost
        // first and then marking it up would give 12 × 1.1 = 13.2 → 14.
        let small = TokenUsage {
            prompt_tokens: 7,
            completion_tokens: 0,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        assert_eq!(
            marked_up_charge_for(BillingMode::Usd, &price(), &small, 10),
            13
        );
        assert_eq!(
            marked_up_charge_for(BillingMode::Usd, &price(), &small, 0),
            12
        );
    }

    #[test]
    fn markup_does_not_apply_to_tokens_or_requests() {
        let usage = TokenUsage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        assert_eq!(
            marked_up_charge_for(BillingMode::Tokens, &price(), &usage, 500),
            1_100
        );
        assert_eq!(
            marked_up_charge_for(BillingMode::Requests, &price(), &usage, 500),
            1
        );
    }

    #[test]
    fn a_marked_up_hold_covers_the_marked_up_charge() {
        let usage = TokenUsage {
            prompt_tokens: 700,
            completion_tokens: 300,
            cached_prompt_tokens: 200,
            cache_write_tokens: 0,
        };
        for markup in [0, 1, 33, 100, 1000] {
            assert!(
                max_marked_up_charge_for(BillingMode::Usd, &price(), 700, 300, markup)
                    >= marked_up_charge_for(BillingMode::Usd, &price(), &usage, markup)
            );
        }
    }

    #[test]
    fn the_rule_charges_byok_calls_the_fee_only_and_others_the_markup() {
        let usage = TokenUsage {
            prompt_tokens: 1_000,
            completion_tokens: 100,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        let platform = PricingRule {
            mode: BillingMode::Usd,
            markup_percent: 50,
            byok_fee_percent: None,
        };
        let byok = PricingRule {
            byok_fee_percent: Some(10),
            ..platform
        };
        assert_eq!(platform.payable(&price(), &usage), 330);
        assert_eq!(byok.payable(&price(), &usage), 22);
        for rule in [platform, byok] {
            assert!(rule.max_payable(&price(), 1_000, 100) >= rule.payable(&price(), &usage));
        }
    }

    #[test]
    fn maximum_is_never_below_the_real_charge() {
        let usage = TokenUsage {
            prompt_tokens: 700,
            completion_tokens: 300,
            cached_prompt_tokens: 200,
            cache_write_tokens: 0,
        };
        for mode in [BillingMode::Usd, BillingMode::Tokens, BillingMode::Requests] {
            assert!(max_charge_for(mode, &price(), 700, 300) >= charge_for(mode, &price(), &usage));
        }
    }
}
