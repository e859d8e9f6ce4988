//! Fuzz target `descriptor`: see `matterdrop_fuzz::descriptor` (fuzz/src/lib.rs), the
//! same function `common/tests/fuzz_corpus.rs` replays the corpus through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| matterdrop_fuzz::descriptor(data));
