//! Several tenants (customers) on one server: `--tenant` (repeatable) and
//! `--tenants-file`.
//!
//! The first tenant is the *default*: it keeps the single-tenant paths
//! (`/`, `/self-service/activate`, `/enroll`, `/scep`, `/mdm/…`, `/admin`)
//! and its keys in `--data`. Every tenant, the default included, is also
//! served under `/t/<id>/` (portal `/t/<id>/`, self-service `/t/<id>/enroll`,
//! Profile Service `/t/<id>/profile-service`, SCEP `/t/<id>/scep`, MDM
//! `/t/<id>/mdm`, admin `/t/<id>/admin` and `/t/<id>/admin/api/…`). Each
//! other tenant has its own SCEP CA, RA and profile signer under
//! `<data>/tenants/<id>/`, its own push topic and push certificate, and its
//! own users; the store, the TLS certificate and the admin credentials are
//! shared.
//!
//! A tenants file has one tenant per line: its id, then `key=value` fields
//! (`#` starts a comment; relative paths are relative to the file):
//!
//! ```text
//! # id     fields
//! acme     users=acme-users.txt topic=com.apple.mgmt.External.acme
//! globex   users=globex-users.txt push-p12=globex.p12 push-p12-password-file=globex.pass
//! initech  push-cert=initech-push.pem push-key=initech-push.key.pem
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `users=PATH` | the tenant's users file (`--users-file` format); without it a demo user whose password is kept in the tenant's data folder |
//! | `topic=TOPIC` | the push topic without a push certificate (default `com.apple.mgmt.External.<id>`) |
//! | `push-cert=PATH`, `push-key=PATH` | the tenant's push certificate and key (PEM or DER) |
//! | `push-p12=PATH` | the same as PKCS#12 |
//! | `push-p12-password-file=PATH` | the PKCS#12 password (first line; default: empty) |

use std::path::{Path, PathBuf};

use mdm_enroll::activation::TenantId;

/// The path prefix of the per-tenant routes.
pub const PREFIX: &str = "/t";

/// One tenant as `--tenant` or a tenants-file line describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    pub id: TenantId,
    /// `users=`: the tenant's users file.
    pub users_file: Option<PathBuf>,
    /// `topic=`: the push topic without a push certificate.
    pub topic: Option<String>,
    /// `push-cert=` and `push-key=`.
    pub push_cert: Option<(PathBuf, PathBuf)>,
    /// `push-p12=`.
    pub push_p12: Option<PathBuf>,
    /// `push-p12-password-file=`.
    pub push_p12_password_file: Option<PathBuf>,
}

impl TenantSpec {
    /// A tenant with nothing but its id.
    pub fn new(id: TenantId) -> Self {
        Self {
            id,
            users_file: None,
            topic: None,
            push_cert: None,
            push_p12: None,
            push_p12_password_file: None,
        }
    }
}

/// Parse a tenants file; relative paths are taken relative to `base`.
/// Errors name the line and never repeat a value (a path may be private).
pub fn parse_tenants_file(text: &str, base: &Path) -> Result<Vec<TenantSpec>, String> {
    let mut specs: Vec<TenantSpec> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = |why: &str| format!("tenants file line {}: {why}", i + 1);
        let mut words = line.split_whitespace();
        let id = words.next().unwrap_or_default();
        let id = TenantId::new(id).map_err(|_| at("the tenant id is 1-64 of [A-Za-z0-9._-]"))?;
        let mut spec = TenantSpec::new(id);
        let (mut cert, mut key) = (None, None);
        for field in words {
            let (name, value) = field
                .split_once('=')
                .filter(|(_, v)| !v.is_empty())
                .ok_or_else(|| at("expected key=value after the id"))?;
            let path = || base.join(value);
            let slot = match name {
                "users" => spec.users_file.replace(path()).is_some(),
                "topic" => spec.topic.replace(value.to_owned()).is_some(),
                "push-cert" => cert.replace(path()).is_some(),
                "push-key" => key.replace(path()).is_some(),
                "push-p12" => spec.push_p12.replace(path()).is_some(),
                "push-p12-password-file" => spec.push_p12_password_file.replace(path()).is_some(),
                other => {
                    return Err(at(&format!(
                        "unknown field {other:?} (users, topic, push-cert, push-key, push-p12, \
                         push-p12-password-file)"
                    )));
                }
            };
            if slot {
                return Err(at(&format!("{name} given twice")));
            }
        }
        spec.push_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(at("push-cert and push-key go together")),
        };
        if spec.push_cert.is_some() && spec.push_p12.is_some() {
            return Err(at("push-p12 or push-cert/push-key, not both"));
        }
        if specs.iter().any(|s| s.id == spec.id) {
            return Err(at(&format!("tenant {} listed twice", spec.id)));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// The folder of `tenant`'s keys: `data` for the default tenant, else
/// `data/tenants/<id>`.
pub fn data_dir(data: &Path, tenant: &TenantId, default: &TenantId) -> PathBuf {
    if tenant == default {
        data.to_owned()
    } else {
        data.join("tenants").join(tenant.as_str())
    }
}

/// The tenant a request path names under [`PREFIX`] (`/t/<id>/…`) and the
/// rest of the path after it (starting with `/`), or `None` for a path
/// outside it (the default tenant's single-tenant paths).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    match rest.find('/') {
        Some(at) => Some((rest.get(..at)?, rest.get(at..)?)),
        None => Some((rest, "/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_file_fields_paths_and_errors() {
        let base = Path::new("/etc/mdm");
        let specs = parse_tenants_file(
            "# comment\n\nacme users=acme.txt topic=com.apple.mgmt.External.a # trailing\n\
             globex push-p12=/abs/g.p12 push-p12-password-file=g.pass\n\
             initech push-cert=c.pem push-key=k.pem\n",
            base,
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].id.as_str(), "acme");
        assert_eq!(
            specs[0].users_file.as_deref(),
            Some(base.join("acme.txt").as_path())
        );
        assert_eq!(specs[0].topic.as_deref(), Some("com.apple.mgmt.External.a"));
        assert_eq!(specs[1].push_p12.as_deref(), Some(Path::new("/abs/g.p12")));
        assert_eq!(
            specs[1].push_p12_password_file.as_deref(),
            Some(base.join("g.pass").as_path())
        );
        assert_eq!(
            specs[2].push_cert,
            Some((base.join("c.pem"), base.join("k.pem")))
        );
        for (text, why) in [
            ("bad/id users=x", "tenant id"),
            ("a users", "key=value"),
            ("a users=", "key=value"),
            ("a colour=red", "unknown field"),
            ("a topic=x topic=y", "given twice"),
            ("a push-cert=c.pem", "go together"),
            ("a push-cert=c push-key=k push-p12=p", "not both"),
            ("a\nb\na", "listed twice"),
        ] {
            let e = parse_tenants_file(text, base).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(e.contains("line "), "{e}");
        }
    }

    #[test]
    fn paths_under_the_prefix_name_their_tenant() {
        assert_eq!(split_path("/t/acme/scep"), Some(("acme", "/scep")));
        assert_eq!(split_path("/t/acme/"), Some(("acme", "/")));
        assert_eq!(split_path("/t/acme"), Some(("acme", "/")));
        assert_eq!(
            split_path("/t/acme/admin/api/devices"),
            Some(("acme", "/admin/api/devices"))
        );
        assert_eq!(split_path("/scep"), None);
        assert_eq!(split_path("/tx/acme"), None);
        let (d, a) = (TenantId::new("d").unwrap(), TenantId::new("a").unwrap());
        assert_eq!(data_dir(Path::new("/data"), &d, &d), Path::new("/data"));
        assert_eq!(
            data_dir(Path::new("/data"), &a, &d),
            Path::new("/data/tenants/a")
        );
    }
}
