//! plist → JSON for display: `<data>` as base64, `<date>` as RFC 3339,
//! non-finite reals as `null`, UIDs as `{"CF$UID": n}`.

use base64ct::Encoding;
use serde_json::{Map, Value as Json};

/// Convert a plist value to JSON (iteratively: any depth is safe).
pub fn from_plist(value: &plist::Value) -> Json {
    enum Item<'a> {
        Value(&'a plist::Value),
        EndArray(usize),
        EndDict(Vec<&'a str>),
    }
    let mut out: Vec<Json> = Vec::new();
    let mut stack = vec![Item::Value(value)];
    while let Some(item) = stack.pop() {
        match item {
            Item::Value(v) => match v {
                plist::Value::Array(a) => {
                    stack.push(Item::EndArray(a.len()));
                    stack.extend(a.iter().rev().map(Item::Value));
                }
                plist::Value::Dictionary(d) => {
                    stack.push(Item::EndDict(d.keys().map(String::as_str).collect()));
                    let values: Vec<_> = d.values().collect();
                    stack.extend(values.into_iter().rev().map(Item::Value));
                }
                other => out.push(scalar(other)),
            },
            Item::EndArray(n) => {
                let items = out.split_off(out.len().saturating_sub(n));
                out.push(Json::Array(items));
            }
            Item::EndDict(keys) => {
                let values = out.split_off(out.len().saturating_sub(keys.len()));
                let map: Map<String, Json> =
                    keys.into_iter().map(str::to_owned).zip(values).collect();
                out.push(Json::Object(map));
            }
        }
    }
    out.pop().unwrap_or(Json::Null)
}

fn scalar(v: &plist::Value) -> Json {
    match v {
        plist::Value::Boolean(b) => Json::Bool(*b),
        plist::Value::Data(d) => Json::String(base64ct::Base64::encode_string(d)),
        plist::Value::Date(d) => Json::String(d.to_xml_format()),
        plist::Value::Real(r) => serde_json::Number::from_f64(*r).map_or(Json::Null, Json::Number),
        plist::Value::Integer(i) => match (i.as_signed(), i.as_unsigned()) {
            (Some(s), _) => Json::from(s),
            (None, Some(u)) => Json::from(u),
            (None, None) => Json::Null,
        },
        plist::Value::String(s) => Json::String(s.clone()),
        plist::Value::Uid(u) => {
            let mut m = Map::new();
            m.insert("CF$UID".into(), Json::from(u.get()));
            Json::Object(m)
        }
        _ => Json::Null,
    }
}

/// A dictionary as a JSON object.
pub fn object(dict: &plist::Dictionary) -> Map<String, Json> {
    match from_plist(&plist::Value::Dictionary(dict.clone())) {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

/// The `"channel"` member: kind, id, device and user ids.
pub fn channel(c: &mdm_enroll::mdm::Channel) -> Json {
    let mut m = Map::new();
    m.insert("kind".into(), Json::from(c.kind()));
    m.insert("id".into(), Json::from(c.id()));
    m.insert("device_id".into(), Json::from(c.device_id()));
    m.insert("user_id".into(), c.user_id().map_or(Json::Null, Json::from));
    Json::Object(m)
}
