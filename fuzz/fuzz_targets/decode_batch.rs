//! Fuzz the ingest batch decoder (`edetail_format::ingest::decode_batch`).
//! Property: never panics; an accepted batch respects the event-count limit and
//! every event is decoded or refused with a reason.
#![no_main]

use edetail_format::ingest::{MAX_BATCH_EVENTS, decode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = decode_batch(data) {
        assert!(batch.events.len() <= MAX_BATCH_EVENTS);
        for (id, ev) in &batch.events {
            assert!(id.chars().count() <= 64);
            if let Err(e) = ev {
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
