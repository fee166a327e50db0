//! The certificate-request names shared by the SCEP and ACME payloads:
//! [`Subject`] (an X.500 name as nested arrays) and [`SubjectAltName`].

use plist::{Dictionary, Value};

use crate::profile::ProfileError;
use crate::profile::dict::{Fields, Out, strings};

/// An X.500 name as SCEP and ACME payloads write it: a list of RDNs, each a
/// list of `[type, value]` pairs, where type is `C`, `L`, `ST`, `O`, `OU`,
/// `CN` or a dotted OID (`[[["C","US"]],[["O","Org"]],[["CN","x"]]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject(pub Vec<Vec<(String, String)>>);

impl Subject {
    /// An empty name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an RDN holding one attribute.
    pub fn with(mut self, attribute: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push(vec![(attribute.into(), value.into())]);
        self
    }

    pub(super) fn decode(
        f: &Fields<'_>,
        key: &str,
        value: Vec<Value>,
    ) -> Result<Self, ProfileError> {
        let shape = || {
            f.invalid(
                key,
                "must be an array of arrays of [type, value] string pairs",
            )
        };
        value
            .into_iter()
            .map(|rdn| {
                let Value::Array(pairs) = rdn else {
                    return Err(shape());
                };
                pairs
                    .into_iter()
                    .map(|pair| match pair {
                        Value::Array(items) => match <[Value; 2]>::try_from(items) {
                            Ok([Value::String(t), Value::String(v)]) => Ok((t, v)),
                            _ => Err(shape()),
                        },
                        _ => Err(shape()),
                    })
                    .collect()
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub(super) fn to_value(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|rdn| {
                    Value::Array(
                        rdn.iter()
                            .map(|(t, v)| {
                                Value::Array(vec![
                                    Value::String(t.clone()),
                                    Value::String(v.clone()),
                                ])
                            })
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// `SubjectAltName` of SCEP and ACME payloads. Each name type may hold one
/// string or several (written as an array); `ntPrincipalName` is one string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubjectAltName {
    /// `rfc822Name` (e-mail addresses).
    pub rfc822_name: Vec<String>,
    /// `dNSName`.
    pub dns_name: Vec<String>,
    /// `uniformResourceIdentifier`.
    pub uniform_resource_identifier: Vec<String>,
    /// `ntPrincipalName`.
    pub nt_principal_name: Option<String>,
    /// Keys not modelled above.
    pub extra: Dictionary,
}

impl SubjectAltName {
    pub(super) fn decode(label: &str, dict: Dictionary) -> Result<Self, ProfileError> {
        // Nested keys are reported as `SubjectAltName.<key>` (`PayloadContent.` for SCEP is
        // added by the caller's label path).
        let mut f = Fields::new(label, "SubjectAltName.", dict);
        Ok(Self {
            rfc822_name: f.one_or_more_strings("rfc822Name")?,
            dns_name: f.one_or_more_strings("dNSName")?,
            uniform_resource_identifier: f.one_or_more_strings("uniformResourceIdentifier")?,
            nt_principal_name: f.string("ntPrincipalName")?,
            extra: f.rest(),
        })
    }

    pub(super) fn to_value(&self) -> Value {
        let one_or_more = |items: &[String]| match items {
            [one] => Value::String(one.clone()),
            many => strings(many),
        };
        let mut out = Out::new();
        for (key, items) in [
            ("rfc822Name", &self.rfc822_name),
            ("dNSName", &self.dns_name),
            (
                "uniformResourceIdentifier",
                &self.uniform_resource_identifier,
            ),
        ] {
            if !items.is_empty() {
                out.value(key, one_or_more(items));
            }
        }
        out.opt_str("ntPrincipalName", &self.nt_principal_name);
        out.extra(&self.extra);
        Value::Dictionary(out.finish())
    }
}
