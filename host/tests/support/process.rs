//! Driving the `fabrikam` binary: its log lines, and bare HTTP/1.0 requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Instant;

/// A child's stdout lines, read on a thread so a wait for a line that never comes still
/// ends at its deadline.
pub struct Lines(Receiver<String>);

impl Lines {
    pub fn of(child: &mut Child) -> Self {
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self(rx)
    }

    /// The next line, or `None` once `deadline` has passed or the child closed stdout.
    pub fn next_before(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.0.recv_timeout(left).ok()
    }

    /// Every line until the child closes stdout or `deadline` passes.
    pub fn rest_before(&self, deadline: Instant) -> Vec<String> {
        std::iter::from_fn(|| self.next_before(deadline)).collect()
    }
}

/// Starts `command` (a `fabrikam dev`) on ports the OS picks; the child and its log lines.
pub fn spawn_dev(mut command: Command) -> (Child, Lines) {
    let mut child = command
        .env("DEV_GATEWAY_PORT", "0")
        .env("DEV_INTERNAL_PORT", "0")
        .env("DEV_FIRST_FUNCTION_PORT", "0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    (child, lines)
}

/// Waits for the system to be up (the gateway listening and the queue trigger receiving);
/// the gateway's address.
pub fn wait_for_gateway(lines: &Lines, deadline: Instant) -> Option<String> {
    let (mut gateway, mut receiving) = (None, false);
    while gateway.is_none() || !receiving {
        let line = lines.next_before(deadline)?;
        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
        if v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("gateway listening"))
        {
            gateway = v["addr"].as_str().map(str::to_owned);
        }
        receiving |= v["message"] == "queue trigger receiving";
    }
    gateway
}

/// `GET path` on `addr` with a bare HTTP/1.0 request; the response body.
pub fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// `POST path` with a JSON body and extra headers on `addr`, HTTP/1.0; the status code.
pub fn post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends the sample delivery request to the gateway as a caller in trace `traceparent`;
/// the status code.
pub fn post_traced_delivery(gateway: &str, traceparent: &str) -> u16 {
    let body = include_str!("../../../functions/ingestion/tests/fixtures/delivery_request.json");
    post(
        gateway,
        "/api/deliveryrequests",
        body,
        &[("traceparent", traceparent)],
    )
}
