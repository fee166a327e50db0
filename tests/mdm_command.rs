//! Reports (status values, error chains) and commands (typed and generic
//! builders, read back identically by Python's plistlib).

use std::io::Write;
use std::process::{Command as Process, Stdio};

use mdm_enroll::mdm::command::random_uuid;
use mdm_enroll::mdm::{Command, Error, Report, Status};
use mdm_enroll::wire::Limits;
use plist::{Dictionary, Value};

fn report(status: &str, extra: &str) -> Result<Report, Error> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n\
         <key>Status</key><string>{status}</string>\n\
         <key>UDID</key><string>00008020-000915083C80012E</string>\n{extra}</dict>\n</plist>\n"
    );
    Report::decode(body.as_bytes(), &Limits::default())
}

#[test]
fn every_status_value() {
    for (name, status, fin) in [
        ("Idle", Status::Idle, false),
        ("Acknowledged", Status::Acknowledged, true),
        ("Error", Status::Error, true),
        ("CommandFormatError", Status::CommandFormatError, true),
        ("NotNow", Status::NotNow, false),
    ] {
        let r = report(
            name,
            "<key>CommandUUID</key><string>0001_EraseDevice</string>",
        )
        .unwrap();
        assert_eq!(r.status, status);
        assert_eq!(status.is_final(), fin);
        assert_eq!(r.command_uuid.as_deref(), Some("0001_EraseDevice"));
    }
    assert_eq!(report("Idle", "").unwrap().command_uuid, None);
    assert_eq!(
        report("Acknowledged", ""),
        Err(Error::MissingKey("CommandUUID"))
    );
    assert_eq!(
        report("", "<key>CommandUUID</key><string>x</string>"),
        Err(Error::UnknownStatus(String::new()))
    );
    assert_eq!(
        report("acknowledged", "<key>CommandUUID</key><string>x</string>"),
        Err(Error::UnknownStatus("acknowledged".into()))
    );
}

#[test]
fn error_chain_is_typed_and_complete() {
    let r = report(
        "Error",
        "<key>CommandUUID</key><string>C</string>\
         <key>ErrorChain</key><array>\
           <dict><key>ErrorCode</key><integer>12021</integer>\
                 <key>ErrorDomain</key><string>MCMDMErrorDomain</string>\
                 <key>LocalizedDescription</key><string>Unknown command</string>\
                 <key>USEnglishDescription</key><string>Unknown command</string></dict>\
           <dict><key>ErrorCode</key><integer>97</integer>\
                 <key>ErrorDomain</key><string>MDMClientError</string>\
                 <key>LocalizedDescription</key><string>x</string>\
                 <key>Extra</key><true/></dict>\
         </array>\
         <key>RequestType</key><string>Bogus</string>",
    )
    .unwrap();
    assert_eq!(r.error_chain.len(), 2);
    assert_eq!(r.error_chain[0].error_code, Some(12021));
    assert_eq!(
        r.error_chain[0].error_domain.as_deref(),
        Some("MCMDMErrorDomain")
    );
    assert_eq!(
        r.error_chain[0].us_english_description.as_deref(),
        Some("Unknown command")
    );
    assert_eq!(r.error_chain[1].us_english_description, None);
    assert_eq!(
        r.error_chain[1].extra.get("Extra"),
        Some(&Value::Boolean(true))
    );
    assert_eq!(r.request_type.as_deref(), Some("Bogus"));
    assert!(r.results.is_empty());
    assert_eq!(
        Report::decode(&r.encode().unwrap(), &Limits::default()),
        Ok(r)
    );

    assert_eq!(
        report(
            "Error",
            "<key>CommandUUID</key><string>C</string><key>ErrorChain</key><array><string>x</string></array>"
        ),
        Err(Error::WrongType {
            key: "ErrorChain",
            expected: "array of dictionaries"
        })
    );
    assert_eq!(
        report(
            "Idle",
            "<key>UserID</key><string>u</string><key>CommandUUID</key><integer>1</integer>"
        ),
        Err(Error::WrongType {
            key: "CommandUUID",
            expected: "string"
        })
    );
}

#[test]
fn report_channel_is_resolved() {
    let r = report(
        "Idle",
        "<key>UserID</key><string>U</string><key>UserShortName</key><string>s</string>",
    )
    .unwrap();
    assert_eq!(r.channel.id(), "00008020-000915083C80012E:U");
}

/// Ask Python to load `ours` and compare it with the plist literal `expected` (Python syntax).
fn python_reads(ours: &[u8], expected: &str) {
    let script = format!(
        "import plistlib,sys\nd=plistlib.loads(sys.stdin.buffer.read())\nexp={expected}\n\
         sys.exit(0 if d==exp else print(repr(d)) or 3)"
    );
    let mut child = Process::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(ours).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "plistlib disagrees: {expected}");
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn typed_commands_read_back_by_plistlib() {
    let cases: Vec<(Command, String)> = vec![
        (
            Command::device_information("U1", &["UDID", "OSVersion", "SerialNumber"]),
            "{'CommandUUID':'U1','Command':{'RequestType':'DeviceInformation','Queries':['UDID','OSVersion','SerialNumber']}}".into(),
        ),
        (
            Command::security_info("U2"),
            "{'CommandUUID':'U2','Command':{'RequestType':'SecurityInfo'}}".into(),
        ),
        (
            Command::profile_list("U3").param("ManagedOnly", true),
            "{'CommandUUID':'U3','Command':{'RequestType':'ProfileList','ManagedOnly':True}}".into(),
        ),
        (
            Command::install_profile("U4", (0u8..=255).cycle().take(5000).collect()),
            "{'CommandUUID':'U4','Command':{'RequestType':'InstallProfile','Payload':bytes(range(256))*19+bytes(range(136))}}".into(),
        ),
        (
            Command::remove_profile("U5", "com.example.<&>"),
            "{'CommandUUID':'U5','Command':{'RequestType':'RemoveProfile','Identifier':'com.example.<&>'}}".into(),
        ),
        (
            Command::installed_application_list("U6"),
            "{'CommandUUID':'U6','Command':{'RequestType':'InstalledApplicationList'}}".into(),
        ),
        (
            Command::certificate_list("U7"),
            "{'CommandUUID':'U7','Command':{'RequestType':'CertificateList'}}".into(),
        ),
        (
            Command::device_configured("U8"),
            "{'CommandUUID':'U8','Command':{'RequestType':'DeviceConfigured'}}".into(),
        ),
        (
            Command::new("0001_Settings", "Settings").param(
                "Settings",
                Value::Array(vec![Value::Dictionary(Dictionary::from_iter([
                    ("Item".to_owned(), Value::String("DeviceName".into())),
                    ("DeviceName".to_owned(), Value::String("Caf\u{e9} \u{1F34E}".into())),
                    ("Count".to_owned(), Value::Integer((-3i64).into())),
                    ("Ratio".to_owned(), Value::Real(0.5)),
                ]))]),
            ),
            "{'CommandUUID':'0001_Settings','Command':{'RequestType':'Settings','Settings':[{'Item':'DeviceName','DeviceName':'Caf\\u00e9 \\U0001F34E','Count':-3,'Ratio':0.5}]}}".into(),
        ),
    ];
    for (cmd, expected) in cases {
        let body = cmd.encode().unwrap();
        python_reads(&body, &expected);
        assert_eq!(Command::decode(&body, &Limits::default()), Ok(cmd.clone()));
        let res = cmd.to_response().unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(res.header("content-type"), Some("application/xml"));
        assert_eq!(res.body, body);
    }
}

#[test]
fn command_decode_requires_uuid_and_request_type() {
    let limits = Limits::default();
    assert_eq!(
        Command::decode(
            b"<plist><dict><key>Command</key><dict/></dict></plist>",
            &limits
        ),
        Err(Error::MissingKey("CommandUUID"))
    );
    assert_eq!(
        Command::decode(
            b"<plist><dict><key>CommandUUID</key><string>u</string></dict></plist>",
            &limits
        ),
        Err(Error::MissingKey("Command"))
    );
    assert_eq!(
        Command::decode(
            b"<plist><dict><key>CommandUUID</key><string>u</string><key>Command</key><dict/></dict></plist>",
            &limits
        ),
        Err(Error::MissingKey("RequestType"))
    );
}

/// A deterministic test RNG (counter bytes); `random_uuid` only needs bytes.
struct Counter(u8);
impl rand_core::TryRng for Counter {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.0;
            self.0 = self.0.wrapping_add(0x11);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Counter {}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn random_uuid_is_a_v4_uuid() {
    let u = random_uuid(&mut Counter(0xFF));
    // Python's uuid module agrees it is a version-4 RFC 4122 UUID.
    let out = Process::new("python3")
        .args([
            "-c",
            "import uuid,sys; u=uuid.UUID(sys.argv[1]); print(u.version, u.variant==uuid.RFC_4122, str(u).upper()==sys.argv[1])",
            &u,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "4 True True");
    assert_ne!(u, random_uuid(&mut Counter(0)));
}

/// `Command::encode`, which writes from the command's fields, is byte for
/// byte the XML of `Command::to_value`: every typed builder, a generic
/// command whose parameters repeat `RequestType` (the command's own wins),
/// one without parameters, and a profile of every length around a base64
/// line; and a string with U+0000 is refused the same way.
#[test]
fn encode_is_the_xml_of_to_value() {
    let same = |c: &Command| {
        assert_eq!(
            c.encode(),
            mdm_enroll::wire::plist::encode_xml(&c.to_value()),
            "{c:?}"
        );
    };
    for c in [
        Command::device_information("U-1", &["UDID", "OSVersion"]),
        Command::security_info("U-2"),
        Command::profile_list("U-3").param("ManagedOnly", true),
        Command::remove_profile("U-4", "com.example.wifi"),
        Command::installed_application_list("U-5"),
        Command::certificate_list("U-6"),
        Command::device_configured("U-7"),
        Command::declarative_management("U-8", b"{\"a\":1}".to_vec()),
        Command::new("U-9", "Settings")
            .param("RequestType", "Other")
            .param(
                "Settings",
                Value::Array(vec![Value::Dictionary(Dictionary::new())]),
            ),
        Command::new("U-10", "Custom"),
        Command::new("U-11", "Custom").param("Bad", "a\0b"),
        Command::new("U-\0", "Custom"),
    ] {
        same(&c);
    }
    let profile: Vec<u8> = (0..300u32).map(|i| (i * 31 % 256) as u8).collect();
    for len in (0..=160).chain([300]) {
        same(&Command::install_profile("U-P", profile[..len].to_vec()));
    }
}
