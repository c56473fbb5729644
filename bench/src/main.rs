//! `fabrikam-bench`: the tools `scripts/bench` drives. Every result is one JSON line on
//! stdout.
//!
//! - `bare PORT FILE`: a bare hyper 1 server answering every request with FILE's bytes as
//!   `application/json`: the baseline the host's overhead is measured against.
//! - `get URL CONNECTIONS SECONDS`: saturating GET load on keep-alive connections.
//! - `e2e GATEWAY SECONDS RATE|sat:CONCURRENCY`: delivery requests at a fixed rate (or as
//!   fast as CONCURRENCY workers go), each timed from its scheduled start until its delivery
//!   is readable through `GET /api/deliveries/public/{id}` (the ingress's route).
//! - `packages BASE PREFIX put|get CONNECTIONS COUNT`: exactly COUNT package PUTs (new ids
//!   `PREFIX-n`) or GETs (of those ids) on keep-alive connections, for a cost per request.
//! - `requests METHOD URL BODY|- CONNECTIONS COUNT`: exactly COUNT requests, `{n}` in the URL
//!   and the JSON body replaced by each request's number; a 2xx is a success (one replica's
//!   capacity, scripts/bench-capacity).
//!
//! Written here rather than taken from `wrk` so both sides of every comparison and the
//! end-to-end runs use one generator, and so fixed-rate latencies are measured from the
//! scheduled send time (no coordinated omission).

mod load;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: fabrikam-bench bare PORT FILE | get URL CONNECTIONS SECONDS | \
                     e2e GATEWAY SECONDS RATE|sat:CONCURRENCY | \
                     packages BASE PREFIX put|get CONNECTIONS COUNT | \
                     requests METHOD URL BODY|- CONNECTIONS COUNT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fabrikam-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["bare", port, file] => bare(port.parse().map_err(|_| "PORT")?, file).await,
            ["get", url, connections, seconds] => {
                let report = load::get(
                    url,
                    connections.parse().map_err(|_| "CONNECTIONS")?,
                    Duration::from_secs(seconds.parse().map_err(|_| "SECONDS")?),
                )
                .await?;
                println!("{report}");
                Ok(())
            }
            ["e2e", gateway, seconds, mode] => {
                let seconds = Duration::from_secs(seconds.parse().map_err(|_| "SECONDS")?);
                let pace = match mode.strip_prefix("sat:") {
                    Some(c) => load::Pace::Saturate(c.parse().map_err(|_| "CONCURRENCY")?),
                    None => load::Pace::Rate(mode.parse().map_err(|_| "RATE")?),
                };
                let report = load::e2e(gateway, seconds, pace).await?;
                println!("{report}");
                Ok(())
            }
            ["packages", base, prefix, op, connections, count] => {
                let op = match *op {
                    "put" => load::PackageOp::Put,
                    "get" => load::PackageOp::Get,
                    _ => return Err("operation (put or get)".into()),
                };
                let report = load::packages(
                    base,
                    prefix,
                    op,
                    connections.parse().map_err(|_| "CONNECTIONS")?,
                    count.parse().map_err(|_| "COUNT")?,
                )
                .await?;
                println!("{report}");
                Ok(())
            }
            ["requests", method, url, body, connections, count] => {
                let run = load::Numbered {
                    method: method.parse().map_err(|_| "METHOD")?,
                    url: (*url).to_owned(),
                    body: (*body != "-").then(|| (*body).to_owned()),
                    expected: None,
                };
                let report = load::numbered(
                    run,
                    connections.parse().map_err(|_| "CONNECTIONS")?,
                    count.parse().map_err(|_| "COUNT")?,
                )
                .await?;
                println!("{report}");
                Ok(())
            }
            _ => Err(load::BenchError(USAGE.to_owned())),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fabrikam-bench: {e}");
            ExitCode::from(2)
        }
    }
}

impl From<&str> for load::BenchError {
    fn from(what: &str) -> Self {
        load::BenchError(format!("bad {what}; {USAGE}"))
    }
}

async fn bare(port: u16, file: &str) -> Result<(), load::BenchError> {
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let body = bytes::Bytes::from(std::fs::read(file).map_err(|e| format!("{file}: {e}"))?);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    println!(
        "{}",
        serde_json::json!({"listening": listener.local_addr().map_err(|e| e.to_string())?.to_string()})
    );
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let body = body.clone();
                async move {
                    hyper::Response::builder()
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(body))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
