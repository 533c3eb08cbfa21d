//! Property tests of the streamed-reply parser: the SSE decoding and [`ChunkParser`] together, as
//! [`replay::sse_events`] runs them.

use super::replay::sse_events;
use super::{ChunkParser, Step};
use crate::llm::{ChatEvent, FinishReason, LlmError, Usage};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

const P: &str = "LM Studio";

/// One SSE event a server may send before `[DONE]`.
#[derive(Clone, Debug)]
enum Sent {
    Content(String),
    /// `reasoning_content` (LM Studio) when true, `reasoning` (Ollama) when false.
    Reasoning(bool, String),
    /// The role-only first chunk, an empty delta, a `null` content, `choices: []`.
    Nothing(u8),
    Usage(u32, u32),
    Finish(&'static str),
    /// `event: keepalive`, a `: comment`, an `id:`/`retry:` line, an event without data.
    Noise(u8),
}

/// A whole response body: its events, how its lines end, and whether JSON is spread over several
/// `data:` lines (as a pretty-printing server does).
#[derive(Clone, Debug)]
struct Body {
    bom: bool,
    eol: &'static str,
    pretty: bool,
    events: Vec<Sent>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        crate::testing::any_text(),
        crate::testing::re("[a-z ]{0,12}"),
        // What replies are made of: words, newlines, quotes, JSON and SSE syntax, CJK, emoji.
        prop::collection::vec(
            prop::sample::select(vec![
                "Hello", " ", "\n", "\r\n", "\"", "\\", "data: ", "[DONE]", ":", "{", "}", "é",
                "日本", "🙂", "<think>", "\u{2028}", "\u{FEFF}", "\t", ""
            ]),
            0..8
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        6 => text().prop_map(Sent::Content),
        2 => (any::<bool>(), text()).prop_map(|(f, t)| Sent::Reasoning(f, t)),
        2 => (0u8..4).prop_map(Sent::Nothing),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(p, c)| Sent::Usage(p, c)),
        1 => prop::sample::select(vec!["stop", "length", "content_filter", "tool_calls", "eos"])
            .prop_map(Sent::Finish),
        2 => (0u8..5).prop_map(Sent::Noise),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    (
        any::<bool>(),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        any::<bool>(),
        prop::collection::vec(sent(), 0..12),
    )
        .prop_map(|(bom, eol, pretty, events)| Body {
            bom,
            eol,
            pretty,
            events,
        })
}

/// The chunk of one sent event, as a server writes it.
fn chunk_json(sent: &Sent) -> Option<Value> {
    let choice = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    Some(match sent {
        Sent::Content(t) => choice(json!({"content": t}), Value::Null),
        Sent::Reasoning(true, t) => choice(json!({"reasoning_content": t}), Value::Null),
        Sent::Reasoning(false, t) => {
            choice(json!({"role": "assistant", "reasoning": t}), Value::Null)
        }
        Sent::Nothing(0) => choice(json!({"role": "assistant", "content": ""}), Value::Null),
        Sent::Nothing(1) => choice(json!({}), Value::Null),
        Sent::Nothing(2) => choice(json!({"content": null}), Value::Null),
        Sent::Nothing(_) => json!({"id": "c", "choices": []}),
        Sent::Usage(p, c) => json!({"id": "c", "choices": [],
               "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": 0}}),
        Sent::Finish(reason) => choice(json!({}), json!(reason)),
        Sent::Noise(_) => return None,
    })
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        let eol = self.eol;
        let mut out = String::new();
        if self.bom {
            out.push('\u{FEFF}');
        }
        let data = |out: &mut String, payload: &str| {
            for line in payload.split('\n') {
                out.push_str(if line.len() % 2 == 0 {
                    "data: "
                } else {
                    "data:"
                });
                out.push_str(line);
                out.push_str(eol);
            }
            out.push_str(eol);
        };
        for sent in &self.events {
            match (sent, chunk_json(sent)) {
                (_, Some(v)) => {
                    let payload = if self.pretty {
                        serde_json::to_string_pretty(&v)
                    } else {
                        serde_json::to_string(&v)
                    };
                    data(&mut out, &payload.unwrap_or_default());
                }
                (Sent::Noise(0), None) => {
                    out.push_str(&format!("event: keepalive{eol}data: {{}}{eol}{eol}"))
                }
                (Sent::Noise(1), None) => out.push_str(&format!(": ping{eol}{eol}")),
                (Sent::Noise(2), None) => out.push_str(&format!("id: 7{eol}retry: 1000{eol}")),
                (Sent::Noise(3), None) => out.push_str(&format!("data:{eol}{eol}")),
                (_, None) => out.push_str(&format!("event: message{eol}{eol}")),
            }
        }
        data(&mut out, "[DONE]");
        out.into_bytes()
    }

    /// Exactly what the parser must report for this body.
    fn expected(&self) -> Vec<Result<ChatEvent, LlmError>> {
        let mut out = Vec::new();
        let mut finish = None;
        let mut usage = None;
        for sent in &self.events {
            match sent {
                Sent::Content(t) if !t.is_empty() => out.push(Ok(ChatEvent::Content(t.clone()))),
                Sent::Reasoning(_, t) if !t.is_empty() => {
                    out.push(Ok(ChatEvent::Reasoning(t.clone())))
                }
                Sent::Usage(p, c) => {
                    usage = Some(Usage {
                        cached_tokens: None,
                        prompt_tokens: *p,
                        completion_tokens: *c,
                    })
                }
                Sent::Finish(r) => finish = Some(super::finish_reason(r)),
                _ => {}
            }
        }
        // With bare-CR line endings the blank line after `[DONE]` is a lone `\r` at the very end
        // of the body, which the SSE decoder keeps waiting on (it could be the start of a CRLF):
        // the reply then ends as a cut stream, complete only if a finish reason came.
        if self.eol == "\r" && finish.is_none() {
            out.push(Err(LlmError::Interrupted { provider: P }));
        } else {
            out.push(Ok(ChatEvent::Finished {
                reason: finish.unwrap_or(FinishReason::Stop),
                usage,
            }));
        }
        out
    }
}

/// `bytes` cut into network reads: at the given places, or every `size` bytes.
fn cut<'a>(bytes: &'a [u8], cuts: &Cuts) -> Vec<&'a [u8]> {
    match cuts {
        Cuts::Every(size) => bytes.chunks(*size).collect(),
        Cuts::At(places) => {
            let mut at: Vec<usize> = places.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            at.dedup();
            at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
        }
    }
}

#[derive(Clone, Debug)]
enum Cuts {
    Every(usize),
    At(Vec<Index>),
}

/// Cuts anywhere (mid-line, mid-CRLF, mid-character), or reads of a fixed small size. Not byte
/// by byte: the SSE decoder parses a partial line again on every read, so a long line read a
/// byte at a time costs its square.
fn cuts() -> impl Strategy<Value = Cuts> {
    prop_oneof![
        4 => prop::collection::vec(any::<Index>(), 0..16).prop_map(Cuts::At),
        1 => (2usize..64).prop_map(Cuts::Every),
    ]
}

/// The reply always ends, exactly once, as its last item: `Finished` or an error.
fn ends_once(events: &[Result<ChatEvent, LlmError>]) -> Result<(), TestCaseError> {
    let is_end =
        |e: &Result<ChatEvent, LlmError>| matches!(e, Ok(ChatEvent::Finished { .. }) | Err(_));
    prop_assert!(events.last().is_some_and(is_end), "no end: {events:?}");
    prop_assert_eq!(
        events.iter().filter(|e| is_end(e)).count(),
        1,
        "{:?}",
        events
    );
    Ok(())
}

proptest! {
    #![proptest_config(crate::testing::config())]

    /// Whatever bytes arrive, however they are cut: no panic, the reply ends exactly once, and
    /// the cut changes nothing (the decoder buffers partial lines and partial UTF-8).
    #[test]
    fn arbitrary_bytes_never_panic_and_end_the_reply_once(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            // Mostly SSE-shaped: field names, colons, line ends, JSON, bytes of UTF-8.
            prop::collection::vec(
                prop::sample::select(vec![
                    &b"data: "[..], b"data:", b"event: keepalive", b": x", b"\n", b"\r", b"\r\n",
                    b"{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}", b"[DONE]",
                    b"{\"error\":{\"message\":\"boom\"}}", b"\xEF\xBB\xBF", b"\xE6\x97", b"\xA5",
                    b"\xFF", b"{", b"\"", b"id: 1", b"retry: x",
                ]),
                0..40,
            )
            .prop_map(|parts| parts.concat()),
        ],
        cuts in cuts(),
    ) {
        let whole = sse_events(P, [bytes.as_slice()]);
        ends_once(&whole)?;
        let chunked = sse_events(P, cut(&bytes, &cuts));
        prop_assert_eq!(chunked, whole);
        // The fuzz target's own checks, with the first byte picking the read size.
        crate::fuzzing::sse(&bytes);
    }

    /// Any `data:` payload, JSON or not: no panic, no empty text events, and only `[DONE]` ends
    /// the reply from here.
    #[test]
    fn arbitrary_data_never_panics_or_emits_empty_text(
        data in prop_oneof![
            crate::testing::any_text(),
            json_like().prop_map(|v| v.to_string()),
        ],
    ) {
        let mut parser = ChunkParser::default();
        match parser.feed(P, &data) {
            Step::Emit(events) => {
                for e in &events {
                    let empty = matches!(e, ChatEvent::Content(t) | ChatEvent::Reasoning(t) if t.is_empty());
                    prop_assert!(!empty, "{events:?}");
                    let end = matches!(e, ChatEvent::Finished { .. } | ChatEvent::Loading(_));
                    prop_assert!(!end, "{events:?}");
                }
            }
            Step::Done(events) => {
                prop_assert_eq!(data.trim(), "[DONE]");
                let finished = matches!(events.as_slice(), [ChatEvent::Finished { .. }]);
                prop_assert!(finished, "{events:?}");
            }
            Step::Fail(_) => {}
        }
    }

    /// A valid stream gives exactly the events that were sent, however it is cut into reads
    /// (mid-line, mid-CRLF, mid-UTF-8, byte by byte): the text deltas concatenate to the text
    /// sent, reasoning stays apart, and the end carries the last finish reason and usage.
    #[test]
    fn a_valid_stream_gives_what_was_sent_however_it_is_cut(body in body(), cuts in cuts()) {
        let bytes = body.bytes();
        let whole = sse_events(P, [bytes.as_slice()]);
        prop_assert_eq!(&whole, &body.expected());
        let chunked = sse_events(P, cut(&bytes, &cuts));
        prop_assert_eq!(&chunked, &whole);

        let text = |events: &[Result<ChatEvent, LlmError>]| -> String {
            events.iter().filter_map(|e| match e {
                Ok(ChatEvent::Content(t)) => Some(t.as_str()),
                _ => None,
            }).collect()
        };
        let sent: String = body.events.iter().filter_map(|s| match s {
            Sent::Content(t) => Some(t.as_str()),
            _ => None,
        }).collect();
        prop_assert_eq!(text(&chunked), sent);
    }
}

/// JSON shaped like stream chunks, with every field the parser looks at taking any type.
fn json_like() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        crate::testing::any_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "choices",
                    "delta",
                    "message",
                    "content",
                    "reasoning",
                    "reasoning_content",
                    "finish_reason",
                    "usage",
                    "prompt_tokens",
                    "completion_tokens",
                    "error",
                    "detail",
                    "index",
                    "role",
                ])
                .prop_map(str::to_string),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
