//! Feeds arbitrary bytes to the HTML loader: it must return text or an error, never panic,
//! hang or exhaust memory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hikitsugi_ingest::html::extract_html(data);
});
