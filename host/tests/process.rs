//! The `fabrikam` binary: config validation before binding, and SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use runtime::telemetry::startup::Phase;
use runtime::testing::metrics::sample;
use support::process::{Lines, get, post_traced_delivery, spawn_dev, wait_for_gateway};

mod support;

fn fabrikam() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fabrikam"));
    c.arg("dev")
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG");
    c
}

/// `fabrikam dev` on ports the OS picks, and its log lines.
fn spawn_dev_on_free_ports() -> (Child, Lines) {
    spawn_dev(fabrikam())
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
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("usage")
    );
}

/// The functions a request under `prefix` reaches, from the declarations: the function
/// serving it, then every queue consumer and callee along its outputs.
fn reached_by(prefix: &str) -> Vec<String> {
    use runtime::deploy::Output;
    let declarations: Vec<_> = host::functions().iter().map(|f| f.deployment()).collect();
    let serves = |d: &runtime::deploy::Deployment| {
        d.http_trigger()
            .is_some_and(|(prefixes, _)| prefixes.iter().any(|p| p == prefix))
    };
    let mut reached: Vec<String> = declarations
        .iter()
        .filter(|d| serves(d))
        .map(|d| d.name.clone())
        .collect();
    let mut i = 0;
    while i < reached.len() {
        let d = declarations.iter().find(|d| d.name == reached[i]).unwrap();
        for output in &d.outputs {
            let next: Vec<String> = match output {
                Output::Function { name, .. } => vec![name.clone()],
                Output::Queue { queue } => declarations
                    .iter()
                    .filter(|c| c.queue_trigger() == Some(queue.as_str()))
                    .map(|c| c.name.clone())
                    .collect(),
                _ => Vec::new(),
            };
            for name in next {
                if !reached.contains(&name) {
                    reached.push(name);
                }
            }
        }
        i += 1;
    }
    reached
}

#[cfg(unix)]
#[test]
fn sigterm_drains_and_exits_zero() {
    let (mut child, lines) = spawn_dev_on_free_ports();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ready = false;
    while let Some(line) = lines.next_before(deadline) {
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
    let rest = lines.rest_before(Instant::now() + Duration::from_secs(30));
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("draining")), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("\"stopped\"") || l.contains("stopped")),
        "{rest:?}"
    );
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
    let (mut child, lines) = spawn_dev_on_free_ports();
    let mut addrs = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(line) = lines.next_before(deadline) {
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

#[cfg(unix)]
#[test]
fn one_delivery_is_one_trace_in_the_logs_of_all_five_functions() {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut command = fabrikam();
    // Request lines are debug-level in the runtime; the rest stays at info.
    command.env("RUST_LOG", "info,runtime=debug");
    let (mut child, lines) = spawn_dev(command);
    let deadline = Instant::now() + Duration::from_secs(10);
    let gateway = wait_for_gateway(&lines, deadline).expect("the system starts");
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    assert_eq!(post_traced_delivery(&gateway, &traceparent), 202);

    let all = reached_by("/api/deliveryrequests");
    let mut seen = std::collections::BTreeSet::new();
    let mut other_traces = Vec::new();
    let mut delivery_ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < all.len() {
        let Some(line) = lines.next_before(deadline) else {
            break;
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let (Some(function), Some(trace)) = (v["function"].as_str(), v["trace_id"].as_str()) else {
            continue;
        };
        if trace == TRACE_ID {
            seen.insert(function.to_owned());
            // The package function is only told a package id; every other function's
            // lines of this delivery name it.
            if function != "package" {
                delivery_ids.push((function.to_owned(), v["delivery_id"].clone()));
            }
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
    let first = &delivery_ids[0].1;
    assert!(first.is_string(), "{delivery_ids:#?}");
    assert!(
        delivery_ids.iter().all(|(_, id)| id == first),
        "lines without the delivery id: {delivery_ids:#?}"
    );
}
