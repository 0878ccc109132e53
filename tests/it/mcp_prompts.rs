//! Prompts and completions over a real server: the workflow prompts embed the change's files,
//! refuse bad arguments with -32602, and completion offers slugs and capabilities by prefix.

use serde_json::json;

use crate::openspec_workflow::{ALICE_TOKEN, AUTH_DELTA, Mcp, seeded_server};

#[test]
fn prompts_list_get_and_complete_against_a_real_workspace() {
    let srv = seeded_server(&[("RATE_LIMIT", "0")]);
    let mut alice = Mcp::new(&srv, ALICE_TOKEN);
    let init = alice.initialize();
    assert_eq!(
        init["result"]["capabilities"]["prompts"],
        json!({"listChanged": false})
    );
    assert!(init["result"]["capabilities"]["completions"].is_object());
    for slug in ["add-2fa", "add-audit", "fix-login"] {
        alice.call("change_open", json!({"slug": slug})).unwrap();
    }
    alice
        .call(
            "change_write",
            json!({"slug": "add-2fa", "file": "specs/auth/spec.md", "content": AUTH_DELTA}),
        )
        .unwrap();

    let list = alice.rpc("prompts/list", json!({}));
    let names: Vec<&str> = list["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    // The OpenSpec prompts first; this server also has the test fixtures (ENABLE_TEST_TOOLS).
    assert_eq!(names[..3], ["proposal", "apply", "archive"]);

    let got = alice.rpc(
        "prompts/get",
        json!({"name": "apply", "arguments": {"slug": "add-2fa"}}),
    );
    let messages = got["result"]["messages"].as_array().unwrap();
    let uris: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["content"]["resource"]["uri"].as_str())
        .collect();
    assert_eq!(
        uris,
        [
            "change://add-2fa/proposal",
            "change://add-2fa/tasks",
            "change://add-2fa/delta"
        ],
        "{got}"
    );
    let proposal = &messages[1]["content"]["resource"];
    assert_eq!(proposal["mimeType"], "text/markdown");
    assert!(proposal["text"].as_str().unwrap().starts_with("# Change:"));

    for (params, why) in [
        (json!({"name": "apply"}), "a missing slug"),
        (
            json!({"name": "apply", "arguments": {"slug": "no-such"}}),
            "an unknown change",
        ),
        (json!({"name": "nope"}), "an unknown prompt"),
    ] {
        let e = alice.rpc("prompts/get", params);
        assert_eq!(e["error"]["code"], -32602, "{why}: {e}");
    }

    let complete = |alice: &mut Mcp<'_>,
                    reference: serde_json::Value,
                    name: &str,
                    value: &str,
                    ctx: serde_json::Value| {
        alice.rpc(
            "completion/complete",
            json!({"ref": reference, "argument": {"name": name, "value": value}, "context": {"arguments": ctx}}),
        )["result"]["completion"]
            .clone()
    };
    let c = complete(
        &mut alice,
        json!({"type": "ref/prompt", "name": "archive"}),
        "slug",
        "add-",
        json!({}),
    );
    assert_eq!(c["values"], json!(["add-2fa", "add-audit"]), "{c}");
    assert_eq!(
        (c["total"].as_u64(), c["hasMore"].as_bool()),
        (Some(2), Some(false))
    );
    let c = complete(
        &mut alice,
        json!({"type": "ref/resource", "uri": "spec://{capability}"}),
        "capability",
        "",
        json!({}),
    );
    assert_eq!(c["values"], json!(["auth"]), "{c}");
    let c = complete(
        &mut alice,
        json!({"type": "ref/resource", "uri": "change://{slug}/delta/{capability}"}),
        "capability",
        "a",
        json!({"slug": "add-2fa"}),
    );
    assert_eq!(c["values"], json!(["auth"]), "{c}");
    let c = complete(
        &mut alice,
        json!({"type": "ref/resource", "uri": "change://{slug}/tasks"}),
        "slug",
        "fix",
        json!({}),
    );
    assert_eq!(c["values"], json!(["fix-login"]), "{c}");
    let e = alice.rpc(
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "spec://{capability}"}, "argument": {"name": "slug", "value": ""}}),
    );
    assert_eq!(e["error"]["code"], -32602, "{e}");
}
