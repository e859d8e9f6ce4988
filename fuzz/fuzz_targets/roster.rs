//! Fuzz target `roster`: see `matterdrop_fuzz::roster` (fuzz/src/lib.rs), the
//! same function `common/tests/fuzz_corpus.rs` replays the corpus through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| matterdrop_fuzz::roster(data));
