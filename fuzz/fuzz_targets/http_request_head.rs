//! `parse_head` on arbitrary bytes: never panics, `Ok(None)` only while the head is unterminated
//! and within its limit, and a head found in a prefix is exactly the head of the whole input
//! (bytes after the blank line are the body and change nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use task_mcp::http::request::{HeadLimits, parse_head};

fuzz_target!(|data: &[u8]| {
    // Small limits, so short inputs reach the size checks too.
    let limits = HeadLimits {
        max_head_bytes: 512,
        max_headers: 8,
    };
    let whole = parse_head(data, &limits);
    match &whole {
        Ok(Some((n, head))) => {
            assert!(*n <= data.len() && *n <= limits.max_head_bytes);
            assert!(!head.path.is_empty());
            assert!(head.headers.len() <= limits.max_headers);
            // The head alone parses to the same head.
            assert_eq!(parse_head(&data[..*n], &limits), whole);
        }
        Ok(None) => {
            // More bytes can only help while the limit is not reached and no blank line came.
            assert!(
                data.len() <= limits.max_head_bytes,
                "Ok(None) past the limit"
            );
            assert!(head_end(data).is_none(), "Ok(None) with a terminated head");
        }
        Err(_) => {}
    }
    for cut in cut_points(data.len()) {
        match parse_head(&data[..cut], &limits) {
            Ok(Some(prefix)) => assert_eq!(Ok(Some(prefix)), whole, "prefix {cut} disagrees"),
            // An error in a prefix cannot be repaired by more bytes.
            Err(e) => assert!(
                whole.is_err(),
                "prefix {cut} failed with {e:?}, whole parsed"
            ),
            Ok(None) => {}
        }
    }
});

/// Every cut for short inputs; 32 spread cuts for long ones.
fn cut_points(len: usize) -> Vec<usize> {
    if len <= 64 {
        (0..len).collect()
    } else {
        (0..32).map(|i| i * len / 32).collect()
    }
}

/// Independent restatement of the terminator rule: `\n\n` or `\n\r\n`.
fn head_end(data: &[u8]) -> Option<usize> {
    (0..data.len()).find(|&i| {
        data[i] == b'\n'
            && (data.get(i + 1) == Some(&b'\n')
                || (data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n')))
    })
}
