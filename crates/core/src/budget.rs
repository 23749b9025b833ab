//! API-key budget periods and their UTC boundaries, and the calendar
//! arithmetic they need (no date library: days since the epoch suffice).

use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// How often a key's budget starts over.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// Each UTC day.
    Daily,
    /// Each ISO week, from Monday 00:00 UTC.
    Weekly,
    /// Each calendar month, from the 1st 00:00 UTC.
    Monthly,
    /// Never: the budget is for the key's whole life.
    Total,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Weekly => "weekly",
            BudgetPeriod::Monthly => "monthly",
            BudgetPeriod::Total => "total",
        }
    }

    pub fn parse(s: &str) -> Option<BudgetPeriod> {
        match s {
            "daily" => Some(BudgetPeriod::Daily),
            "weekly" => Some(BudgetPeriod::Weekly),
            "monthly" => Some(BudgetPeriod::Monthly),
            "total" => Some(BudgetPeriod::Total),
            _ => None,
        }
    }

    /// The start (Unix milliseconds) of the period containing `now_ms`; 0
    /// for `total`.
    pub fn start(self, now_ms: i64) -> i64 {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            BudgetPeriod::Daily => day * DAY_MS,
            // 1970-01-01 was a Thursday: Monday is 3 days before it.
            BudgetPeriod::Weekly => (day - (day + 3).rem_euclid(7)) * DAY_MS,
            BudgetPeriod::Monthly => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1) * DAY_MS
            }
            BudgetPeriod::Total => 0,
        }
    }

    /// When the period containing `now_ms` ends (Unix milliseconds); `None`
    /// for `total`.
    pub fn resets_at(self, now_ms: i64) -> Option<i64> {
        let start = self.start(now_ms);
        match self {
            BudgetPeriod::Daily => Some(start + DAY_MS),
            BudgetPeriod::Weekly => Some(start + 7 * DAY_MS),
            BudgetPeriod::Monthly => {
                let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Some(days_from_civil(y, m, 1) * DAY_MS)
            }
            BudgetPeriod::Total => None,
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a day counted from 1970-01-01.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// Days from 1970-01-01 to this date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-02T13:14:15Z, a Wednesday.
    const NOW: i64 = 1_796_217_255_000;

    #[test]
    fn calendar_round_trips() {
        for day in [-800_000, -1, 0, 59, 365, 11_016, 20_789, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(NOW / DAY_MS), "2026-12-02");
    }

    #[test]
    fn periods_start_at_utc_day_iso_week_and_month_boundaries() {
        let day = days_from_civil(2026, 12, 2) * DAY_MS;
        assert_eq!(BudgetPeriod::Daily.start(NOW), day);
        assert_eq!(BudgetPeriod::Daily.resets_at(NOW), Some(day + DAY_MS));
        // The Monday before: 2026-11-30.
        let monday = days_from_civil(2026, 11, 30) * DAY_MS;
        assert_eq!(BudgetPeriod::Weekly.start(NOW), monday);
        assert_eq!(BudgetPeriod::Weekly.start(monday), monday);
        assert_eq!(BudgetPeriod::Weekly.start(monday - 1), monday - 7 * DAY_MS);
        assert_eq!(
            BudgetPeriod::Monthly.start(NOW),
            days_from_civil(2026, 12, 1) * DAY_MS
        );
        assert_eq!(
            BudgetPeriod::Monthly.resets_at(NOW),
            Some(days_from_civil(2027, 1, 1) * DAY_MS)
        );
        assert_eq!(BudgetPeriod::Total.start(NOW), 0);
        assert_eq!(BudgetPeriod::Total.resets_at(NOW), None);
    }
}
