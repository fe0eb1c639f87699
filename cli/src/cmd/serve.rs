//! `hljca serve`: the OCSP responder and CRL / CA certificate publication (`hljca-server`).
//!
//! The first line on stdout is `listening on http://ADDRESS` (the real port when `--listen`
//! asked for port 0), then one line per published URL; logs go to stderr (`-v` for one line
//! per request).

use std::io::Write;

use hljca_core::operators::Role;

use crate::Failure;
use crate::args::{Cli, ServeArgs};
use crate::secrets;

pub fn run(cli: &Cli, a: &ServeArgs) -> Result<(), Failure> {
    let ca = super::open_ca_login(cli)?;
    // The server regenerates CRLs and renews its OCSP signing certificate.
    ca.require(Role::CaAdmin, "serve")?;
    let mut s = secrets::gather(cli)?;
    let module = super::ca_key_module(cli, &ca, &mut s)?;
    hljca_server::run(
        ca,
        module,
        s,
        a.listen.as_deref(),
        a.api_listen.as_deref(),
        |b| {
            let base = format!("http://{}", b.addr);
            let r = &b.routes;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {base}");
            let _ = writeln!(
                out,
                "ocsp        {base}{} (POST, or GET {0}/BASE64)",
                r.ocsp
            );
            let _ = writeln!(out, "crl         {base}{}", r.crl);
            let _ = writeln!(out, "issuing ca  {base}{}", r.issuing);
            let _ = writeln!(out, "root ca     {base}{}", r.root);
            let _ = writeln!(out, "health      {base}/healthz, metrics {base}/metrics");
            if let Some(api) = b.api_addr {
                let _ = writeln!(
                    out,
                    "api         https://{api}/api/v1/certificates (client certificate: an operator's)"
                );
            }
            let _ = out.flush();
            for u in &b.outside_base {
                tracing::warn!(
                    "{u} is not under [serve] public_base_url; it is served at its path all the same"
                );
            }
        },
    )?;
    Ok(())
}
