//! The `fabrikam` binary: config validation before binding, and SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

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
    metrics
        .lines()
        .filter(|l| l.starts_with("fabrikam_startup_phase_seconds{"))
        .map(|l| {
            let phase = l
                .split("phase=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = l.rsplit(' ').next().unwrap().parse().unwrap();
            (phase.to_owned(), value)
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
    let order = ["config_loaded", "app_built", "triggers_ready"];
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
