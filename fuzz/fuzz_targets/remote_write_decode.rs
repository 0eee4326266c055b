//! Remote write and remote read decoding on arbitrary bytes: must return errors, never panic,
//! and never allocate beyond the snappy limit.
#![no_main]

use edgeprom::remote::proto::{
    decode_read_response, snappy_decompress, ReadRequest, WriteRequest, MAX_DECOMPRESSED,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a raw protobuf body.
    let _ = WriteRequest::decode(data);
    let _ = ReadRequest::decode(data);
    let _ = decode_read_response(data);
    // As a snappy-framed body, the way the endpoints receive it.
    if let Ok(raw) = snappy_decompress(data, MAX_DECOMPRESSED) {
        if let Ok(req) = WriteRequest::decode(&raw) {
            // Whatever decodes re-encodes to a fixed point (bytes compare NaNs by bits).
            let mut once = Vec::new();
            req.encode(&mut once);
            let again = WriteRequest::decode(&once).expect("our own encoding decodes");
            let mut twice = Vec::new();
            again.encode(&mut twice);
            assert_eq!(once, twice);
        }
        let _ = ReadRequest::decode(&raw);
    }
});
