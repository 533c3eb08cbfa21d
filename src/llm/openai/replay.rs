//! A streamed response body replayed from memory: the same SSE decoding ([`sse::events`]) and
//! the same [`ChunkParser`] as [`StreamReader::read_sse`](super::StreamReader), without a
//! connection, timeouts or a channel. The property tests and the `sse` fuzz target drive the
//! parser through here, so what they check is what a real response goes through.

use super::{sse, ChunkParser, Step};
use crate::llm::{ChatEvent, LlmError};
use futures::StreamExt;

/// Every item `read_sse` would send for a response whose body arrives as `chunks`, in order. The
/// last item is always the end of the reply: `Finished`, or the error that cut it.
///
/// Keep the handling of each event in step with `StreamReader::read_sse`.
pub(crate) fn sse_events<'a>(
    provider: &'static str,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<ChatEvent, LlmError>> {
    let body = futures::stream::iter(
        chunks
            .into_iter()
            .map(Ok::<&[u8], std::convert::Infallible>),
    );
    let mut events = sse::events(body);
    let mut parser = ChunkParser::default();
    let mut out = Vec::new();
    loop {
        // An in-memory stream is always ready: this never waits.
        let next = futures::executor::block_on(events.next());
        let outcome = match next {
            None => parser.end(provider),
            Some(Err(e)) => Step::Fail(LlmError::Unreachable {
                provider,
                endpoint: "the stream".into(),
                reason: e.to_string(),
            }),
            Some(Ok(event)) => {
                if event.event == "keepalive" || event.data.trim().is_empty() {
                    continue;
                }
                parser.feed(provider, &event.data)
            }
        };
        match outcome {
            Step::Emit(emitted) => out.extend(emitted.into_iter().map(Ok)),
            Step::Done(emitted) => {
                out.extend(emitted.into_iter().map(Ok));
                return out;
            }
            Step::Fail(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}
