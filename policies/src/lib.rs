//! `hljca-policies`: the certificate types of the Heilongjiang CA as data, and the validation of
//! applicant data against them.
//!
//! This crate owns
//! - the seven certificate types ([`CertType`]) and their policies ([`Policy`]): names, applicant
//!   fields, subject template, key algorithm, key usages, policy OID suffixes, validity, the
//!   electronic-seal profile, fees ([`Fen`]) and counter materials. Each policy is one TOML file
//!   under `policies/types/<key>.toml`, embedded with `include_str!` and replaceable from an
//!   override directory ([`PolicySet::load`]);
//! - applicant-data validation ([`Policy::validate`]), which collects every field error at once;
//! - the identifiers the application forms carry, as checked newtypes with their check digits:
//!   [`Uscc`] (GB 32100-2015), [`RegistrationNumber`] (15-digit business-licence registration
//!   number, ISO 7064 MOD 11,10), [`ResidentId`] (GB 11643-1999) and [`Mobile`].
//!
//! The crate is pure: it does no I/O except reading an override directory, and never prints.
#![forbid(unsafe_code)]

mod applicant;
mod cert_type;
mod error;
mod fen;
mod ids;
mod policy;
mod policy_check;
mod policy_set;
mod validate;

pub use applicant::{Applicant, FieldError, ValidatedApplicant, ValidationErrors};
pub use cert_type::CertType;
pub use error::PolicyError;
pub use fen::Fen;
pub use ids::{
    IdError, Mobile, OrgId, RegistrationNumber, ResidentId, Uscc, check_name, is_invisible,
};
pub use policy::{
    CertProfile, ExtKeyUsage, Fees, FieldKind, FieldSpec, IdentifierExtensions, KeyAlgorithm,
    KeyUsage, Material, Policy, SealProfile, SealType, SubjectTemplate,
};
pub use policy_set::PolicySet;
