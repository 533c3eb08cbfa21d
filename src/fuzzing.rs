//! [ssr] What the `cargo fuzz` targets in `fuzz/` call: the parsers that read bytes from outside
//! (an uploaded avatar, a language model's stream), each with the invariants a run must keep. A
//! panic here is a finding. Not an API of the app.

use crate::avatars::inspect;
use crate::llm::{openai::replay::sse_events, ChatEvent};

/// An uploaded file under each extension it may carry: no panic, whatever the bytes.
pub fn glb(data: &[u8]) {
    for ext in ["glb", "vrm", "gltf"] {
        let _ = inspect(ext, data);
    }
}

/// A streamed chat response. The first byte says how the rest is cut into network reads (1 to
/// 256 bytes each), so the fuzzer explores read boundaries too. The reply must end exactly once,
/// as its last item, and come out the same however it was cut.
pub fn sse(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let whole = sse_events("fuzz", [body]);
    let chunked = sse_events("fuzz", body.chunks(usize::from(first) + 1));
    let ends = whole
        .iter()
        .filter(|e| matches!(e, Ok(ChatEvent::Finished { .. }) | Err(_)))
        .count();
    assert_eq!(ends, 1, "the reply must end exactly once: {whole:?}");
    assert!(
        matches!(whole.last(), Some(Ok(ChatEvent::Finished { .. }) | Err(_))),
        "the end must come last: {whole:?}"
    );
    assert_eq!(whole, chunked, "the read boundaries changed the reply");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                (path.display().to_string(), std::fs::read(&path).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// The seed corpus stays meaningful: every seed runs clean, the avatars are recognised and
    /// the streams say something.
    #[test]
    fn the_fuzz_seeds_run_clean() {
        for (name, bytes) in seeds("glb") {
            glb(&bytes);
            assert!(inspect("glb", &bytes).is_ok(), "{name}");
        }
        let streams = seeds("sse");
        assert!(streams.len() >= 5);
        for (name, bytes) in streams {
            sse(&bytes);
            let events = sse_events("seed", [&bytes[1..]]);
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Ok(ChatEvent::Content(_) | ChatEvent::Reasoning(_)))),
                "{name}: {events:?}"
            );
        }
    }
}
