//! Feeds arbitrary bytes to the PDF loader: it must return pages or an error, never panic,
//! hang or exhaust memory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hikitsugi_ingest::pdf::extract_pdf(data);
});
