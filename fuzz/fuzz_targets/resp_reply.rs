//! RESP2 reply parsing (`security::resp::parse_reply`), which reads what a Redis server (or
//! anything listening where one is configured) sends: any bytes give a reply, "need more" or an
//! error, never a panic; a parsed reply never claims more bytes than it was given; every strict
//! prefix of a complete reply is "need more" (or the same kind of error); and a reply re-encoded
//! parses back to itself from exactly its own bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use task_mcp::security::resp::{encode_reply, parse_reply};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((used, reply))) = parse_reply(data) else {
        return;
    };
    assert!(used > 0 && used <= data.len());
    for k in 0..used {
        assert!(
            !matches!(parse_reply(&data[..k]), Ok(Some(_))),
            "a strict prefix of {used} bytes parsed whole at {k}"
        );
    }
    let mut again = Vec::new();
    encode_reply(&reply, &mut again);
    assert_eq!(
        parse_reply(&again).ok().flatten(),
        Some((again.len(), reply))
    );
});
