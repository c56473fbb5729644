//! Optional OpenTelemetry trace export over OTLP (HTTP/protobuf), off unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! The host's spans already carry the W3C trace context ([`crate::trace`]); with export on,
//! [`link_to_remote_parent`] makes the exported span a child of the caller's span, so the
//! exported trace is the same trace the logs show. The spans' `http.*` and `messaging.*`
//! fields follow the OpenTelemetry semantic conventions and become the span attributes.
//! The SDK reads the rest of the standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `..._TIMEOUT`, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`).

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::EnvReader;
use crate::trace::TraceContext;

/// Set once the export layer is installed. Without it, linking a span to its remote parent
/// would still build an OpenTelemetry context (an allocation) on every request and message
/// for nothing.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(super) fn mark_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether spans are exported: fields only the exported span shows need not be recorded
/// otherwise.
pub(crate) fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

/// Where and as what spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// `OTEL_SERVICE_NAME`; the function's name when unset.
    pub service_name: Option<String>,
}

impl OtlpSettings {
    /// `None` (export off) unless an endpoint variable is set. Endpoints must be absolute
    /// `http(s)://` URLs, and only the `http/protobuf` protocol is built in: a gRPC
    /// collector setting is refused at start rather than failing every export later.
    pub fn from_env(r: &mut EnvReader<'_>) -> Option<Self> {
        let mut any = false;
        for name in [ENDPOINT, TRACES_ENDPOINT] {
            let Some(value) = r.raw(name) else { continue };
            any = true;
            match value.parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.authority().is_some() => {}
                _ => r.problem(name, format!("{value:?} is not an absolute http(s):// URL")),
            }
        }
        r.choice(PROTOCOL, "http/protobuf", &["http/protobuf"]);
        any.then(|| Self {
            service_name: r.raw(SERVICE_NAME),
        })
    }

    /// The tracer provider exporting in batches from its own thread. Call outside an async
    /// runtime: the blocking HTTP client it builds owns one.
    pub(super) fn provider(&self, default_service: &str) -> Result<SdkTracerProvider, String> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .map_err(|e| format!("OTLP exporter: {e}"))?;
        let service = self.service_name.as_deref().unwrap_or(default_service);
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(service.to_owned())
                    .build(),
            )
            .build())
    }
}

/// The layer that turns spans into OpenTelemetry spans.
pub(super) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(crate::contract::PRODUCT))
        .with_threads(false)
        // Busy and idle nanoseconds on every span cost two clock reads per poll; the span's
        // own start and end say enough.
        .with_tracked_inactivity(false)
}

/// Makes `span` a child of the remote span `parent` names (the caller's `traceparent`, or
/// a message's), so the exported span joins that trace. Does nothing when export is off.
pub fn link_to_remote_parent(span: &tracing::Span, parent: &TraceContext) {
    if !exporting() {
        return;
    }
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id_bytes()),
        SpanId::from_bytes(parent.span_id_bytes()),
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    );
    // Err only means export is off (no layer) or the span is disabled: nothing to link.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Puts `key = value` on the current span's exported span. Does nothing when export is off.
pub fn set_attribute_on_current(key: &'static str, value: &str) {
    if exporting() {
        tracing::Span::current().set_attribute(key, value.to_owned());
    }
}

/// The context to send downstream from inside `span`: the exported span's own id when
/// export is on, so the callee's span is its child; a new span id in the same trace when
/// it is off.
pub fn outgoing(span: &tracing::Span, trace: &TraceContext) -> TraceContext {
    if !exporting() {
        return trace.child();
    }
    let context = span.context();
    let exported = context.span().span_context().clone();
    if exported.is_valid() && exported.trace_id().to_bytes() == trace.trace_id_bytes() {
        TraceContext::from_parts(
            exported.trace_id().to_bytes(),
            exported.span_id().to_bytes(),
            exported.trace_flags().to_u8(),
        )
    } else {
        trace.child()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::MapEnv;

    fn read(env: &MapEnv) -> (Option<OtlpSettings>, Result<(), crate::config::ConfigError>) {
        let mut r = EnvReader::new(env);
        let settings = OtlpSettings::from_env(&mut r);
        (settings, r.finish())
    }

    #[test]
    fn export_is_off_without_an_endpoint() {
        let (settings, result) = read(&MapEnv::new().with(SERVICE_NAME, "x"));
        assert_eq!(settings, None);
        assert!(result.is_ok());
    }

    #[test]
    fn an_endpoint_turns_export_on_with_the_service_name() {
        let env = MapEnv::new()
            .with(ENDPOINT, "http://collector:4318")
            .with(SERVICE_NAME, "fabrikam-workflow");
        let (settings, result) = read(&env);
        result.unwrap();
        assert_eq!(
            settings.unwrap().service_name.as_deref(),
            Some("fabrikam-workflow")
        );
    }

    #[test]
    fn bad_endpoints_and_grpc_are_refused_by_name() {
        let env = MapEnv::new()
            .with(ENDPOINT, "collector:4318")
            .with(TRACES_ENDPOINT, "ftp://collector/v1/traces")
            .with(PROTOCOL, "grpc");
        let message = read(&env).1.unwrap_err().to_string();
        for name in [ENDPOINT, TRACES_ENDPOINT, PROTOCOL] {
            assert!(message.contains(name), "{name} missing from {message}");
        }
    }

    #[test]
    fn without_export_the_outgoing_context_is_a_new_span_of_the_same_trace() {
        let trace = TraceContext::new_root();
        let out = outgoing(&tracing::Span::none(), &trace);
        assert_eq!(out.trace_id(), trace.trace_id());
        assert_ne!(out.to_string(), trace.to_string());
    }
}
