//! The simulated Mac's declarative device management: the sync it runs
//! after a `DeclarativeManagement` command and the status it reports.

use std::collections::HashMap;

use super::{DeviceError, SimulatedDevice, Transport, plist_bytes, proto};
use crate::http::{Response, media_type};
use crate::wire::Limits;

/// What the simulated Mac holds of declarative device management.
#[derive(Debug, Clone, Default)]
pub(super) struct DdmState {
    /// Declarations reported invalid: identifier → reason code.
    pub(super) invalid: HashMap<String, String>,
    /// Held declarations: identifier → (class, `ServerToken`).
    pub(super) held: std::collections::BTreeMap<String, (crate::ddm::DeclarationKind, String)>,
}

/// What one DDM sync of the simulated Mac did ([`SimulatedDevice::ddm_sync`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdmSync {
    /// The `DeclarationsToken` of the `tokens` answer.
    pub declarations_token: String,
    /// The `declaration-items` answer: class, identifier, `ServerToken`.
    pub items: Vec<(crate::ddm::DeclarationKind, String, String)>,
    /// Identifiers fetched (new or changed `ServerToken`).
    pub fetched: Vec<String>,
    /// The HTTP status of the `status` report.
    pub status_answer: u16,
}

impl SimulatedDevice {
    /// Report the declaration `identifier` invalid (inactive, with reason
    /// `code`) in DDM status reports.
    pub fn ddm_invalid(mut self, identifier: &str, code: &str) -> Self {
        self.ddm
            .invalid
            .insert(identifier.to_owned(), code.to_owned());
        self
    }

    /// Send one `DeclarativeManagement` check-in for `endpoint` with `data`;
    /// returns the server's response as is.
    pub fn ddm_request<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        endpoint: &str,
        data: Option<Vec<u8>>,
    ) -> Result<Response, DeviceError> {
        let mut d = plist::Dictionary::new();
        d.insert("MessageType".into(), "DeclarativeManagement".into());
        d.insert("UDID".into(), self.udid.clone().into());
        d.insert("Endpoint".into(), endpoint.into());
        if let Some(data) = data {
            d.insert("Data".into(), plist::Value::Data(data));
        }
        let req = self.mdm_request(media_type::CHECKIN, plist_bytes(d)?)?;
        Ok(t.send(req))
    }

    /// The sync macOS runs after a `DeclarativeManagement` command: `tokens`
    /// → `declaration-items` → each new or changed declaration → `status`
    /// (a full report of every held declaration: active and valid, or
    /// invalid with the reason set by [`Self::ddm_invalid`]). Declarations
    /// gone from the items are dropped.
    pub fn ddm_sync<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<DdmSync, DeviceError> {
        use crate::ddm::{Declaration, DeclarationItemsResponse, DeclarationKind, TokensResponse};
        let limits = Limits::default();
        let ok = |r: Response| -> Result<Vec<u8>, DeviceError> {
            if r.status == 200 {
                Ok(r.body.into_vec())
            } else {
                Err(DeviceError::Status {
                    step: 12,
                    status: r.status,
                })
            }
        };
        let tokens = TokensResponse::decode(&ok(self.ddm_request(t, "tokens", None)?)?, &limits)
            .map_err(proto)?;
        let items = DeclarationItemsResponse::decode(
            &ok(self.ddm_request(t, "declaration-items", None)?)?,
            &limits,
        )
        .map_err(proto)?;
        if items.declarations_token != tokens.declarations_token {
            return Err(proto("declaration-items and tokens disagree"));
        }
        let mut listed = Vec::new();
        for kind in DeclarationKind::ALL {
            for i in items.class(kind) {
                listed.push((
                    kind,
                    i.identifier.clone(),
                    i.server_token.as_str().to_owned(),
                ));
            }
        }
        self.ddm
            .held
            .retain(|id, _| listed.iter().any(|(_, l, _)| l == id));
        let mut fetched = Vec::new();
        for (kind, id, token) in &listed {
            if self.ddm.held.get(id).is_some_and(|(_, t)| t == token) {
                continue;
            }
            let endpoint = format!("declaration/{}/{id}", kind.path_segment());
            let body = ok(self.ddm_request(t, &endpoint, None)?)?;
            let d = Declaration::decode(&body, &limits).map_err(proto)?;
            if d.declaration.identifier() != id || d.server_token.as_str() != token {
                return Err(proto(format!("{endpoint} does not match its item")));
            }
            self.ddm.held.insert(id.clone(), (*kind, token.clone()));
            fetched.push(id.clone());
        }
        let status = self.ddm_status_report();
        let answer = self.ddm_request(t, "status", Some(status))?;
        Ok(DdmSync {
            declarations_token: tokens.declarations_token.as_str().to_owned(),
            items: listed,
            fetched,
            status_answer: answer.status,
        })
    }

    /// The full status report of every held declaration.
    fn ddm_status_report(&self) -> Vec<u8> {
        use crate::ddm::DeclarationKind;
        use crate::wire::json::Json;
        let mut classes = Vec::new();
        for kind in DeclarationKind::ALL {
            let entries = self
                .ddm
                .held
                .iter()
                .filter(|(_, (k, _))| *k == kind)
                .map(|(id, (_, token))| {
                    let invalid = self.ddm.invalid.get(id);
                    let mut m = vec![
                        ("identifier".to_owned(), Json::from(id.as_str())),
                        ("server-token".into(), token.as_str().into()),
                        ("active".into(), invalid.is_none().into()),
                        (
                            "valid".into(),
                            Json::from(if invalid.is_some() {
                                "invalid"
                            } else {
                                "valid"
                            }),
                        ),
                    ];
                    if let Some(code) = invalid {
                        m.push((
                            "reasons".into(),
                            Json::Array(vec![Json::Object(vec![
                                ("code".into(), code.as_str().into()),
                                ("description".into(), "Simulated failure".into()),
                            ])]),
                        ));
                    }
                    Json::Object(m)
                })
                .collect();
            classes.push((kind.status_key().to_owned(), Json::Array(entries)));
        }
        Json::Object(vec![
            (
                "StatusItems".into(),
                Json::Object(vec![(
                    "management".into(),
                    Json::Object(vec![("declarations".into(), Json::Object(classes))]),
                )]),
            ),
            ("Errors".into(), Json::Array(Vec::new())),
            ("FullReport".into(), true.into()),
        ])
        .encode()
        .into_bytes()
    }
}
