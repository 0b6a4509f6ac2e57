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
