//! The SSE events of a response body, read by `eventsource-stream` with one repair: that crate
//! (0.2.3) drops a leading UTF-8 byte-order mark by slicing one byte off a three-byte character,
//! which panics. The mark is removed here instead (as the SSE spec says), and the body is
//! preceded by an empty line, which dispatches nothing but means the crate never sees a mark
//! first, whatever follows (a second mark, as the spec says, is part of the first field's name).

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

const BOM: &[u8] = "\u{FEFF}".as_bytes();

/// The events of `body`, however its bytes are cut into chunks.
pub(super) fn events<S, B, E>(body: S) -> impl Stream<Item = Result<Event, EventStreamError<E>>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    // The first bytes, held while they may still be the start of a mark split across chunks.
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    body.map(move |chunk| {
        chunk.map(|bytes| {
            let Some(mut held) = head.take() else {
                return Chunk::Passed(bytes);
            };
            held.extend_from_slice(bytes.as_ref());
            if held.len() < BOM.len() && BOM.starts_with(&held) {
                head = Some(held);
                return Chunk::Owned(Vec::new());
            }
            let rest = held.strip_prefix(BOM).unwrap_or(&held);
            let mut first = Vec::with_capacity(rest.len() + 1);
            first.push(b'\n');
            first.extend_from_slice(rest);
            Chunk::Owned(first)
        })
    })
    .eventsource()
}

/// A chunk passed on as it came, or the (rewritten) first one.
enum Chunk<B> {
    Passed(B),
    Owned(Vec<u8>),
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Chunk<B> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Chunk::Passed(bytes) => bytes.as_ref(),
            Chunk::Owned(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(chunks: &[&[u8]]) -> Vec<String> {
        let body = futures::stream::iter(chunks.iter().map(Ok::<_, std::convert::Infallible>));
        futures::executor::block_on(events(body).collect::<Vec<_>>())
            .into_iter()
            .map(|e| e.map(|e| e.data).unwrap_or_else(|e| format!("error: {e}")))
            .collect()
    }

    #[test]
    fn a_byte_order_mark_is_removed_even_when_split() {
        let bom = "\u{FEFF}".as_bytes();
        let whole = [bom, b"data: hi\n\n"].concat();
        assert_eq!(data(&[&whole]), ["hi"]);
        assert_eq!(
            data(&[&bom[..1], &bom[1..2], &bom[2..], b"data: hi\n\n"]),
            ["hi"]
        );
        assert_eq!(data(&[b"data: hi\n\n"]), ["hi"]);
        // A second mark belongs to the first field's name, which is then no field we know.
        let twice = [bom, bom, b"data: lost\n\ndata: kept\n\n"].concat();
        assert_eq!(data(&[&twice]), ["kept"]);
        assert!(data(&[]).is_empty());
    }
}
