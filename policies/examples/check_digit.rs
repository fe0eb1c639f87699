//! Completes identifiers with their check character, to make test and example data.
//!
//! ```text
//! cargo run -p hljca-policies --example check_digit -- uscc:91230103MA1CXK7R5 id:23010319850312001 reg:23010000012345
//! ```
//! prints each completed identifier on its own line (`uscc:` takes 17 characters, `id:` 17
//! digits, `reg:` 14 digits).

use hljca_policies::{RegistrationNumber, ResidentId, Uscc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for arg in std::env::args().skip(1) {
        let (kind, body) = arg
            .split_once(':')
            .ok_or("expected uscc:BODY, id:BODY or reg:BODY")?;
        let check = match kind {
            "uscc" => Uscc::check_char(body)?,
            "id" => ResidentId::check_char(body)?,
            "reg" => RegistrationNumber::check_digit(body)?,
            _ => return Err(format!("unknown kind `{kind}`").into()),
        };
        println!("{}{check}", body.to_ascii_uppercase());
    }
    Ok(())
}
