//! The OTLP/HTTP protobuf body of a trace export
//! (`opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`),
//! written by hand: the handful of messages a span needs are a few dozen
//! lines of protobuf, where the generated crates would pull a second HTTP
//! stack and a code generator into the build.

use crate::trace::{AttrValue, SpanData, SpanKind};

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // Truncation is the point: the low seven bits, then the rest.
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string_field(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes_field(out, field, value.as_bytes());
}

fn message_field(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes_field(out, field, &inner);
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, value: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

/// `AnyValue`: one of string (1), bool (2), int64 (3), double (4).
fn any_value(out: &mut Vec<u8>, value: &AttrValue) {
    match value {
        AttrValue::Str(s) => string_field(out, 1, s),
        AttrValue::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        AttrValue::Int(i) => {
            key(out, 3, VARINT);
            // Two's complement, as protobuf's int64 is.
            varint(out, *i as u64);
        }
        AttrValue::Float(f) => fixed64_field(out, 4, f.to_bits()),
    }
}

/// `KeyValue { key = 1; value = 2 }`, as the repeated field `field`.
fn attribute(out: &mut Vec<u8>, field: u32, name: &str, value: &AttrValue) {
    message_field(out, field, |kv| {
        string_field(kv, 1, name);
        message_field(kv, 2, |v| any_value(v, value));
    });
}

fn span(out: &mut Vec<u8>, span: &SpanData) {
    bytes_field(out, 1, &span.trace_id);
    bytes_field(out, 2, &span.span_id);
    if let Some(parent) = &span.parent_span_id {
        bytes_field(out, 4, parent);
    }
    string_field(out, 5, &span.name);
    key(out, 6, VARINT);
    varint(
        out,
        match span.kind {
            SpanKind::Server => 2,
            SpanKind::Client => 3,
        },
    );
    fixed64_field(out, 7, span.start_unix_nanos);
    fixed64_field(out, 8, span.end_unix_nanos);
    for (name, value) in &span.attributes {
        attribute(out, 9, name, value);
    }
    // Status { message = 2; code = 3 }: ERROR is 2; UNSET (the default) is left out.
    if let Some(message) = &span.error {
        message_field(out, 15, |s| {
            string_field(s, 2, message);
            key(s, 3, VARINT);
            varint(s, 2);
        });
    }
    // W3C trace flags, with the "parent is remote" bits of the OTLP spec
    // left clear: 0x01 sampled.
    key(out, 16, FIXED32);
    out.extend_from_slice(&1u32.to_le_bytes());
}

/// The body of `POST /v1/traces`: one resource (this process), one
/// instrumentation scope, the spans.
pub fn export_request(resource: &[(String, AttrValue)], spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    message_field(&mut out, 1, |rs| {
        message_field(rs, 1, |r| {
            for (name, value) in resource {
                attribute(r, 1, name, value);
            }
        });
        message_field(rs, 2, |ss| {
            message_field(ss, 1, |scope| {
                string_field(scope, 1, "tollgate");
                string_field(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for s in spans {
                message_field(ss, 2, |out| span(out, s));
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        any_value(&mut out, &AttrValue::Int(-1));
        // Field 3 varint, then ten bytes of two's complement.
        assert_eq!(out.len(), 11);
        assert_eq!(out[0], 3 << 3);
    }

    #[test]
    fn an_export_nests_resource_scope_and_span() {
        let span = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            name: "chat m".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![("gen_ai.operation.name", AttrValue::Str("chat".into()))],
            error: None,
        };
        let body = export_request(
            &[("service.name".into(), AttrValue::Str("t".into()))],
            &[span],
        );
        // ExportTraceServiceRequest.resource_spans (1, length-delimited).
        assert_eq!(body[0], (1 << 3) | 2);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("gen_ai.operation.name"));
        assert!(text.contains("service.name"));
    }
}
