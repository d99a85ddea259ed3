//! Incremental Server-Sent Events decoding.
//!
//! Bytes arrive in arbitrary frames: an event may be split across frames, and one frame may hold
//! many events. The decoder keeps only the unfinished line and the event being assembled, reusing
//! both buffers, so steady-state decoding allocates nothing.

use std::ops::ControlFlow;

/// Decodes an SSE byte stream into the `data` payloads of its events.
///
/// Follows the SSE rules that matter for LLM streams: lines end in LF or CRLF; lines starting with
/// `:` are comments; `data:` values (one optional leading space removed) of one event are joined
/// with `\n`; a blank line dispatches the event; other fields (`event`, `id`, `retry`) are ignored.
///
/// One event (or one line) larger than [`MAX_EVENT`] stops decoding: [`SseDecoder::feed`] breaks
/// and [`SseDecoder::oversized`] says why, so a server that never ends a line cannot exhaust
/// memory.
#[derive(Debug, Default)]
pub struct SseDecoder {
    partial_line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    oversized: bool,
}

/// The largest event (or line) accepted: far above any real chunk (a chunk with 20 top
/// log-probabilities per token is a few KiB).
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// An event or line past [`MAX_EVENT`] stopped decoding.
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// Feeds bytes; calls `on_event` with each complete event's data. Stops early (and returns
    /// `Break`) when the callback breaks.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_event: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.oversized {
            return ControlFlow::Break(());
        }
        while let Some(pos) = memchr::memchr(b'\n', input) {
            let (head, rest) = input.split_at(pos);
            input = &rest[1..];
            if self.partial_line.is_empty() {
                self.line(head, &mut on_event)?;
            } else {
                let mut line = std::mem::take(&mut self.partial_line);
                line.extend_from_slice(head);
                let flow = self.line(&line, &mut on_event);
                line.clear();
                self.partial_line = line;
                flow?;
            }
        }
        if self.partial_line.len() + input.len() > MAX_EVENT {
            self.oversized = true;
            return ControlFlow::Break(());
        }
        self.partial_line.extend_from_slice(input);
        ControlFlow::Continue(())
    }

    /// Ends the stream. Lenient: a last line without its newline and an event without its closing
    /// blank line are still delivered (some servers end on `data: [DONE]\n`).
    pub fn finish(
        &mut self,
        mut on_event: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.line(&line, &mut on_event)?;
        }
        self.line(b"", &mut on_event)
    }

    fn line(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                let flow = on_event(&self.data);
                self.data.clear();
                return flow;
            }
            return ControlFlow::Continue(());
        }
        if line[0] == b':' {
            return ControlFlow::Continue(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.data.len() + value.len() > MAX_EVENT {
                self.oversized = true;
                return ControlFlow::Break(());
            }
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<String> {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            let _ = dec.feed(chunk, |d| {
                out.push(String::from_utf8(d.to_vec()).unwrap());
                ControlFlow::Continue(())
            });
        }
        let _ = dec.finish(|d| {
            out.push(String::from_utf8(d.to_vec()).unwrap());
            ControlFlow::Continue(())
        });
        out
    }

    const STREAM: &[u8] = b": keep-alive comment\n\ndata: {\"a\":1}\n\nevent: message\r\ndata: {\"b\":2}\r\n\r\ndata:no-space\n\ndata: line1\ndata: line2\n\nid: 7\nretry: 10\n\ndata: [DONE]\n\n";

    #[test]
    fn decodes_every_split_the_same_way() {
        let expected = vec![
            "{\"a\":1}",
            "{\"b\":2}",
            "no-space",
            "line1\nline2",
            "[DONE]",
        ];
        for piece in 1..=STREAM.len() {
            assert_eq!(
                decode_in_pieces(STREAM, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn delivers_a_last_event_without_blank_line() {
        assert_eq!(
            decode_in_pieces(b"data: x\n\ndata: [DONE]", 4),
            vec!["x", "[DONE]"]
        );
        assert_eq!(decode_in_pieces(b"data: [DONE]\n", 3), vec!["[DONE]"]);
    }

    #[test]
    fn an_endless_line_or_event_stops_at_the_limit() {
        let mut dec = SseDecoder::new();
        let piece = vec![b'x'; 64 * 1024];
        let mut flow = dec.feed(b"data: ", |_| ControlFlow::Continue(()));
        let mut fed = 0;
        while flow.is_continue() && fed < 2 * MAX_EVENT {
            flow = dec.feed(&piece, |_| ControlFlow::Continue(()));
            fed += piece.len();
        }
        assert!(flow.is_break() && dec.oversized());
        assert!(fed <= MAX_EVENT + piece.len(), "{fed}");
        // Many data lines of one event add up too.
        let mut dec = SseDecoder::new();
        let line = [b"data: ".as_slice(), &piece, b"\n"].concat();
        let mut flow = ControlFlow::Continue(());
        for _ in 0..(MAX_EVENT / piece.len() + 2) {
            flow = dec.feed(&line, |_| ControlFlow::Continue(()));
        }
        assert!(flow.is_break() && dec.oversized());
    }

    #[test]
    fn break_stops_decoding() {
        let mut dec = SseDecoder::new();
        let mut n = 0;
        let flow = dec.feed(b"data: 1\n\ndata: 2\n\n", |_| {
            n += 1;
            ControlFlow::Break(())
        });
        assert!(flow.is_break());
        assert_eq!(n, 1);
    }
}
