//! Validity periods, computed in one place: end-entity certificates (the policy's days, never
//! past the issuing CA's notAfter) and CA certificates (calendar years).

use time::{Date, Duration, Month, OffsetDateTime};

/// A certificate's validity as it was signed: the one conversion of its ASN.1 times (UTCTime or
/// GeneralizedTime, RFC 5280 §4.1.2.5) into UTC date-times.
pub fn of_certificate(c: &x509_parser::certificate::X509Certificate<'_>) -> Validity {
    Validity {
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
        clamped: false,
    }
}

/// An end-entity validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Set when the policy's period would have outlived the issuing CA: notAfter was cut to it.
    pub clamped: bool,
}

/// `days` from `start`, cut at `issuing_not_after` (a certificate may not outlive its issuer,
/// RFC 5280 section 6.1.3 would reject it once the CA expires). Whole seconds: X.509 has no more.
pub fn end_entity(start: OffsetDateTime, days: u32, issuing_not_after: OffsetDateTime) -> Validity {
    let not_before = start.replace_nanosecond(0).unwrap_or(start);
    let wanted = not_before + Duration::days(i64::from(days));
    let clamped = wanted > issuing_not_after;
    Validity {
        not_before,
        not_after: if clamped { issuing_not_after } else { wanted },
        clamped,
    }
}

/// A renewal's validity: from `start` (the renewal) to `days` after the renewed certificate's
/// notAfter when that is still ahead — the year paid for is kept — else `days` after `start`;
/// cut at `issuing_not_after`.
pub fn renewal(
    start: OffsetDateTime,
    old_not_after: OffsetDateTime,
    days: u32,
    issuing_not_after: OffsetDateTime,
) -> Validity {
    let from = end_entity(start, 0, issuing_not_after);
    let base = old_not_after.max(from.not_before);
    let wanted = base + Duration::days(i64::from(days));
    let clamped = wanted > issuing_not_after;
    Validity {
        not_before: from.not_before,
        not_after: if clamped { issuing_not_after } else { wanted },
        clamped,
    }
}

/// `years` calendar years after `start` (29 February becomes 28 February in a common year).
pub fn add_years(start: OffsetDateTime, years: u32) -> OffsetDateTime {
    let d = start.date();
    let year = d.year() + years as i32;
    let date = Date::from_calendar_date(year, d.month(), d.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .unwrap_or(d);
    start.replace_date(date)
}

/// A CA certificate's validity: `years` calendar years from `start`.
pub fn ca(start: OffsetDateTime, years: u32) -> (OffsetDateTime, OffsetDateTime) {
    let nb = start.replace_nanosecond(0).unwrap_or(start);
    (nb, add_years(nb, years))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ca_lifetimes_are_calendar_years() {
        let (nb, na) = ca(datetime!(2026-11-30 17:00:00.123 UTC), 20);
        assert_eq!(nb, datetime!(2026-11-30 17:00:00 UTC));
        assert_eq!(na, datetime!(2046-11-30 17:00:00 UTC));
        // 365 * 20 days would end 5 days early (leap days).
        assert_eq!((na - nb).whole_days(), 365 * 20 + 5);
        assert_eq!(
            add_years(datetime!(2028-02-29 00:00 UTC), 1),
            datetime!(2029-02-28 00:00 UTC)
        );
    }

    #[test]
    fn a_renewal_keeps_the_days_paid_for() {
        let far = datetime!(2036-01-01 00:00 UTC);
        // Renewed on 2027-09-15, valid to 2027-11-30: the new year runs from 2027-11-30.
        let v = renewal(
            datetime!(2027-09-15 00:00 UTC),
            datetime!(2027-11-30 00:00 UTC),
            365,
            far,
        );
        assert_eq!(v.not_before, datetime!(2027-09-15 00:00 UTC));
        assert_eq!(v.not_after, datetime!(2028-11-29 00:00 UTC));
        // Already lapsed: a year from now.
        let v = renewal(
            datetime!(2027-12-10 00:00 UTC),
            datetime!(2027-11-30 00:00 UTC),
            365,
            far,
        );
        assert_eq!(v.not_after, datetime!(2028-12-09 00:00 UTC));
        // Never past the issuing CA.
        let v = renewal(
            datetime!(2027-09-15 00:00 UTC),
            datetime!(2027-11-30 00:00 UTC),
            365,
            datetime!(2028-01-01 00:00 UTC),
        );
        assert!(v.clamped);
    }

    #[test]
    fn end_entity_is_cut_at_the_issuing_ca() {
        let ca_end = datetime!(2027-06-01 00:00 UTC);
        let v = end_entity(datetime!(2026-11-30 00:00 UTC), 365, ca_end);
        assert!(v.clamped);
        assert_eq!(v.not_after, ca_end);
        let v = end_entity(
            datetime!(2026-11-30 00:00 UTC),
            365,
            datetime!(2036-01-01 00:00 UTC),
        );
        assert!(!v.clamped);
        assert_eq!(v.not_after, datetime!(2027-11-30 00:00 UTC));
    }
}
