//! Server-sent events, decoded as the bytes arrive (the WHATWG
//! `text/event-stream` format): lines end in CRLF, LF or CR; `data:` lines
//! of one event are joined with LF; a blank line dispatches the event if it
//! has data; `event:` names it (`message` when unnamed); comments and other
//! fields are skipped; a leading byte-order mark is dropped; an event the
//! stream ends in the middle of is dropped.
//!
//! It replaces a general parser (built on parser combinators over a copied
//! string buffer) that cost about 10 000 instructions per event, the largest
//! single cost of relaying a stream. Here an event costs a scan for line
//! ends (memchr), one UTF-8 check and one string for its data.

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use futures::stream::BoxStream;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; `message` when the event had none.
    pub event: Cow<'static, str>,
    pub data: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SseError<E> {
    #[error("UTF8 error: the event stream is not valid UTF-8")]
    Utf8,
    #[error("Transport error: {0}")]
    Transport(E),
}

/// The event being read, up to its blank line.
#[derive(Default)]
struct Builder {
    event: Option<String>,
    /// Each `data` line followed by LF, as the format defines.
    data: String,
}

impl Builder {
    fn line(&mut self, line: &[u8], out: &mut VecDeque<SseEvent>) -> Result<(), ()> {
        if line.is_empty() {
            let event = self.event.take();
            let mut data = std::mem::take(&mut self.data);
            if !data.is_empty() {
                data.pop();
                out.push_back(SseEvent {
                    event: event.map_or(Cow::Borrowed("message"), Cow::Owned),
                    data,
                });
            }
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(drop)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }
}

/// Bytes in, events out.
#[derive(Default)]
pub(crate) struct Decoder {
    /// Bytes of a line not yet ended.
    pending: Vec<u8>,
    builder: Builder,
    /// Whether the stream's first bytes (and a byte-order mark) are behind.
    started: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Decoder {
    /// Reads `chunk`, adding the events it completes to `out`. Fails on
    /// bytes that are not UTF-8.
    pub fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<SseEvent>) -> Result<(), ()> {
        if self.pending.is_empty() && self.started {
            // The usual case: no partial line waiting, read the chunk in place.
            let used = lines(&mut self.builder, chunk, out)?;
            self.pending.extend_from_slice(&chunk[used..]);
            return Ok(());
        }
        self.pending.extend_from_slice(chunk);
        if !self.started {
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Ok(());
            }
            self.started = true;
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
            }
        }
        let used = lines(&mut self.builder, &self.pending, out)?;
        self.pending.drain(..used);
        Ok(())
    }
}

/// Reads the complete lines at the start of `input`; returns how many bytes
/// they took. A CR at the very end waits: an LF may follow in the next chunk.
fn lines(builder: &mut Builder, input: &[u8], out: &mut VecDeque<SseEvent>) -> Result<usize, ()> {
    let mut start = 0;
    while let Some(offset) = memchr::memchr2(b'\n', b'\r', &input[start..]) {
        let end = start + offset;
        let next = if input[end] == b'\n' {
            end + 1
        } else if end + 1 == input.len() {
            break;
        } else if input[end + 1] == b'\n' {
            end + 2
        } else {
            end + 1
        };
        builder.line(&input[start..end], out)?;
        start = next;
    }
    Ok(start)
}

/// The events of a byte stream (an HTTP body).
pub(crate) struct SseStream<E> {
    body: BoxStream<'static, Result<Bytes, E>>,
    decoder: Decoder,
    ready: VecDeque<SseEvent>,
    done: bool,
}

impl<E> SseStream<E> {
    pub fn new(body: impl Stream<Item = Result<Bytes, E>> + Send + 'static) -> SseStream<E> {
        SseStream {
            body: Box::pin(body),
            decoder: Decoder::default(),
            ready: VecDeque::new(),
            done: false,
        }
    }
}

impl<E> Stream for SseStream<E> {
    type Item = Result<SseEvent, SseError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(this.body.as_mut().poll_next(cx)) {
                Some(Ok(bytes)) => {
                    if this.decoder.feed(&bytes, &mut this.ready).is_err() {
                        this.done = true;
                        return Poll::Ready(Some(Err(SseError::Utf8)));
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(SseError::Transport(e))));
                }
                None => this.done = true,
            }
        }
    }
}

/// Encodes one unnamed event: `data: DATA` and the blank line.
pub fn encode_data(data: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + 8);
    buf.put_slice(b"data: ");
    buf.put_slice(data);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// Encodes one named event: `event: NAME`, its JSON `data` and the blank line.
pub fn encode_event(name: &str, data: &serde_json::Value) -> Bytes {
    let json = data.to_string();
    let mut buf = BytesMut::with_capacity(json.len() + name.len() + 16);
    buf.put_slice(b"event: ");
    buf.put_slice(name.as_bytes());
    buf.put_slice(b"\ndata: ");
    buf.put_slice(json.as_bytes());
    buf.put_slice(b"\n\n");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn decode(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut decoder = Decoder::default();
        let mut out = VecDeque::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out).unwrap();
        }
        out.into_iter()
            .map(|e| (e.event.into_owned(), e.data))
            .collect()
    }

    fn collect<E>(stream: SseStream<E>) -> Vec<Result<SseEvent, SseError<E>>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(stream.collect())
    }

    fn ev(event: &str, data: &str) -> (String, String) {
        (event.to_owned(), data.to_owned())
    }

    #[test]
    fn data_only_events_are_messages() {
        assert_eq!(
            decode(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]),
            vec![ev("message", "{\"a\":1}"), ev("message", "[DONE]")]
        );
    }

    #[test]
    fn named_events_and_multi_line_data() {
        assert_eq!(
            decode(&[b"event: message_start\ndata: one\ndata:two\n\n"]),
            vec![ev("message_start", "one\ntwo")]
        );
    }

    #[test]
    fn every_line_ending_and_any_chunking_read_the_same() {
        let text = b"\xEF\xBB\xBF: comment\r\nevent: e\rdata: x\r\n\r\ndata: y\n\nid: 7\nretry: 5\ndata\n\n";
        let whole = decode(&[text]);
        assert_eq!(
            whole,
            vec![ev("e", "x"), ev("message", "y"), ev("message", "")]
        );
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(decode(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(decode(&bytes), whole);
    }

    #[test]
    fn a_multi_byte_character_split_across_chunks_survives() {
        let text = "data: héllo ✓\n\n".as_bytes();
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(decode(&[a, b]), vec![ev("message", "héllo ✓")]);
        }
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing_and_reset_the_name() {
        assert_eq!(
            decode(&[b"event: ping\n\n\n\ndata: z\n\n"]),
            vec![ev("message", "z")]
        );
    }

    #[test]
    fn an_event_cut_by_the_end_of_the_stream_is_dropped() {
        let body = futures::stream::iter(vec![Ok::<_, String>(Bytes::from_static(
            b"data: whole\n\ndata: cut",
        ))]);
        let events: Vec<_> = collect(SseStream::new(body));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].as_ref().unwrap().data, "whole");
    }

    #[test]
    fn invalid_utf8_and_transport_errors_end_the_stream() {
        let body =
            futures::stream::iter(vec![Ok::<_, String>(Bytes::from_static(b"data: \xFF\n\n"))]);
        let events: Vec<_> = collect(SseStream::new(body));
        assert!(matches!(events.as_slice(), [Err(SseError::Utf8)]));

        let body = futures::stream::iter(vec![Err::<Bytes, _>("reset".to_owned())]);
        let events: Vec<_> = collect(SseStream::new(body));
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].as_ref().unwrap_err().to_string(),
            "Transport error: reset"
        );
    }
}
