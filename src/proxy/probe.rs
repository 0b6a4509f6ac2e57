//! The routing fields of JSON-RPC messages (`method`, `id`), read without building the rest of the message.
//!
//! The HTTP frontend and upstream route by these two fields only, while the relay parses every message whole
//! anyway; building a second and third full `Value` of each message just to route it was a measurable share
//! of the proxy's time per call. Anything the narrow reader refuses (a duplicate key, a batch holding a
//! non-object) is read again as a full `Value`, so the answer never differs from a full parse.

use serde::Deserialize;
use serde_json::Value;

/// `method` and `id` of one message; `null` reads as `None`. `method` is kept whatever its type: a message
/// with a malformed method is still a request the relay answers (with an error).
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(crate) struct Head {
    #[serde(default)]
    pub method: Option<Value>,
    #[serde(default)]
    pub id: Option<Value>,
}

/// The heads of a message or of a batch's messages.
#[derive(Debug, PartialEq)]
pub(crate) struct Heads {
    pub batch: bool,
    pub items: Vec<Head>,
}

impl Heads {
    /// Read `raw`; `Err` when it is not JSON at all.
    pub(crate) fn read(raw: &[u8]) -> Result<Heads, serde_json::Error> {
        let batch = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let narrow = if batch {
            serde_json::from_slice::<Vec<Head>>(raw).ok()
        } else {
            serde_json::from_slice::<Head>(raw).ok().map(|h| vec![h])
        };
        if let Some(items) = narrow {
            return Ok(Heads { batch, items });
        }
        let value: Value = serde_json::from_slice(raw)?;
        let head = |v: &Value| Head {
            method: v.get("method").filter(|m| !m.is_null()).cloned(),
            id: v.get("id").filter(|id| !id.is_null()).cloned(),
        };
        Ok(match &value {
            Value::Array(items) => Heads { batch: true, items: items.iter().map(head).collect() },
            v => Heads { batch: false, items: vec![head(v)] },
        })
    }

    /// Whether this is a single `method` request or notification (not inside a batch).
    pub(crate) fn is(&self, method: &str) -> bool {
        !self.batch && self.items.first().and_then(|h| h.method.as_ref()).and_then(Value::as_str) == Some(method)
    }

    /// Ids of the requests (messages with a method and an id).
    pub(crate) fn request_ids(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().filter(|h| h.method.is_some()).filter_map(|h| h.id.as_ref())
    }

    /// Ids of the responses (messages without a method).
    pub(crate) fn answered_ids(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().filter(|h| h.method.is_none()).filter_map(|h| h.id.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn narrow_and_full_reads_agree() {
        let cases: [&[u8]; 6] = [
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{"id":1}}}"#,
            br#"[{"id":1,"method":"a"},{"method":"n"},{"id":"2","result":{}}, {"id":null,"error":{}}]"#,
            br#"{"id":1,"id":2,"method":"dup"}"#,
            br#"[1, {"id":3,"method":"m"}]"#,
            br#"{"method":7,"id":1}"#,
            b"  \n[]",
        ];
        for raw in cases {
            let heads = Heads::read(raw).unwrap();
            let value: Value = serde_json::from_slice(raw).unwrap();
            fn one(v: &Value) -> (Option<&Value>, Option<&Value>) {
                (v.get("method").filter(|m| !m.is_null()), v.get("id").filter(|i| !i.is_null()))
            }
            let expected: Vec<_> = match &value {
                Value::Array(items) => items.iter().map(one).collect(),
                v => vec![one(v)],
            };
            let got: Vec<_> = heads.items.iter().map(|h| (h.method.as_ref(), h.id.as_ref())).collect();
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(raw));
            assert_eq!(heads.batch, value.is_array());
        }
        assert!(Heads::read(b"{not json").is_err());
    }

    #[test]
    fn requests_and_answers() {
        let heads = Heads::read(br#"[{"id":1,"method":"a"},{"method":"n"},{"id":2,"result":{}}]"#).unwrap();
        assert_eq!(heads.request_ids().collect::<Vec<_>>(), vec![&json!(1)]);
        assert_eq!(heads.answered_ids().collect::<Vec<_>>(), vec![&json!(2)]);
        assert!(!heads.is("a"), "a method inside a batch is not a lone request");
        assert!(Heads::read(br#"{"id":0,"method":"initialize"}"#).unwrap().is("initialize"));
    }
}

/// What the relay needs of an upstream answer to a call it forwarded, read without building the result.
#[derive(Debug, PartialEq)]
pub(crate) struct AnswerHead {
    pub id: Option<Value>,
    /// An `error` member (of any value).
    pub error: bool,
    /// `result.isError`, when `result` is an object; `None` when there is no `result`.
    pub is_error: Option<bool>,
}

impl AnswerHead {
    /// `None` unless `raw` is one response (no `method`; a `result` object or an `error`) that the narrow reader
    /// reads exactly as a full parse would; the caller then parses it whole.
    pub(crate) fn read(raw: &[u8]) -> Option<AnswerHead> {
        let head: RawAnswer = serde_json::from_slice(raw).ok()?;
        if head.method || !(head.error || head.result.is_some()) {
            return None;
        }
        Some(AnswerHead { id: head.id, error: head.error, is_error: head.result.map(|r| r.is_error) })
    }
}

#[derive(Deserialize)]
struct RawAnswer {
    #[serde(default, deserialize_with = "present")]
    method: bool,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: bool,
    #[serde(default)]
    result: Option<ResultHead>,
}

/// `true` for a member that is there, whatever its value (even `null`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// `isError` of a `result` object. Only a map is accepted (serde would read `[true]` as a struct too), and only a
/// boolean `isError`: anything else sends the message to the full parse, whose reading is the reference.
struct ResultHead {
    is_error: bool,
}

impl<'de> Deserialize<'de> for ResultHead {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ResultHead;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a result object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ResultHead, A::Error> {
                let mut is_error = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "isError" {
                        if is_error.is_some() {
                            return Err(serde::de::Error::duplicate_field("isError"));
                        }
                        is_error = Some(map.next_value::<bool>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ResultHead { is_error: is_error.unwrap_or(false) })
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    /// The reference: how the relay reads an answer from a full parse.
    fn full(raw: &[u8]) -> Option<AnswerHead> {
        let v: Value = serde_json::from_slice(raw).ok()?;
        let is_response = v.get("method").is_none() && (v.get("result").is_some() || v.get("error").is_some());
        is_response.then(|| AnswerHead {
            id: v.get("id").filter(|i| !i.is_null()).cloned(),
            error: v.get("error").is_some(),
            is_error: v.get("result").map(|r| r.get("isError").and_then(Value::as_bool).unwrap_or(false)),
        })
    }

    #[test]
    fn the_narrow_reading_is_the_full_one_or_nothing() {
        let cases: [&[u8]; 13] = [
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}]}}"#,
            br#"{"jsonrpc":"2.0","id":"a","result":{"isError":true,"content":[]}}"#,
            br#"{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"no"}}"#,
            br#"{"jsonrpc":"2.0","id":2,"error":null,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":3,"result":[true]}"#,
            br#"{"jsonrpc":"2.0","id":3,"result":null}"#,
            br#"{"jsonrpc":"2.0","id":4,"result":{"isError":"yes"}}"#,
            br#"{"jsonrpc":"2.0","id":4,"result":{"isError":false,"isError":true}}"#,
            br#"{"jsonrpc":"2.0","id":5,"id":6,"result":{}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","result":{}}"#,
            br#"[{"jsonrpc":"2.0","id":8,"result":{}}]"#,
            br#"{"jsonrpc":"2.0","id":9}"#,
        ];
        for raw in cases {
            if let Some(narrow) = AnswerHead::read(raw) {
                assert_eq!(Some(narrow), full(raw), "{}", String::from_utf8_lossy(raw));
            }
        }
        assert!(AnswerHead::read(cases[0]).is_some(), "the common case takes the narrow path");
        assert_eq!(AnswerHead::read(cases[1]).unwrap().is_error, Some(true));
        assert!(AnswerHead::read(cases[2]).unwrap().error);
    }
}
