//! Naming the field at fault: where `serde_path_to_error` says a read failed, and serde's
//! message, become an [`Error::InvalidEvent`] with the JSON path and a reason in JSON's terms
//! ("expected a string, found a number").
//!
//! The path comes from the serde impls themselves, so a field added to an event is covered
//! here without being listed. The reason is reworded from the message serde's `invalid_type`
//! writes (`invalid type: integer `1`, expected a string`); messages of this crate's own
//! checks (an invalid connection id, an unknown `eventType`) are written to follow the field's
//! name and are used as they are.

use std::fmt;

use serde_path_to_error::{Path, Segment};

use crate::error::Error;

/// The error for a read that failed at `path` with `error`, which is kept as the source when
/// the reason rewords it.
pub(super) fn fault(path: &Path, error: serde_json::Error) -> Error {
    let message = error.to_string();
    describe(path, &message, Some(error))
}

/// As [`fault`], for an error of another deserializer, known only by its message.
pub(super) fn fault_in(path: &Path, error: &dyn fmt::Display) -> Error {
    describe(path, &error.to_string(), None)
}

/// The error for input that is not JSON.
pub(super) fn not_json(e: serde_json::Error) -> Error {
    Error::invalid_event_caused_by("$", "is not valid JSON", e)
}

fn describe(path: &Path, message: &str, source: Option<serde_json::Error>) -> Error {
    let mut field = String::new();
    let mut index = None;
    for segment in path {
        match segment {
            Segment::Map { key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            // `field` names an object key, as it always has; an array element's index goes
            // in the reason.
            Segment::Seq { index: i } => {
                index = Some(*i);
                break;
            }
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    let message = without_position(message);

    // A derived struct reports a missing or repeated field at the struct's own path.
    if let Some(key) = quoted(message, "missing field `") {
        return Error::invalid_event(child(field, key), "is missing");
    }
    if let Some(key) = quoted(message, "duplicate field `") {
        return Error::invalid_event(child(field, key), "is given more than once");
    }

    // serde_json's word for `1e999`: well-formed JSON, but no 64-bit float holds it.
    if message == "number out of range" && !field.is_empty() {
        let reason = "is a number out of range (beyond the ±1.8e308 of a 64-bit float)";
        return match source {
            Some(source) => Error::invalid_event_caused_by(field, reason, source),
            None => Error::invalid_event(field, reason),
        };
    }

    let at_root = field.is_empty();
    let field = if at_root { "$".to_owned() } else { field };
    let Some((found, expected)) = mismatch(message) else {
        return Error::invalid_event(field, message);
    };
    let expected = if at_root {
        "a JSON object"
    } else {
        in_json_terms(expected)
    };
    let mut reason = format!("expected {expected}, found {found}");
    if let Some(i) = index {
        reason.push_str(&format!(" at index {i}"));
    }
    match source {
        Some(source) => Error::invalid_event_caused_by(field, reason, source),
        None => Error::invalid_event(field, reason),
    }
}

fn child(mut field: String, key: &str) -> String {
    if !field.is_empty() {
        field.push('.');
    }
    field.push_str(key);
    field
}

/// The name in `` prefix`name` ``, as serde's `missing_field` and `duplicate_field` write it.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.strip_suffix('`')
}

/// serde_json appends ` at line L column C` to messages read from text; the path says where.
fn without_position(message: &str) -> &str {
    let Some((head, tail)) = message.rsplit_once(" at line ") else {
        return message;
    };
    let numbers = tail.split_once(" column ");
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match numbers {
        Some((line, column)) if is_number(line) && is_number(column) => head,
        _ => message,
    }
}

/// `(found, expected)` from `invalid type: {found}, expected {expected}` (serde's wording for
/// a value of the wrong kind), with `found` as a kind of JSON value; for `invalid value:` (the
/// right kind, out of range), `found` is the value as serde shows it.
fn mismatch(message: &str) -> Option<(&str, &str)> {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.rsplit_once(", expected ")?;
        return Some((json_kind(found), expected));
    }
    message
        .strip_prefix("invalid value: ")?
        .rsplit_once(", expected ")
}

/// The kind of JSON value behind serde's `Unexpected` as serde_json shows it.
fn json_kind(unexpected: &str) -> &str {
    let word = unexpected.split(' ').next().unwrap_or(unexpected);
    match word {
        "null" | "unit" => "null",
        "boolean" => "a boolean",
        "integer" | "floating" => "a number",
        "string" => "a string",
        "sequence" => "an array",
        "map" => "an object",
        _ => unexpected,
    }
}

/// serde's name for what a visitor expected, in JSON's terms. This crate's own visitors say
/// it in JSON's terms already.
fn in_json_terms(expected: &str) -> &str {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        "a map" => "an object",
        other if other.starts_with("struct ") => "an object",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_dropped_only_when_they_are_positions() {
        assert_eq!(
            without_position("invalid type: null, expected i64 at line 3 column 17"),
            "invalid type: null, expected i64"
        );
        assert_eq!(without_position("is missing"), "is missing");
        assert_eq!(
            without_position("is \"a at line b\"; expected"),
            "is \"a at line b\"; expected"
        );
    }

    #[test]
    fn serde_words_become_json_words() {
        assert_eq!(
            mismatch(r#"invalid type: string "x, expected y", expected i64"#),
            Some(("a string", "i64"))
        );
        assert_eq!(
            mismatch("invalid type: floating point `1.5`, expected i64"),
            Some(("a number", "i64"))
        );
        assert_eq!(
            mismatch("invalid value: integer `18446744073709551615`, expected i64"),
            Some(("integer `18446744073709551615`", "i64"))
        );
        assert_eq!(mismatch("is missing"), None);
        assert_eq!(in_json_terms("i64"), "an integer");
        assert_eq!(in_json_terms("struct RequestContext"), "an object");
        assert_eq!(in_json_terms("a sequence"), "an array");
        assert_eq!(in_json_terms("a string"), "a string");
    }
}
