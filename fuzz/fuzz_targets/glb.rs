//! An uploaded avatar file: `avatars::inspect` under each extension must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| waifu_rt3d::fuzzing::glb(data));
