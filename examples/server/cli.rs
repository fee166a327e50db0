//! Command-line flags (no CLI framework: the contract is small).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Usage text for `--help` and errors.
pub const USAGE: &str = "\
usage: server [--listen ADDR] [--data DIR] [--http] [--public-url URL]
              [--users-file PATH] [--admin-user NAME] [--admin-password-file PATH]
              [--device-ca PEM]... [--topic com.apple.mgmt.X]
              [--scep-static-challenge-file PATH] [--store sqlite://PATH|postgres://USER@HOST:PORT/DB]
              [--client-cert-header NAME] [--tenant ID]... [--tenants-file PATH]
              [--push-cert PEM --push-key PEM | --push-p12 FILE]
              [--apns-url URL] [--apns-ca PEM]...
              [--keep-results N] [--command-expiry DURATION] [--delivery-lease DURATION] [--ddm]
              [--identity-lifetime DURATION] [--renew-before DURATION]
              [--renewal-retry DURATION] [--renewal-timeout DURATION] [--rsa-permits N]
       server hash-password    (reads a password on stdin, prints its argon2id PHC string)

Secrets never go on the command line in production (ps and shell history show it):
  --users-file PATH             self-service users, one NAME:PASSWORD@DOMAIN or
                                NAME:$argon2id$…@DOMAIN per line (# comments); hashes from
                                `server hash-password`. Only argon2id hashes are kept in memory
  --admin-password-file PATH    the /admin password (first line); or MDM_ADMIN_PASSWORD
                                (default: generated and kept in <data>/admin-password)
  --admin-user NAME             the /admin username (default admin)
  --scep-static-challenge-file PATH
                                also accept this fixed SCEP challenge (first line; non-device
                                clients, interop); or MDM_SCEP_STATIC_CHALLENGE
  MDM_KEY_PASSPHRASE            encrypts the private keys in the data folder (PKCS#8, scrypt)
For tests and demos (warned about on stderr):
  --user NAME:PASSWORD@DOMAIN   a self-service user (repeatable; default: one demo user)
  --admin NAME:PASSWORD         basic-auth credentials of /admin
  --scep-static-challenge S     the fixed SCEP challenge

  --listen ADDR                 address to bind (default 127.0.0.1:8443)
  --data DIR                    folder for the CA and signer keys, TLS certificate and database
                                (default $XDG_DATA_HOME/mdm-enroll, else ~/.local/share/mdm-enroll;
                                never inside the checkout unless asked for)
  --http                        plain HTTP (behind a TLS-terminating proxy, or for tests)
  --public-url URL              base URL devices reach (default https://<listen> or http://<listen>)
  --device-ca PEM               extra trust anchor for device attribute signatures (repeatable)
  --topic TOPIC                 APNs push topic put in the MDM payload (default: the push
                                certificate's, else com.apple.mgmt.External.demo); with
                                --push-cert or --push-p12 it must be the certificate's topic
  --store sqlite://PATH         SQLite database (default sqlite://<data>/mdm.sqlite3)
  --store postgres://USER@HOST:PORT/DB
                                PostgreSQL database (feature postgres; password from the
                                URL or PGPASSWORD); replicas with the same --data and
                                --store serve the same devices
  --tenant ID                   tenant (customer) id served (default demo); repeatable: the
                                first is the default tenant (the single-tenant paths, keys in
                                --data), every tenant is also served under /t/ID/ (portal,
                                enroll, profile-service, scep, mdm, admin) with its own SCEP
                                CA, RA and profile signer in <data>/tenants/ID/
  --tenants-file PATH           more tenants, one per line: ID [users=PATH] [topic=TOPIC]
                                [push-cert=PEM push-key=PEM | push-p12=FILE
                                [push-p12-password-file=PATH]] (# comments; paths relative
                                to the file). --user, --users-file, --topic and the push
                                flags are the default tenant's
  --client-cert-header NAME     with --http behind a TLS proxy: the header carrying the client
                                certificate (RFC 9440 Client-Cert, or URL-escaped PEM); the proxy
                                must strip it from client requests. Off by default: devices sign
                                their messages (Mdm-Signature), which needs no proxy cooperation
  --push-cert PEM --push-key PEM
                                the MDM push certificate (from Apple's Push Certificates portal)
                                and its private key: the server wakes devices through APNs.
                                Without them pushes are only logged
  --push-p12 FILE               the push certificate and key as PKCS#12 (.p12, as Keychain Access
                                or openssl pkcs12 -export write it), instead of --push-cert and
                                --push-key; password in MDM_PUSH_P12_PASSWORD (empty if unset)
  --apns-url URL                APNs gateway (default https://api.push.apple.com)
  --apns-ca PEM                 extra trust anchor for --apns-url: a local stand-in or a proxy
                                (repeatable)
  --keep-results N              command results kept per device channel (default 1000; 0 keeps
                                none: a result is deleted when the device answers)
  --command-expiry DURATION     drop commands still queued after DURATION (e.g. 90s, 30m, 7d),
                                recorded as Expired (default: never)
  --delivery-lease DURATION     how long a command handed to one connection is not handed to
                                another (a device connecting to two replicas at once); after it
                                a device that lost the response gets the command again
                                (default 60s)
  --ddm                         declarative device management: the initial configuration adds
                                the DeclarativeManagement command and a demo declaration set
                                (an activation of a management.test configuration); the
                                activation completes when the device reports it applied
  --identity-lifetime DURATION  lifetime of device identity certificates (default 365d)
  --renew-before DURATION       renew a device's identity this long before it expires
                                (default 60d): its next Idle gets the enrollment profile
                                again with a fresh SCEP challenge, and a sweep pushes
                                devices that stay silent. DURATION: an integer with
                                s, m, h or d (90s, 15m, 12h, 30d)
  --renewal-retry DURATION      retry a renewal the device answered Error or NotNow after
                                this (default 1h), with a fresh challenge and a push
  --renewal-timeout DURATION    retry a renewal not completed within this (default 1d)
  --rsa-permits N               unauthenticated RSA requests (SCEP, /enroll) handled at once
                                (default: one fewer than the cores, at least 1, so a flood
                                leaves a core for check-ins and /healthz; a replica that
                                only serves SCEP may use every core). Below the cores, one
                                more runs while nobody waits and few connections are open
";

/// The most `--rsa-permits` accepts.
pub const MAX_RSA_PERMITS: usize = 1024;

/// Apple's production APNs gateway, the default `--apns-url`.
pub const DEFAULT_APNS_URL: &str = "https://api.push.apple.com";

/// The push topic used without `--topic` and without a push certificate.
pub const DEMO_TOPIC: &str = "com.apple.mgmt.External.demo";

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
    /// `--topic`, if given.
    pub topic: Option<String>,
    pub scep_static_challenge: Option<String>,
    pub store: Option<PathBuf>,
    /// `--store postgres://…`: the PostgreSQL URL instead of SQLite.
    pub postgres: Option<String>,
    /// The default tenant: the first `--tenant` (default `demo`).
    pub tenant: String,
    /// The other `--tenant` values, in order.
    pub extra_tenants: Vec<String>,
    /// `--tenants-file`.
    pub tenants_file: Option<PathBuf>,
    pub client_cert_header: Option<String>,
    pub users_file: Option<PathBuf>,
    pub admin_user: Option<String>,
    pub admin_password_file: Option<PathBuf>,
    pub scep_static_challenge_file: Option<PathBuf>,
    /// Flags that put a secret on the command line (warned about).
    pub secret_flags: Vec<&'static str>,
    /// `--push-cert` and `--push-key`.
    pub push_cert: Option<(PathBuf, PathBuf)>,
    /// `--push-p12`: the push identity as PKCS#12 (password in `MDM_PUSH_P12_PASSWORD`).
    pub push_p12: Option<PathBuf>,
    pub apns_url: String,
    pub apns_cas: Vec<PathBuf>,
    /// `--keep-results`.
    pub keep_results: Option<usize>,
    /// `--command-expiry`.
    pub command_expiry: Option<std::time::Duration>,
    /// `--delivery-lease`.
    pub delivery_lease: Option<std::time::Duration>,
    /// `--ddm`: serve declarative device management.
    pub ddm: bool,
    /// `--identity-lifetime`.
    pub identity_lifetime: std::time::Duration,
    /// `--renew-before`.
    pub renew_before: std::time::Duration,
    /// `--renewal-retry`.
    pub renewal_retry: std::time::Duration,
    /// `--renewal-timeout`.
    pub renewal_timeout: std::time::Duration,
    /// `--rsa-permits`, if given.
    pub rsa_permits: Option<usize>,
}

/// A `DURATION` flag value: an integer with `s`, `m`, `h` or `d`, above zero.
pub fn parse_duration(flag: &str, v: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{flag} {v:?}: expected an integer with s, m, h or d (e.g. 30d)");
    let split = v.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = (
        v.get(..split).ok_or_else(bad)?,
        v.get(split..).ok_or_else(bad)?,
    );
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit) {
        Some(secs) if secs > 0 => Ok(std::time::Duration::from_secs(secs)),
        _ => Err(bad()),
    }
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
            topic: None,
            scep_static_challenge: None,
            store: None,
            postgres: None,
            tenant: "demo".into(),
            extra_tenants: Vec::new(),
            tenants_file: None,
            client_cert_header: None,
            users_file: None,
            admin_user: None,
            admin_password_file: None,
            scep_static_challenge_file: None,
            secret_flags: Vec::new(),
            push_cert: None,
            push_p12: None,
            apns_url: DEFAULT_APNS_URL.into(),
            apns_cas: Vec::new(),
            keep_results: None,
            command_expiry: None,
            delivery_lease: None,
            ddm: false,
            identity_lifetime: std::time::Duration::from_secs(365 * 86_400),
            renew_before: std::time::Duration::from_secs(60 * 86_400),
            renewal_retry: std::time::Duration::from_secs(3600),
            renewal_timeout: std::time::Duration::from_secs(86_400),
            rsa_permits: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<Config>),
    Help,
    /// `hash-password`: read a password on stdin, print its PHC string.
    HashPassword,
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

/// Errors never repeat the value: it holds a password.
fn parse_user(s: &str) -> Result<UserSpec, String> {
    let (name, rest) = s
        .split_once(':')
        .ok_or_else(|| "--user: expected NAME:PASSWORD@DOMAIN".to_owned())?;
    let (password, domain) = rest
        .rsplit_once('@')
        .ok_or_else(|| format!("--user {name}:…: expected NAME:PASSWORD@DOMAIN"))?;
    if name.is_empty() || password.is_empty() || domain.is_empty() {
        return Err("--user: name, password and domain must not be empty".to_owned());
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
    let (mut push_cert, mut push_key) = (None, None);
    let mut tenant_given = false;
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("hash-password") {
        return match args.nth(1) {
            None => Ok(Command::HashPassword),
            Some(_) => {
                Err("hash-password takes no arguments (the password is read on stdin)".into())
            }
        };
    }
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
            "--ddm" => config.ddm = true,
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
            "--user" => {
                config.users.push(parse_user(&value("--user")?)?);
                config.secret_flags.push("--user");
            }
            "--users-file" => config.users_file = Some(PathBuf::from(value("--users-file")?)),
            "--admin-user" => {
                let v = value("--admin-user")?;
                if v.is_empty() || v.contains(':') {
                    return Err("--admin-user: a non-empty name without ':'".into());
                }
                config.admin_user = Some(v);
            }
            "--admin-password-file" => {
                config.admin_password_file = Some(PathBuf::from(value("--admin-password-file")?));
            }
            "--scep-static-challenge-file" => {
                config.scep_static_challenge_file =
                    Some(PathBuf::from(value("--scep-static-challenge-file")?));
            }
            "--admin" => {
                config.secret_flags.push("--admin");
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
                config.topic = Some(v);
            }
            "--scep-static-challenge" => {
                let v = value("--scep-static-challenge")?;
                if v.is_empty() {
                    return Err("--scep-static-challenge must not be empty".into());
                }
                config.scep_static_challenge = Some(v);
                config.secret_flags.push("--scep-static-challenge");
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
            "--identity-lifetime" => {
                config.identity_lifetime =
                    parse_duration("--identity-lifetime", &value("--identity-lifetime")?)?;
            }
            "--renew-before" => {
                config.renew_before = parse_duration("--renew-before", &value("--renew-before")?)?;
            }
            "--renewal-retry" => {
                config.renewal_retry =
                    parse_duration("--renewal-retry", &value("--renewal-retry")?)?;
            }
            "--renewal-timeout" => {
                config.renewal_timeout =
                    parse_duration("--renewal-timeout", &value("--renewal-timeout")?)?;
            }
            "--tenant" => {
                let v = value("--tenant")?;
                mdm_enroll::activation::TenantId::new(v.clone())
                    .map_err(|_| format!("--tenant {v:?}: 1-64 of [A-Za-z0-9._-]"))?;
                if !tenant_given {
                    tenant_given = true;
                    config.tenant = v;
                } else if config.tenant == v || config.extra_tenants.contains(&v) {
                    return Err(format!("--tenant {v} given twice"));
                } else {
                    config.extra_tenants.push(v);
                }
            }
            "--tenants-file" => config.tenants_file = Some(PathBuf::from(value("--tenants-file")?)),
            "--client-cert-header" => {
                let v = value("--client-cert-header")?;
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(format!(
                        "--client-cert-header {v:?}: expected a header name"
                    ));
                }
                config.client_cert_header = Some(v);
            }
            "--push-cert" => push_cert = Some(PathBuf::from(value("--push-cert")?)),
            "--push-key" => push_key = Some(PathBuf::from(value("--push-key")?)),
            "--push-p12" => config.push_p12 = Some(PathBuf::from(value("--push-p12")?)),
            "--apns-url" => {
                let v = value("--apns-url")?;
                let host = v.strip_prefix("https://").unwrap_or_default();
                if host.is_empty() || host.contains(['/', '?', '#']) {
                    return Err(format!("--apns-url {v:?}: expected https://HOST[:PORT]"));
                }
                config.apns_url = v;
            }
            "--apns-ca" => config.apns_cas.push(PathBuf::from(value("--apns-ca")?)),
            "--rsa-permits" => {
                let v = value("--rsa-permits")?;
                config.rsa_permits = Some(
                    v.parse()
                        .ok()
                        .filter(|n| (1..=MAX_RSA_PERMITS).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "--rsa-permits {v:?}: expected a count from 1 to {MAX_RSA_PERMITS}"
                            )
                        })?,
                );
            }
            "--keep-results" => {
                let v = value("--keep-results")?;
                config.keep_results = Some(
                    v.parse()
                        .map_err(|_| format!("--keep-results {v:?}: expected a count"))?,
                );
            }
            "--command-expiry" => {
                let v = value("--command-expiry")?;
                config.command_expiry = Some(parse_duration("--command-expiry", &v)?);
            }
            "--delivery-lease" => {
                let v = value("--delivery-lease")?;
                config.delivery_lease = Some(parse_duration("--delivery-lease", &v)?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if config.admin.is_some()
        && (config.admin_user.is_some() || config.admin_password_file.is_some())
    {
        return Err("--admin conflicts with --admin-user/--admin-password-file".into());
    }
    if config.scep_static_challenge.is_some() && config.scep_static_challenge_file.is_some() {
        return Err("--scep-static-challenge conflicts with --scep-static-challenge-file".into());
    }
    config.push_cert = match (push_cert, push_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err("--push-cert needs --push-key (its private key)".into()),
        (None, Some(_)) => return Err("--push-key needs --push-cert".into()),
    };
    if config.push_cert.is_some() && config.push_p12.is_some() {
        return Err(
            "--push-p12 and --push-cert/--push-key both name a push identity: give one".into(),
        );
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
            Command::HashPassword => Err("hash-password".into()),
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
        assert_eq!(c.topic, None);
        assert_eq!(c.push_cert, None);
        assert_eq!(c.apns_url, "https://api.push.apple.com");
        assert!(c.apns_cas.is_empty());
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
            "--push-cert",
            "push.pem",
            "--push-key=push.key",
            "--apns-url",
            "https://127.0.0.1:9443",
            "--apns-ca",
            "standin.pem",
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
        assert_eq!(c.topic.as_deref(), Some("com.apple.mgmt.X"));
        assert_eq!(
            c.push_cert,
            Some((PathBuf::from("push.pem"), PathBuf::from("push.key")))
        );
        assert_eq!(c.apns_url, "https://127.0.0.1:9443");
        assert_eq!(c.apns_cas, [PathBuf::from("standin.pem")]);
        let p12 = run(&["--push-p12", "push.p12"]).unwrap();
        assert_eq!(p12.push_p12, Some(PathBuf::from("push.p12")));
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
    fn tenant_repeats_first_is_the_default() {
        let c = run(&[
            "--tenant",
            "acme",
            "--tenant=globex",
            "--tenants-file",
            "t.txt",
        ])
        .unwrap();
        assert_eq!(c.tenant, "acme");
        assert_eq!(c.extra_tenants, ["globex"]);
        assert_eq!(c.tenants_file, Some(PathBuf::from("t.txt")));
        let one = run(&[]).unwrap();
        assert_eq!((one.tenant.as_str(), one.extra_tenants.len()), ("demo", 0));
        let twice = run(&["--tenant", "a", "--tenant", "b", "--tenant", "a"]).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
    }

    #[test]
    fn queue_flags_parse() {
        let c = run(&[
            "--keep-results",
            "0",
            "--command-expiry",
            "7d",
            "--delivery-lease=90s",
        ])
        .unwrap();
        assert_eq!(c.keep_results, Some(0));
        assert_eq!(
            c.command_expiry,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(c.delivery_lease, Some(std::time::Duration::from_secs(90)));
        let c = run(&["--command-expiry", "30m"]).unwrap();
        assert_eq!(c.command_expiry, Some(std::time::Duration::from_secs(1800)));
        assert_eq!(run(&[]).unwrap().keep_results, None);
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
            &["--push-cert", "push.pem"],
            &["--push-key", "push.key"],
            &["--push-cert", "c", "--push-key", "k", "--push-p12", "p"],
            &["--apns-url", "http://api.push.apple.com"],
            &["--apns-url", "https://"],
            &["--apns-url", "https://host/3/device"],
            &["--keep-results", "-1"],
            &["--command-expiry", "0s"],
            &["--command-expiry", "5 minutes"],
            &["--delivery-lease", "1w"],
        ] {
            assert!(run(args).is_err(), "{args:?} accepted");
        }
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
    }

    #[test]
    fn secret_flags_are_noted_and_errors_hide_passwords() {
        let c = run(&["--user", "ann:pw@x", "--scep-static-challenge", "s"]).unwrap();
        assert_eq!(c.secret_flags, ["--user", "--scep-static-challenge"]);
        let c = run(&[
            "--users-file",
            "/etc/users",
            "--admin-user",
            "root",
            "--admin-password-file",
            "/etc/admin",
            "--scep-static-challenge-file",
            "/etc/challenge",
        ])
        .unwrap();
        assert!(c.secret_flags.is_empty());
        assert_eq!(c.users_file, Some(PathBuf::from("/etc/users")));
        assert_eq!(c.admin_user.as_deref(), Some("root"));
        for args in [
            &["--user", "ann:hunter2-no-domain"][..],
            &["--user", "hunter2"],
            &["--user", "ann:hunter2@"],
        ] {
            let e = run(args).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(run(&["--admin", "a:b", "--admin-password-file", "/x"]).is_err());
        assert_eq!(
            parse(["hash-password".to_string()]),
            Ok(Command::HashPassword)
        );
        assert!(parse(["hash-password".to_string(), "pw".to_string()]).is_err());
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
            Command::Help | Command::HashPassword => Err("not run".to_owned()),
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

    #[test]
    fn durations_are_an_integer_with_a_unit() {
        use std::time::Duration;
        let run = |args: &[&str]| match parse_with_env(
            args.iter().map(|s| s.to_string()),
            None,
            Some(std::ffi::OsStr::new("/home/x")),
        ) {
            Ok(Command::Run(c)) => Ok((c.identity_lifetime, c.renew_before)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let day = 86_400;
        assert_eq!(
            run(&[]).unwrap(),
            (
                Duration::from_secs(365 * day),
                Duration::from_secs(60 * day)
            )
        );
        assert_eq!(
            run(&["--identity-lifetime", "90s", "--renew-before=2m"]).unwrap(),
            (Duration::from_secs(90), Duration::from_secs(120))
        );
        assert_eq!(
            run(&["--identity-lifetime", "3h", "--renew-before", "7d"]).unwrap(),
            (Duration::from_secs(3 * 3600), Duration::from_secs(7 * day))
        );
        for bad in [
            "",
            "d",
            "10",
            "10w",
            "-5d",
            "0d",
            "1.5h",
            " 5d",
            "99999999999999999999d",
        ] {
            let err = run(&["--renew-before", bad]).unwrap_err();
            assert!(err.contains("--renew-before"), "{bad}: {err}");
        }
    }

    #[test]
    fn rsa_permits_is_a_bounded_count() {
        let run = |args: &[&str]| match parse_with_env(
            args.iter().map(|s| s.to_string()),
            None,
            Some(std::ffi::OsStr::new("/home/x")),
        ) {
            Ok(Command::Run(c)) => Ok(c.rsa_permits),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(run(&[]).unwrap(), None);
        assert_eq!(run(&["--rsa-permits", "2"]).unwrap(), Some(2));
        assert_eq!(run(&["--rsa-permits=1024"]).unwrap(), Some(1024));
        for bad in ["0", "-1", "1025", "two", ""] {
            let err = run(&["--rsa-permits", bad]).unwrap_err();
            assert!(err.contains("--rsa-permits"), "{bad}: {err}");
        }
    }
}
