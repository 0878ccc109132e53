//! JSON-RPC messages: `parse → encode → parse` is the identity; a body is a parse error exactly
//! when it is not JSON; and the real `POST /mcp` dispatcher answers every refusal with the code
//! class the parse called for (-32700 for non-JSON, -32600 with the readable id for invalid
//! messages, and only JSON-RPC or server-range codes otherwise).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use task_mcp::http::request::{HeadLimits, parse_head};
use task_mcp::http::{Body, Head};
use task_mcp::mcp::{self, Caller, McpEnv, NoHooks, Settings};
use task_mcp::rpc::{self, Parsed};
use task_mcp::tools::testing::Echo;
use task_mcp::tools::{Access, Registry};

struct Fixture {
    env: Arc<McpEnv>,
    head: Head,
    caller: Caller,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut reg = Registry::new();
        reg.add_tool(Arc::new(Echo::new()));
        let env = Arc::new(McpEnv::new(reg, Settings::default(), Arc::new(NoHooks)));
        let raw = b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Accept: application/json\r\n\r\n";
        let Ok(Some((_, head))) = parse_head(raw, &HeadLimits::default()) else {
            panic!("fixture head must parse");
        };
        let caller = Caller {
            identity: "fuzz".into(),
            grants: Access::Read,
        };
        Fixture { env, head, caller }
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = rpc::parse(data);
    let is_json = serde_json::from_slice::<Value>(data).is_ok();
    assert_eq!(matches!(parsed, Parsed::ParseError(_)), !is_json);
    if let Some((first, second)) = rpc::round_trip(data) {
        assert_eq!(first, second, "parse(encode(parse(x))) != parse(x)");
    }

    // Seed-style `{tool, input}` bodies start a stream; they are not JSON-RPC.
    if is_json && data.windows(6).any(|w| w == b"\"tool\"") {
        return;
    }
    let f = fixture();
    let resp = mcp::http::post(&f.env, &f.head, data, &f.caller);
    let Body::Bytes(bytes) = &resp.body else {
        return;
    };
    let answer: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => panic!(
            "dispatcher answered non-JSON ({e}) with status {}",
            resp.status
        ),
    };
    match &parsed {
        Parsed::ParseError(_) => {
            assert_eq!(resp.status, 400);
            assert_eq!(answer["error"]["code"], -32700);
            assert!(answer["id"].is_null());
        }
        Parsed::Invalid(inv) => {
            assert_eq!(resp.status, 400);
            assert_eq!(answer["error"]["code"], -32600);
            let id = inv.id.as_ref().map_or(Value::Null, rpc::Id::to_value);
            assert_eq!(answer["id"], id);
        }
        Parsed::Single(_) | Parsed::Batch(_) => {
            let items = match &answer {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            for item in &items {
                if let Some(code) = item.get("error").map(|e| &e["code"]) {
                    let code = code
                        .as_i64()
                        .unwrap_or_else(|| panic!("non-integer code {code}"));
                    let standard = (-32_700..=-32_600).contains(&code);
                    let server = (-32_099..=-32_000).contains(&code);
                    assert!(
                        standard || server,
                        "error code {code} outside JSON-RPC ranges"
                    );
                }
            }
        }
    }
});
