//! Checks tool arguments against the `inputSchema` the tool declares in `tools/list`, so the
//! check and the schema a model reads can never drift apart.
//!
//! The JSON Schema subset our tools use: `type` (one name or a list), `properties`, `required`,
//! `additionalProperties` (a boolean or a schema), `enum`, `const`, `pattern`, `minimum`,
//! `maximum`, `minLength`, `maxLength` (in characters, as JSON Schema counts them), `items`,
//! `minItems`, `maxItems`, and `$ref` to a schema of the same document (`#/$defs/...`). Annotations (`title`, `description`, `default`, `examples`) are read by
//! people and models, not checked. Any other keyword is refused by [`unsupported_keywords`], which a
//! test runs over every registered tool, so a schema cannot promise a check that is not made.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value, json};

/// Why the arguments do not fit the schema: the first fault found, depth first.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError {
    /// RFC 6901 pointer to the offending value in the arguments (`""` is the whole object).
    pub pointer: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The schema the value had to match (for an unknown property: `false`).
    pub expected: Value,
    /// For an unknown property: the names that are allowed.
    pub allowed: Option<Vec<String>>,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "arguments"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

impl std::error::Error for SchemaError {}

/// Checks `value` against `schema`.
///
/// # Errors
/// The first place where `value` does not match, with a pointer into `value`.
pub fn check(schema: &Value, value: &Value) -> Result<(), SchemaError> {
    check_at(
        &Doc {
            root: schema,
            hops: 0,
        },
        schema,
        value,
        &mut String::new(),
    )
}

/// The schema document being checked, for `$ref`, and how many references were followed on the
/// current path (a cycle of references must end).
#[derive(Clone, Copy)]
struct Doc<'a> {
    root: &'a Value,
    hops: usize,
}

impl Doc<'_> {
    /// The same document one level deeper in the value: references start counting afresh,
    /// since descending into the value always ends.
    fn reset(&self) -> Self {
        Doc {
            root: self.root,
            hops: 0,
        }
    }
}

/// References followed on one path before the schema is deemed cyclic.
const MAX_REF_HOPS: usize = 32;

/// Resolves a local reference (`#`, `#/$defs/address`) in `root`.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

/// The keywords of `schema` (and of every schema nested in it) that [`check`] does not know,
/// as pointers into the schema.
pub fn unsupported_keywords(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_keywords(schema, "", &mut out);
    out
}

const CHECKED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    "$ref",
];
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$defs",
];

fn walk_keywords(schema: &Value, at: &str, out: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        if !schema.is_boolean() {
            out.push(format!("{at} (not a schema)"));
        }
        return;
    };
    for (k, v) in obj {
        if !CHECKED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
            out.push(format!("{at}/{k}"));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    walk_keywords(sub, &format!("{at}/properties/{}", escape(name)), out);
                }
            }
            "$defs" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    walk_keywords(sub, &format!("{at}/$defs/{}", escape(name)), out);
                }
            }
            "$ref" if !v.as_str().is_some_and(|r| r.starts_with('#')) => {
                out.push(format!("{at}/$ref (only references within the schema)"));
            }
            "additionalProperties" | "items" => walk_keywords(v, &format!("{at}/{k}"), out),
            _ => {}
        }
    }
}

fn check_at(
    doc: &Doc<'_>,
    schema: &Value,
    value: &Value,
    at: &mut String,
) -> Result<(), SchemaError> {
    let obj = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(fail(at, "is not allowed here", schema)),
    };
    if let Some(r) = obj.get("$ref") {
        let target = r
            .as_str()
            .and_then(|r| resolve(doc.root, r))
            .filter(|_| doc.hops < MAX_REF_HOPS)
            .ok_or_else(|| fail(at, "has a schema whose $ref cannot be followed", schema))?;
        let next = Doc {
            root: doc.root,
            hops: doc.hops + 1,
        };
        check_at(&next, target, value, at)?;
    }
    if let Some(t) = obj.get("type") {
        if !type_matches(t, value) {
            let want = match t {
                Value::Array(names) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" or "),
                other => other.as_str().unwrap_or("?").to_owned(),
            };
            return Err(fail(
                at,
                &format!("expected {want}, got {}", kind(value)),
                schema,
            ));
        }
    }
    if let Some(options) = obj.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let list: Vec<String> = options.iter().map(Value::to_string).collect();
            return Err(fail(
                at,
                &format!("{value} is not one of {}", list.join(", ")),
                schema,
            ));
        }
    }
    if let Some(c) = obj.get("const") {
        if c != value {
            return Err(fail(at, &format!("must be {c}"), schema));
        }
    }
    match value {
        Value::String(s) => check_string(obj, s, schema, at)?,
        Value::Number(n) => check_number(obj, n.as_f64().unwrap_or(f64::NAN), schema, at)?,
        Value::Object(map) => check_object(doc, obj, map, at)?,
        Value::Array(items) => check_array(doc, obj, items, schema, at)?,
        _ => {}
    }
    Ok(())
}

fn check_string(
    obj: &Map<String, Value>,
    s: &str,
    schema: &Value,
    at: &str,
) -> Result<(), SchemaError> {
    let chars = s.chars().count() as u64;
    if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
        if chars < min {
            return Err(fail(
                at,
                &format!("is shorter than {min} characters"),
                schema,
            ));
        }
    }
    if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
        if chars > max {
            return Err(fail(
                at,
                &format!("is longer than {max} characters ({chars})"),
                schema,
            ));
        }
    }
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str) {
        if !matches_pattern(pattern, s) {
            return Err(fail(at, &format!("does not match {pattern}"), schema));
        }
    }
    Ok(())
}

fn check_number(
    obj: &Map<String, Value>,
    n: f64,
    schema: &Value,
    at: &str,
) -> Result<(), SchemaError> {
    if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
        if n < min {
            return Err(fail(at, &format!("is less than the minimum {min}"), schema));
        }
    }
    if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
        if n > max {
            return Err(fail(at, &format!("is more than the maximum {max}"), schema));
        }
    }
    Ok(())
}

fn check_object(
    doc: &Doc<'_>,
    obj: &Map<String, Value>,
    map: &Map<String, Value>,
    at: &mut String,
) -> Result<(), SchemaError> {
    let empty = Map::new();
    let properties = obj
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for name in obj
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(name) {
            let len = at.len();
            at.push('/');
            at.push_str(&escape(name));
            let expected = properties.get(name).cloned().unwrap_or(json!(true));
            let err = fail(at, "is required", &expected);
            at.truncate(len);
            return Err(err);
        }
    }
    for (name, v) in map {
        let len = at.len();
        at.push('/');
        at.push_str(&escape(name));
        let result = match properties.get(name) {
            Some(sub) => check_at(&doc.reset(), sub, v, at),
            None => match obj.get("additionalProperties") {
                None | Some(Value::Bool(true)) => Ok(()),
                Some(Value::Bool(false)) => {
                    let allowed: Vec<String> = properties.keys().cloned().collect();
                    Err(SchemaError {
                        pointer: at.clone(),
                        message: format!(
                            "unknown argument `{name}`; allowed: {}",
                            if allowed.is_empty() {
                                "none".to_owned()
                            } else {
                                allowed.join(", ")
                            }
                        ),
                        expected: Value::Bool(false),
                        allowed: Some(allowed),
                    })
                }
                Some(sub) => check_at(&doc.reset(), sub, v, at),
            },
        };
        at.truncate(len);
        result?;
    }
    Ok(())
}

fn check_array(
    doc: &Doc<'_>,
    obj: &Map<String, Value>,
    items: &[Value],
    schema: &Value,
    at: &mut String,
) -> Result<(), SchemaError> {
    let n = items.len() as u64;
    if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
        if n < min {
            return Err(fail(at, &format!("has fewer than {min} items"), schema));
        }
    }
    if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
        if n > max {
            return Err(fail(at, &format!("has more than {max} items"), schema));
        }
    }
    if let Some(item_schema) = obj.get("items") {
        for (i, v) in items.iter().enumerate() {
            let len = at.len();
            at.push('/');
            at.push_str(&i.to_string());
            let result = check_at(&doc.reset(), item_schema, v, at);
            at.truncate(len);
            result?;
        }
    }
    Ok(())
}

fn type_matches(t: &Value, value: &Value) -> bool {
    match t {
        Value::String(name) => is_type(name, value),
        Value::Array(names) => names
            .iter()
            .any(|n| n.as_str().is_some_and(|n| is_type(n, value))),
        _ => false,
    }
}

fn is_type(name: &str, value: &Value) -> bool {
    match name {
        "string" => value.is_string(),
        // Only whole numbers as JSON writes them: a tool reads an integer with as_u64/as_i64,
        // which would not see `1.0`.
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn fail(at: &str, message: &str, expected: &Value) -> SchemaError {
    SchemaError {
        pointer: at.to_owned(),
        message: message.to_owned(),
        expected: expected.clone(),
        allowed: None,
    }
}

/// RFC 6901: `~` as `~0`, `/` as `~1`.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Whether `s` matches `pattern` (searched, not anchored, as JSON Schema says). Patterns come from
/// our own schemas, a small fixed set, so each is compiled once per thread and kept.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
    }
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache
            .entry(pattern.to_owned())
            .or_insert_with(|| regex::Regex::new(pattern).ok());
        // A pattern that does not compile matches nothing: the call is refused, never let through.
        re.as_ref().is_some_and(|re| re.is_match(s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "slug": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
                "ttl": {"type": "integer", "minimum": 60, "maximum": 100},
                "template": {"type": "string", "enum": ["feature", "bugfix"]},
                "dryRun": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "a/b": {"type": "string"}
            },
            "required": ["slug"],
            "additionalProperties": false
        })
    }

    fn err(args: Value) -> SchemaError {
        check(&schema(), &args).unwrap_err()
    }

    #[test]
    fn arguments_that_fit_pass() {
        for ok in [
            json!({"slug": "ab"}),
            json!({"slug": "abcde", "ttl": 60, "template": "bugfix", "dryRun": false}),
            json!({"slug": "ab", "tags": ["x", "y"], "a/b": "z"}),
        ] {
            assert_eq!(check(&schema(), &ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn each_fault_is_named_with_a_pointer() {
        let cases = [
            (
                json!({"slug": "ab", "bogus": 1}),
                "/bogus",
                "unknown argument `bogus`",
            ),
            (json!({}), "/slug", "is required"),
            (json!({"slug": 7}), "/slug", "expected string, got integer"),
            (json!({"slug": "a"}), "/slug", "shorter than 2"),
            (json!({"slug": "abcdef"}), "/slug", "longer than 5"),
            (json!({"slug": "AB"}), "/slug", "does not match"),
            (
                json!({"slug": "ab", "ttl": 59}),
                "/ttl",
                "less than the minimum 60",
            ),
            (
                json!({"slug": "ab", "ttl": 61.0}),
                "/ttl",
                "expected integer, got number",
            ),
            (
                json!({"slug": "ab", "ttl": "60"}),
                "/ttl",
                "expected integer, got string",
            ),
            (
                json!({"slug": "ab", "template": "x"}),
                "/template",
                "is not one of",
            ),
            (
                json!({"slug": "ab", "dryRun": "yes"}),
                "/dryRun",
                "expected boolean",
            ),
            (
                json!({"slug": "ab", "tags": ["x", 1]}),
                "/tags/1",
                "expected string",
            ),
            (
                json!({"slug": "ab", "tags": ["x", "y", "z"]}),
                "/tags",
                "more than 2 items",
            ),
            (json!({"slug": "ab", "a/b": 1}), "/a~1b", "expected string"),
            (json!([1]), "", "expected object, got array"),
        ];
        for (args, pointer, message) in cases {
            let e = err(args.clone());
            assert_eq!(e.pointer, pointer, "{args}: {e}");
            assert!(e.message.contains(message), "{args}: {e}");
        }
    }

    #[test]
    fn an_unknown_argument_lists_the_allowed_names_and_expects_nothing() {
        let e = err(json!({"slug": "ab", "skipSpecs": true}));
        assert_eq!(e.expected, json!(false));
        assert_eq!(
            e.allowed.unwrap(),
            ["a/b", "dryRun", "slug", "tags", "template", "ttl"]
        );
    }

    #[test]
    fn a_missing_field_shows_its_schema() {
        let e = err(json!({}));
        assert_eq!(e.expected["pattern"], "^[a-z]+$");
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let s = json!({"type": "string", "maxLength": 2});
        assert_eq!(check(&s, &json!("éé")), Ok(()));
        assert!(check(&s, &json!("ééé")).is_err());
    }

    #[test]
    fn unknown_keywords_are_reported_with_their_place() {
        let s = json!({"type": "object", "properties": {"x": {"type": "string", "format": "uri"}},
                       "oneOf": []});
        assert_eq!(unsupported_keywords(&s), ["/oneOf", "/properties/x/format"]);
        assert!(unsupported_keywords(&schema()).is_empty());
    }

    #[test]
    fn a_pattern_that_does_not_compile_refuses() {
        let s = json!({"type": "string", "pattern": "("});
        assert!(check(&s, &json!("anything")).is_err());
    }

    #[test]
    fn references_within_the_schema_are_followed() {
        let s = json!({
            "type": "object",
            "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
            "properties": {"address": {"$ref": "#/$defs/address"}},
            "additionalProperties": false
        });
        assert!(unsupported_keywords(&s).is_empty());
        assert!(check(&s, &json!({"address": {"city": "Oslo"}})).is_ok());
        let e = check(&s, &json!({"address": {"city": 3}})).unwrap_err();
        assert_eq!(e.pointer, "/address/city");
        // A reference that goes nowhere, or round in a circle, refuses instead of looping.
        let dangling = json!({"properties": {"a": {"$ref": "#/$defs/nope"}}});
        assert!(check(&dangling, &json!({"a": 1})).is_err());
        let cyclic = json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
        assert!(check(&cyclic, &json!(1)).is_err());
        // Recursion through the value is fine: it ends with the value.
        let tree = json!({"type": "object", "properties": {"child": {"$ref": "#"}}});
        assert!(check(&tree, &json!({"child": {"child": {}}})).is_ok());
        assert_eq!(
            unsupported_keywords(&json!({"$ref": "https://example.com/s.json"})),
            ["/$ref (only references within the schema)"]
        );
    }
}
