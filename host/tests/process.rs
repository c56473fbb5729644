//! The `fabrikam` binary: config validation before binding, and SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use runtime::telemetry::startup::Phase;
use runtime::testing::metrics::sample;

fn fabrikam() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fabrikam"));
    c.arg("dev")
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG");
    c
}

/// `fabrikam dev` on ports the OS picks, and its log lines.
fn spawn_dev_on_free_ports() -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = fabrikam()
        .env("DEV_GATEWAY_PORT", "0")
        .env("DEV_FIRST_FUNCTION_PORT", "0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, BufReader::new(stdout).lines())
}

#[test]
fn bad_config_names_every_variable_and_binds_nothing() {
    let out = fabrikam()
        .env("DEV_GATEWAY_PORT", "eighty")
        .env("DRONE_FLEET_SIZE", "0")
        .env("DELIVERY_SERVICE_URL", "not a url")
        .env("SHUTDOWN_GRACE_SECONDS", "-1")
        .env("REDIS_URL", "http://:hunter2@cache:6379")
        .env("MONGODB_URI", "mongo://user:hunter2@db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for var in [
        "DEV_GATEWAY_PORT",
        "DRONE_FLEET_SIZE",
        "DELIVERY_SERVICE_URL",
        "SHUTDOWN_GRACE_SECONDS",
        "REDIS_URL",
        "MONGODB_URI",
    ] {
        assert!(stderr.contains(var), "{var} missing from: {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "a password leaked: {stderr}");
}

#[test]
fn unknown_commands_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_fabrikam"))
        .arg("deploy")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[cfg(unix)]
#[test]
fn sigterm_drains_and_exits_zero() {
    let (mut child, mut lines) = spawn_dev_on_free_ports();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ready = false;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains("queue trigger receiving") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the system did not start");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("draining")), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("\"stopped\"") || l.contains("stopped")),
        "{rest:?}"
    );
}

/// `GET path` on `addr` with a bare HTTP/1.0 request; the response body.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The `fabrikam_startup_phase_seconds` samples in a metrics page, by phase.
fn startup_phases(metrics: &str) -> std::collections::HashMap<String, f64> {
    Phase::ALL
        .iter()
        .filter_map(|phase| {
            let labels = [("phase", phase.label())];
            let at = sample(metrics, "fabrikam_startup_phase_seconds", &labels)?;
            Some((phase.label().to_owned(), at))
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn a_fresh_start_reports_monotone_startup_phases_per_function() {
    let (mut child, mut lines) = spawn_dev_on_free_ports();
    let mut addrs = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["message"] == "HTTP trigger listening" {
            let function = v["function"].as_str().unwrap().to_owned();
            addrs.insert(function, v["addr"].as_str().unwrap().to_owned());
        }
        if v["message"] == "queue trigger receiving" {
            break;
        }
    }
    assert_eq!(addrs.len(), 5, "{addrs:?}");
    let order = [
        "config_loaded",
        "secrets_loaded",
        "app_built",
        "triggers_ready",
    ];
    for (function, addr) in &addrs {
        let phases = startup_phases(&get(addr, "/metrics"));
        let mut last = 0.0;
        for phase in order {
            let at = *phases
                .get(phase)
                .unwrap_or_else(|| panic!("{function}: no {phase} in {phases:?}"));
            assert!(at > 0.0 && at >= last, "{function}: {phase} {phases:?}");
            last = at;
        }
        assert!(
            !phases.contains_key("first_handled"),
            "{function}: probes and /metrics are not a first request: {phases:?}"
        );
    }

    let delivery = &addrs["delivery"];
    get(delivery, "/api/deliveries/nobody");
    let phases = startup_phases(&get(delivery, "/metrics"));
    assert!(
        phases["first_handled"] >= phases["triggers_ready"],
        "{phases:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `POST path` with a JSON body and extra headers on `addr`, HTTP/1.0; the status code.
fn post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> u16 {
    use std::io::{Read, Write};
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

#[cfg(unix)]
#[test]
fn one_delivery_is_one_trace_in_the_logs_of_all_five_functions() {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut child = fabrikam()
        .env("DEV_GATEWAY_PORT", "0")
        .env("DEV_FIRST_FUNCTION_PORT", "0")
        // Request lines are debug-level in the runtime; the rest stays at info.
        .env("RUST_LOG", "info,runtime=debug")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut gateway, mut receiving) = (None, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (gateway.is_none() || !receiving) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("gateway listening"))
        {
            gateway = v["addr"].as_str().map(str::to_owned);
        }
        receiving |= v["message"] == "queue trigger receiving";
    }
    let gateway = gateway.expect("the gateway's address is logged");
    let body = include_str!("../../functions/ingestion/tests/fixtures/delivery_request.json");
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let status = post(
        &gateway,
        "/api/deliveryrequests",
        body,
        &[("traceparent", &traceparent)],
    );
    assert_eq!(status, 202);

    let all = [
        "ingestion",
        "workflow",
        "delivery",
        "package",
        "dronescheduler",
    ];
    // Read on a thread, so waiting for a line that never comes still ends at the deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut other_traces = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < all.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let (Some(function), Some(trace)) = (v["function"].as_str(), v["trace_id"].as_str()) else {
            continue;
        };
        if trace == TRACE_ID {
            seen.insert(function.to_owned());
        } else if !trace.is_empty() {
            other_traces.push(line.clone());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    let mut want = all.to_vec();
    want.sort_unstable();
    assert_eq!(seen, want, "functions whose logs carry the trace");
    assert!(
        other_traces.is_empty(),
        "lines of this delivery in another trace: {other_traces:#?}"
    );
}
