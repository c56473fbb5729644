//! W3C trace context (`traceparent`), carried from HTTP through the queue to downstream
//! calls.
//!
//! Written by hand: the format is one fixed-width header, and pulling in the OpenTelemetry
//! SDK only to parse it would cost more build time than these few lines.

use std::fmt;

use rand::RngCore;

/// The `traceparent` header name, also used as a queue message property.
pub const TRACEPARENT: &str = "traceparent";
/// The property Service Bus tooling and Application Insights read; same value.
pub const DIAGNOSTIC_ID: &str = "Diagnostic-Id";

/// Puts `key = value` on the current request's or message's span, so every later log line
/// of it carries it, and its exported span has it as an attribute: the fields a function
/// names itself (an order's id, the operation a message asks for), which the host's own spans
/// know nothing of.
pub fn annotate(key: &'static str, value: &str) {
    crate::telemetry::json_lines::annotate_current(key, value);
    crate::telemetry::otlp::set_attribute_on_current(key, value);
}

/// A parsed `traceparent`: version 00, trace id, parent span id, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceContext {
    /// A new trace with a random id, sampled.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        while trace_id == [0; 16] {
            rng.fill_bytes(&mut trace_id);
        }
        while span_id == [0; 8] {
            rng.fill_bytes(&mut span_id);
        }
        Self {
            trace_id,
            span_id,
            flags: 1,
        }
    }

    /// Parses a `traceparent` value; `None` when it is malformed (callers then start a new
    /// trace, as the W3C spec asks).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = hex(span)?.try_into().ok()?;
        let flags = *hex(flags)?.first()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The incoming context if valid, else a new root.
    pub fn from_header_or_new(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::new_root)
    }

    /// A context from its parts (an exported span's ids).
    pub fn from_parts(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Self {
        Self {
            trace_id,
            span_id,
            flags,
        }
    }

    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    pub fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The same trace with a new span id, for an outgoing call.
    pub fn child(&self) -> Self {
        let mut span_id = [0u8; 8];
        while span_id == [0; 8] {
            rand::rng().fill_bytes(&mut span_id);
        }
        Self { span_id, ..*self }
    }

    pub fn trace_id(&self) -> String {
        self.trace_id_hex().to_string()
    }

    /// The trace id as lower-case hex, written without allocating: it goes on a span for
    /// every request, where a `String` per request showed up in profiles. A span records it
    /// as text ([`TraceIdHex::as_str`]) at less cost than through `Display` (callgrind).
    pub fn trace_id_hex(&self) -> TraceIdHex {
        TraceIdHex::of(&self.trace_id)
    }
}

/// A trace id's 32 lower-case hex digits, on the stack.
#[derive(Clone, Copy)]
pub struct TraceIdHex([u8; 32]);

impl TraceIdHex {
    fn of(id: &[u8; 16]) -> Self {
        let mut hex = [0u8; 32];
        write_hex(id, &mut hex);
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for TraceIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TraceIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            Hex(&self.trace_id),
            Hex(&self.span_id),
            self.flags
        )
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2)
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Lower-case hex of up to 16 bytes, encoded on the stack.
struct Hex<'a>(&'a [u8]);

/// Writes `bytes` as lower-case hex digit pairs into `out`, as far as `out` has room.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        let len = self.0.len().min(16) * 2;
        write_hex(self.0, &mut buf);
        // Only ASCII digits were written, so this cannot fail.
        f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_valid_header() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse(v).unwrap();
        assert_eq!(t.to_string(), v);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn child_keeps_the_trace_and_changes_the_span() {
        let t = TraceContext::new_root();
        let c = t.child();
        assert_eq!(t.trace_id(), c.trace_id());
        assert_ne!(t.to_string(), c.to_string());
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }
}
