//! Command-line flags (no CLI framework: the contract is small).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Usage text for `--help` and errors.
pub const USAGE: &str = "\
usage: server [--listen ADDR] [--data DIR] [--http] [--public-url URL]
              [--user NAME:PASSWORD@DOMAIN]... [--admin NAME:PASSWORD]
              [--device-ca PEM]... [--topic com.apple.mgmt.X]
              [--scep-static-challenge SECRET] [--store sqlite://PATH|postgres://USER@HOST:PORT/DB]
              [--client-cert-header NAME] [--tenant ID]

  --listen ADDR                 address to bind (default 127.0.0.1:8443)
  --data DIR                    folder for the CA and signer keys, TLS certificate and database
                                (default $XDG_DATA_HOME/mdm-enroll, else ~/.local/share/mdm-enroll;
                                never inside the checkout unless asked for)
  --http                        plain HTTP (behind a TLS-terminating proxy, or for tests)
  --public-url URL              base URL devices reach (default https://<listen> or http://<listen>)
  --user NAME:PASSWORD@DOMAIN   a self-service user (repeatable; default: one demo user)
  --admin NAME:PASSWORD         basic-auth credentials of /admin (default: admin + printed password)
  --device-ca PEM               extra trust anchor for device attribute signatures (repeatable)
  --topic TOPIC                 APNs push topic put in the MDM payload (default com.apple.mgmt.External.demo)
  --scep-static-challenge S     also accept this fixed SCEP challenge (non-device clients, interop)
  --store sqlite://PATH         SQLite database (default sqlite://<data>/mdm.sqlite3)
  --store postgres://USER@HOST:PORT/DB
                                PostgreSQL database (feature postgres; password from the
                                URL or PGPASSWORD); replicas with the same --data and
                                --store serve the same devices
  --tenant ID                   tenant (customer) id served (default demo)
  --client-cert-header NAME     with --http behind a TLS proxy: the header carrying the client
                                certificate (RFC 9440 Client-Cert, or URL-escaped PEM); the proxy
                                must strip it from client requests. Off by default: devices sign
                                their messages (Mdm-Signature), which needs no proxy cooperation
";

/// A self-service user from `--user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub password: String,
    pub domain: String,
}

/// The parsed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub http: bool,
    pub public_url: Option<String>,
    pub users: Vec<UserSpec>,
    pub admin: Option<(String, String)>,
    pub device_cas: Vec<PathBuf>,
    pub topic: String,
    pub scep_static_challenge: Option<String>,
    pub store: Option<PathBuf>,
    /// `--store postgres://…`: the PostgreSQL URL instead of SQLite.
    pub postgres: Option<String>,
    pub tenant: String,
    pub client_cert_header: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data: PathBuf::new(),
            http: false,
            public_url: None,
            users: Vec::new(),
            admin: None,
            device_cas: Vec::new(),
            topic: "com.apple.mgmt.External.demo".into(),
            scep_static_challenge: None,
            store: None,
            postgres: None,
            tenant: "demo".into(),
            client_cert_header: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<Config>),
    Help,
}

impl Config {
    /// The base URL devices and browsers reach, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!(
                "{}://{}",
                if self.http { "http" } else { "https" },
                self.listen
            ),
        }
    }

    /// The SQLite database path.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .clone()
            .unwrap_or_else(|| self.data.join("mdm.sqlite3"))
    }
}

fn parse_user(s: &str) -> Result<UserSpec, String> {
    let (name, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("--user {s:?}: expected NAME:PASSWORD@DOMAIN"))?;
    let (password, domain) = rest
        .rsplit_once('@')
        .ok_or_else(|| format!("--user {s:?}: expected NAME:PASSWORD@DOMAIN"))?;
    if name.is_empty() || password.is_empty() || domain.is_empty() {
        return Err(format!(
            "--user {s:?}: name, password and domain must not be empty"
        ));
    }
    Ok(UserSpec {
        name: name.into(),
        password: password.into(),
        domain: domain.into(),
    })
}

/// The per-user data folder used without `--data`:
/// `$XDG_DATA_HOME/mdm-enroll` (an absolute `XDG_DATA_HOME`), else
/// `$HOME/.local/share/mdm-enroll`; an error asking for `--data` if neither
/// is known. It holds private keys, so it is never the working directory.
pub fn default_data_dir(
    xdg_data_home: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, String> {
    let absolute = |v: Option<&std::ffi::OsStr>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute(xdg_data_home) {
        return Ok(xdg.join("mdm-enroll"));
    }
    if let Some(home) = absolute(home) {
        return Ok(home.join(".local/share/mdm-enroll"));
    }
    Err(
        "no per-user data folder (neither XDG_DATA_HOME nor HOME is set to an absolute path): \
         pass --data DIR for the CA and signer keys"
            .into(),
    )
}

/// Parse the arguments after the program name; without `--data`, the data
/// folder comes from `XDG_DATA_HOME` / `HOME` ([`default_data_dir`]).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    parse_with_env(
        args,
        std::env::var_os("XDG_DATA_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

/// [`parse`] with the environment given.
pub fn parse_with_env<I: IntoIterator<Item = String>>(
    args: I,
    xdg_data_home: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Result<Command, String> {
    let mut config = Config::default();
    let mut data = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--http" => config.http = true,
            "--listen" => {
                let v = value("--listen")?;
                config.listen = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?}: expected IP:PORT"))?;
            }
            "--data" => {
                let v = value("--data")?;
                if v.is_empty() {
                    return Err("--data must not be empty".into());
                }
                data = Some(PathBuf::from(v));
            }
            "--public-url" => {
                let v = value("--public-url")?;
                if !(v.starts_with("https://") || v.starts_with("http://")) {
                    return Err(format!("--public-url {v:?}: expected an http(s) URL"));
                }
                config.public_url = Some(v);
            }
            "--user" => config.users.push(parse_user(&value("--user")?)?),
            "--admin" => {
                let v = value("--admin")?;
                let (n, p) = v
                    .split_once(':')
                    .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                    .ok_or_else(|| "--admin: expected NAME:PASSWORD".to_owned())?;
                config.admin = Some((n.into(), p.into()));
            }
            "--device-ca" => config.device_cas.push(PathBuf::from(value("--device-ca")?)),
            "--topic" => {
                let v = value("--topic")?;
                if !v.starts_with("com.apple.mgmt.") {
                    return Err(format!("--topic {v:?}: expected com.apple.mgmt.…"));
                }
                config.topic = v;
            }
            "--scep-static-challenge" => {
                let v = value("--scep-static-challenge")?;
                if v.is_empty() {
                    return Err("--scep-static-challenge must not be empty".into());
                }
                config.scep_static_challenge = Some(v);
            }
            "--store" => {
                let v = value("--store")?;
                if ["postgres://", "postgresql://"]
                    .iter()
                    .any(|p| v.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
                {
                    if !cfg!(feature = "postgres") {
                        return Err(format!(
                            "--store {v:?}: this build has no PostgreSQL store (build with --features postgres)"
                        ));
                    }
                    config.postgres = Some(v);
                } else {
                    let path = v
                        .strip_prefix("sqlite://")
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            format!("--store {v:?}: expected sqlite://PATH or postgres://USER@HOST:PORT/DB")
                        })?;
                    config.store = Some(PathBuf::from(path));
                }
            }
            "--tenant" => {
                let v = value("--tenant")?;
                mdm_enroll::activation::TenantId::new(v.clone())
                    .map_err(|_| format!("--tenant {v:?}: 1-64 of [A-Za-z0-9._-]"))?;
                config.tenant = v;
            }
            "--client-cert-header" => {
                let v = value("--client-cert-header")?;
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(format!(
                        "--client-cert-header {v:?}: expected a header name"
                    ));
                }
                config.client_cert_header = Some(v);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if config.client_cert_header.is_some() && !config.http {
        return Err("--client-cert-header needs --http (a TLS proxy in front)".into());
    }
    config.data = match data {
        Some(d) => d,
        None => default_data_dir(xdg_data_home, home)?,
    };
    Ok(Command::Run(Box::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        let home = std::ffi::OsStr::new("/home/ann");
        match parse_with_env(args.iter().map(|s| s.to_string()), None, Some(home))? {
            Command::Run(c) => Ok(*c),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = run(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.data, PathBuf::from("/home/ann/.local/share/mdm-enroll"));
        assert!(!c.http);
        assert_eq!(c.base_url(), "https://127.0.0.1:8443");
        assert_eq!(
            c.store_path(),
            PathBuf::from("/home/ann/.local/share/mdm-enroll/mdm.sqlite3")
        );
        assert!(c.scep_static_challenge.is_none());
        assert!(c.client_cert_header.is_none());
    }

    #[test]
    fn every_flag_parses() {
        let c = run(&[
            "--listen",
            "127.0.0.1:0",
            "--data=/tmp/x",
            "--http",
            "--public-url",
            "https://mdm.example.com/",
            "--user",
            "ann:p@ss:w@corp.example",
            "--user",
            "bob:pw@example.org",
            "--admin",
            "root:secret",
            "--device-ca",
            "a.pem",
            "--device-ca",
            "b.pem",
            "--topic",
            "com.apple.mgmt.X",
            "--scep-static-challenge",
            "s3cret",
            "--store",
            "sqlite:///tmp/db.sqlite3",
            "--client-cert-header",
            "X-Client-Cert",
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert!(c.http);
        assert_eq!(c.base_url(), "https://mdm.example.com");
        assert_eq!(c.users[0].password, "p@ss:w");
        assert_eq!(c.users[0].domain, "corp.example");
        assert_eq!(c.users[1].name, "bob");
        assert_eq!(c.admin, Some(("root".into(), "secret".into())));
        assert_eq!(c.device_cas.len(), 2);
        assert_eq!(c.topic, "com.apple.mgmt.X");
        assert_eq!(c.scep_static_challenge.as_deref(), Some("s3cret"));
        assert_eq!(c.store_path(), PathBuf::from("/tmp/db.sqlite3"));
        assert_eq!(c.client_cert_header.as_deref(), Some("X-Client-Cert"));
    }

    #[test]
    fn store_takes_a_postgres_url_when_built_with_postgres() {
        let url = "postgres://mdm@127.0.0.1:5432/mdm";
        let parsed = run(&["--store", url]);
        if cfg!(feature = "postgres") {
            assert_eq!(parsed.unwrap().postgres.as_deref(), Some(url));
        } else {
            assert!(parsed.unwrap_err().contains("--features postgres"));
        }
    }

    #[test]
    fn bad_flags_are_errors() {
        for args in [
            &["--listen", "nope"][..],
            &["--user", "nodomain:pw"],
            &["--admin", "nopassword"],
            &["--store", "postgres://"],
            &["--store", "mysql://u@h/db"],
            &["--topic", "com.example"],
            &["--bogus"],
            &["--data"],
            &["--tenant", "has space"],
            &["--client-cert-header", "Client-Cert"],
            &["--http", "--client-cert-header", "Bad Header"],
        ] {
            assert!(run(args).is_err(), "{args:?} accepted");
        }
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
    }

    #[test]
    fn the_data_folder_is_per_user_unless_given() {
        use std::ffi::OsStr;
        let parse_in = |args: &[&str], xdg: Option<&str>, home: Option<&str>| match parse_with_env(
            args.iter().map(|s| s.to_string()),
            xdg.map(OsStr::new),
            home.map(OsStr::new),
        )? {
            Command::Run(c) => Ok(c.data),
            Command::Help => Err("help".to_owned()),
        };
        assert_eq!(
            parse_in(&[], Some("/x/data"), Some("/home/ann")),
            Ok(PathBuf::from("/x/data/mdm-enroll"))
        );
        // A relative XDG_DATA_HOME is ignored, as the XDG spec says.
        assert_eq!(
            parse_in(&[], Some("rel"), Some("/home/ann")),
            Ok(PathBuf::from("/home/ann/.local/share/mdm-enroll"))
        );
        let refused = parse_in(&[], None, None).unwrap_err();
        assert!(refused.contains("--data"), "{refused}");
        assert_eq!(parse_in(&[], Some(""), Some("")), Err(refused));
        // --data wins, and needs no environment.
        assert_eq!(
            parse_in(&["--data", "./here"], None, None),
            Ok(PathBuf::from("./here"))
        );
        assert!(parse_in(&["--data", ""], None, None).is_err());
    }
}
