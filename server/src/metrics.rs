//! Counters and latency histograms, rendered in the Prometheus text exposition format
//! (version 0.0.4). Lock-free: every request adds to a few atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// What a request was for (the `route` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// POST /ocsp.
    OcspPost,
    /// GET /ocsp/{base64}.
    OcspGet,
    /// The CRL.
    Crl,
    /// A CA certificate.
    CaCert,
    /// /healthz.
    Health,
    /// /metrics.
    Metrics,
    /// The applicant portal.
    Portal,
    /// The client-certificate API (`/api/v1/…` on `api_listen`).
    Api,
    /// Anything else.
    Other,
}

impl Route {
    const ALL: [Route; 9] = [
        Route::OcspPost,
        Route::OcspGet,
        Route::Crl,
        Route::CaCert,
        Route::Health,
        Route::Metrics,
        Route::Portal,
        Route::Api,
        Route::Other,
    ];
    /// Its place in [`Route::ALL`].
    pub(crate) fn index(self) -> usize {
        route_index(self)
    }

    /// The route at `i` of [`Route::ALL`] (`Other` past its end).
    pub(crate) fn from_index(i: usize) -> Route {
        Route::ALL.get(i).copied().unwrap_or(Route::Other)
    }

    fn name(self) -> &'static str {
        match self {
            Route::OcspPost => "ocsp_post",
            Route::OcspGet => "ocsp_get",
            Route::Crl => "crl",
            Route::CaCert => "ca_cert",
            Route::Health => "healthz",
            Route::Metrics => "metrics",
            Route::Portal => "portal",
            Route::Api => "api",
            Route::Other => "other",
        }
    }
}

/// HTTP status codes counted one by one; the rest are `other`.
const CODES: [u16; 17] = [
    200, 201, 304, 400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 431, 500, 503, 0,
];

/// OCSP answers (the `status` label): certificate statuses and OCSPResponseStatus errors.
pub const OCSP_STATUSES: [&str; 7] = [
    "good",
    "revoked",
    "unknown",
    "malformedRequest",
    "unauthorized",
    "internalError",
    "tryLater",
];

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts `d` in its one bucket (made cumulative when rendered).
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; CODES.len()]; Route::ALL.len()],
    latency: [Histogram; Route::ALL.len()],
    ocsp: [AtomicU64; OCSP_STATUSES.len()],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    connections: AtomicI64,
    /// Gauges set by the CA worker.
    pub(crate) crl_number: AtomicI64,
    pub(crate) crl_next_update: AtomicI64,
    pub(crate) crl_generated: AtomicU64,
    pub(crate) signer_not_after: AtomicI64,
    pub(crate) cache_entries: AtomicI64,
    pub(crate) signed: AtomicU64,
}

fn route_index(r: Route) -> usize {
    Route::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

impl Metrics {
    /// Counts one finished request.
    pub fn request(&self, route: Route, code: u16, took: Duration) {
        let r = route_index(route);
        let c = CODES
            .iter()
            .position(|x| *x == code)
            .unwrap_or(CODES.len() - 1);
        self.requests[r][c].fetch_add(1, Ordering::Relaxed);
        self.latency[r].observe(took);
    }

    /// Counts one OCSP answer by status (see [`OCSP_STATUSES`]).
    pub fn ocsp(&self, status: &str) {
        if let Some(i) = OCSP_STATUSES.iter().position(|s| *s == status) {
            self.ocsp[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a cache lookup.
    pub fn cache(&self, hit: bool) {
        let c = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP hljca_http_requests_total HTTP requests answered, by route and status code.\n\
             # TYPE hljca_http_requests_total counter"
        );
        for (ri, r) in Route::ALL.iter().enumerate() {
            for (ci, code) in CODES.iter().enumerate() {
                let n = load(&self.requests[ri][ci]);
                if n > 0 {
                    let code = match code {
                        0 => "other".to_owned(),
                        c => c.to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "hljca_http_requests_total{{route=\"{}\",code=\"{code}\"}} {n}",
                        r.name()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP hljca_http_request_duration_seconds Time from request to response, by route.\n\
             # TYPE hljca_http_request_duration_seconds histogram"
        );
        for (ri, r) in Route::ALL.iter().enumerate() {
            let h = &self.latency[ri];
            let count = load(&h.count);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bi, b) in BUCKETS.iter().enumerate() {
                cumulative += load(&h.buckets[bi]);
                let _ = writeln!(
                    out,
                    "hljca_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{b}\"}} {cumulative}",
                    r.name(),
                );
            }
            let name = r.name();
            let sum = load(&h.sum_micros) as f64 / 1e6;
            let _ = writeln!(
                out,
                "hljca_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {count}\n\
                 hljca_http_request_duration_seconds_sum{{route=\"{name}\"}} {sum}\n\
                 hljca_http_request_duration_seconds_count{{route=\"{name}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP hljca_ocsp_responses_total OCSP answers, by certificate status or error.\n\
             # TYPE hljca_ocsp_responses_total counter"
        );
        for (i, s) in OCSP_STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "hljca_ocsp_responses_total{{status=\"{s}\"}} {}",
                load(&self.ocsp[i])
            );
        }
        let gauges: [(&str, &str, &str, i64); 9] = [
            (
                "hljca_ocsp_cache_lookups_total{result=\"hit\"}",
                "counter",
                "OCSP answers served from signed responses kept in memory.",
                load(&self.cache_hits) as i64,
            ),
            (
                "hljca_ocsp_cache_lookups_total{result=\"miss\"}",
                "",
                "",
                load(&self.cache_misses) as i64,
            ),
            (
                "hljca_ocsp_cache_entries",
                "gauge",
                "Signed OCSP responses kept in memory.",
                self.cache_entries.load(Ordering::Relaxed),
            ),
            (
                "hljca_ocsp_signatures_total",
                "counter",
                "OCSP responses signed with the OCSP signer key.",
                load(&self.signed) as i64,
            ),
            (
                "hljca_ocsp_signer_not_after_seconds",
                "gauge",
                "notAfter of the OCSP signing certificate (Unix time).",
                self.signer_not_after.load(Ordering::Relaxed),
            ),
            (
                "hljca_crl_number",
                "gauge",
                "Number of the CRL being served.",
                self.crl_number.load(Ordering::Relaxed),
            ),
            (
                "hljca_crl_next_update_seconds",
                "gauge",
                "nextUpdate of the CRL being served (Unix time).",
                self.crl_next_update.load(Ordering::Relaxed),
            ),
            (
                "hljca_crl_generated_total",
                "counter",
                "CRLs this server generated.",
                load(&self.crl_generated) as i64,
            ),
            (
                "hljca_http_connections_open",
                "gauge",
                "Open HTTP connections.",
                self.connections.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, v) in gauges {
            if !kind.is_empty() {
                let base = name.split('{').next().unwrap_or(name);
                let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} {kind}");
            }
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request(Route::OcspPost, 200, Duration::from_micros(300));
        m.request(Route::OcspPost, 200, Duration::from_millis(30));
        m.request(Route::Other, 404, Duration::from_micros(10));
        m.request(Route::Other, 418, Duration::from_micros(10));
        m.ocsp("good");
        m.ocsp("malformedRequest");
        m.cache(true);
        let text = m.render();
        assert!(text.contains("hljca_http_requests_total{route=\"ocsp_post\",code=\"200\"} 2"));
        assert!(text.contains("hljca_http_requests_total{route=\"other\",code=\"other\"} 1"));
        assert!(text.contains(
            "hljca_http_request_duration_seconds_bucket{route=\"ocsp_post\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "hljca_http_request_duration_seconds_bucket{route=\"ocsp_post\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("hljca_ocsp_responses_total{status=\"good\"} 1"));
        assert!(text.contains("hljca_ocsp_responses_total{status=\"malformedRequest\"} 1"));
        assert!(text.contains("hljca_ocsp_cache_lookups_total{result=\"hit\"} 1"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }
}
