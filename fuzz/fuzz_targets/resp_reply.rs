//! RESP2 reply parsing (`security::resp::parse_reply`), which reads what a Redis server (or
//! anything listening where one is configured) sends: any bytes give a reply, "need more" or an
//! error, never a panic; a parsed reply never claims more bytes than it was given; every strict
//! prefix of a complete reply is "need more" (or the same kind of error); and a reply re-encoded
//! parses back to itself from exactly its own bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use task_mcp::security::resp::{Reply, parse_reply};

fn encode(r: &Reply, out: &mut Vec<u8>) {
    match r {
        Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                encode(i, out);
            }
        }
    }
}

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
    encode(&reply, &mut again);
    assert_eq!(
        parse_reply(&again).ok().flatten(),
        Some((again.len(), reply))
    );
});
