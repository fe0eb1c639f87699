//! `hljca policy list | show`.

use hljca_policies::{CertType, Policy, PolicySet};

use crate::Failure;
use crate::args::{Cli, PolicyCmd};
use crate::output;

fn policies(cli: &Cli) -> Result<PolicySet, Failure> {
    // Works without an initialised home (the built-in types), and honours a home's overrides.
    match super::open_ca(cli) {
        Ok(ca) => Ok(ca.policies().clone()),
        Err(_) => Ok(PolicySet::builtin()?),
    }
}

pub fn run(cli: &Cli, c: &PolicyCmd) -> Result<(), Failure> {
    let set = policies(cli)?;
    match c {
        PolicyCmd::List => {
            let all: Vec<&Policy> = set.iter().collect();
            if cli.json {
                output::json(&serde_json::json!({ "policies": all }))?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|p| {
                        vec![
                            p.cert_type.to_string(),
                            p.name_zh.clone(),
                            p.fees.first.to_string(),
                            p.fees.annual.to_string(),
                            if p.seal.is_some() {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            format!("{} days", p.validity_days),
                        ]
                    })
                    .collect();
                output::table(
                    &["TYPE", "NAME", "FIRST-TIME", "ANNUAL", "E-SEAL", "VALIDITY"],
                    &rows,
                );
            }
        }
        PolicyCmd::Show { cert_type } => {
            let t: CertType = cert_type.parse().map_err(Failure::input)?;
            let p = set.get(t);
            if cli.json {
                output::json(p)?;
            } else {
                println!("{}", toml_like(p)?);
            }
        }
    }
    Ok(())
}

fn toml_like(p: &Policy) -> Result<String, Failure> {
    let v = serde_json::to_value(p)?;
    Ok(serde_json::to_string_pretty(&v)?)
}
