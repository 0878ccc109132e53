//! `ChunkedDecoder` incremental equivalence: feeding a body split at arbitrary points gives the
//! same decoded bytes, the same end state, the same consumed length and the same error as
//! feeding it whole; the decoded length never passes the limit.
//!
//! Input: byte 0 picks the limit (`16 * b` bytes), byte 1 seeds the split points, the rest is
//! the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use task_mcp::http::body::ChunkedDecoder;

fuzz_target!(|input: &[u8]| {
    let [limit, seed, data @ ..] = input else {
        return;
    };
    let max_body_bytes = 16 * u64::from(*limit);
    let (whole_result, whole_out, whole_done) = {
        let mut dec = ChunkedDecoder::new(max_body_bytes);
        let mut out = Vec::new();
        let r = dec.feed(data, &mut out);
        (r, out, dec.is_done())
    };
    if let Ok(used) = &whole_result {
        assert!(*used <= data.len());
        // Input is left over only once the body has ended (it is the next request).
        assert!(
            *used == data.len() || whole_done,
            "stopped early without finishing"
        );
    }
    assert!(
        whole_out.len() as u64 <= max_body_bytes,
        "decoded past the limit"
    );

    let mut dec = ChunkedDecoder::new(max_body_bytes);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut split_result = Ok(0);
    let mut rng = u32::from(*seed) | 1;
    while pos < data.len() {
        // xorshift: cheap, deterministic piece lengths from 1 to 16 bytes.
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let step = (rng as usize % 16 + 1).min(data.len() - pos);
        let piece = &data[pos..pos + step];
        match dec.feed(piece, &mut out) {
            Ok(used) => {
                assert!(used <= piece.len());
                pos += used;
                split_result = Ok(pos);
                if used < piece.len() {
                    assert!(dec.is_done(), "a piece was left unconsumed before the end");
                    break;
                }
                if dec.is_done() {
                    break;
                }
            }
            Err(e) => {
                split_result = Err(e);
                break;
            }
        }
    }
    assert_eq!(split_result, whole_result);
    assert_eq!(out, whole_out);
    assert_eq!(dec.is_done(), whole_done);
});
