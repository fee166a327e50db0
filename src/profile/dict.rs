//! Typed reads from and writes to plist dictionaries, with errors naming the
//! payload and key.

use std::time::SystemTime;

use plist::{Dictionary, Value};

use super::ProfileError;

/// Consumes typed keys from a dictionary; what is left is the payload's `extra`.
pub(crate) struct Fields<'a> {
    label: &'a str,
    prefix: &'a str,
    dict: Dictionary,
}

impl<'a> Fields<'a> {
    /// Read `dict` of payload `label`; `prefix` is prepended to key names in
    /// errors (`"PayloadContent."` for a nested dictionary, or `""`).
    pub(crate) fn new(label: &'a str, prefix: &'a str, dict: Dictionary) -> Self {
        Self {
            label,
            prefix,
            dict,
        }
    }

    pub(crate) fn label(&self) -> &'a str {
        self.label
    }

    pub(crate) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn wrong(&self, key: &str, expected: &'static str) -> ProfileError {
        ProfileError::WrongType {
            payload: self.label.to_owned(),
            key: self.path(key),
            expected,
        }
    }

    pub(crate) fn invalid(&self, key: &str, reason: impl Into<String>) -> ProfileError {
        ProfileError::InvalidValue {
            payload: self.label.to_owned(),
            key: self.path(key),
            reason: reason.into(),
        }
    }

    fn missing(&self, key: &str) -> ProfileError {
        ProfileError::MissingKey {
            payload: self.label.to_owned(),
            key: self.path(key),
        }
    }

    /// Remove `key`, whatever its type.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.dict.remove(key)
    }

    pub(crate) fn required<T>(
        &mut self,
        key: &str,
        get: impl FnOnce(&mut Self, &str) -> Result<Option<T>, ProfileError>,
    ) -> Result<T, ProfileError> {
        get(self, key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    pub(crate) fn req_string(&mut self, key: &str) -> Result<String, ProfileError> {
        self.required(key, Self::string)
    }

    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong(key, "a boolean")),
        }
    }

    pub(crate) fn integer(&mut self, key: &str) -> Result<Option<i64>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => i
                .as_signed()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "integer out of range")),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    /// An integer that must fit `u32` (sizes, counts, bitmasks).
    pub(crate) fn u32(&mut self, key: &str) -> Result<Option<u32>, ProfileError> {
        match self.integer(key)? {
            None => Ok(None),
            Some(i) => u32::try_from(i)
                .map(Some)
                .map_err(|_| self.invalid(key, format!("{i} is out of range"))),
        }
    }

    /// `PayloadVersion`: an integer, or a `<real>` with an integral value
    /// (micromdm/scep's `sceptest.mobileconfig` writes `<real>1</real>`).
    pub(crate) fn version(&mut self, key: &str) -> Result<Option<i64>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => i
                .as_signed()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "integer out of range")),
            Some(Value::Real(r)) if r.fract() == 0.0 && r.abs() < 1e15 => Ok(Some(r as i64)),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    pub(crate) fn real(&mut self, key: &str) -> Result<Option<f64>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Real(r)) => Ok(Some(r)),
            Some(Value::Integer(i)) => match i.as_signed() {
                Some(i) => Ok(Some(i as f64)),
                None => Err(self.invalid(key, "integer out of range")),
            },
            Some(_) => Err(self.wrong(key, "a real")),
        }
    }

    pub(crate) fn data(&mut self, key: &str) -> Result<Option<Vec<u8>>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Data(d)) => Ok(Some(d)),
            Some(_) => Err(self.wrong(key, "data")),
        }
    }

    pub(crate) fn date(&mut self, key: &str) -> Result<Option<SystemTime>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Date(d)) => Ok(Some(d.into())),
            Some(_) => Err(self.wrong(key, "a date")),
        }
    }

    pub(crate) fn dict(&mut self, key: &str) -> Result<Option<Dictionary>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Dictionary(d)) => Ok(Some(d)),
            Some(_) => Err(self.wrong(key, "a dictionary")),
        }
    }

    pub(crate) fn array(&mut self, key: &str) -> Result<Option<Vec<Value>>, ProfileError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.wrong(key, "an array")),
        }
    }

    pub(crate) fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, ProfileError> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(self.wrong(key, "an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A string or an array of strings (SubjectAltName values).
    pub(crate) fn one_or_more_strings(&mut self, key: &str) -> Result<Vec<String>, ProfileError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s]),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.wrong(key, "a string or an array of strings")),
                })
                .collect(),
            Some(_) => Err(self.wrong(key, "a string or an array of strings")),
        }
    }

    /// The keys not consumed.
    pub(crate) fn rest(self) -> Dictionary {
        self.dict
    }
}

/// Builds a dictionary from typed values; `None` and empty options are left out.
#[derive(Default)]
pub(crate) struct Out(Dictionary);

impl Out {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn value(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_owned(), value);
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.value(key, Value::String(value.to_owned()));
    }

    pub(crate) fn opt_str(&mut self, key: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    pub(crate) fn opt_bool(&mut self, key: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.value(key, Value::Boolean(v));
        }
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) {
        self.value(key, Value::Integer(value.into()));
    }

    pub(crate) fn opt_int(&mut self, key: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.int(key, v);
        }
    }

    pub(crate) fn opt_u32(&mut self, key: &str, value: Option<u32>) {
        self.opt_int(key, value.map(i64::from));
    }

    pub(crate) fn opt_real(&mut self, key: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.value(key, Value::Real(v));
        }
    }

    pub(crate) fn opt_data(&mut self, key: &str, value: &Option<Vec<u8>>) {
        if let Some(v) = value {
            self.value(key, Value::Data(v.clone()));
        }
    }

    pub(crate) fn opt_date(&mut self, key: &str, value: Option<SystemTime>) {
        if let Some(v) = value {
            self.value(key, Value::Date(v.into()));
        }
    }

    pub(crate) fn opt_strings(&mut self, key: &str, value: &Option<Vec<String>>) {
        if let Some(v) = value {
            self.value(key, strings(v));
        }
    }

    /// Add `extra` keys the typed fields did not set (typed fields win).
    pub(crate) fn extra(&mut self, extra: &Dictionary) {
        for (k, v) in extra {
            if !self.0.contains_key(k) {
                self.0.insert(k.clone(), v.clone());
            }
        }
    }

    /// The dictionary, keys sorted (as Apple's tools and `plistlib` write them).
    pub(crate) fn finish(mut self) -> Dictionary {
        self.0.sort_keys();
        self.0
    }
}

pub(crate) fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}
