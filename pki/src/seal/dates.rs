//! Conversion between `time::OffsetDateTime` and ASN.1 `UTCTime`.

use der::DateTime;
use der::asn1::UtcTime;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::error::SealError;

/// Converts to `UTCTime` in UTC, truncating sub-seconds. `UTCTime` only covers
/// 1950-2049, and the `der` crate's `DateTime` starts at 1970, so the usable
/// range is 1970-01-01 to 2049-12-31; anything outside is an
/// [`SealError::Encode`] naming `what`.
pub(crate) fn to_utc_time(t: OffsetDateTime, what: &'static str) -> Result<UtcTime, SealError> {
    let t = t.to_offset(UtcOffset::UTC);
    let encode = |source| SealError::Encode { what, source };
    let year = u16::try_from(t.year()).map_err(|_| encode(der::Tag::UtcTime.value_error()))?;
    let dt = DateTime::new(
        year,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .map_err(encode)?;
    UtcTime::from_date_time(dt).map_err(encode)
}

/// Converts a decoded `UTCTime` back to an `OffsetDateTime` in UTC.
pub(crate) fn from_utc_time(u: &UtcTime, what: &str) -> Result<OffsetDateTime, SealError> {
    let dt = u.to_date_time();
    let bad = |e: time::error::ComponentRange| {
        SealError::decode(format!("{what}: invalid date/time: {e}"))
    };
    let month = Month::try_from(dt.month()).map_err(bad)?;
    let date = Date::from_calendar_date(i32::from(dt.year()), month, dt.day()).map_err(bad)?;
    let time = Time::from_hms(dt.hour(), dt.minutes(), dt.seconds()).map_err(bad)?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn round_trip_truncates_and_normalises() {
        let t = datetime!(2025-03-04 05:06:07.891 +08:00);
        let u = to_utc_time(t, "createDate").unwrap();
        let back = from_utc_time(&u, "createDate").unwrap();
        assert_eq!(back, datetime!(2025-03-03 21:06:07 UTC));
    }

    #[test]
    fn range_limits() {
        assert!(to_utc_time(datetime!(1970-01-01 00:00:00 UTC), "x").is_ok());
        assert!(to_utc_time(datetime!(2049-12-31 23:59:59 UTC), "x").is_ok());
        for t in [
            datetime!(2050-01-01 00:00:00 UTC),
            datetime!(1949-12-31 23:59:59 UTC),
            datetime!(1969-12-31 23:59:59 UTC),
            datetime!(-0001-01-01 00:00:00 UTC),
        ] {
            let err = to_utc_time(t, "validEnd").unwrap_err();
            assert!(
                matches!(
                    err,
                    SealError::Encode {
                        what: "validEnd",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }
}
