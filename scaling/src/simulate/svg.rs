//! One function's run as an SVG plot: asked-for and ready replicas over time above, the
//! units waiting below. Written by hand: two polylines and their axes need no plotting
//! library.

use std::fmt::Write as _;

use super::Report;

const WIDTH: f64 = 860.0;
const PANEL: f64 = 150.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const GAP: f64 = 40.0;

/// The plot of function number `index` of `report`, titled `title`: from a minute before
/// the first replica change to a minute after the last (a burst after an hour idle is not a
/// sliver at the right edge).
pub fn plot(report: &Report, index: usize, title: &str) -> String {
    let duration = report.duration.as_secs_f64().max(1.0);
    let changes = report.changes.iter().map(|c| c.at.as_secs_f64());
    let first = changes.clone().fold(f64::INFINITY, f64::min);
    let last = changes.fold(0.0, f64::max);
    let (from, to) = if first.is_finite() {
        ((first - 60.0).max(0.0), (last + 60.0).min(duration))
    } else {
        (0.0, duration)
    };
    let samples: Vec<_> = report
        .samples
        .iter()
        .filter(|s| (from..=to).contains(&s.at.as_secs_f64()))
        .collect();
    let end = (to - from).max(1.0);
    let replicas_max = samples
        .iter()
        .map(|s| s.by_function[index].0.max(s.by_function[index].1))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let waiting_max = samples
        .iter()
        .map(|s| s.by_function[index].2)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let x = |t: f64| LEFT + plot_w * (t - from) / end;
    let y_top = |v: f64| TOP + PANEL - PANEL * v / replicas_max;
    let y_bottom = |v: f64| TOP + PANEL + GAP + PANEL - PANEL * v / waiting_max;

    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        escape(title)
    );
    // Panels, axes and labels.
    for (top, label, max) in [
        (TOP, "replicas", replicas_max),
        (TOP + PANEL + GAP, "waiting", waiting_max),
    ] {
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{plot_w}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#999\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n\
             <text x=\"8\" y=\"{}\">{label}</text>",
            LEFT - 4.0,
            top + 10.0,
            LEFT - 4.0,
            top + PANEL,
            top + PANEL / 2.0
        );
    }
    let axis_y = TOP + 2.0 * PANEL + GAP + 16.0;
    for k in 0..=4 {
        let t = from + end * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{axis_y}\" text-anchor=\"middle\">{}</text>",
            x(t),
            time_label(t)
        );
    }
    // Step lines: a value holds until the next sample.
    // Step lines, one point pair per pixel column at most: a day of one-second samples
    // would otherwise be a file of megabytes. Each column draws its lowest and highest
    // value, so no spike or dip is lost.
    let line = |values: &mut dyn Iterator<Item = (f64, f64)>, y: &dyn Fn(f64) -> f64| -> String {
        let mut points = String::new();
        let mut column: Option<(i64, f64, f64, f64)> = None; // (pixel, low, high, last)
        let flush = |c: (i64, f64, f64, f64), points: &mut String| {
            let (px, low, high, last) = c;
            let px = px as f64;
            let _ = write!(points, "{px:.0},{:.1} {px:.0},{:.1} ", y(low), y(high));
            let _ = write!(points, "{px:.0},{:.1} ", y(last));
        };
        for (t, v) in values {
            let px = x(t).round() as i64;
            column = match column {
                Some((p, low, high, _)) if p == px => Some((p, low.min(v), high.max(v), v)),
                Some(c) => {
                    flush(c, &mut points);
                    Some((px, v, v, v))
                }
                None => Some((px, v, v, v)),
            };
        }
        if let Some(c) = column {
            flush(c, &mut points);
        }
        points
    };
    let spec = line(
        &mut samples
            .iter()
            .map(|s| (s.at.as_secs_f64(), f64::from(s.by_function[index].0))),
        &y_top,
    );
    let ready = line(
        &mut samples
            .iter()
            .map(|s| (s.at.as_secs_f64(), f64::from(s.by_function[index].1))),
        &y_top,
    );
    let waiting = line(
        &mut samples
            .iter()
            .map(|s| (s.at.as_secs_f64(), s.by_function[index].2 as f64)),
        &y_bottom,
    );
    let _ = write!(
        out,
        "<polyline points=\"{spec}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n\
         <polyline points=\"{ready}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>\n\
         <polyline points=\"{waiting}\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.2\"/>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#d62728\">asked for</text>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#1f77b4\">ready</text>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#2ca02c\">units waiting</text>\n\
         </svg>\n",
        WIDTH - 200.0,
        TOP - 6.0,
        WIDTH - 120.0,
        TOP - 6.0,
        WIDTH - 120.0,
        TOP + PANEL + GAP - 6.0
    );
    out
}

fn time_label(seconds: f64) -> String {
    if seconds >= 7200.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 120.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
