//! A trace: what arrives, per second, at each route and queue.
//!
//! CSV, one segment a line: `start_s,end_s,target,per_second`, where `target` is
//! `http:<path>` (a request to the function serving that path) or `queue:<name>` (a message
//! put on that queue from outside). Arrivals are spread evenly over the segment, so a run is
//! reproducible. `#` starts a comment; blank lines are skipped.

use std::time::Duration;

/// Where arrivals go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Http(String),
    Queue(String),
}

/// Arrivals at `per_second` on `target` from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: Duration,
    pub end: Duration,
    pub target: Target,
    pub per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    pub segments: Vec<Segment>,
}

impl Trace {
    /// Reads a trace; every bad line is reported at once, by number.
    pub fn parse(text: &str) -> Result<Trace, String> {
        let mut segments = Vec::new();
        let mut problems = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with("start") {
                continue;
            }
            match segment(line) {
                Ok(s) => segments.push(s),
                Err(e) => problems.push(format!("line {}: {e}: {raw:?}", i + 1)),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        if segments.is_empty() {
            return Err("the trace has no segments".to_owned());
        }
        Ok(Trace { segments })
    }

    /// When the last segment ends.
    pub fn end(&self) -> Duration {
        self.segments
            .iter()
            .map(|s| s.end)
            .max()
            .unwrap_or_default()
    }

    /// The total number of arrivals the trace makes.
    pub fn arrivals(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.per_second * (s.end - s.start).as_secs_f64())
            .sum()
    }
}

fn segment(line: &str) -> Result<Segment, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [start, end, target, rate] = fields[..] else {
        return Err("expected start_s,end_s,target,per_second".to_owned());
    };
    let seconds = |s: &str, what: &str| -> Result<Duration, String> {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{what} {s:?} is not a number of seconds"))
    };
    let start = seconds(start, "start")?;
    let end = seconds(end, "end")?;
    if end <= start {
        return Err("end is not after start".to_owned());
    }
    let target = if let Some(path) = target.strip_prefix("http:") {
        Target::Http(path.to_owned())
    } else if let Some(queue) = target.strip_prefix("queue:") {
        Target::Queue(queue.to_owned())
    } else {
        return Err(format!(
            "target {target:?} is neither http:<path> nor queue:<name>"
        ));
    };
    let per_second = rate
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("per_second {rate:?} is not a rate"))?;
    Ok(Segment {
        start,
        end,
        target,
        per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_segments_and_reports_every_bad_line() {
        let t = Trace::parse(
            "start_s,end_s,target,per_second\n# a burst\n3600,3610,http:/api/deliveryrequests,100\n\n0,60,queue:deliveries,0.5 # trickle\n",
        )
        .unwrap();
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.end(), Duration::from_secs(3610));
        assert_eq!(t.arrivals(), 1030.0);
        assert_eq!(
            t.segments[0].target,
            Target::Http("/api/deliveryrequests".into())
        );
        let e = Trace::parse("1,0,http:/a,1\n0,1,ftp:/a,1\n0,1,queue:q,-1\n0,1\n").unwrap_err();
        assert_eq!(e.lines().count(), 4, "{e}");
        assert!(e.starts_with("line 1: end is not after start"));
    }
}
