//! JSON-RPC 2.0, sans-IO: a whole body in, a [`Parsed`] value out; messages back to bytes.
//!
//! [`parse`] tells apart the four shapes a transport must answer differently: bytes that are not
//! JSON (`-32700`), JSON that is not a JSON-RPC message (`-32600`, with the `id` when it could be
//! read), one message, and a batch (an array; each element judged on its own). Ids keep their
//! JSON type: a string id is echoed as a string, an integer id as an integer.
//!
//! [`Parsed::encode`] serializes what was parsed so that parsing it again gives an equal value;
//! the fuzz target checks `parse(encode(parse(x))) == parse(x)` through [`round_trip`].

use std::fmt;

use serde_json::{Map, Value};

/// A request id: a string or an integer, echoed with its JSON type. Never `null` in a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    /// An integer id (JSON numbers without fraction or exponent that fit in an `i64`).
    Int(i64),
    /// A string id.
    Str(String),
}

/// A request: it has an id and expects exactly one response.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id to echo.
    pub id: Id,
    /// The method name.
    pub method: String,
    /// The params: an object or an array when present.
    pub params: Option<Value>,
}

/// A notification: no id, no response.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The params: an object or an array when present.
    pub params: Option<Value>,
}

/// A response: a result or an error for one request. The id is `None` (`null`) only for errors
/// about a request whose id could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request answered.
    pub id: Option<Id>,
    /// The result, or the error.
    pub outcome: Result<Value, ErrorObject>,
}

/// One JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response (sent by a client when answering a server request).
    Response(Response),
}

/// A JSON-RPC error code. Constants name the ones this server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i64);

impl ErrorCode {
    /// The body is not JSON.
    pub const PARSE_ERROR: ErrorCode = ErrorCode(-32700);
    /// The JSON is not a valid JSON-RPC request.
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(-32600);
    /// No such method.
    pub const METHOD_NOT_FOUND: ErrorCode = ErrorCode(-32601);
    /// Bad params, unknown tool, invalid cursor.
    pub const INVALID_PARAMS: ErrorCode = ErrorCode(-32602);
    /// A fault on our side.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(-32603);
    /// Transport-level refusal (HTTP-level error bodies, as the TypeScript SDK sends them).
    pub const TRANSPORT: ErrorCode = ErrorCode(-32000);
    /// The session is unknown, expired or deleted.
    pub const SESSION_NOT_FOUND: ErrorCode = ErrorCode(-32001);
    /// The resource does not exist (MCP 2025 era).
    pub const RESOURCE_NOT_FOUND: ErrorCode = ErrorCode(-32002);
    /// The caller's role may not call this tool (implementation-defined range).
    pub const FORBIDDEN: ErrorCode = ErrorCode(-32003);
    /// The caller sent too many requests (implementation-defined range).
    pub const RATE_LIMITED: ErrorCode = ErrorCode(-32005);
}

/// The `error` member of a response.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorObject {
    /// The code.
    pub code: ErrorCode,
    /// One sentence saying what went wrong and, when useful, what to do.
    pub message: String,
    /// Structured detail.
    pub data: Option<Value>,
}

/// What a body turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// Not JSON at all (`-32700`).
    ParseError(String),
    /// JSON, but not a JSON-RPC message (`-32600`); the id when it could be read.
    Invalid(Invalid),
    /// One message.
    Single(Message),
    /// A non-empty array; each element is a message or an invalid item.
    Batch(Vec<Result<Message, Invalid>>),
}

/// A JSON value that is not a valid JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The id, when the value had a readable one.
    pub id: Option<Id>,
    /// Why it is invalid, precisely.
    pub reason: String,
}

/// Parses a whole body.
pub fn parse(body: &[u8]) -> Parsed {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Parsed::ParseError(format!("Parse error: {e}")),
    };
    parse_value(value)
}

/// Classifies an already-parsed JSON value (see [`parse`]).
pub fn parse_value(value: Value) -> Parsed {
    match value {
        Value::Array(items) if items.is_empty() => Parsed::Invalid(Invalid {
            id: None,
            reason: "Invalid Request: empty batch".into(),
        }),
        Value::Array(items) => Parsed::Batch(items.into_iter().map(message_from_value).collect()),
        other => match message_from_value(other) {
            Ok(m) => Parsed::Single(m),
            Err(inv) => Parsed::Invalid(inv),
        },
    }
}

/// Parses `body`, encodes the result and parses that again; returns both parses. They are equal
/// for every input (the property the fuzz target checks). `None` when there is nothing to encode
/// (parse errors and invalid bodies).
pub fn round_trip(body: &[u8]) -> Option<(Parsed, Parsed)> {
    let first = parse(body);
    let bytes = first.encode()?;
    let second = parse(&bytes);
    Some((first, second))
}

impl Id {
    /// Reads an id: a string or an integer. `null`, fractions and other types are refused.
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => n.as_i64().map(Id::Int),
            _ => None,
        }
    }

    /// The id as JSON, with its original type.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Int(i) => Value::from(*i),
            Id::Str(s) => Value::String(s.clone()),
        }
    }
}

impl Request {
    /// The params as an object, when they are one.
    pub fn params_object(&self) -> Option<&Map<String, Value>> {
        self.params.as_ref().and_then(Value::as_object)
    }
}

impl Response {
    /// A successful response.
    pub fn ok(id: Id, result: Value) -> Self {
        Self {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    /// An error response.
    pub fn error(id: Option<Id>, error: ErrorObject) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }

    /// The response as JSON.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), Value::String("2.0".into()));
        m.insert(
            "id".into(),
            self.id.as_ref().map_or(Value::Null, Id::to_value),
        );
        match &self.outcome {
            Ok(r) => m.insert("result".into(), r.clone()),
            Err(e) => m.insert("error".into(), e.to_value()),
        };
        Value::Object(m)
    }

    /// Compact serialization.
    pub fn to_bytes(&self) -> Vec<u8> {
        // unwrap-free: serializing a Value cannot fail.
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }
}

impl Notification {
    /// A notification as JSON.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), Value::String("2.0".into()));
        m.insert("method".into(), Value::String(self.method.clone()));
        if let Some(p) = &self.params {
            m.insert("params".into(), p.clone());
        }
        Value::Object(m)
    }
}

impl Message {
    /// The message as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Message::Request(r) => {
                let mut m = Map::new();
                m.insert("jsonrpc".into(), Value::String("2.0".into()));
                m.insert("id".into(), r.id.to_value());
                m.insert("method".into(), Value::String(r.method.clone()));
                if let Some(p) = &r.params {
                    m.insert("params".into(), p.clone());
                }
                Value::Object(m)
            }
            Message::Notification(n) => n.to_value(),
            Message::Response(r) => r.to_value(),
        }
    }
}

impl ErrorObject {
    /// An error without data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds structured data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error object as JSON.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), Value::from(self.code.0));
        m.insert("message".into(), Value::String(self.message.clone()));
        if let Some(d) = &self.data {
            m.insert("data".into(), d.clone());
        }
        Value::Object(m)
    }
}

impl Parsed {
    /// Serializes a single message or a batch (invalid batch items are written back as the
    /// values that made them invalid cannot be recovered, so batches holding any are `None`).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let value = match self {
            Parsed::Single(m) => m.to_value(),
            Parsed::Batch(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(item.as_ref().ok()?.to_value());
                }
                Value::Array(out)
            }
            Parsed::ParseError(_) | Parsed::Invalid(_) => return None,
        };
        serde_json::to_vec(&value).ok()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(i) => write!(f, "{i}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn message_from_value(value: Value) -> Result<Message, Invalid> {
    let Value::Object(mut obj) = value else {
        return Err(Invalid {
            id: None,
            reason: "Invalid Request: a JSON-RPC message must be a JSON object".into(),
        });
    };
    let raw_id = obj.remove("id");
    let id = raw_id.as_ref().and_then(Id::from_value);
    let fail = |reason: String| Invalid {
        id: id.clone(),
        reason,
    };
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return Err(fail("Invalid Request: `jsonrpc` must be \"2.0\"".into())),
        None => return Err(fail("Invalid Request: missing `jsonrpc: \"2.0\"`".into())),
    }
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");
    if let Some(method) = obj.remove("method") {
        let Value::String(method) = method else {
            return Err(fail("Invalid Request: `method` must be a string".into()));
        };
        if has_result || has_error {
            return Err(fail(
                "Invalid Request: a message cannot carry both `method` and `result`/`error`".into(),
            ));
        }
        let params = obj.remove("params");
        if let Some(p) = &params
            && !(p.is_object() || p.is_array())
        {
            return Err(fail(
                "Invalid Request: `params` must be an object or an array".into(),
            ));
        }
        return match raw_id {
            None => Ok(Message::Notification(Notification { method, params })),
            Some(raw) => match id {
                Some(id) => Ok(Message::Request(Request { id, method, params })),
                None => Err(Invalid {
                    id: None,
                    reason: format!(
                        "Invalid Request: `id` must be a string or an integer, not {}",
                        kind(&raw)
                    ),
                }),
            },
        };
    }
    // A response: exactly one of result and error, and an id (null only with an error).
    match (obj.remove("result"), obj.remove("error")) {
        (Some(_), Some(_)) => Err(fail(
            "Invalid Request: a response cannot carry both `result` and `error`".into(),
        )),
        (Some(result), None) => match id {
            Some(id) => Ok(Message::Response(Response::ok(id, result))),
            None => Err(fail(
                "Invalid Request: a result must carry a string or integer `id`".into(),
            )),
        },
        (None, Some(error)) => {
            if id.is_none() && !matches!(raw_id, Some(Value::Null)) {
                return Err(fail(
                    "Invalid Request: an error response must carry an `id` (or null)".into(),
                ));
            }
            let e = error_from_value(error).map_err(fail)?;
            Ok(Message::Response(Response::error(id, e)))
        }
        (None, None) => Err(fail(
            "Invalid Request: missing `method` (or `result`/`error` for a response)".into(),
        )),
    }
}

fn error_from_value(v: Value) -> Result<ErrorObject, String> {
    let Value::Object(mut o) = v else {
        return Err("Invalid Request: `error` must be an object".into());
    };
    let code = o
        .get("code")
        .and_then(Value::as_i64)
        .ok_or("Invalid Request: `error.code` must be an integer")?;
    let message = match o.remove("message") {
        Some(Value::String(s)) => s,
        _ => return Err("Invalid Request: `error.message` must be a string".into()),
    };
    Ok(ErrorObject {
        code: ErrorCode(code),
        message,
        data: o.remove("data"),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a non-integer number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn single(body: &str) -> Message {
        match parse(body.as_bytes()) {
            Parsed::Single(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn invalid(body: &str) -> Invalid {
        match parse(body.as_bytes()) {
            Parsed::Invalid(i) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn string_and_integer_ids_keep_their_type() {
        let Message::Request(r) = single(r#"{"jsonrpc":"2.0","id":"7","method":"ping"}"#) else {
            panic!()
        };
        assert_eq!(r.id, Id::Str("7".into()));
        assert_eq!(Response::ok(r.id, json!({})).to_value()["id"], json!("7"));
        let Message::Request(r) = single(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#) else {
            panic!()
        };
        assert_eq!(Response::ok(r.id, json!({})).to_value()["id"], json!(7));
    }

    #[test]
    fn not_json_is_a_parse_error() {
        assert!(matches!(parse(b"{\"jsonrpc\":"), Parsed::ParseError(_)));
        assert!(matches!(parse(b""), Parsed::ParseError(_)));
        assert!(matches!(parse(b"\xff"), Parsed::ParseError(_)));
    }

    #[test]
    fn json_that_is_not_json_rpc_is_invalid_with_the_id_when_readable() {
        let i = invalid(r#"{"id":3,"method":"ping"}"#);
        assert_eq!(i.id, Some(Id::Int(3)));
        assert!(i.reason.contains("jsonrpc"), "{}", i.reason);
        let i = invalid(r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#);
        assert_eq!(i.id, Some(Id::Str("a".into())));
        assert!(invalid("42").reason.contains("object"));
        assert!(invalid("[]").reason.contains("empty batch"));
        let i = invalid(r#"{"jsonrpc":"2.0","id":1,"method":7}"#);
        assert!(i.reason.contains("method"));
        let i = invalid(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#);
        assert!(i.reason.contains("params"));
    }

    #[test]
    fn null_and_fractional_request_ids_are_refused() {
        let i = invalid(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert_eq!(i.id, None);
        assert!(i.reason.contains("null"), "{}", i.reason);
        let i = invalid(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#);
        assert!(i.reason.contains("non-integer"), "{}", i.reason);
    }

    #[test]
    fn notifications_have_no_id() {
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Message::Notification(Notification {
                method: "notifications/initialized".into(),
                params: None
            })
        );
    }

    #[test]
    fn responses_are_recognised() {
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Message::Response(Response { outcome: Ok(_), .. })
        ));
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}"#),
            Message::Response(Response {
                id: None,
                outcome: Err(_)
            })
        ));
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#)
                .reason
                .contains("both")
        );
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#)
                .reason
                .contains("code")
        );
    }

    #[test]
    fn batches_judge_each_item() {
        let Parsed::Batch(items) =
            parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"id":2},5]"#)
        else {
            panic!()
        };
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok());
        assert_eq!(items[1].as_ref().unwrap_err().id, Some(Id::Int(2)));
        assert!(items[2].is_err());
    }

    #[test]
    fn round_trip_is_identity_on_valid_messages() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,2.5,null]}}}"#,
            r#"{"jsonrpc":"2.0","id":"s","method":"ping","params":[]}"#,
            r#"{"jsonrpc":"2.0","method":"n"}"#,
            r#"{"jsonrpc":"2.0","id":-9,"result":{"x":"\u2028"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m","data":{"k":1}}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        ] {
            let (a, b) = round_trip(body.as_bytes()).expect(body);
            assert_eq!(a, b, "{body}");
        }
        assert!(round_trip(b"nope").is_none());
    }

    // Found by the `ndjson_framing` fuzz target (same serde_json parse): without
    // `float_roundtrip`, this float came back one ulp off after an encode and a parse.
    #[test]
    fn round_trip_keeps_a_float_param_bit_for_bit() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":[123456789012345567890]}"#;
        let (a, b) = round_trip(body).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn unknown_members_are_ignored() {
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":true}"#),
            Message::Request(_)
        ));
    }
}
