//! Secrets the server is given (from a file or the environment, the
//! production form; the command-line flags stay for tests and demos) and the
//! demo directory, which holds argon2id password hashes only.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use mdm_enroll::activation::{LoginAttempt, TenantId};
use mdm_enroll::store::{Directory, DirectoryError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Environment variable holding the admin password.
pub const ADMIN_PASSWORD_ENV: &str = "MDM_ADMIN_PASSWORD";
/// Environment variable holding the static SCEP challenge.
pub const SCEP_CHALLENGE_ENV: &str = "MDM_SCEP_STATIC_CHALLENGE";
/// Environment variable holding the passphrase of the keys at rest.
pub const KEY_PASSPHRASE_ENV: &str = "MDM_KEY_PASSPHRASE";

/// The secret in `path` (its first line, without the line break); the error
/// names the file, never its content.
pub fn read_secret_file(path: &Path, what: &str) -> Result<String, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{what} file {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().to_owned();
    if secret.is_empty() {
        return Err(format!("{what} file {} is empty", path.display()).into());
    }
    Ok(secret)
}

/// A non-empty environment variable.
pub fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A password given in plain text or as an argon2 PHC string.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Plain(String),
    Hash(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain(…)",
            Self::Hash(_) => "Hash(…)",
        })
    }
}

impl Password {
    /// `$argon2…$` strings are hashes, anything else a password.
    pub fn parse(s: &str) -> Password {
        if s.starts_with("$argon2") {
            Password::Hash(s.to_owned())
        } else {
            Password::Plain(s.to_owned())
        }
    }
}

/// The lines of a users file: `NAME:PASSWORD@DOMAIN` or
/// `NAME:$argon2id$…@DOMAIN`; blank lines and `#` comments skipped. Errors
/// name the line number, never its content.
/// A user of a users file: name, password (or its hash), domain.
pub type UserLine = (String, Password, String);

pub fn parse_users_file(text: &str) -> Result<Vec<UserLine>, String> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, rest)| {
            let (password, domain) = rest.rsplit_once('@')?;
            (!name.is_empty() && !password.is_empty() && !domain.is_empty()).then(|| {
                (
                    name.to_owned(),
                    Password::parse(password),
                    domain.to_owned(),
                )
            })
        });
        match parsed {
            Some(u) => users.push(u),
            None => {
                return Err(format!(
                    "users file line {}: expected NAME:PASSWORD@DOMAIN or NAME:$argon2id$…@DOMAIN",
                    i + 1
                ));
            }
        }
    }
    Ok(users)
}

/// An argon2id PHC string for `password` (random salt, the crate's
/// recommended parameters).
pub fn hash_password(password: &str) -> Result<String, BoxError> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| format!("hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// The demo directory: per (tenant, username) an argon2 PHC string. An
/// unknown username is checked against a dummy hash, so answering takes the
/// same work whether or not the name exists.
pub struct Users {
    entries: Vec<(TenantId, String, PasswordHash)>,
    dummy: PasswordHash,
}

impl Users {
    /// An empty directory (its dummy hash is made now).
    pub fn new() -> Result<Users, BoxError> {
        let dummy = hash_password(&crate::random_secret())?;
        Ok(Users {
            entries: Vec::new(),
            dummy: PasswordHash::new(&dummy).map_err(|e| format!("dummy hash: {e}"))?,
        })
    }

    /// Add a user; a plain password is hashed now and not kept.
    pub fn add(
        &mut self,
        tenant: &TenantId,
        name: &str,
        password: &Password,
    ) -> Result<(), BoxError> {
        let phc = match password {
            Password::Plain(p) => hash_password(p)?,
            Password::Hash(h) => h.clone(),
        };
        let hash = PasswordHash::new(&phc)
            .map_err(|e| format!("user {name}: not an argon2 PHC string ({e})"))?;
        self.entries.push((tenant.clone(), name.to_owned(), hash));
        Ok(())
    }
}

impl Directory for Users {
    fn check_credentials(
        &self,
        tenant: &TenantId,
        attempt: &LoginAttempt,
    ) -> Result<bool, DirectoryError> {
        let found = self
            .entries
            .iter()
            .find(|(t, name, _)| t == tenant && *name == attempt.username);
        let hash = found.map_or(&self.dummy, |(_, _, h)| h);
        let verified = Argon2::default()
            .verify_password(attempt.password.expose().as_bytes(), hash)
            .is_ok();
        Ok(found.is_some() && verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdm_enroll::activation::Secret;

    fn attempt(username: &str, password: &str) -> LoginAttempt {
        LoginAttempt {
            username: username.into(),
            password: Secret::new(password),
            domain: "example.com".into(),
        }
    }

    #[test]
    fn users_file_lines_parse_and_errors_hide_the_line() {
        let users = parse_users_file(
            "# comment\n\nann:p@ss:w@corp.example\nbob:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA@example.org\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].0, "ann");
        assert_eq!(users[0].1, Password::Plain("p@ss:w".into()));
        assert_eq!(users[0].2, "corp.example");
        assert!(matches!(users[1].1, Password::Hash(ref h) if h.starts_with("$argon2id$")));
        let err = parse_users_file("ok:pw@x\nbroken-hunter2\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn directory_verifies_hashes_and_plain_passwords_alike() {
        let tenant = TenantId::new("demo").unwrap();
        let other = TenantId::new("other").unwrap();
        let mut users = Users::new().unwrap();
        users
            .add(&tenant, "ann", &Password::Plain("pw-ann".into()))
            .unwrap();
        let bob = hash_password("pw-bob").unwrap();
        assert!(bob.starts_with("$argon2id$"));
        users.add(&tenant, "bob", &Password::Hash(bob)).unwrap();
        assert!(
            users
                .check_credentials(&tenant, &attempt("ann", "pw-ann"))
                .unwrap()
        );
        assert!(
            users
                .check_credentials(&tenant, &attempt("bob", "pw-bob"))
                .unwrap()
        );
        assert!(
            !users
                .check_credentials(&tenant, &attempt("bob", "pw-ann"))
                .unwrap()
        );
        assert!(
            !users
                .check_credentials(&other, &attempt("ann", "pw-ann"))
                .unwrap()
        );
        assert!(
            !users
                .check_credentials(&tenant, &attempt("carl", "pw-ann"))
                .unwrap()
        );
        assert!(
            users
                .add(&tenant, "eve", &Password::Hash("$argon2id$junk".into()))
                .is_err()
        );
    }
}
