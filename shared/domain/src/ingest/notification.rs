//! Intake of "object created" notifications, whatever envelope they arrive in.
//!
//! The ingest queue receives, as SQS message bodies:
//! - S3 event notifications (`{"Records": [...]}`), possibly with several records;
//! - the S3 test event S3 sends when a notification configuration is saved;
//! - SNS notifications (`{"Type": "Notification", "Message": "<json>"}`) wrapping either of those
//!   (or an EventBridge event);
//! - EventBridge events (`{"source": "aws.s3", "detail-type": "Object Created", ...}`);
//! - files the scheduled poll found (`{"source": "s3-connector.poll", ...}`, [`PolledFile`]),
//!   which the poll enqueues so that they load in parallel like notified ones. Only as the body
//!   itself: a poll message inside an SNS notification is refused.
//!
//! Parsing is deliberately lenient: only the bucket name and the object key are required. Real S3
//! also sends `userIdentity`, `requestParameters`, `responseElements` and `sequencer`; emulators
//! (moto) omit them, spell the EventBridge ETag `eTag` and may send EventBridge `time` as a number.
//!
//! Keys in S3 event notifications are form-encoded (`+` for a space, `%XX` for other bytes); keys in
//! EventBridge events are plain text and are taken as they are.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connector::field::json_kind;

const S3_EVENT_SOURCE: &str = "aws:s3";
const EVENTBRIDGE_S3_SOURCE: &str = "aws.s3";
const EVENTBRIDGE_OBJECT_CREATED: &str = "Object Created";
const S3_TEST_EVENT: &str = "s3:TestEvent";
/// The `source` of the messages the poll enqueues.
pub const POLL_SOURCE: &str = "s3-connector.poll";

/// A file the poll of a source prefix found and no ledger record has decided, as the ingest
/// queue message the poll sends for it: keys are plain text, as ListObjectsV2 gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolledFile {
    pub bucket: String,
    pub key: String,
    /// Without the surrounding quotes.
    pub etag: String,
}

impl PolledFile {
    /// The message body: `{"source": "s3-connector.poll", "bucket", "key", "etag"}`.
    pub fn message_body(&self) -> String {
        serde_json::json!({
            "source": POLL_SOURCE,
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
        })
        .to_string()
    }
}

/// One object that was created, as announced by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The object key, decoded (exactly as S3 stores it).
    pub key: String,
    pub size: Option<u64>,
    /// Without the surrounding quotes S3's object APIs put around it.
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
    /// `ObjectCreated:Put` etc. for S3 notifications; the `detail-type` for EventBridge events.
    pub event_name: Option<String>,
    /// As sent (RFC 3339 text from AWS).
    pub event_time: Option<String>,
    pub region: Option<String>,
}

/// What one queue message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to ingest, in message order; never empty. Records of the same message that are not
    /// object creations (deletions, folder markers, other sources) are left out; a message in which
    /// no record is an object creation is `Ignored` instead.
    Objects(Vec<ObjectCreated>),
    /// A file the poll found and enqueued.
    Polled(PolledFile),
    /// `s3:TestEvent`, sent when a bucket's notification configuration is saved.
    TestEvent,
    /// A well-formed message that announces nothing to ingest (e.g. `ObjectRemoved:Delete`, a
    /// folder marker, an event from another source), with the reason.
    Ignored { reason: String },
}

/// A message that cannot be acted on automatically. None of these get better by retrying: the
/// caller must keep the message for a person to look at (SQS: report it as failed so it ends in
/// the dead-letter queue), never drop it.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("{what} is not JSON: {source}")]
    NotJson {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} does not have the expected shape: {source}")]
    Malformed {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A required field is absent, null or empty; `field` is its path, e.g. `Records[0].s3.object.key`.
    #[error("{field} is missing")]
    MissingField { field: String },
    #[error("object key {raw:?} cannot be decoded: {reason}")]
    BadKey { raw: String, reason: String },
    /// Not a shape this module knows.
    #[error("unrecognized message: {0}")]
    Unrecognized(String),
    /// Recognized, but a person must act on it (an SNS subscription waiting for confirmation).
    #[error("{0}")]
    NeedsAttention(String),
}

/// Parses one queue message body.
pub fn parse_message(body: &str) -> Result<Notification, NotificationError> {
    let value: Value = serde_json::from_str(body).map_err(|source| NotificationError::NotJson {
        what: "message body",
        source,
    })?;
    parse_value(value, Envelope::Queue)
}

/// Decodes a key from an S3 event notification: `+` is a space, then `%XX` escapes are decoded
/// (`percent-encoding`) and the bytes must be UTF-8. A `+` comes from the `+` rule only, so `%2B`
/// yields a `+` that stays a `+`. A `%` that does not start an escape is refused rather than
/// kept: S3 always escapes a `%` of the key, so such a key is not one S3 wrote.
pub fn decode_s3_event_key(raw: &str) -> Result<String, NotificationError> {
    let bad = |reason: String| NotificationError::BadKey {
        raw: raw.to_owned(),
        reason,
    };
    let spaced = raw.replace('+', " ");
    let bytes = spaced.as_bytes();
    // percent-encoding passes a malformed escape through unchanged; we refuse it instead.
    if let Some(i) = (0..bytes.len()).find(|&i| {
        bytes[i] == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    }) {
        let shown: String = raw[i..].chars().take(3).collect();
        return Err(bad(format!("{shown:?} at byte {i} is not a %XX escape")));
    }
    percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| {
            bad(format!(
                "the decoded bytes are not UTF-8 (at decoded byte {})",
                e.valid_up_to()
            ))
        })
}

// ---------------------------------------------------------------------------------------------
// Envelopes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    /// The body of the queue message itself.
    Queue,
    /// The `Message` of an SNS notification (which cannot itself be an SNS notification).
    Sns,
}

fn parse_value(value: Value, envelope: Envelope) -> Result<Notification, NotificationError> {
    let Value::Object(map) = value else {
        return Err(NotificationError::Unrecognized(format!(
            "{} is {}, not an object",
            envelope_name(envelope),
            json_kind(&value)
        )));
    };
    if map.contains_key("Records") {
        return parse_s3_notification(map);
    }
    if map.get("Event").and_then(Value::as_str) == Some(S3_TEST_EVENT) {
        return Ok(Notification::TestEvent);
    }
    if map.get("Type").is_some_and(Value::is_string)
        && (map.contains_key("Message") || map.contains_key("TopicArn"))
    {
        if envelope == Envelope::Sns {
            return Err(NotificationError::Unrecognized(
                "an SNS message inside an SNS message".into(),
            ));
        }
        return parse_sns(&map);
    }
    if map.get("source").and_then(Value::as_str) == Some(POLL_SOURCE) {
        // Only the poll sends these, straight to the queue; SNS carries customers' messages.
        if envelope == Envelope::Sns {
            return Err(NotificationError::Unrecognized(
                "a poll message inside an SNS message".into(),
            ));
        }
        return parse_polled(map);
    }
    if map.contains_key("detail-type") {
        return parse_eventbridge(map);
    }
    let mut keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
    keys.sort_unstable();
    Err(NotificationError::Unrecognized(format!(
        "{} is neither an S3 event notification, an S3 test event, an SNS notification nor an \
         EventBridge event (top-level fields: {})",
        envelope_name(envelope),
        if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.join(", ")
        }
    )))
}

fn parse_polled(mut map: Map<String, Value>) -> Result<Notification, NotificationError> {
    map.remove("source");
    let file: PolledFile = typed(Value::Object(map), "the poll message")?;
    for (field, value) in [
        ("bucket", &file.bucket),
        ("key", &file.key),
        ("etag", &file.etag),
    ] {
        if value.is_empty() {
            return Err(NotificationError::MissingField {
                field: field.to_owned(),
            });
        }
    }
    Ok(Notification::Polled(file))
}

fn envelope_name(envelope: Envelope) -> &'static str {
    match envelope {
        Envelope::Queue => "the message body",
        Envelope::Sns => "the SNS Message",
    }
}

fn typed<T: DeserializeOwned>(
    value: Value,
    what: impl Into<String>,
) -> Result<T, NotificationError> {
    serde_json::from_value(value).map_err(|source| NotificationError::Malformed {
        what: what.into(),
        source,
    })
}

// ---------------------------------------------------------------------------------------------
// SNS

fn parse_sns(map: &Map<String, Value>) -> Result<Notification, NotificationError> {
    let kind = map.get("Type").and_then(Value::as_str).unwrap_or_default();
    let topic = map
        .get("TopicArn")
        .and_then(Value::as_str)
        .unwrap_or("(no TopicArn)");
    match kind {
        "Notification" => {
            let message = map
                .get("Message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| NotificationError::MissingField {
                    field: "Message".into(),
                })?;
            let inner: Value =
                serde_json::from_str(message).map_err(|source| NotificationError::NotJson {
                    what: "SNS Message",
                    source,
                })?;
            parse_value(inner, Envelope::Sns)
        }
        // Acknowledging it would delete the only copy of the SubscribeURL.
        "SubscriptionConfirmation" => Err(NotificationError::NeedsAttention(format!(
            "SNS subscription to topic {topic} awaits confirmation: open the SubscribeURL in \
             this message"
        ))),
        other => Ok(Notification::Ignored {
            reason: format!("SNS {other} message from topic {topic}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// S3 event notifications

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_source: Option<String>,
    event_name: Option<String>,
    event_time: Option<String>,
    aws_region: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Option<BucketRef>,
    object: Option<ObjectRef>,
}

#[derive(Deserialize)]
struct BucketRef {
    name: Option<String>,
}

/// The `object` of an S3 record (camelCase) or of an EventBridge `detail` (kebab-case).
#[derive(Deserialize)]
struct ObjectRef {
    key: Option<String>,
    size: Option<u64>,
    #[serde(rename = "eTag", alias = "etag")]
    etag: Option<String>,
    #[serde(rename = "versionId", alias = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// What one record or event contributes.
enum Item {
    Object(Box<ObjectCreated>),
    Skipped(String),
}

fn parse_s3_notification(mut map: Map<String, Value>) -> Result<Notification, NotificationError> {
    let records = map.remove("Records").unwrap_or(Value::Null);
    let records: Vec<Value> = typed(records, "Records")?;
    if records.is_empty() {
        return Err(NotificationError::Unrecognized(
            "an S3 event notification without records".into(),
        ));
    }
    let items = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| parse_s3_record(i, record))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(collect(items))
}

fn parse_s3_record(i: usize, value: Value) -> Result<Item, NotificationError> {
    let at = format!("Records[{i}]");
    let record: S3Record = typed(value, at.clone())?;
    if let Some(source) = record
        .event_source
        .as_deref()
        .filter(|s| *s != S3_EVENT_SOURCE)
    {
        return Ok(Item::Skipped(format!(
            "{at}: eventSource {source} is not {S3_EVENT_SOURCE}"
        )));
    }
    // Without an event name the record is taken as a creation: the queue only receives what a
    // notification configuration asked for, and that is object creation.
    if let Some(name) = record.event_name.as_deref() {
        let bare = name.strip_prefix("s3:").unwrap_or(name);
        if !bare.starts_with("ObjectCreated:") {
            return Ok(Item::Skipped(format!(
                "{at}: {name} is not an object creation"
            )));
        }
    }
    let entity = record.s3.ok_or_else(|| missing(&at, "s3"))?;
    let bucket = required(entity.bucket.and_then(|b| b.name), &at, "s3.bucket.name")?;
    let object = entity.object.ok_or_else(|| missing(&at, "s3.object"))?;
    let raw_key = required(object.key.clone(), &at, "s3.object.key")?;
    let key = decode_s3_event_key(&raw_key)?;
    Ok(object_item(
        &at,
        bucket,
        key,
        object,
        record.event_name,
        record.event_time,
        record.aws_region,
    ))
}

// ---------------------------------------------------------------------------------------------
// EventBridge

#[derive(Deserialize)]
struct EventBridgeEvent {
    region: Option<String>,
    /// RFC 3339 text from AWS; moto may send epoch seconds.
    time: Option<Value>,
    detail: Option<EventBridgeDetail>,
}

#[derive(Deserialize)]
struct EventBridgeDetail {
    bucket: Option<BucketRef>,
    object: Option<ObjectRef>,
}

fn parse_eventbridge(map: Map<String, Value>) -> Result<Notification, NotificationError> {
    let source = map.get("source").and_then(Value::as_str).unwrap_or("");
    let detail_type = map.get("detail-type").and_then(Value::as_str).unwrap_or("");
    if source != EVENTBRIDGE_S3_SOURCE {
        return Ok(Notification::Ignored {
            reason: format!(
                "EventBridge event from source {source:?} (detail-type {detail_type:?}), not \
                 {EVENTBRIDGE_S3_SOURCE}"
            ),
        });
    }
    if detail_type != EVENTBRIDGE_OBJECT_CREATED {
        return Ok(Notification::Ignored {
            reason: format!(
                "EventBridge {detail_type:?} event is not {EVENTBRIDGE_OBJECT_CREATED:?}"
            ),
        });
    }
    let event_name = Some(detail_type.to_owned());
    let event: EventBridgeEvent = typed(Value::Object(map), "the EventBridge event")?;
    let detail = event.detail.ok_or_else(|| missing("", "detail"))?;
    let bucket = required(detail.bucket.and_then(|b| b.name), "", "detail.bucket.name")?;
    let object = detail.object.ok_or_else(|| missing("", "detail.object"))?;
    // EventBridge keys are not encoded: a `+` is a plus sign.
    let key = required(object.key.clone(), "", "detail.object.key")?;
    let time = event.time.and_then(|t| match t {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    Ok(collect(vec![object_item(
        "the EventBridge event",
        bucket,
        key,
        object,
        event_name,
        time,
        event.region,
    )]))
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

fn object_item(
    at: &str,
    bucket: String,
    key: String,
    object: ObjectRef,
    event_name: Option<String>,
    event_time: Option<String>,
    region: Option<String>,
) -> Item {
    // Consoles create "folders" as empty objects whose key ends in `/`: nothing to ingest.
    if key.ends_with('/') && object.size == Some(0) {
        return Item::Skipped(format!("{at}: {key:?} is an empty folder marker"));
    }
    Item::Object(Box::new(ObjectCreated {
        bucket,
        key,
        size: object.size,
        etag: non_empty(object.etag.map(|e| e.trim_matches('"').to_owned())),
        version_id: non_empty(object.version_id),
        sequencer: non_empty(object.sequencer),
        event_name: non_empty(event_name),
        event_time: non_empty(event_time),
        region: non_empty(region),
    }))
}

fn collect(items: Vec<Item>) -> Notification {
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for item in items {
        match item {
            Item::Object(object) => objects.push(*object),
            Item::Skipped(reason) => skipped.push(reason),
        }
    }
    if objects.is_empty() {
        Notification::Ignored {
            reason: skipped.join("; "),
        }
    } else {
        Notification::Objects(objects)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn required(value: Option<String>, at: &str, field: &str) -> Result<String, NotificationError> {
    non_empty(value).ok_or_else(|| missing(at, field))
}

fn missing(at: &str, field: &str) -> NotificationError {
    let field = if at.is_empty() {
        field.to_owned()
    } else {
        format!("{at}.{field}")
    };
    NotificationError::MissingField { field }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_poll_message_carries_its_key_exactly() {
        for key in [
            "in/plain.csv",
            "in/a+b.csv",
            "in/a%2Bb.csv",
            "in/100% done.csv",
            "in/données/日本 1.csv",
        ] {
            let file = PolledFile {
                bucket: "acme-data".into(),
                key: key.into(),
                etag: "9bb58f26192e4ba00f01e2e7b136bbd8".into(),
            };
            let body = file.message_body();
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap()["source"],
                POLL_SOURCE
            );
            match parse_message(&body).unwrap() {
                Notification::Polled(parsed) => assert_eq!(parsed, file, "{key}"),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_message_field_without_an_sns_type_is_no_sns_notification() {
        for body in [
            json!({"Message": "{}"}),
            json!({"Type": 1, "TopicArn": "t"}),
        ] {
            let error = parse_message(&body.to_string()).expect_err("refused");
            assert!(
                error
                    .to_string()
                    .contains("neither an S3 event notification"),
                "{body}: {error}"
            );
        }
    }

    #[test]
    fn a_poll_message_that_is_incomplete_or_wrapped_is_refused() {
        let cases = [
            (
                json!({"source": POLL_SOURCE, "bucket": "b", "key": "k"}),
                "missing field `etag`",
            ),
            (
                json!({"source": POLL_SOURCE, "bucket": "b", "key": "", "etag": "e"}),
                "key is missing",
            ),
            (
                json!({"source": POLL_SOURCE, "bucket": "b", "key": "k", "etag": "e", "extra": 1}),
                "unknown field `extra`",
            ),
            (
                json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                       "Message": json!({"source": POLL_SOURCE, "bucket": "b", "key": "k", "etag": "e"}).to_string()}),
                "a poll message inside an SNS message",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_message(&body.to_string()).expect_err("refused");
            let text = format!(
                "{error} {:?}",
                std::error::Error::source(&error).map(ToString::to_string)
            );
            assert!(text.contains(expected), "{body}: {text}");
        }
    }

    #[test]
    fn decode_s3_event_key_cases() {
        // (raw key from an S3 event notification, decoded key or a substring of the error)
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain/key.csv", Ok("plain/key.csv")),
            ("a+b.csv", Ok("a b.csv")),
            ("a%2Bb.csv", Ok("a+b.csv")),
            ("a%2bb.csv", Ok("a+b.csv")),
            ("my+file%20(1).csv", Ok("my file (1).csv")),
            (
                "donn%C3%A9es/%E6%97%A5%E6%9C%AC.csv",
                Ok("données/日本.csv"),
            ),
            (
                "incoming%2Forders%2Ffile+1.csv",
                Ok("incoming/orders/file 1.csv"),
            ),
            ("100%25+done.csv", Ok("100% done.csv")),
            // Decoded once only.
            ("a%252Bb.csv", Ok("a%2Bb.csv")),
            // Already-decoded Unicode passes through.
            ("données/日本.csv", Ok("données/日本.csv")),
            ("", Ok("")),
            ("%ZZ.csv", Err("\"%ZZ\" at byte 0 is not a %XX escape")),
            ("a%G1", Err("\"%G1\" at byte 1 is not a %XX escape")),
            ("abc%", Err("\"%\" at byte 3 is not a %XX escape")),
            ("abc%4", Err("\"%4\" at byte 3 is not a %XX escape")),
            ("%C3", Err("not UTF-8")),
            ("x%E6%97.csv", Err("not UTF-8 (at decoded byte 1)")),
            ("%FF", Err("not UTF-8")),
            // `+` is a space, every one of them; an escaped plus is a plus.
            ("+", Ok(" ")),
            ("++a+", Ok("  a ")),
            ("%2B", Ok("+")),
            ("%2B+%2b", Ok("+ +")),
            ("a%2B%2Bb+c", Ok("a++b c")),
            // Spaces: escaped, as `+`, and raw (not S3's encoding, kept as they are).
            ("%20", Ok(" ")),
            ("a%20+b", Ok("a  b")),
            ("raw space.csv", Ok("raw space.csv")),
            // Unicode: escaped (2, 3 and 4 bytes), raw, and mixed.
            ("%C3%A9", Ok("é")),
            ("%E2%82%AC+%F0%9F%98%80.csv", Ok("€ 😀.csv")),
            ("日本+%E6%97%A5.csv", Ok("日本 日.csv")),
            ("%F0%9F%98", Err("not UTF-8 (at decoded byte 0)")),
            ("ok%C3%28", Err("not UTF-8 (at decoded byte 2)")),
            // `%` followed by anything but two hex digits, wherever it is.
            ("%", Err("\"%\" at byte 0 is not a %XX escape")),
            ("%%41", Err("\"%%4\" at byte 0 is not a %XX escape")),
            ("a+%2", Err("\"%2\" at byte 2 is not a %XX escape")),
            ("%+20", Err("\"%+2\" at byte 0 is not a %XX escape")),
            ("%-1x", Err("\"%-1\" at byte 0 is not a %XX escape")),
            ("%é1", Err("\"%é1\" at byte 0 is not a %XX escape")),
            ("ok%41%g0", Err("\"%g0\" at byte 5 is not a %XX escape")),
            // A decoded `%` is not an escape again.
            ("%25%32%42", Ok("%2B")),
            ("%25ZZ", Ok("%ZZ")),
        ];
        for (raw, want) in cases {
            let got = decode_s3_event_key(raw);
            match (want, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "{raw}"),
                (Err(want), Err(e @ NotificationError::BadKey { raw: shown, .. })) => {
                    assert_eq!(shown, raw);
                    assert!(e.to_string().contains(want), "{raw}: {e}");
                }
                _ => panic!("{raw}: want {want:?}, got {got:?}"),
            }
        }
    }

    fn s3_record(event_name: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "eu-west-1",
            "eventTime": "2026-03-07T09:05:04.123Z",
            "eventName": event_name,
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "203.0.113.9"},
            "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "ingest",
                "bucket": {"name": "acme-drop", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": "arn:aws:s3:::acme-drop"},
                "object": {"key": key, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko", "sequencer": "0055AED6DCD90281E5"}
            }
        })
    }

    fn records(records: Vec<Value>) -> Value {
        json!({ "Records": records })
    }

    fn sns(message: &Value) -> Value {
        json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:acme-drop-events",
            "Subject": "Amazon S3 Notification",
            "Message": message.to_string(),
            "Timestamp": "2026-03-07T09:05:05.000Z",
            "SignatureVersion": "1",
        })
    }

    fn eventbridge(detail_type: &str, key: &str) -> Value {
        json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": "111122223333",
            "time": "2026-03-07T09:05:04Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:s3:::acme-drop"],
            "detail": {
                "version": "0",
                "bucket": {"name": "acme-drop"},
                "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "00617F08299329D189"},
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "111122223333",
                "reason": "PutObject"
            }
        })
    }

    const TEST_EVENT: &str = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-03-07T09:00:00.000Z","Bucket":"acme-drop","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;

    enum Want {
        /// (bucket, decoded key) of every object, in order.
        Objects(&'static [(&'static str, &'static str)]),
        Test,
        /// A substring of the reason.
        Ignored(&'static str),
        /// A substring of the error message.
        Fails(&'static str),
    }

    #[test]
    fn parse_message_cases() {
        let put = records(vec![s3_record("ObjectCreated:Put", "a+b.csv")]);
        let moto = json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-03-07T09:05:04.123Z", "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "n1",
                   "bucket": {"name": "acme-drop", "arn": "arn:aws:s3:::acme-drop"},
                   "object": {"key": "incoming%2Forders%2Ffile+1.csv", "size": 12, "eTag": "0cc175b9c0f1b6a831c399e269772661"}}
        }]});
        let minimal = json!({"Records": [{"s3": {"bucket": {"name": "acme-drop"}, "object": {"key": "x.csv"}}}]});
        let mut no_key = records(vec![
            s3_record("ObjectCreated:Put", "ok.csv"),
            s3_record("ObjectCreated:Put", "gone.csv"),
        ]);
        no_key["Records"][1]["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        let mut no_bucket = put.clone();
        no_bucket["Records"][0]["s3"]["bucket"]["name"] = Value::Null;
        let mut size_as_text = put.clone();
        size_as_text["Records"][0]["s3"]["object"]["size"] = json!("1024");
        let mut eb_no_key = eventbridge("Object Created", "x");
        eb_no_key["detail"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        let mut moto_eb = eventbridge("Object Created", "in/a b+c.csv");
        moto_eb["time"] = json!(1772874304.25);
        moto_eb["detail"]["object"] = json!({"key": "in/a b+c.csv", "size": 5, "eTag": "b1946ac92492d2347c6235b4d2611184", "version-id": null, "sequencer": "617f08299329d189"});
        let sns_with_bad_message = {
            let mut v = sns(&put);
            v["Message"] = json!("not json");
            v
        };

        let cases: Vec<(&str, String, Want)> = vec![
            // S3 event notifications
            ("put", put.to_string(), Want::Objects(&[("acme-drop", "a b.csv")])),
            (
                "unicode key",
                records(vec![s3_record("ObjectCreated:Put", "donn%C3%A9es/%E6%97%A5%E6%9C%AC.csv")]).to_string(),
                Want::Objects(&[("acme-drop", "données/日本.csv")]),
            ),
            ("moto style", moto.to_string(), Want::Objects(&[("acme-drop", "incoming/orders/file 1.csv")])),
            ("missing optional fields", minimal.to_string(), Want::Objects(&[("acme-drop", "x.csv")])),
            (
                "several records",
                records(vec![
                    s3_record("ObjectCreated:Put", "one.csv"),
                    s3_record("ObjectCreated:CompleteMultipartUpload", "two%2B2.csv"),
                    s3_record("ObjectCreated:Copy", "three+3.csv"),
                ])
                .to_string(),
                Want::Objects(&[("acme-drop", "one.csv"), ("acme-drop", "two+2.csv"), ("acme-drop", "three 3.csv")]),
            ),
            (
                "creations kept, deletion left out",
                records(vec![s3_record("ObjectRemoved:Delete", "old.csv"), s3_record("ObjectCreated:Put", "new.csv")]).to_string(),
                Want::Objects(&[("acme-drop", "new.csv")]),
            ),
            (
                "event name with s3: prefix",
                records(vec![s3_record("s3:ObjectCreated:Post", "p.csv")]).to_string(),
                Want::Objects(&[("acme-drop", "p.csv")]),
            ),
            (
                "non-empty object whose key ends in /",
                records(vec![s3_record("ObjectCreated:Put", "odd%2F")]).to_string(),
                Want::Objects(&[("acme-drop", "odd/")]),
            ),
            (
                "deletion",
                records(vec![s3_record("ObjectRemoved:DeleteMarkerCreated", "a.csv")]).to_string(),
                Want::Ignored("Records[0]: ObjectRemoved:DeleteMarkerCreated is not an object creation"),
            ),
            (
                "folder marker",
                {
                    let mut v = records(vec![s3_record("ObjectCreated:Put", "incoming%2F")]);
                    v["Records"][0]["s3"]["object"]["size"] = json!(0);
                    v.to_string()
                },
                Want::Ignored("Records[0]: \"incoming/\" is an empty folder marker"),
            ),
            (
                "other event source",
                {
                    let mut v = put.clone();
                    v["Records"][0]["eventSource"] = json!("aws:dynamodb");
                    v.to_string()
                },
                Want::Ignored("eventSource aws:dynamodb is not aws:s3"),
            ),
            ("test event", TEST_EVENT.to_owned(), Want::Test),
            // SNS
            ("sns put", sns(&put).to_string(), Want::Objects(&[("acme-drop", "a b.csv")])),
            ("sns test event", sns(&serde_json::from_str(TEST_EVENT).unwrap()).to_string(), Want::Test),
            (
                "sns eventbridge",
                sns(&eventbridge("Object Created", "a+b.csv")).to_string(),
                Want::Objects(&[("acme-drop", "a+b.csv")]),
            ),
            ("sns inside sns", sns(&sns(&put)).to_string(), Want::Fails("an SNS message inside an SNS message")),
            ("sns message not json", sns_with_bad_message.to_string(), Want::Fails("SNS Message is not JSON")),
            (
                "sns subscription confirmation",
                json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:eu-west-1:111122223333:t", "Message": "You have chosen to subscribe…", "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"}).to_string(),
                Want::Fails("SNS subscription to topic arn:aws:sns:eu-west-1:111122223333:t awaits confirmation"),
            ),
            (
                "sns unsubscribe confirmation",
                json!({"Type": "UnsubscribeConfirmation", "TopicArn": "arn:aws:sns:eu-west-1:111122223333:t", "Message": "…"}).to_string(),
                Want::Ignored("SNS UnsubscribeConfirmation message"),
            ),
            // EventBridge
            (
                "eventbridge keys are plain",
                eventbridge("Object Created", "in/a+b%2B.csv").to_string(),
                Want::Objects(&[("acme-drop", "in/a+b%2B.csv")]),
            ),
            ("eventbridge, moto style", moto_eb.to_string(), Want::Objects(&[("acme-drop", "in/a b+c.csv")])),
            ("eventbridge deletion", eventbridge("Object Deleted", "a.csv").to_string(), Want::Ignored("\"Object Deleted\" event")),
            (
                "eventbridge other source",
                json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}).to_string(),
                Want::Ignored("source \"aws.events\""),
            ),
            ("eventbridge without key", eb_no_key.to_string(), Want::Fails("detail.object.key is missing")),
            // Broken messages
            ("garbage", "{not json".to_owned(), Want::Fails("message body is not JSON")),
            ("empty body", String::new(), Want::Fails("message body is not JSON")),
            ("array", "[1,2]".to_owned(), Want::Fails("the message body is an array, not an object")),
            ("unknown object", r#"{"hello":"world"}"#.to_owned(), Want::Fails("top-level fields: hello")),
            ("no records", r#"{"Records":[]}"#.to_owned(), Want::Fails("without records")),
            ("records not a list", r#"{"Records":{}}"#.to_owned(), Want::Fails("Records does not have the expected shape")),
            ("record without key", no_key.to_string(), Want::Fails("Records[1].s3.object.key is missing")),
            ("record without bucket", no_bucket.to_string(), Want::Fails("Records[0].s3.bucket.name is missing")),
            (
                "record without s3",
                json!({"Records": [{"eventName": "ObjectCreated:Put"}]}).to_string(),
                Want::Fails("Records[0].s3 is missing"),
            ),
            ("size as text", size_as_text.to_string(), Want::Fails("Records[0] does not have the expected shape")),
            (
                "undecodable key",
                records(vec![s3_record("ObjectCreated:Put", "bad%ZZ.csv")]).to_string(),
                Want::Fails("object key \"bad%ZZ.csv\" cannot be decoded"),
            ),
        ];

        for (name, body, want) in cases {
            let got = parse_message(&body);
            match (&want, &got) {
                (Want::Objects(want), Ok(Notification::Objects(objects))) => {
                    let got: Vec<(&str, &str)> = objects
                        .iter()
                        .map(|o| (o.bucket.as_str(), o.key.as_str()))
                        .collect();
                    assert_eq!(&got, want, "{name}");
                }
                (Want::Test, Ok(Notification::TestEvent)) => {}
                (Want::Ignored(want), Ok(Notification::Ignored { reason })) => {
                    assert!(reason.contains(want), "{name}: {reason}");
                }
                (Want::Fails(want), Err(e)) => {
                    assert!(e.to_string().contains(want), "{name}: {e}");
                }
                _ => panic!("{name}: got {got:?}"),
            }
        }
    }

    #[test]
    fn s3_record_fields() {
        let body = records(vec![s3_record("ObjectCreated:Put", "my+file%20(1).csv")]).to_string();
        let Ok(Notification::Objects(objects)) = parse_message(&body) else {
            panic!("not objects");
        };
        assert_eq!(
            objects,
            vec![ObjectCreated {
                bucket: "acme-drop".into(),
                key: "my file (1).csv".into(),
                size: Some(1024),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".into()),
                sequencer: Some("0055AED6DCD90281E5".into()),
                event_name: Some("ObjectCreated:Put".into()),
                event_time: Some("2026-03-07T09:05:04.123Z".into()),
                region: Some("eu-west-1".into()),
            }]
        );
    }

    #[test]
    fn missing_optional_fields_are_none() {
        let body = r#"{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"k","eTag":"","versionId":null}}}]}"#;
        let Ok(Notification::Objects(objects)) = parse_message(body) else {
            panic!("not objects");
        };
        assert_eq!(
            objects,
            vec![ObjectCreated {
                bucket: "b".into(),
                key: "k".into(),
                size: None,
                etag: None,
                version_id: None,
                sequencer: None,
                event_name: None,
                event_time: None,
                region: None,
            }]
        );
    }

    #[test]
    fn eventbridge_fields() {
        let mut event = eventbridge("Object Created", "in/a+b.csv");
        event["detail"]["object"]["version-id"] = json!("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e");
        event["detail"]["object"]["etag"] = json!("\"b1946ac92492d2347c6235b4d2611184\"");
        let Ok(Notification::Objects(objects)) = parse_message(&event.to_string()) else {
            panic!("not objects");
        };
        assert_eq!(
            objects,
            vec![ObjectCreated {
                bucket: "acme-drop".into(),
                key: "in/a+b.csv".into(),
                size: Some(5),
                etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
                version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()),
                sequencer: Some("00617F08299329D189".into()),
                event_name: Some("Object Created".into()),
                event_time: Some("2026-03-07T09:05:04Z".into()),
                region: Some("eu-west-1".into()),
            }]
        );
    }

    #[test]
    fn error_variants() {
        type Check = fn(&NotificationError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("{", |e| {
                matches!(
                    e,
                    NotificationError::NotJson {
                        what: "message body",
                        ..
                    }
                )
            }),
            ("{}", |e| matches!(e, NotificationError::Unrecognized(_))),
            (
                r#"{"Records":[{"s3":{"bucket":{"name":"b"},"object":{}}}]}"#,
                |e| matches!(e, NotificationError::MissingField { field } if field == "Records[0].s3.object.key"),
            ),
            (
                r#"{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"%C3"}}}]}"#,
                |e| matches!(e, NotificationError::BadKey { raw, .. } if raw == "%C3"),
            ),
            (
                r#"{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"k","size":-1}}}]}"#,
                |e| matches!(e, NotificationError::Malformed { what, .. } if what == "Records[0]"),
            ),
            (
                r#"{"Type":"SubscriptionConfirmation","TopicArn":"t"}"#,
                |e| matches!(e, NotificationError::NeedsAttention(_)),
            ),
        ];
        for (body, is_expected) in cases {
            let e = parse_message(body).expect_err(body);
            assert!(is_expected(&e), "{body}: {e:?}");
        }
    }

    /// The ledger's identity of a file is bucket, key and ETag (`file::FileIdentity`): every
    /// envelope yields the same three.
    #[test]
    fn the_same_file_from_every_envelope_has_one_identity() {
        let put = records(vec![s3_record("ObjectCreated:Put", "in%2Fa+b.csv")]);
        let mut eb = eventbridge("Object Created", "in/a b.csv");
        eb["detail"]["object"]["etag"] = json!("d41d8cd98f00b204e9800998ecf8427e");
        eb["detail"]["object"]["version-id"] = json!("096fKKXTRTtl3on89fVO.nfljtsv6qko");
        let ids: Vec<String> = [put.clone(), sns(&put), eb]
            .iter()
            .map(|body| match parse_message(&body.to_string()) {
                Ok(Notification::Objects(objects)) => {
                    let o = &objects[0];
                    crate::ingest::file::FileIdentity::new(
                        &o.bucket,
                        &o.key,
                        o.etag.as_deref().unwrap_or_default(),
                    )
                    .object_id()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    }
}
