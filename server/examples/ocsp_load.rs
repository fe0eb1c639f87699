//! A bounded OCSP load generator for `bench/ocsp.sh` (not a test): POSTs DER OCSP requests
//! from files to one responder on this machine and reports answers per second and latency
//! percentiles. Plain std: threads, blocking sockets and HTTP/1.1 by hand.
//!
//! ```text
//! ocsp_load --target 127.0.0.1:8080 --path /ocsp --threads 8 --seconds 10 --max 200000 \
//!           [--new-connection] req1.der req2.der ...
//! ```
//! Every response must be an OCSPResponse with status `successful`; anything else is counted
//! as an error, and only successful answers count in the rate and the latencies. The run stops at `--seconds` or after `--max` requests, whichever is first.
//! Only loopback targets are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is its report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    target: SocketAddr,
    path: String,
    threads: usize,
    seconds: u64,
    max: u64,
    new_connection: bool,
    requests: Vec<Vec<u8>>,
}

fn args() -> Args {
    let mut a = Args {
        target: "127.0.0.1:8080".parse().unwrap(),
        path: "/ocsp".into(),
        threads: 8,
        seconds: 10,
        max: 200_000,
        new_connection: false,
        requests: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--target" => a.target = val().parse().expect("--target HOST:PORT"),
            "--path" => a.path = val(),
            "--threads" => a.threads = val().parse().expect("--threads N"),
            "--seconds" => a.seconds = val().parse().expect("--seconds N"),
            "--max" => a.max = val().parse().expect("--max N"),
            "--new-connection" => a.new_connection = true,
            file => a
                .requests
                .push(std::fs::read(file).expect("a request file")),
        }
    }
    assert!(a.target.ip().is_loopback(), "only loopback targets");
    assert!(!a.requests.is_empty(), "no request files");
    assert!(a.seconds <= 300 && a.threads <= 256, "bounded runs only");
    a
}

/// One HTTP exchange on `conn` (opened when `None`); returns the body and whether the
/// connection may be used again.
fn exchange(
    conn: &mut Option<BufReader<TcpStream>>,
    target: SocketAddr,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<(Vec<u8>, bool)> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        *conn = Some(BufReader::new(s));
    }
    let r = conn.as_mut().unwrap();
    let mut msg = Vec::with_capacity(head.len() + body.len());
    msg.extend_from_slice(head);
    msg.extend_from_slice(body);
    r.get_mut().write_all(&msg)?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let http10 = line.starts_with("HTTP/1.0");
    if !line.contains(" 200 ") {
        return Err(std::io::Error::other(format!(
            "status line `{}`",
            line.trim()
        )));
    }
    let mut length = None;
    let mut close = http10;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("connection:") {
            close = lower.contains("close");
        }
    }
    let mut out = Vec::new();
    match length {
        Some(n) => {
            out.resize(n, 0);
            r.read_exact(&mut out)?;
        }
        None => {
            r.read_to_end(&mut out)?;
            close = true;
        }
    }
    Ok((out, !close))
}

/// `SEQUENCE { ENUMERATED 0, ... }`: an OCSPResponse with status successful.
fn successful(der: &[u8]) -> bool {
    let skip = match der.get(1) {
        Some(l) if *l < 0x80 => 2,
        Some(l) => 2 + usize::from(*l & 0x7f),
        None => return false,
    };
    der.first() == Some(&0x30) && der.get(skip..skip + 3) == Some(&[0x0a, 0x01, 0x00][..])
}

fn main() {
    let a = Arc::new(args());
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..a.threads)
        .map(|t| {
            let (a, sent, errors) = (a.clone(), sent.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut conn = None;
                let mut i = t;
                while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < a.max {
                    let body = &a.requests[i % a.requests.len()];
                    i += 1;
                    let head = format!(
                        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/ocsp-request\r\n\
                         Content-Length: {}\r\n{}\r\n",
                        a.path,
                        a.target,
                        body.len(),
                        if a.new_connection {
                            "Connection: close\r\n"
                        } else {
                            ""
                        }
                    );
                    let t0 = Instant::now();
                    match exchange(&mut conn, a.target, head.as_bytes(), body) {
                        Ok((resp, reuse)) => {
                            if successful(&resp) {
                                lat.push(t0.elapsed());
                            } else {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            if !reuse || a.new_connection {
                                conn = None;
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            conn = None;
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let took = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    println!(
        "{{\"answers\": {}, \"errors\": {}, \"seconds\": {took:.2}, \"per_second\": {:.0}, \
         \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"threads\": {}, \"new_connection\": {}}}",
        lat.len(),
        errors.load(Ordering::Relaxed),
        lat.len() as f64 / took,
        pct(0.50),
        pct(0.99),
        a.threads,
        a.new_connection
    );
}
