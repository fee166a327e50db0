//! Declarative device management documents: every document this crate
//! builds validates against the rules of Apple's schemas (written here as
//! our own checks, each citing its schema path in the public
//! `apple/device-management` repository), JSON round-trips, and a real
//! status report capture parses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mdm_enroll::ddm::{
    self, AssetAuthentication, DdmAnswer, DdmError, Declaration, DeclarationItemsResponse,
    DeclarationKind, DeclarationPayload, DeclarationSet, Endpoint, PasscodeSettings, StatusReport,
    TestReturnStatus, TokensResponse, Validity,
};
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::json::Json;
use serde_json::Value;

// ---- schema rules -------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    Dict,
    Array,
    /// `<date>` in a JSON document: RFC 3339 UTC with no fractional seconds.
    Date,
    /// A string starting `https://`.
    Https,
}

/// One payload key rule: name, type, required.
type Rule = (&'static str, Ty, bool);

/// Check `obj` against `rules`: required keys present, every listed key of
/// the right type, and (when `closed`) no key outside the rules.
fn check(obj: &Value, rules: &[Rule], closed: bool, at: &str) {
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("{at}: not a dictionary"));
    for (key, ty, required) in rules {
        match map.get(*key) {
            None => assert!(!required, "{at}: required key {key} missing"),
            Some(v) => {
                let ok = match ty {
                    Ty::Str => v.is_string(),
                    Ty::Bool => v.is_boolean(),
                    Ty::Int => v.is_i64(),
                    Ty::Dict => v.is_object(),
                    Ty::Array => v.is_array(),
                    Ty::Date => v.as_str().is_some_and(is_utc_seconds),
                    Ty::Https => v.as_str().is_some_and(|s| s.starts_with("https://")),
                };
                assert!(ok, "{at}.{key}: wrong type: {v}");
            }
        }
    }
    if closed {
        for key in map.keys() {
            assert!(
                rules.iter().any(|(k, _, _)| k == key),
                "{at}: key {key} not in the schema"
            );
        }
    }
}

fn is_utc_seconds(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// declarative/declarations/declarationbase.yaml
const BASE: &[Rule] = &[
    ("Type", Ty::Str, true),
    ("Identifier", Ty::Str, true),
    ("ServerToken", Ty::Str, true),
    ("Payload", Ty::Dict, true),
];

/// Payload rules by declaration type (schema path in the comment).
fn payload_rules(declaration_type: &str) -> &'static [Rule] {
    match declaration_type {
        // declarative/declarations/activations/simple.yaml
        "com.apple.activation.simple" => &[
            ("StandardConfigurations", Ty::Array, true),
            ("Predicate", Ty::Str, false),
        ],
        // declarative/declarations/configurations/legacy.yaml
        "com.apple.configuration.legacy" => &[("ProfileURL", Ty::Https, true)],
        // declarative/declarations/configurations/passcode.settings.yaml
        "com.apple.configuration.passcode.settings" => &[
            ("RequirePasscode", Ty::Bool, false),
            ("RequireAlphanumericPasscode", Ty::Bool, false),
            ("RequireComplexPasscode", Ty::Bool, false),
            ("MinimumLength", Ty::Int, false),
            ("MinimumComplexCharacters", Ty::Int, false),
            ("MaximumFailedAttempts", Ty::Int, false),
            ("MaximumGracePeriodInMinutes", Ty::Int, false),
            ("MaximumInactivityInMinutes", Ty::Int, false),
            ("MaximumPasscodeAgeInDays", Ty::Int, false),
            ("PasscodeReuseLimit", Ty::Int, false),
            ("ChangeAtNextAuth", Ty::Bool, false),
            ("CustomRegex", Ty::Dict, false),
        ],
        // declarative/declarations/configurations/management.status-subscriptions.yaml
        "com.apple.configuration.management.status-subscriptions" => {
            &[("StatusItems", Ty::Array, true)]
        }
        // declarative/declarations/configurations/management.test.yaml
        "com.apple.configuration.management.test" => &[
            ("Echo", Ty::Str, true),
            ("EchoDataAssetReference", Ty::Str, false),
            ("ReturnStatus", Ty::Str, false),
        ],
        // declarative/declarations/assets/data.yaml
        "com.apple.asset.data" => &[
            ("Reference", Ty::Dict, true),
            ("Authentication", Ty::Dict, false),
        ],
        // declarative/declarations/management/server-capabilities.yaml
        "com.apple.management.server-capabilities" => &[
            ("Version", Ty::Str, true),
            ("SupportedFeatures", Ty::Dict, true),
        ],
        // declarative/declarations/management/organization-info.yaml
        "com.apple.management.organization-info" => &[
            ("Name", Ty::Str, true),
            ("Email", Ty::Str, false),
            ("URL", Ty::Str, false),
            ("Proof", Ty::Dict, false),
        ],
        other => panic!("no schema rules for {other}"),
    }
}

/// Validate a declaration document against its schemas.
fn check_declaration(v: &Value) {
    check(v, BASE, true, "declaration");
    let t = v["Type"].as_str().unwrap();
    let payload = &v["Payload"];
    check(payload, payload_rules(t), true, t);
    match t {
        "com.apple.activation.simple" => {
            for c in payload["StandardConfigurations"].as_array().unwrap() {
                assert!(c.is_string(), "StandardConfigurationsItems are strings");
            }
        }
        "com.apple.configuration.management.status-subscriptions" => {
            for item in payload["StatusItems"].as_array().unwrap() {
                check(item, &[("Name", Ty::Str, true)], true, "StatusItem");
            }
        }
        "com.apple.configuration.management.test" => {
            if let Some(r) = payload.get("ReturnStatus") {
                assert!(["Installed", "Failed", "Unlocked"].contains(&r.as_str().unwrap()));
            }
        }
        "com.apple.asset.data" => {
            check(
                &payload["Reference"],
                &[
                    ("DataURL", Ty::Https, true),
                    ("ContentType", Ty::Str, false),
                    ("Size", Ty::Int, false),
                    ("Hash-SHA-256", Ty::Str, false),
                ],
                true,
                "Reference",
            );
            if let Some(a) = payload.get("Authentication") {
                check(a, &[("Type", Ty::Str, true)], true, "Authentication");
                assert!(["MDM", "None"].contains(&a["Type"].as_str().unwrap()));
            }
        }
        _ => {}
    }
    assert!(v["ServerToken"].as_str().unwrap().len() <= 64);
}

/// declarative/protocol/tokensresponse.yaml (SyncTokens: synchronizationtokens)
fn check_tokens(v: &Value) {
    check(v, &[("SyncTokens", Ty::Dict, true)], true, "TokensResponse");
    check(
        &v["SyncTokens"],
        &[
            ("DeclarationsToken", Ty::Str, true),
            ("Timestamp", Ty::Date, true),
        ],
        true,
        "SyncTokens",
    );
}

/// declarative/protocol/declarationitemsresponse.yaml
fn check_items(v: &Value) {
    check(
        v,
        &[
            ("Declarations", Ty::Dict, true),
            ("DeclarationsToken", Ty::Str, true),
        ],
        true,
        "DeclarationItemsResponse",
    );
    let classes: &[Rule] = &[
        ("Activations", Ty::Array, true),
        ("Configurations", Ty::Array, true),
        ("Assets", Ty::Array, true),
        ("Management", Ty::Array, true),
    ];
    check(&v["Declarations"], classes, true, "Declarations");
    for (k, _, _) in classes {
        for item in v["Declarations"][k].as_array().unwrap() {
            check(
                item,
                &[
                    ("Identifier", Ty::Str, true),
                    ("ServerToken", Ty::Str, true),
                ],
                true,
                k,
            );
        }
    }
}

// ---- fixtures ------------------------------------------------------------

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_750_000_000_678)
}

fn every_typed_declaration() -> Vec<Declaration> {
    vec![
        Declaration::new(
            "demo.activation",
            DeclarationPayload::ActivationSimple {
                standard_configurations: vec!["demo.test".into(), "demo.legacy".into()],
                predicate: Some("@status(device.model.family) == 'Mac'".into()),
            },
        )
        .unwrap(),
        Declaration::new(
            "demo.legacy",
            DeclarationPayload::Legacy {
                profile_url: "https://mdm.example.com/ddm/profile/demo".into(),
            },
        )
        .unwrap(),
        Declaration::new(
            "demo.passcode",
            DeclarationPayload::PasscodeSettings({
                let mut p = PasscodeSettings::default();
                p.require_passcode = Some(true);
                p.minimum_length = Some(8);
                p
            }),
        )
        .unwrap()
        .with_extra(vec![("MaximumGracePeriodInMinutes".into(), Json::from(5))])
        .unwrap(),
        Declaration::new(
            "demo.subscriptions",
            DeclarationPayload::StatusSubscriptions {
                status_items: vec![
                    "management.declarations".into(),
                    "device.model.family".into(),
                ],
            },
        )
        .unwrap(),
        Declaration::new(
            "demo.test",
            DeclarationPayload::ManagementTest {
                echo: "hello \"Mac\"".into(),
                return_status: Some(TestReturnStatus::Installed),
            },
        )
        .unwrap(),
        Declaration::new(
            "demo.asset",
            DeclarationPayload::AssetData {
                data_url: "https://mdm.example.com/ddm/asset/1".into(),
                content_type: Some("text/plain".into()),
                size: Some(12),
                hash_sha256: None,
                authentication: Some(AssetAuthentication::Mdm),
            },
        )
        .unwrap(),
        Declaration::new(
            "demo.capabilities",
            DeclarationPayload::ServerCapabilities {
                version: "1.0.0".into(),
                supported_features: vec![],
            },
        )
        .unwrap(),
        Declaration::new(
            "demo.org",
            DeclarationPayload::OrganizationInfo {
                name: "Example Org".into(),
                email: Some("it@example.com".into()),
                url: None,
            },
        )
        .unwrap(),
    ]
}

fn set_of(decls: Vec<Declaration>) -> DeclarationSet {
    let mut s = DeclarationSet::new();
    for d in decls {
        s.insert(d);
    }
    s
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

// ---- tests ---------------------------------------------------------------

#[test]
fn every_declaration_we_build_validates_and_round_trips() {
    let limits = Limits::default();
    for d in every_typed_declaration() {
        let body = d.encode();
        let v = json_of(&body);
        check_declaration(&v);
        assert_eq!(v["Identifier"], d.identifier());
        assert_eq!(v["Type"], d.declaration_type());
        let back = Declaration::decode(&body, &limits).unwrap();
        assert_eq!(back.declaration, d, "{}", d.identifier());
        assert_eq!(back.server_token, d.server_token());
        assert_eq!(back.declaration.encode(), body);
    }
}

#[test]
fn kinds_follow_the_type_prefix() {
    let kinds: Vec<_> = every_typed_declaration().iter().map(|d| d.kind()).collect();
    use DeclarationKind::*;
    assert_eq!(
        kinds,
        [
            Activation,
            Configuration,
            Configuration,
            Configuration,
            Configuration,
            Asset,
            Management,
            Management
        ]
    );
    assert_eq!(
        DeclarationKind::of_type("com.apple.configuration.safari.settings"),
        Some(Configuration)
    );
    assert_eq!(
        DeclarationKind::of_type("com.example.configuration.x"),
        None
    );
    assert_eq!(DeclarationKind::of_type("com.apple.configuration."), None);
}

#[test]
fn a_generic_declaration_keeps_its_payload() {
    let generic = br#"{"Type":"com.apple.configuration.safari.settings","Identifier":"x.safari","ServerToken":"t1","Payload":{"AcceptCookies":"Always","Nested":{"a":[1,2,{"b":true}]}}}"#;
    let d = Declaration::decode(generic, &Limits::default()).unwrap();
    assert_eq!(d.server_token.as_str(), "t1");
    assert!(matches!(
        d.declaration.payload(),
        DeclarationPayload::Generic { declaration_type, payload }
            if declaration_type == "com.apple.configuration.safari.settings" && payload.len() == 2
    ));
    let again = json_of(&d.declaration.encode());
    assert_eq!(again["Payload"], json_of(generic)["Payload"]);
    // A type outside the four classes cannot be served.
    let bad = br#"{"Type":"com.example.thing","Identifier":"x","ServerToken":"t","Payload":{}}"#;
    assert!(matches!(
        Declaration::decode(bad, &Limits::default()),
        Err(DdmError::Schema { .. })
    ));
}

#[test]
fn declarations_refuse_what_the_schema_refuses() {
    let limits = Limits::default();
    let cases: &[(&[u8], &str)] = &[
        (br#"{"Type":"com.apple.configuration.legacy","Identifier":"a","ServerToken":"t","Payload":{"ProfileURL":"http://x/p"}}"#, "https"),
        (br#"{"Type":"com.apple.activation.simple","Identifier":"a","ServerToken":"t","Payload":{"StandardConfigurations":["a",1]}}"#, "StandardConfigurations[1]"),
        (br#"{"Type":"com.apple.activation.simple","Identifier":"a","ServerToken":"t","Payload":{}}"#, "StandardConfigurations"),
        (br#"{"Type":"com.apple.configuration.management.test","Identifier":"a","ServerToken":"t","Payload":{"Echo":"e","ReturnStatus":"Maybe"}}"#, "ReturnStatus"),
        (br#"{"Type":"com.apple.configuration.passcode.settings","Identifier":"a","ServerToken":"t","Payload":{"MinimumLength":"8"}}"#, "MinimumLength"),
        (br#"{"Type":"com.apple.configuration.management.test","Identifier":"a b","ServerToken":"t","Payload":{"Echo":"e"}}"#, "identifier"),
        (br#"{"Type":"com.apple.configuration.management.test","Identifier":"a","ServerToken":"t","Payload":[]}"#, "Payload"),
    ];
    for (body, needle) in cases {
        let err = Declaration::decode(body, &limits).unwrap_err().to_string();
        assert!(err.contains(needle), "{err} should name {needle}");
    }
    let long = format!(
        r#"{{"Type":"com.apple.configuration.management.test","Identifier":"a","ServerToken":"{}","Payload":{{"Echo":"e"}}}}"#,
        "x".repeat(65)
    );
    assert!(matches!(
        Declaration::decode(long.as_bytes(), &limits),
        Err(DdmError::TokenTooLong { limit: 64, .. })
    ));
    assert!(matches!(
        Declaration::new(
            "ok",
            DeclarationPayload::Legacy {
                profile_url: "ftp://x".into()
            }
        ),
        Err(DdmError::NotHttps {
            key: "ProfileURL",
            ..
        })
    ));
    assert!(Declaration::new("x".repeat(257), DeclarationPayload::Properties(vec![])).is_err());
    // A typed key cannot also come as an extra.
    let test = Declaration::new(
        "t",
        DeclarationPayload::ManagementTest {
            echo: "e".into(),
            return_status: None,
        },
    )
    .unwrap();
    assert!(
        test.with_extra(vec![("Echo".into(), Json::from("again"))])
            .is_err()
    );
}

#[test]
fn server_tokens_follow_content_and_the_set_token_follows_the_set() {
    let test = |echo: &str| {
        Declaration::new(
            "demo.test",
            DeclarationPayload::ManagementTest {
                echo: echo.into(),
                return_status: None,
            },
        )
        .unwrap()
    };
    assert_eq!(test("a").server_token(), test("a").server_token());
    assert_ne!(test("a").server_token(), test("b").server_token());
    assert!(test("a").server_token().as_str().len() <= 64);
    // Same payload, other identifier: another token.
    let other = Declaration::new(
        "demo.test2",
        DeclarationPayload::ManagementTest {
            echo: "a".into(),
            return_status: None,
        },
    )
    .unwrap();
    assert_ne!(other.server_token(), test("a").server_token());

    let mut set = set_of(every_typed_declaration());
    let t1 = set.declarations_token();
    assert!(t1.as_str().len() <= 256);
    assert_eq!(set_of(every_typed_declaration()).declarations_token(), t1);
    set.insert(test("changed"));
    let t2 = set.declarations_token();
    assert_ne!(t2, t1);
    set.remove("demo.org");
    assert_ne!(set.declarations_token(), t2);
    assert_ne!(DeclarationSet::new().declarations_token(), t1);
}

#[test]
fn tokens_and_items_validate_and_agree() {
    let set = set_of(every_typed_declaration());
    let tokens = set.tokens_response(t0()).encode();
    let tv = json_of(&tokens);
    check_tokens(&tv);
    assert_eq!(tv["SyncTokens"]["Timestamp"], "2025-06-15T15:06:40Z");
    let items = set.declaration_items().encode();
    let iv = json_of(&items);
    check_items(&iv);
    assert_eq!(
        iv["DeclarationsToken"],
        tv["SyncTokens"]["DeclarationsToken"]
    );
    let configs = iv["Declarations"]["Configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 4);
    for d in set.iter() {
        let arr = iv["Declarations"][d.kind().items_key()].as_array().unwrap();
        let item = arr
            .iter()
            .find(|i| i["Identifier"] == d.identifier())
            .unwrap();
        assert_eq!(item["ServerToken"], d.server_token().as_str());
    }

    // Round trips.
    let limits = Limits::default();
    let back = TokensResponse::decode(&tokens, &limits).unwrap();
    assert_eq!(back, set.tokens_response(t0()));
    assert_eq!(
        back.timestamp,
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    );
    assert_eq!(
        DeclarationItemsResponse::decode(&items, &limits).unwrap(),
        set.declaration_items()
    );

    // An empty set still has all four arrays.
    let empty = json_of(&DeclarationSet::new().declaration_items().encode());
    check_items(&empty);
    for k in ["Activations", "Configurations", "Assets", "Management"] {
        assert_eq!(empty["Declarations"][k], serde_json::json!([]));
    }
}

#[test]
fn endpoints_parse_and_answer() {
    let limits = Limits::default();
    let set = set_of(every_typed_declaration());
    for s in [
        "tokens",
        "declaration-items",
        "status",
        "declaration/configuration/demo.test",
    ] {
        assert_eq!(Endpoint::parse(s).unwrap().as_string(), s);
    }
    for bad in [
        "",
        "token",
        "declaration/",
        "declaration/thing/x",
        "declaration/asset/",
        "declaration/asset/a/b",
    ] {
        assert!(
            matches!(Endpoint::parse(bad), Err(DdmError::UnknownEndpoint(_))),
            "{bad}"
        );
    }
    let answer = |e: &str, data: Option<&[u8]>| {
        ddm::respond(&set, &Endpoint::parse(e).unwrap(), data, t0(), &limits)
    };
    let DdmAnswer::Json(body) = answer("declaration/configuration/demo.test", None).unwrap() else {
        panic!("a declaration body")
    };
    assert_eq!(body, set.get("demo.test").unwrap().encode());
    // Absent, or asked under another class: 404.
    assert_eq!(
        answer("declaration/configuration/nope", None).unwrap(),
        DdmAnswer::NotFound
    );
    assert_eq!(
        answer("declaration/activation/demo.test", None).unwrap(),
        DdmAnswer::NotFound
    );
    assert_eq!(
        answer("tokens", None).unwrap(),
        DdmAnswer::Json(set.tokens_response(t0()).encode())
    );
    assert_eq!(
        answer("declaration-items", None).unwrap(),
        DdmAnswer::Json(set.declaration_items().encode())
    );
    assert_eq!(answer("status", None).unwrap_err(), DdmError::MissingData);
    let capture = include_bytes!("vectors/ddm/zentral_status_report.json");
    assert!(matches!(
        answer("status", Some(capture)).unwrap(),
        DdmAnswer::Status(_)
    ));
}

#[test]
fn the_public_status_report_capture_parses() {
    let capture = include_bytes!("vectors/ddm/zentral_status_report.json");
    let r = StatusReport::decode(capture, &Limits::default()).unwrap();
    let d = r.declarations.as_ref().unwrap();
    assert_eq!(d.len(), 3);
    let a = r.declaration("zentral.blueprint.1.activation").unwrap();
    assert_eq!(a.kind, DeclarationKind::Activation);
    assert!(a.active);
    assert_eq!(a.valid, Validity::Valid);
    assert_eq!(
        a.server_token.as_str(),
        "1e191dd7-9231-4e21-a565-5782997e0a8a"
    );
    let c = r
        .declaration("zentral.blueprint.1.management-status-subscriptions")
        .unwrap();
    assert_eq!(c.kind, DeclarationKind::Configuration);
    assert_eq!(c.server_token.as_str(), "2");
    assert!(r.errors.is_empty());
    assert_eq!(r.full_report, None);
    assert_eq!(
        r.status_items
            .get("device")
            .and_then(|d| d.get("model"))
            .and_then(|m| m.get("identifier"))
            .and_then(Json::as_str),
        Some("Macmini9,1")
    );
}

#[test]
fn status_reasons_errors_and_full_report_are_kept() {
    let body = br#"{"StatusItems":{"management":{"declarations":{
        "activations":[],
        "configurations":[{"identifier":"demo.test","server-token":"abc","active":false,"valid":"invalid",
            "reasons":[{"code":"Error.ConfigurationCannotBeApplied","description":"Echo failed","details":{"Error":"x"}}]}],
        "assets":[{"identifier":"demo.asset","server-token":"t","active":true,"valid":"unknown"}],
        "management":[]}}},
      "Errors":[{"StatusItem":"device.power.battery-health","Reasons":[{"Code":"Error.NotSupported"}]}],
      "FullReport":true}"#;
    let r = StatusReport::decode(body, &Limits::default()).unwrap();
    let t = r.declaration("demo.test").unwrap();
    assert!(!t.active);
    assert_eq!(t.valid, Validity::Invalid);
    assert_eq!(t.reasons.len(), 1);
    assert_eq!(t.reasons[0].code, "Error.ConfigurationCannotBeApplied");
    assert_eq!(t.reasons[0].description.as_deref(), Some("Echo failed"));
    assert!(t.reasons[0].details.is_some());
    assert_eq!(
        r.declaration("demo.asset").unwrap().valid,
        Validity::Unknown
    );
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].status_item, "device.power.battery-health");
    assert_eq!(r.errors[0].reasons[0].code, "Error.NotSupported");
    assert_eq!(r.full_report, Some(true));

    // A partial report without management.declarations says nothing about declarations.
    let partial = StatusReport::decode(
        br#"{"StatusItems":{"device":{}},"Errors":[]}"#,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(partial.declarations, None);
}

#[test]
fn applied_means_active_valid_and_the_current_token() {
    let d = Declaration::new(
        "demo.test",
        DeclarationPayload::ManagementTest {
            echo: "e".into(),
            return_status: None,
        },
    )
    .unwrap();
    let current = d.server_token();
    let report = |token: &str, active: bool, valid: &str| {
        let body = format!(
            r#"{{"StatusItems":{{"management":{{"declarations":{{"activations":[],"configurations":[{{"identifier":"demo.test","server-token":"{token}","active":{active},"valid":"{valid}"}}],"assets":[],"management":[]}}}}}},"Errors":[]}}"#
        );
        StatusReport::decode(body.as_bytes(), &Limits::default()).unwrap()
    };
    let applied = |r: StatusReport| r.declaration("demo.test").unwrap().is_applied(&current);
    assert!(applied(report(current.as_str(), true, "valid")));
    assert!(!applied(report("old-token", true, "valid")));
    assert!(!applied(report(current.as_str(), false, "valid")));
    assert!(!applied(report(current.as_str(), true, "invalid")));
    assert!(!applied(report(current.as_str(), true, "unknown")));
}

#[test]
fn status_reports_are_bounded_and_typed() {
    let limits = Limits::default();
    let mut small = limits;
    small.max_body_bytes = 100;
    let capture = include_bytes!("vectors/ddm/zentral_status_report.json");
    assert!(matches!(
        StatusReport::decode(capture, &small),
        Err(DdmError::Json(
            mdm_enroll::wire::json::JsonError::TooLarge { .. }
        ))
    ));
    let mut shallow = limits;
    shallow.max_depth = 4;
    assert!(matches!(
        StatusReport::decode(capture, &shallow),
        Err(DdmError::Json(mdm_enroll::wire::json::JsonError::TooDeep {
            limit: 4
        }))
    ));
    let deep = format!(
        "{{\"StatusItems\":{}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(StatusReport::decode(deep.as_bytes(), &limits).is_err());
    let bad: &[(&[u8], &str)] = &[
        (b"[]", "$"),
        (br#"{"Errors":[]}"#, "StatusItems"),
        (br#"{"StatusItems":{},"Errors":{}}"#, "Errors"),
        (br#"{"StatusItems":{},"FullReport":"yes"}"#, "FullReport"),
        (br#"{"StatusItems":{"management":{"declarations":{"configurations":[{"identifier":"a","server-token":"t","active":"true","valid":"valid"}]}}}}"#, "active"),
        (br#"{"StatusItems":{"management":{"declarations":{"configurations":[{"identifier":"a","server-token":"t","active":true,"valid":"maybe"}]}}}}"#, "valid"),
        (br#"{"StatusItems":{"management":{"declarations":{"configurations":[{"identifier":"a","active":true,"valid":"valid"}]}}}}"#, "server-token"),
        (br#"{"StatusItems":{"management":{"declarations":{"configurations":[{"identifier":"a","server-token":"t","active":true,"valid":"invalid","reasons":[{"description":"no code"}]}]}}}}"#, "code"),
        (br#"{"StatusItems":{},"Errors":[{"Reasons":[]}]}"#, "StatusItem"),
    ];
    for (body, needle) in bad {
        let err = StatusReport::decode(body, &limits).unwrap_err().to_string();
        assert!(err.contains(needle), "{err} should name {needle}");
    }
}

#[test]
fn the_committed_fuzz_corpus_replays_through_the_fuzz_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ddm_status");
    let mut accepted = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(report) = StatusReport::decode(&bytes, &Limits::default()) {
            accepted += 1;
            let text = report.status_items.encode();
            let again = mdm_enroll::wire::json::parse(
                text.as_bytes(),
                mdm_enroll::wire::json::JsonLimits::default(),
            )
            .unwrap();
            assert_eq!(again, report.status_items);
        }
    }
    assert!(accepted >= 4, "the seeds are valid reports");
}
