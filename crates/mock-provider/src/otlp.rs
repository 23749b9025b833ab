//! The OTLP/HTTP sink (`POST /v1/traces`): answers 200 to every export and
//! counts the spans it holds, so that a load run can check that every span
//! reached it (`GET /v1/traces` answers `{"spans": N}`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Shared;

/// Reads a protobuf varint at `*at`, moving past it.
fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The length-delimited fields numbered `number` of a protobuf message;
/// `None` when the message is malformed.
fn fields(buf: &[u8], number: u64) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        match key & 7 {
            0 => {
                varint(buf, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).ok()?;
                let field = buf.get(at..at.checked_add(len)?)?;
                if key >> 3 == number {
                    out.push(field);
                }
                at += len;
            }
            _ => return None,
        }
    }
    (at == buf.len()).then_some(out)
}

/// The spans of an `ExportTraceServiceRequest`: resource_spans (1) >
/// scope_spans (2) > spans (2).
pub(crate) fn count_spans(body: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for resource in fields(body, 1)? {
        for scope in fields(resource, 2)? {
            n += u64::try_from(fields(scope, 2)?.len()).ok()?;
        }
    }
    Some(n)
}

pub(crate) async fn export(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(n) = count_spans(&body) else {
        return (StatusCode::BAD_REQUEST, "not an OTLP protobuf export").into_response();
    };
    s.spans_received.fetch_add(n, Ordering::Relaxed);
    // An empty ExportTraceServiceResponse.
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Bytes::new(),
    )
        .into_response()
}

pub(crate) async fn received(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"spans": s.spans_received.load(Ordering::Relaxed)}))
}

#[cfg(test)]
mod tests {
    use super::count_spans;

    #[test]
    fn spans_are_counted_through_resource_and_scope() {
        // resource_spans { resource {}, scope_spans { spans {name: "a"}, spans {} } },
        // resource_spans { scope_spans { spans {} } }
        let span_a = [0x2a, 0x01, b'a'];
        let mut scope = vec![0x12, 3];
        scope.extend_from_slice(&span_a);
        scope.extend_from_slice(&[0x12, 0]);
        let mut resource = vec![0x0a, 0];
        resource.push(0x12);
        resource.push(u8::try_from(scope.len()).unwrap());
        resource.extend_from_slice(&scope);
        let mut body = vec![0x0a, u8::try_from(resource.len()).unwrap()];
        body.extend_from_slice(&resource);
        body.extend_from_slice(&[0x0a, 4, 0x12, 2, 0x12, 0]);
        assert_eq!(count_spans(&body), Some(3));
        assert_eq!(count_spans(&[]), Some(0));
        assert_eq!(count_spans(&[0x0a, 9, 1]), None);
    }
}
