//! Tells the scaler (`SCALER_URL`, the host's KEDA external scaler) how many messages this
//! replica holds, so that KEDA counts work in flight and never scales in a busy replica.
//!
//! A report is `POST <SCALER_URL>/v1/reports` `{"replica", "queue", "inFlight", "last"}`. It is
//! sent at once when the count goes to or from zero, at most every
//! [`ReportOptions::min_gap`] while it moves, and every [`ReportOptions::heartbeat`]
//! regardless, so the scaler can tell a silent replica from an idle one. After the pump
//! has drained, a last report says 0 and `last`: the scaler forgets the replica at once
//! rather than after its report timeout. A failed report is logged and changes nothing
//! else: messages never wait on the scaler.

use std::time::Duration;

use axum::body::Body;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::in_flight::Follower;
use crate::config::EnvReader;

/// The scaler's base URL (`http://fabrikam-scaler`); unset, nothing is reported.
pub const SCALER_URL: &str = "SCALER_URL";
/// This replica's name in reports: the pod's name, from the downward API.
pub const POD_NAME: &str = "POD_NAME";

/// Where and how often to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// `<SCALER_URL>/v1/reports`.
    pub url: String,
    pub replica: String,
    pub heartbeat: Duration,
    pub min_gap: Duration,
}

impl ReportOptions {
    /// Reads `SCALER_URL` and `POD_NAME`; `None` when no scaler is configured. Without
    /// `POD_NAME` (a local process) the replica is named by host name and process id, which
    /// is unique per process.
    pub fn from_env(r: &mut EnvReader<'_>) -> Option<Self> {
        r.raw(SCALER_URL)?;
        let base = r.http_url(SCALER_URL, "http://invalid");
        let replica = r.raw(POD_NAME).unwrap_or_else(|| {
            let host = r.raw("HOSTNAME").unwrap_or_else(|| "local".to_owned());
            format!("{host}-{}", std::process::id())
        });
        Some(Self {
            url: format!("{base}/v1/reports"),
            replica,
            heartbeat: Duration::from_secs(2),
            min_gap: Duration::from_millis(250),
        })
    }
}

/// Reports `queue`'s in-flight count as it changes, until the pump is gone. Each report
/// says the most held at once since the previous one, so work that came and went between
/// two reports is not missed.
pub async fn report_in_flight(options: ReportOptions, queue: String, mut follower: Follower) {
    let client = crate::client::proxy_client();
    let mut sent: Option<u64> = None;
    let mut last_sent = Instant::now();
    let mut failing = false;
    info!(scaler = %options.url, replica = %options.replica, queue, "reporting messages in flight to the scaler");
    loop {
        let held_now = *follower.count.borrow_and_update();
        let peak = follower.peak();
        // Becoming busy is said at once; anything else at most every `min_gap`.
        let edge = sent.is_none_or(|s| s == 0 && peak > 0);
        let due = last_sent.elapsed() >= options.heartbeat
            || (sent != Some(peak) && last_sent.elapsed() >= options.min_gap);
        if edge || due {
            let value = follower.take_peak();
            let ok = send(&client, &options, &queue, value, false).await;
            // Log the change between working and failing, not every attempt.
            if ok == failing {
                if ok {
                    info!(queue, "reports reach the scaler again");
                } else {
                    warn!(scaler = %options.url, queue, "cannot report to the scaler; KEDA sees only the queue's backlog meanwhile");
                }
            }
            failing = !ok;
            sent = Some(value);
            last_sent = Instant::now();
        }
        let settled = sent == Some(held_now) && follower.peak() == held_now;
        let wake = if settled {
            last_sent + options.heartbeat
        } else {
            last_sent + options.min_gap
        };
        tokio::select! {
            changed = follower.count.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    // The pump has drained: nothing is held any more, and this replica leaves.
    send(&client, &options, &queue, 0, true).await;
    debug!(queue, "last in-flight report sent");
}

async fn send(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Body,
    >,
    options: &ReportOptions,
    queue: &str,
    in_flight: u64,
    last: bool,
) -> bool {
    let body = serde_json::json!({
        "replica": options.replica,
        "queue": queue,
        "inFlight": in_flight,
        "last": last,
    });
    let Ok(request) = http::Request::post(&options.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
    else {
        return false;
    };
    let response = tokio::time::timeout(Duration::from_secs(2), client.request(request)).await;
    match response {
        Ok(Ok(r)) if r.status().is_success() => true,
        Ok(Ok(r)) => {
            debug!(status = %r.status(), "the scaler refused a report");
            false
        }
        Ok(Err(e)) => {
            debug!(error = %e, "a report did not reach the scaler");
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn reports_are_off_without_a_scaler_url() {
        let env = MapEnv::new();
        let mut r = EnvReader::new(&env);
        assert_eq!(ReportOptions::from_env(&mut r), None);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn the_pod_name_names_the_replica() {
        let env = MapEnv::new()
            .with(SCALER_URL, "http://fabrikam-scaler/")
            .with(POD_NAME, "workflow-7d9f-abcde");
        let mut r = EnvReader::new(&env);
        let o = ReportOptions::from_env(&mut r).unwrap();
        assert_eq!(o.url, "http://fabrikam-scaler/v1/reports");
        assert_eq!(o.replica, "workflow-7d9f-abcde");
    }

    /// The replica's reports as the scaler receives them: the busy edge at once, and a
    /// last report once the pump is gone.
    #[tokio::test]
    async fn reports_the_busy_edge_then_leaves_with_a_last_report() {
        use std::sync::{Arc, Mutex};
        let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/v1/reports",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body);
                    http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let options = ReportOptions {
            url: format!("http://{addr}/v1/reports"),
            replica: "workflow-1".into(),
            heartbeat: Duration::from_secs(2),
            min_gap: Duration::from_millis(10),
        };
        let in_flight = super::super::InFlight::default();
        let reporting = tokio::spawn(report_in_flight(
            options,
            "deliveries".into(),
            in_flight.follow(),
        ));
        let held = in_flight.hold();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !received.lock().unwrap().iter().any(|r| r["inFlight"] == 1) {
            assert!(Instant::now() < deadline, "no busy report");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(held);
        drop(in_flight);
        tokio::time::timeout(Duration::from_secs(10), reporting)
            .await
            .unwrap()
            .unwrap();
        let reports = received.lock().unwrap().clone();
        let first = &reports[0];
        assert_eq!(
            (&first["replica"], &first["queue"], &first["last"]),
            (
                &serde_json::json!("workflow-1"),
                &serde_json::json!("deliveries"),
                &serde_json::json!(false)
            )
        );
        let last = reports.last().unwrap();
        assert_eq!(
            (&last["inFlight"], &last["last"]),
            (&serde_json::json!(0), &serde_json::json!(true)),
            "{reports:?}"
        );
        assert_eq!(
            reports.iter().filter(|r| r["last"] == true).count(),
            1,
            "{reports:?}"
        );
    }

    #[test]
    fn a_bad_scaler_url_fails_the_start() {
        let env = MapEnv::new().with(SCALER_URL, "fabrikam-scaler:8080");
        let mut r = EnvReader::new(&env);
        let _ = ReportOptions::from_env(&mut r);
        let e = r.finish().unwrap_err();
        assert!(e.names(SCALER_URL), "{e}");
    }
}
