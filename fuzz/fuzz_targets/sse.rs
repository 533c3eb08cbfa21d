//! A language model's streamed reply: the SSE decoding and the OpenAI chunk parser must never
//! panic, must end the reply exactly once, and must not depend on how the bytes were cut into
//! reads (the first input byte picks the read size).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| waifu_rt3d::fuzzing::sse(data));
