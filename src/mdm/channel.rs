//! Channel and identity resolution for check-ins and reports.
//!
//! 1. `UDID` present: a device enrollment. With `UserID` it is the user
//!    channel of that device; the Shared iPad sentinel `UserID`
//!    ([`SHARED_IPAD_USER_ID`]) instead names the user by `UserShortName`.
//! 2. Else `EnrollmentID`: a User Enrollment; with `EnrollmentUserID` its user channel.
//! 3. Neither: [`Error::NoIdentity`].
//!
//! Identifiers are opaque and case-sensitive; an empty string counts as absent.

use plist::Dictionary;

use super::{DictBuilder, Error, Fields};

/// The `UserID` a Shared iPad sends for its (non-local) user; never a user key.
pub const SHARED_IPAD_USER_ID: &str = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF";

/// Whom a check-in or report speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// The device channel of a device enrollment.
    Device {
        /// `UDID`.
        udid: String,
    },
    /// A user channel of a device enrollment (macOS user, `UserID` = user GUID).
    User {
        /// `UDID`.
        udid: String,
        /// `UserID`.
        user_id: String,
        /// `UserShortName`, if sent.
        user_short_name: Option<String>,
        /// `UserLongName`, if sent.
        user_long_name: Option<String>,
    },
    /// A Shared iPad user: `UserID` was the all-F sentinel, so the user is
    /// named by `UserShortName` (a Managed Apple ID).
    SharedIpadUser {
        /// `UDID`.
        udid: String,
        /// `UserShortName`.
        user_short_name: String,
        /// `UserLongName`, if sent.
        user_long_name: Option<String>,
    },
    /// The device channel of a User Enrollment (BYOD).
    UserEnrollmentDevice {
        /// `EnrollmentID`.
        enrollment_id: String,
    },
    /// The user channel of a User Enrollment.
    UserEnrollmentUser {
        /// `EnrollmentID`.
        enrollment_id: String,
        /// `EnrollmentUserID`.
        enrollment_user_id: String,
        /// `UserShortName`, if sent.
        user_short_name: Option<String>,
        /// `UserLongName`, if sent.
        user_long_name: Option<String>,
    },
}

impl Channel {
    /// Resolve the channel from a message dictionary (keys are not removed).
    pub fn resolve(dict: &Dictionary) -> Result<Self, Error> {
        Self::take(&mut Fields::new(dict.clone()))
    }

    /// Resolve the channel, consuming the identity keys from `f`.
    pub(crate) fn take(f: &mut Fields) -> Result<Self, Error> {
        // Empty values count as absent but are kept as unknown keys.
        let mut empty = Vec::new();
        let mut take = |key: &'static str| -> Result<Option<String>, Error> {
            Ok(match f.opt_string(key)? {
                Some(s) if s.is_empty() => {
                    empty.push(key);
                    None
                }
                other => other,
            })
        };
        let udid = take("UDID")?;
        let user_id = take("UserID")?;
        let short = take("UserShortName")?;
        let long = take("UserLongName")?;
        let enrollment_id = take("EnrollmentID")?;
        let enrollment_user_id = take("EnrollmentUserID")?;
        for key in empty {
            f.put(key, String::new().into());
        }
        // Keys that are consumed but do not take part in this resolution are
        // put back so nothing is lost.
        let mut put_back = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                f.put(key, v.into());
            }
        };
        match (udid, enrollment_id) {
            (Some(udid), enrollment_id) => {
                put_back("EnrollmentID", enrollment_id);
                put_back("EnrollmentUserID", enrollment_user_id);
                Ok(match user_id {
                    None => {
                        put_back("UserShortName", short);
                        put_back("UserLongName", long);
                        Self::Device { udid }
                    }
                    Some(id) if id.eq_ignore_ascii_case(SHARED_IPAD_USER_ID) => {
                        Self::SharedIpadUser {
                            udid,
                            user_short_name: short.ok_or(Error::MissingKey("UserShortName"))?,
                            user_long_name: long,
                        }
                    }
                    Some(user_id) => Self::User {
                        udid,
                        user_id,
                        user_short_name: short,
                        user_long_name: long,
                    },
                })
            }
            (None, Some(enrollment_id)) => {
                put_back("UserID", user_id);
                Ok(match enrollment_user_id {
                    None => {
                        put_back("UserShortName", short);
                        put_back("UserLongName", long);
                        Self::UserEnrollmentDevice { enrollment_id }
                    }
                    Some(enrollment_user_id) => Self::UserEnrollmentUser {
                        enrollment_id,
                        enrollment_user_id,
                        user_short_name: short,
                        user_long_name: long,
                    },
                })
            }
            (None, None) => Err(Error::NoIdentity),
        }
    }

    /// The identity keys of this channel, with Apple's names, for encoding.
    pub(crate) fn put(&self, b: &mut DictBuilder) {
        match self {
            Self::Device { udid } => {
                b.put("UDID", udid.as_str());
            }
            Self::User {
                udid,
                user_id,
                user_short_name,
                user_long_name,
            } => {
                b.put("UDID", udid.as_str())
                    .put("UserID", user_id.as_str())
                    .opt("UserShortName", user_short_name.as_ref())
                    .opt("UserLongName", user_long_name.as_ref());
            }
            Self::SharedIpadUser {
                udid,
                user_short_name,
                user_long_name,
            } => {
                b.put("UDID", udid.as_str())
                    .put("UserID", SHARED_IPAD_USER_ID)
                    .put("UserShortName", user_short_name.as_str())
                    .opt("UserLongName", user_long_name.as_ref());
            }
            Self::UserEnrollmentDevice { enrollment_id } => {
                b.put("EnrollmentID", enrollment_id.as_str());
            }
            Self::UserEnrollmentUser {
                enrollment_id,
                enrollment_user_id,
                user_short_name,
                user_long_name,
            } => {
                b.put("EnrollmentID", enrollment_id.as_str())
                    .put("EnrollmentUserID", enrollment_user_id.as_str())
                    .opt("UserShortName", user_short_name.as_ref())
                    .opt("UserLongName", user_long_name.as_ref());
            }
        }
    }

    /// The device-channel id: `UDID` or `EnrollmentID`.
    pub fn device_id(&self) -> &str {
        match self {
            Self::Device { udid } | Self::User { udid, .. } | Self::SharedIpadUser { udid, .. } => {
                udid
            }
            Self::UserEnrollmentDevice { enrollment_id }
            | Self::UserEnrollmentUser { enrollment_id, .. } => enrollment_id,
        }
    }

    /// The user id of a user channel: `UserID`, the Shared iPad
    /// `UserShortName`, or `EnrollmentUserID`; `None` on a device channel.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::Device { .. } | Self::UserEnrollmentDevice { .. } => None,
            Self::User { user_id, .. } => Some(user_id),
            Self::SharedIpadUser {
                user_short_name, ..
            } => Some(user_short_name),
            Self::UserEnrollmentUser {
                enrollment_user_id, ..
            } => Some(enrollment_user_id),
        }
    }

    /// A stable key for this channel: the device id, or `"<device id>:<user id>"`.
    pub fn id(&self) -> String {
        match self.user_id() {
            None => self.device_id().to_owned(),
            Some(u) => format!("{}:{u}", self.device_id()),
        }
    }

    /// Whether this is a user channel.
    pub fn is_user(&self) -> bool {
        self.user_id().is_some()
    }

    /// Whether this belongs to a User Enrollment.
    pub fn is_user_enrollment(&self) -> bool {
        matches!(
            self,
            Self::UserEnrollmentDevice { .. } | Self::UserEnrollmentUser { .. }
        )
    }

    /// A short name of the kind of channel: `device`, `user`,
    /// `shared-ipad-user`, `user-enrollment-device`, `user-enrollment-user`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Device { .. } => "device",
            Self::User { .. } => "user",
            Self::SharedIpadUser { .. } => "shared-ipad-user",
            Self::UserEnrollmentDevice { .. } => "user-enrollment-device",
            Self::UserEnrollmentUser { .. } => "user-enrollment-user",
        }
    }
}
