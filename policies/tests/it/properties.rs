//! Property tests: computed check characters make valid identifiers; any other is refused.

use hljca_policies::{RegistrationNumber, ResidentId, Uscc};
use proptest::prelude::*;
use time::{Date, Duration};

const ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const PROVINCES: [&str; 36] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82", "83", "91",
];

fn code_char() -> impl Strategy<Value = char> {
    prop::sample::select(ALPHABET.chars().collect::<Vec<_>>())
}

/// A 17-character USCC body: 2 code characters, 6 region digits, 9 code characters.
fn uscc_body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(code_char(), 2),
        "[0-9]{6}",
        prop::collection::vec(code_char(), 9),
    )
        .prop_map(|(a, r, b)| a.into_iter().chain(r.chars()).chain(b).collect())
}

/// A 17-digit resident ID body with a real province and a birth date 1900..=2020.
fn resident_body() -> impl Strategy<Value = String> {
    (
        prop::sample::select(PROVINCES.to_vec()),
        "[0-9]{4}",
        0i64..43_829,
        "[0-9]{3}",
    )
        .prop_map(|(p, r, days, seq)| {
            let base = Date::from_calendar_date(1900, time::Month::January, 1).unwrap();
            let d = base + Duration::days(days);
            format!(
                "{p}{r}{:04}{:02}{:02}{seq}",
                d.year(),
                u8::from(d.month()),
                d.day()
            )
        })
}

proptest! {
    #[test]
    fn uscc_check_char(body in uscc_body(), other in code_char()) {
        let check = Uscc::check_char(&body).unwrap();
        let good = format!("{body}{check}");
        let u = good.parse::<Uscc>().unwrap();
        prop_assert_eq!(u.as_str(), good.as_str());
        if good.chars().any(|c| c.is_ascii_uppercase()) {
            let e = good.to_ascii_lowercase().parse::<Uscc>().unwrap_err();
            prop_assert!(e.problem.contains("lower case"), "{}", e);
        }
        if other != check {
            let e = format!("{body}{other}").parse::<Uscc>().unwrap_err();
            let expected = format!("should be '{check}'");
            prop_assert!(e.problem.contains(&expected), "{}", e);
        }
    }

    #[test]
    fn resident_id_check_char(body in resident_body(), other in prop::sample::select("0123456789X".chars().collect::<Vec<_>>())) {
        let check = ResidentId::check_char(&body).unwrap();
        let good = format!("{body}{check}");
        let id = good.parse::<ResidentId>().unwrap();
        prop_assert_eq!(id.as_str(), good.as_str());
        prop_assert_eq!(id.birth_date().year().to_string(), body[6..10].to_string());
        if check == 'X' {
            prop_assert!(good.to_ascii_lowercase().parse::<ResidentId>().is_err());
        }
        if other != check {
            let e = format!("{body}{other}").parse::<ResidentId>().unwrap_err();
            let expected = format!("should be '{check}'");
            prop_assert!(e.problem.contains(&expected), "{}", e);
        }
    }

    #[test]
    fn registration_number_check_digit(body in "[0-9]{14}", other in 0u32..10) {
        let check = RegistrationNumber::check_digit(&body).unwrap();
        let good = format!("{body}{check}");
        prop_assert!(good.parse::<RegistrationNumber>().is_ok());
        let other = char::from_digit(other, 10).unwrap();
        if other != check {
            let bad = format!("{body}{other}");
            prop_assert!(bad.parse::<RegistrationNumber>().is_err());
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,24}") {
        let _ = s.parse::<Uscc>();
        let _ = s.parse::<ResidentId>();
        let _ = s.parse::<RegistrationNumber>();
        let _ = s.parse::<hljca_policies::OrgId>();
        let _ = s.parse::<hljca_policies::Mobile>();
    }
}
