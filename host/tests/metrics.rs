//! Every function's `/metrics` page passes `promtool check metrics`, Prometheus's own
//! linter (the Debian `prometheus` package, which `scripts/services` installs), after a
//! delivery went through so the histograms and labelled series have samples; and
//! `docs/METRICS.md` and the Grafana dashboard name only metrics that exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};

use support::{eventually, raw_get, request_sample_delivery, start_local};

fn promtool_check(page: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/services installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

#[tokio::test]
async fn every_functions_metrics_pass_promtool_check_metrics() {
    let (shutdown, system, gw) = start_local().await;
    let id = request_sample_delivery(&gw).await;
    eventually(&gw, &format!("/api/deliveries/{id}"), |d| {
        d["droneId"].is_string()
    })
    .await;

    let mut served = BTreeSet::new();
    for f in &system.functions {
        let page = raw_get(f.local_addr(), "/metrics").await;
        served.extend(families(&page.body));
        assert_eq!(page.status, 200, "{}", f.name());
        assert!(
            page.body.contains("fabrikam_startup_phase_seconds"),
            "{}: {}",
            f.name(),
            page.body
        );
        let (clean, said) = promtool_check(&page.body);
        assert!(clean, "{}: promtool check metrics said:\n{said}", f.name());
    }
    shutdown.trigger();
    system.stopped().await;

    let named = metric_names(METRICS_DOC);
    let documented: BTreeSet<String> = named.iter().map(|n| family_of(n, &named)).collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/METRICS.md: {undocumented:?}"
    );
    for name in &documented {
        let bare = name.trim_start_matches("fabrikam_");
        assert!(
            METRICS_SOURCE.contains(&format!("\"{bare}\"")),
            "docs/METRICS.md names {name}, which the runtime does not register"
        );
    }
    let charted: BTreeSet<String> = metric_names(DASHBOARD)
        .into_iter()
        .map(|n| family_of(&n, &documented))
        .collect();
    let unknown: Vec<_> = charted.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries unknown metrics: {unknown:?}"
    );
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
}

const METRICS_DOC: &str = include_str!("../../docs/METRICS.md");
const DASHBOARD: &str = include_str!("../../docs/grafana/fabrikam-functions.json");
const METRICS_SOURCE: &str = include_str!("../../runtime/src/telemetry/metrics.rs");

/// The metric families a page declares (`# TYPE <name> <kind>`).
fn families(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Every `fabrikam_...` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.match_indices("fabrikam_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| n.len() > "fabrikam_".len())
        .collect()
}

/// A histogram's series name (`..._bucket`, `_sum`, `_count`) to its family.
fn family_of(name: &str, known: &BTreeSet<String>) -> String {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|base| known.contains(*base))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| name.to_owned())
}

#[test]
fn promtool_would_catch_a_malformed_page() {
    let (clean, said) = promtool_check("# TYPE requests counter\nrequests 1\n");
    assert!(!clean, "a counter without _total is a lint problem: {said}");
}
