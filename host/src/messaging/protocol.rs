//! Protocol v1 messages (see `docs/protocol.md`, the one place that defines them).
//!
//! This module turns a frame body into a [`Request`] or a [`Rejection`], and turns replies and
//! events into frame bodies. It knows nothing about cards.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::codec::MAX_OUTBOUND;

pub const PROTOCOL_VERSION: u32 = 1;

/// The native-messaging host's name: the manifests' `name`, what the extension connects to.
pub const HOST_NAME: &str = "org.cacbridge.host";

/// Every error code of the protocol: one owner, shared with the PKCS#11 module, which maps the
/// local channel's refusals from it.
pub use cacbridge_channel::ErrorCode;

/// The codes the extension itself answers a page with (docs/page-api.md); the host's codes
/// pass through to the page unchanged, so a page may see either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum PageErrorCode {
    ExtensionUnavailable,
    ExtensionRestarted,
    NativeUnavailable,
    NativeTooOld,
    OriginNotAllowed,
    InvalidRequest,
    UserActivationRequired,
    ActionPending,
    ActionThrottled,
    UserCancelled,
    UserTimeout,
    HostTimeout,
    PinBlocked,
}

impl PageErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn all() -> impl Iterator<Item = PageErrorCode> {
        <PageErrorCode as strum::IntoEnumIterator>::iter()
    }
}

/// The `error` object of a reply: a code, a sentence for people, and optional details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// A request id as the browser sent it: a JSON string or number, echoed back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(serde_json::Number),
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// Arguments whose values are secrets: taken out of the parsed JSON at once.
const SECRET_ARGUMENTS: [&str; 1] = ["pin"];

/// A secret argument as the browser sent it.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// A string, in a buffer wiped when dropped.
    Text(Zeroizing<String>),
    /// Anything but a string (dropped at once; only its wrong type is remembered).
    NotText,
}

/// Command arguments. A PIN never stays in the parsed JSON tree: [`parse_request`] moves it
/// into a [`Secret`], wiped when the request is done. `Debug` never shows any value.
#[derive(Clone, Default, PartialEq)]
pub struct Arguments {
    values: Map<String, Value>,
    secrets: Vec<(&'static str, Secret)>,
}

impl Arguments {
    pub fn new(mut values: Map<String, Value>) -> Self {
        let secrets = SECRET_ARGUMENTS
            .iter()
            .filter_map(|&name| {
                let secret = match values.remove(name)? {
                    Value::Null => return None,
                    Value::String(text) => Secret::Text(Zeroizing::new(text)),
                    _ => Secret::NotText,
                };
                Some((name, secret))
            })
            .collect();
        Self { values, secrets }
    }

    /// A non-secret argument.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// A secret argument (`pin`), when present and not null.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|(secret, _)| *secret == name)
            .map(|(_, value)| value)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.secrets.is_empty()
    }
}

impl fmt::Debug for Arguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.secrets.iter().map(|(name, _)| *name);
        f.debug_set()
            .entries(self.values.keys().map(String::as_str).chain(names))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: RequestId,
    pub command: String,
    pub arguments: Arguments,
}

/// A frame whose body is not a usable request. `id` is `None` when the request had no usable
/// id, which the reply carries as `"id": null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub id: Option<RequestId>,
    pub error: WireError,
}

impl Rejection {
    fn new(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            error: WireError::new(code, message),
        }
    }
}

/// Parse one frame body. Error messages describe the problem without echoing the input, which
/// may carry a PIN.
pub fn parse_request(body: &[u8]) -> Result<Request, Rejection> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Rejection::new(
            None,
            ErrorCode::InvalidJson,
            format!("message is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Rejection::new(
            None,
            ErrorCode::InvalidJson,
            format!(
                "message is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err(Rejection::new(
            None,
            ErrorCode::InvalidRequest,
            "a request must be a JSON object",
        ));
    };
    let id = match object.remove("id") {
        Some(Value::String(s)) => RequestId::String(s),
        Some(Value::Number(n)) => RequestId::Number(n),
        Some(_) => {
            return Err(Rejection::new(
                None,
                ErrorCode::InvalidRequest,
                "\"id\" must be a string or a number",
            ))
        }
        None => {
            return Err(Rejection::new(
                None,
                ErrorCode::InvalidRequest,
                "a request needs an \"id\"",
            ))
        }
    };
    let command = match object.remove("command") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(Rejection::new(
                Some(id),
                ErrorCode::InvalidRequest,
                "\"command\" must be a string",
            ))
        }
        None => {
            return Err(Rejection::new(
                Some(id),
                ErrorCode::InvalidRequest,
                "a request needs a \"command\"",
            ))
        }
    };
    let arguments = match object.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Rejection::new(
                Some(id),
                ErrorCode::InvalidRequest,
                "\"arguments\" must be an object",
            ))
        }
    };
    Ok(Request {
        id,
        command,
        arguments: Arguments::new(arguments),
    })
}

/// Everything the host writes to the browser.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Result {
        id: RequestId,
        result: Value,
    },
    Error {
        id: Option<RequestId>,
        error: WireError,
    },
    Event {
        event: &'static str,
        data: Value,
    },
}

impl Outbound {
    pub fn error(id: Option<RequestId>, error: WireError) -> Self {
        Outbound::Error { id, error }
    }

    fn to_json(&self) -> Value {
        match self {
            Outbound::Result { id, result } => serde_json::json!({ "id": id, "result": result }),
            Outbound::Error { id, error } => serde_json::json!({ "id": id, "error": error }),
            Outbound::Event { event, data } => serde_json::json!({ "event": event, "data": data }),
        }
    }

    /// Serialize for the wire. A reply that would not fit in one browser message becomes a
    /// `message-too-large` error for the same id; an event that would not fit is dropped
    /// (`None`), since nobody waits for it.
    pub fn encode(&self) -> Option<Bytes> {
        let body = serde_json::to_vec(&self.to_json()).expect("JSON values always serialize");
        if body.len() <= MAX_OUTBOUND {
            return Some(Bytes::from(body));
        }
        let id = match self {
            Outbound::Result { id, .. } => Some(id.clone()),
            Outbound::Error { id, .. } => id.clone(),
            Outbound::Event { .. } => return None,
        };
        let replacement = Outbound::error(
            id,
            WireError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "the reply ({} bytes) exceeds the browser's {MAX_OUTBOUND}-byte message limit",
                    body.len()
                ),
            )
            .with_detail("size", body.len())
            .with_detail("limit", MAX_OUTBOUND),
        );
        Some(Bytes::from(
            serde_json::to_vec(&replacement.to_json()).expect("JSON values always serialize"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn rejected(body: &[u8]) -> Rejection {
        parse_request(body).unwrap_err()
    }

    #[test]
    fn parses_a_full_request() {
        let req = parse_request(br#"{"id":"a1","command":"version","arguments":{"x":1}}"#).unwrap();
        assert_eq!(req.id, RequestId::String("a1".into()));
        assert_eq!(req.command, "version");
        assert_eq!(req.arguments.get("x"), Some(&json!(1)));
    }

    #[test]
    fn arguments_are_optional_and_null_means_none() {
        let req = parse_request(br#"{"id":7,"command":"version"}"#).unwrap();
        assert!(req.arguments.is_empty());
        let req = parse_request(br#"{"id":7,"command":"version","arguments":null}"#).unwrap();
        assert!(req.arguments.is_empty());
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        let r = rejected(b"{\"id\":1,\"command\":\"\xff\"}");
        assert_eq!(r.error.code, ErrorCode::InvalidJson);
        assert_eq!(r.id, None);
    }

    #[test]
    fn empty_body_is_invalid_json() {
        assert_eq!(rejected(b"").error.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn broken_json_is_invalid_json_without_echoing_input() {
        let r = rejected(br#"{"id":1,"command":"authenticate","arguments":{"pin":"12345678"#);
        assert_eq!(r.error.code, ErrorCode::InvalidJson);
        assert!(!r.error.message.contains("12345678"));
    }

    #[test]
    fn json_that_is_not_an_object_is_invalid_request() {
        for body in [&b"[1,2]"[..], b"\"version\"", b"42", b"null"] {
            let r = rejected(body);
            assert_eq!(r.error.code, ErrorCode::InvalidRequest, "{body:?}");
            assert_eq!(r.id, None);
        }
    }

    #[test]
    fn missing_or_unusable_id_is_invalid_request_with_null_id() {
        for body in [
            &br#"{"command":"version"}"#[..],
            br#"{"id":null,"command":"version"}"#,
            br#"{"id":{"a":1},"command":"version"}"#,
            br#"{"id":[1],"command":"version"}"#,
            br#"{"id":true,"command":"version"}"#,
        ] {
            let r = rejected(body);
            assert_eq!(r.error.code, ErrorCode::InvalidRequest);
            assert_eq!(r.id, None);
        }
    }

    #[test]
    fn missing_command_keeps_the_id() {
        let r = rejected(br#"{"id":"x"}"#);
        assert_eq!(r.error.code, ErrorCode::InvalidRequest);
        assert_eq!(r.id, Some(RequestId::String("x".into())));
        let r = rejected(br#"{"id":3,"command":5}"#);
        assert_eq!(r.id, Some(RequestId::Number(3.into())));
    }

    #[test]
    fn arguments_that_are_not_an_object_are_invalid_request() {
        let r = rejected(br#"{"id":1,"command":"version","arguments":[1]}"#);
        assert_eq!(r.error.code, ErrorCode::InvalidRequest);
        assert!(r.id.is_some());
    }

    #[test]
    fn debug_of_arguments_hides_values() {
        let req =
            parse_request(br#"{"id":1,"command":"authenticate","arguments":{"pin":"24681357"}}"#)
                .unwrap();
        let shown = format!("{req:?}");
        assert!(shown.contains("pin"));
        assert!(!shown.contains("24681357"));
    }

    #[test]
    fn replies_serialize_in_the_documented_shape() {
        let ok = Outbound::Result {
            id: RequestId::Number(1.into()),
            result: json!({"version": "1.0.0"}),
        };
        let v: Value = serde_json::from_slice(&ok.encode().unwrap()).unwrap();
        assert_eq!(v, json!({"id": 1, "result": {"version": "1.0.0"}}));

        let err = Outbound::error(
            None,
            WireError::new(ErrorCode::UnknownCommand, "no").with_detail("command", "x"),
        );
        let v: Value = serde_json::from_slice(&err.encode().unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"id": null, "error": {"code": "unknown-command", "message": "no", "command": "x"}})
        );

        let ev = Outbound::Event {
            event: "card-inserted",
            data: json!({"reader": "R"}),
        };
        let v: Value = serde_json::from_slice(&ev.encode().unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"event": "card-inserted", "data": {"reader": "R"}})
        );
    }

    #[test]
    fn oversized_reply_becomes_an_error_for_the_same_id() {
        let big = Outbound::Result {
            id: RequestId::String("big".into()),
            result: json!({ "blob": "x".repeat(MAX_OUTBOUND) }),
        };
        let body = big.encode().unwrap();
        assert!(body.len() < 1024);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "big");
        assert_eq!(v["error"]["code"], "message-too-large");
    }

    #[test]
    fn oversized_event_is_dropped() {
        let ev = Outbound::Event {
            event: "x",
            data: json!("y".repeat(MAX_OUTBOUND)),
        };
        assert!(ev.encode().is_none());
    }
}
