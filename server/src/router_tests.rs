//! The route tables and layers without a CA: statuses, headers and bodies of the routes that
//! need no worker, the portal behind the server's routes, and a panicking handler.

use std::sync::mpsc::Receiver;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use hyper::Request;

use super::*;
use crate::{Limits, Routes, cache, docs, metrics};

fn state() -> Arc<State> {
    state_with(Routes::from_config(&hljca_core::Config::new(
        hljca_core::KeyStore::File,
    )))
}

fn state_with(routes: Routes) -> Arc<State> {
    let portal = hljca_portal::Portal::new(
        hljca_portal::PortalConfig {
            policies: hljca_policies::PolicySet::builtin().unwrap(),
            gateway_secret: None,
            secure_cookies: false,
            font: None,
            test_hooks: false,
            sso: None,
        },
        hljca_portal::CaHandle::new(|_| false),
    );
    let doc = |der: &[u8]| {
        docs::Doc::new(
            der.to_vec(),
            "application/pkix-cert",
            time::OffsetDateTime::UNIX_EPOCH,
            None,
        )
    };
    Arc::new(State {
        cache: cache::Cache::default(),
        crl: RwLock::new(None),
        issuing: doc(b"issuing"),
        root: doc(b"root"),
        routes,
        metrics: metrics::Metrics::default(),
        limits: Limits {
            request_timeout: Duration::from_secs(2),
            max_body_bytes: 1024,
            max_connections: 4,
            shutdown_grace: Duration::from_secs(1),
        },
        parser: OnceLock::new(),
        portal,
    })
}

fn ctx() -> (Ctx, Receiver<Job>) {
    let (jobs, rx) = std::sync::mpsc::sync_channel(4);
    (Ctx { st: state(), jobs }, rx)
}

#[tokio::test]
async fn ocsp_at_the_root_of_the_host_takes_every_other_path() {
    let (jobs, _rx) = std::sync::mpsc::sync_channel(4);
    let routes = Routes {
        crl: "/crl/{issuing}.crl".into(),
        issuing: "/ca/issuing.cer".into(),
        root: "/ca/root.cer".into(),
        ocsp: String::new(),
    };
    let app = public(Ctx {
        st: state_with(routes),
        jobs,
    });
    let (code, _, body) = call(&app, req("GET", "/crl/{issuing}.crl")).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no CRL yet\n")
    );
    assert_eq!(call(&app, req("GET", "/metrics")).await.0, StatusCode::OK);
    let post = Request::post("/")
        .header(header::CONTENT_TYPE, "application/ocsp-request")
        .body(Body::from(vec![0x30, 0]))
        .unwrap();
    for r in [
        req("GET", "/"),
        req("GET", "/MAA%3D"),
        req("GET", "/login"),
        post,
    ] {
        let (code, h, _) = call(&app, r).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/ocsp-response");
    }
    assert_eq!(
        call(&app, req("POST", "/login")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn req(method: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap()
}

async fn boom() -> &'static str {
    panic!("boom")
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_next_request_is_served() {
    let st = state();
    let app = layers(
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" })),
        st.clone(),
        Side::Public,
    );
    let (code, h, body) = call(&app, req("GET", "/boom")).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "internal server error\n");
    assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    let (code, _, body) = call(&app, req("GET", "/fine")).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "fine"));
    let m = st.metrics.render();
    assert!(
        m.contains("hljca_http_requests_total{route=\"other\",code=\"500\"} 1"),
        "{m}"
    );

    // On the API listener the panic is the API's JSON error.
    let api = layers(Router::new().route("/boom", get(boom)), st, Side::Api);
    let (code, _, body) = call(&api, req("GET", "/boom")).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["rule"], "internal");
}

#[tokio::test]
async fn slow_handlers_time_out_with_the_listeners_own_errors() {
    let st = state();
    let slow = || {
        Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
    };
    let app = layers(slow(), st.clone(), Side::Public);
    let (code, _, body) = call(&app, req("GET", "/slow")).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n")
    );
    let api = layers(slow(), st, Side::Api);
    let (code, _, body) = call(&api, req("GET", "/slow")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"rule\":\"request-timeout\""), "{body}");
}

#[tokio::test]
async fn the_public_table() {
    let (ctx, _rx) = ctx();
    let app = public(ctx.clone());
    // CA certificates with their caching headers, and 304 on the entity tag.
    let (code, h, body) = call(&app, req("GET", "/ca/root.cer")).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "root"));
    assert_eq!(h[header::CONTENT_TYPE], "application/pkix-cert");
    assert!(
        h[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=86400")
    );
    assert!(h.contains_key(header::ETAG) && h.contains_key(header::LAST_MODIFIED));
    let mut r = req("GET", "/ca/issuing.cer");
    r.headers_mut()
        .insert(header::IF_NONE_MATCH, ctx.st.issuing.etag.parse().unwrap());
    assert_eq!(call(&app, r).await.0, StatusCode::NOT_MODIFIED);
    // No CRL yet; methods other than GET and HEAD are 405 with Allow.
    let (code, _, body) = call(&app, req("GET", "/crl/issuing.crl")).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no CRL yet\n")
    );
    let (code, h, body) = call(&app, req("DELETE", "/metrics")).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "GET, HEAD");
    assert_eq!(body, "method DELETE not allowed here\n");
    let (code, h, _) = call(&app, req("GET", "/ocsp")).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "POST");
    // OCSP: the wrong type is 415, a body over the limit 413 (declared or sent).
    let (code, _, _) = call(&app, req("POST", "/ocsp")).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = Request::post("/ocsp")
        .header(header::CONTENT_TYPE, "application/ocsp-request")
        .header(header::CONTENT_LENGTH, "5000")
        .body(Body::from(vec![0u8; 5000]))
        .unwrap();
    let (code, _, body) = call(&app, big).await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body over 1024 bytes\n"
        )
    );
    let chunked = Request::post("/")
        .header(header::CONTENT_TYPE, "application/ocsp-request")
        .body(Body::new(Chunks(
            vec![vec![0u8; 800], vec![0u8; 800]].into_iter(),
        )))
        .unwrap();
    let (code, _, body) = call(&app, chunked).await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body over 1024 bytes\n"
        )
    );
    // Before the worker is up OCSP answers tryLater (an OCSP answer, HTTP 200), GET or POST /.
    for r in [
        req("GET", "/ocsp/MAA%3D"),
        req("GET", "/ocsp/"),
        Request::post("/")
            .header(header::CONTENT_TYPE, "application/ocsp-request")
            .body(Body::from(vec![0x30, 0]))
            .unwrap(),
    ] {
        let (code, h, _) = call(&app, r).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/ocsp-response");
    }
    // The portal behind: its pages with their session cookie, its own 404 and 405 in its
    // areas, the server's plain 404 elsewhere.
    let (code, h, body) = call(&app, req("GET", "/")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("<html lang=\"zh-CN\">"));
    assert!(h[header::SET_COOKIE].to_str().unwrap().contains("HttpOnly"));
    let (code, h, _) = call(&app, req("GET", "/static/nothing")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let (code, h, _) = call(&app, req("PUT", "/login")).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "GET, HEAD, POST");
    let (code, _, body) = call(&app, req("POST", "/login")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, _, body) = call(&app, req("GET", "/nothing/here")).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::NOT_FOUND, "not found\n")
    );
    let m = ctx.st.metrics.render();
    for want in [
        "hljca_http_requests_total{route=\"ca_cert\",code=\"200\"} 1",
        "hljca_http_requests_total{route=\"ocsp_post\",code=\"413\"} 2",
        "hljca_http_requests_total{route=\"ocsp_get\",code=\"200\"} 2",
        "hljca_http_requests_total{route=\"portal\",code=\"404\"} 1",
        "hljca_http_requests_total{route=\"other\",code=\"404\"} 1",
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
}

/// A body sent in chunks, with no declared length.
struct Chunks(std::vec::IntoIter<Vec<u8>>);

impl hyper::body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        let next = self.0.next();
        std::task::Poll::Ready(next.map(|c| Ok(hyper::body::Frame::data(c.into()))))
    }
}
