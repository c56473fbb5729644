//! JSON log lines: one object per event, with the event's fields and the fields of every
//! span it happened in (the innermost wins on a clash), flattened to the top level, so the
//! trace id, function and delivery id are on every line a log pipeline sees.
//!
//! Written here rather than using `tracing-subscriber`'s JSON formatter for two reasons it
//! cannot be configured around: it shows only the innermost span's fields (a delivery id
//! recorded on an outer span was lost), and it renders each span's fields to a JSON string
//! when the span opens and parses that string back for every event. With one span per
//! request, that was about a sixth of the host's instructions per request (callgrind,
//! docs/BENCHMARKS.md). Here a span keeps its values as they came, and they are encoded
//! only when an event is written: most requests log nothing at the default level, so most
//! spans are never encoded at all (callgrind: that saved about 2,000 instructions a request).

use std::fmt;
use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The layer; `W` makes the writer each line goes to (stdout in production).
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> fmt::Debug for JsonLines<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonLines")
    }
}

impl<W> JsonLines<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A span's (or an event's) fields as they were recorded, encoded when a line is written.
/// The values share one text buffer, so a span's fields cost two allocations however many
/// there are (one each cost about 100 instructions a field, callgrind).
#[derive(Default)]
struct SpanFields {
    fields: Vec<(&'static str, SpanValue)>,
    text: String,
}

/// Where one span field's value is in [`SpanFields::text`]: text still to be escaped, or a
/// number or boolean already in its JSON form.
#[derive(Clone, Copy)]
enum SpanValue {
    Text(usize, usize),
    Json(usize, usize),
}

impl SpanFields {
    /// Room for the host's request and message spans' fields without growing.
    fn with_capacity() -> Self {
        Self {
            fields: Vec::with_capacity(8),
            text: String::with_capacity(160),
        }
    }

    /// Appends `value` as the value of `key`, written by `write` into the shared buffer;
    /// a value recorded again replaces the old one (whose bytes stay, unused, until the
    /// span closes).
    fn set(&mut self, key: &'static str, json: bool, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        let end = self.text.len();
        let value = if json {
            SpanValue::Json(start, end)
        } else {
            SpanValue::Text(start, end)
        };
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = value,
            None => self.fields.push((key, value)),
        }
    }

    fn text(&self, value: SpanValue) -> &str {
        let (SpanValue::Text(start, end) | SpanValue::Json(start, end)) = value;
        self.text.get(start..end).unwrap_or_default()
    }
}

/// Keeps each field's value as it came (see [`SpanFields`]): one visitor for span and
/// event fields. `otel.*` fields (span name and kind for the OTLP exporter) are skipped:
/// they say nothing a log reader needs.
struct Capture<'a>(&'a mut SpanFields);

impl Capture<'_> {
    fn put(&mut self, field: &Field, json: bool, write: impl FnOnce(&mut String)) {
        if !field.name().starts_with("otel.") {
            self.0.set(field.name(), json, write);
        }
    }

    fn put_display(&mut self, field: &Field, json: bool, value: impl fmt::Display) {
        self.put(field, json, |text| {
            // Writing into a `String` cannot fail.
            let _ = write!(text, "{value}");
        });
    }
}

impl Visit for Capture<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, false, |text| {
            let _ = write!(text, "{value:?}");
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, false, |text| text.push_str(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, true, |text| {
            if value < 0 {
                text.push('-');
            }
            push_decimal(text, value.unsigned_abs());
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, true, |text| push_decimal(text, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put_display(field, true, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.put_display(field, true, value);
        } else {
            self.put_display(field, false, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_display(field, false, value);
    }
}

/// Appends `value` in decimal. Written out because `fmt`'s machinery costs several times
/// the digits (a status code on every request span: callgrind, about 250 instructions).
fn push_decimal(text: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `value % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
}

/// Writes fields straight into the line, skipping keys already written (the event's own,
/// then inner spans' before outer ones').
struct EventFields<'a> {
    line: &'a mut String,
    keys: Vec<&'static str>,
}

impl EventFields<'_> {
    /// Each of `fields` whose key is not on the line yet, encoded now.
    fn put_all(&mut self, fields: &SpanFields) {
        for &(key, value) in &fields.fields {
            match value {
                SpanValue::Text(..) if self.keys.contains(&key) => {}
                SpanValue::Text(..) => self.put(key, &json_string(fields.text(value))),
                SpanValue::Json(..) => self.put(key, fields.text(value)),
            }
        }
    }

    fn put(&mut self, key: &'static str, json: &str) {
        if self.keys.contains(&key) {
            return;
        }
        self.keys.push(key);
        self.line.push(',');
        self.line.push_str(&json_string(key));
        self.line.push(':');
        self.line.push_str(json);
    }
}

fn json_string(s: &str) -> String {
    // serde_json's escaping is the reference one; a `str` always serialises.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Adds `key = value` to the current span's fields, as if the span had declared and
/// recorded it: fields a function names itself, which the host's spans cannot declare in
/// advance. Does nothing when the JSON layer is not installed. The span is looked up by
/// its id, not cloned (`Span::current()` costs a reference count up and a close down).
pub(crate) fn annotate_current(key: &'static str, value: &str) {
    tracing::dispatcher::get_default(|dispatch| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let current = dispatch.current_span();
        if let Some(id) = current.id()
            && let Some(span) = registry.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            fields.set(key, false, |text| text.push_str(value));
        }
    });
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::with_capacity();
        attrs.record(&mut Capture(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Capture(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":\"");
        if SystemTime.format_time(&mut Writer::new(&mut line)).is_err() {
            line.push('?');
        }
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');
        let mut fields = EventFields {
            line: &mut line,
            keys: vec!["timestamp", "level"],
        };
        let mut own = SpanFields::with_capacity();
        event.record(&mut Capture(&mut own));
        fields.put_all(&own);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.put_all(span_fields);
                }
            }
        }
        line.push_str("}\n");
        // A log line that cannot be written has nowhere better to go.
        let _ = self.make_writer.make_writer().write_all(line.as_bytes());
    }
}

/// The layer writing into memory, for tests that read the lines back.
#[cfg(test)]
pub(crate) mod captured {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::JsonLines;

    /// What the layer of [`Captured::subscriber`] wrote.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        /// The registry with the JSON layer, writing here.
        pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
            let sink = self.clone();
            tracing_subscriber::registry().with(JsonLines::new(move || sink.clone()))
        }

        /// Each line written so far, parsed.
        pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::captured::Captured;

    fn lines(run: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        tracing::subscriber::with_default(captured.subscriber(), run);
        captured.lines()
    }

    #[test]
    fn a_field_a_function_names_itself_lands_on_every_later_line_of_its_span() {
        let out = lines(|| {
            let span = tracing::info_span!("message", function = "workflow");
            let _entered = span.enter();
            tracing::info!("before");
            crate::trace::annotate("order_id", "o-7");
            tracing::info!("after");
            let child = tracing::info_span!("step");
            let _child = child.enter();
            tracing::info!("inside a child span");
        });
        assert_eq!(out.len(), 3);
        assert!(out[0].get("order_id").is_none());
        assert_eq!(out[1]["order_id"], "o-7");
        assert_eq!(out[2]["order_id"], "o-7");
    }

    #[test]
    fn every_enclosing_span_contributes_its_fields_and_the_innermost_wins() {
        let out = lines(|| {
            let outer = tracing::info_span!("function", function = "workflow", step = "outer");
            let _outer = outer.enter();
            let inner = tracing::info_span!(
                "message",
                trace_id = "abc",
                step = "inner",
                order_id = tracing::field::Empty
            );
            let _inner = inner.enter();
            inner.record("order_id", "d-1");
            tracing::warn!(attempt = 3, ok = false, "quote \" and\nnewline");
        });
        assert_eq!(out.len(), 1);
        let line = &out[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "quote \" and\nnewline");
        assert_eq!(line["attempt"], 3);
        assert_eq!(line["ok"], false);
        assert_eq!(line["function"], "workflow");
        assert_eq!(line["trace_id"], "abc");
        assert_eq!(line["order_id"], "d-1");
        assert_eq!(line["step"], "inner");
        assert!(line["timestamp"].as_str().unwrap().starts_with("20"));
    }

    #[test]
    fn an_event_field_is_not_overwritten_by_a_span_field() {
        let out = lines(|| {
            let span = tracing::info_span!("request", status = 1);
            let _entered = span.enter();
            tracing::info!(status = 503, "served");
        });
        assert_eq!(out[0]["status"], 503);
        assert_eq!(out[0].as_object().unwrap().len(), 4, "{}", out[0]);
    }

    #[test]
    fn exporter_directives_stay_out_of_the_log_line() {
        let out = lines(|| {
            let span = tracing::info_span!("request", otel.kind = "server", "http.route" = "/x");
            let _entered = span.enter();
            tracing::info!(otel.name = "odd", "served");
        });
        assert_eq!(out[0]["http.route"], "/x");
        let keys: Vec<&String> = out[0].as_object().unwrap().keys().collect();
        assert!(keys.iter().all(|k| !k.starts_with("otel.")), "{keys:?}");
    }

    #[test]
    fn integers_are_written_as_json_numbers_at_their_limits() {
        let out = lines(|| {
            tracing::info!(
                zero = 0u64,
                max = u64::MAX,
                min = i64::MIN,
                negative = -42i64,
                status = 404u16,
                "counted"
            );
        });
        assert_eq!(out[0]["zero"], 0);
        assert_eq!(out[0]["max"], u64::MAX);
        assert_eq!(out[0]["min"], i64::MIN);
        assert_eq!(out[0]["negative"], -42);
        assert_eq!(out[0]["status"], 404);
    }

    #[test]
    fn non_finite_numbers_stay_valid_json() {
        let out = lines(|| tracing::info!(ratio = f64::NAN, "odd"));
        assert_eq!(out[0]["ratio"], "NaN");
    }
}
