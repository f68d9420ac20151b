//! Users (spec §12.1-12.3) and contacts (§12.4), found by email or phone.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::GlpiClient;
use crate::error::GlpiError;
use crate::lenient;
use crate::search::{Criterion, Link, SearchQuery, SearchRow, SearchType};
use crate::text::{digits_only, same_phone};

/// User search options (spec §12.3).
pub mod user_field {
    pub const LOGIN: u32 = 1;
    pub const ID: u32 = 2;
    pub const EMAIL: u32 = 5;
    pub const PHONE: u32 = 6;
    pub const IS_ACTIVE: u32 = 8;
    pub const FIRSTNAME: u32 = 9;
    pub const PHONE2: u32 = 10;
    pub const MOBILE: u32 = 11;
    pub const REALNAME: u32 = 34;
}

/// Contact search options (spec §12.4).
pub mod contact_field {
    pub const NAME: u32 = 1;
    pub const ID: u32 = 2;
    pub const PHONE: u32 = 3;
    pub const PHONE2: u32 = 4;
    pub const EMAIL: u32 = 6;
    pub const MOBILE: u32 = 10;
    pub const FIRSTNAME: u32 = 11;
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login (`name`), required and unique.
    pub login: String,
    pub realname: Option<String>,
    pub firstname: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    /// The first one becomes the default address.
    pub emails: Vec<String>,
    /// Profile given on `entity_id` (`_profiles_id` / `_entities_id`).
    pub profile_id: Option<i64>,
    /// Entity of the profile and default entity; None = the client's default entity.
    pub entity_id: Option<i64>,
    pub is_recursive: bool,
    /// Sent as `password` + `password2` (GLPI hashes only when both match).
    pub password: Option<SecretString>,
    pub extra: Map<String, Value>,
}

/// A user as stored (never contains password or tokens).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub realname: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub firstname: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone2: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub mobile: String,
    /// Default entity; None when GLPI has none (null), which is not the root (0).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub entities_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub profiles_id: i64,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_active: bool,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_deleted: bool,
}

/// A `UserEmail` row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserEmail {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub users_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_default: bool,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_dynamic: bool,
}

/// A user found by a search, with the columns that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHit {
    pub id: i64,
    pub login: String,
    pub emails: Vec<String>,
    pub phone: Option<String>,
    pub phone2: Option<String>,
    pub mobile: Option<String>,
    /// False for a user disabled in GLPI (`is_active = 0`); true when the
    /// search did not say.
    pub is_active: bool,
}

impl UserHit {
    fn from_row(row: &SearchRow) -> Option<UserHit> {
        Some(UserHit {
            id: row.id()?,
            login: row.text(user_field::LOGIN).unwrap_or_default(),
            emails: row.texts(user_field::EMAIL),
            phone: row.text(user_field::PHONE),
            phone2: row.text(user_field::PHONE2),
            mobile: row.text(user_field::MOBILE),
            is_active: row.int(user_field::IS_ACTIVE).is_none_or(|v| v != 0),
        })
    }
}

/// A contact to create (an address-book entry, not a login).
#[derive(Debug, Clone, Default)]
pub struct NewContact {
    /// Last name (`name`).
    pub name: String,
    pub firstname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    /// None = the client's default entity.
    pub entity_id: Option<i64>,
    pub extra: Map<String, Value>,
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Contact {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub entities_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub firstname: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone2: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub mobile: String,
}

/// A contact found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactHit {
    pub id: i64,
    pub name: String,
    pub firstname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub phone2: Option<String>,
    pub mobile: Option<String>,
}

impl ContactHit {
    fn from_row(row: &SearchRow) -> Option<ContactHit> {
        Some(ContactHit {
            id: row.id()?,
            name: row.text(contact_field::NAME).unwrap_or_default(),
            firstname: row.text(contact_field::FIRSTNAME),
            email: row.text(contact_field::EMAIL),
            phone: row.text(contact_field::PHONE),
            phone2: row.text(contact_field::PHONE2),
            mobile: row.text(contact_field::MOBILE),
        })
    }
}

/// The pattern searched for a phone: its last (up to) 8 digits joined by `%`,
/// so that they match whatever separators the stored text has ("+33 6 12 34 56 78",
/// "(11) 3333-4444"): GLPI's `contains` is a plain `LIKE`, and it escapes `_` only,
/// so `%` stays a wildcard. Rows are then checked on all digits (phones are free text
/// in GLPI, no normalisation server-side).
/// Rows read at most for one phone lookup (pages of 200).
const PHONE_ROWS: u64 = 1_000;

fn phone_fragment(phone: &str) -> Result<String, GlpiError> {
    let digits = digits_only(phone);
    if digits.len() < 4 {
        return Err(GlpiError::InvalidInput(format!(
            "phone {phone:?} has fewer than 4 digits"
        )));
    }
    let tail = &digits[digits.len().saturating_sub(8)..];
    Ok(tail.chars().map(String::from).collect::<Vec<_>>().join("%"))
}

fn any_of(fields: &[u32], searchtype: SearchType, value: &str) -> Criterion {
    Criterion::Group {
        link: Link::And,
        criteria: fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let c = Criterion::field(*f, searchtype, value);
                if i == 0 { c } else { c.linked(Link::Or) }
            })
            .collect(),
    }
}

fn checked_email(email: &str) -> Result<String, GlpiError> {
    let email = email.trim();
    if email.len() < 3 || !email.contains('@') {
        return Err(GlpiError::InvalidInput(format!("not an email: {email:?}")));
    }
    Ok(email.to_owned())
}

impl GlpiClient {
    /// Users with this email (case-insensitive exact match, checked on the returned rows).
    /// Several users can share an address: all are returned.
    pub async fn find_users_by_email(&self, email: &str) -> Result<Vec<UserHit>, GlpiError> {
        let email = checked_email(email)?;
        let query = SearchQuery::new("User")
            .and(user_field::EMAIL, SearchType::Contains, email.clone())
            .display(&[user_field::LOGIN, user_field::EMAIL, user_field::IS_ACTIVE])
            .range(0, 99);
        let page = self.search(&query).await?;
        Ok(page
            .rows
            .iter()
            .filter_map(UserHit::from_row)
            .filter(|u| u.emails.iter().any(|e| e.eq_ignore_ascii_case(&email)))
            .collect())
    }

    /// The user whose login is `login` (compared without case, as GLPI's
    /// unique-login check does), if the session can see one, disabled or not
    /// (`is_active` says). Logins are reserved even for users without an
    /// email, and for disabled users, so this is how to find the account a
    /// refused "the user already exists" creation meant.
    pub async fn find_user_by_login(&self, login: &str) -> Result<Option<UserHit>, GlpiError> {
        let login = login.trim();
        if login.is_empty() {
            return Ok(None);
        }
        let query = SearchQuery::new("User")
            .and(user_field::LOGIN, SearchType::Contains, login.to_owned())
            .display(&[user_field::LOGIN, user_field::EMAIL, user_field::IS_ACTIVE]);
        let rows = self.search_rows(&query, PHONE_ROWS).await?;
        Ok(rows
            .iter()
            .filter_map(UserHit::from_row)
            .find(|u| u.login.eq_ignore_ascii_case(login)))
    }

    /// Users whose phone, phone 2 or mobile is this number (digits compared, so
    /// `+55 11 3333-4444` matches `1133334444`).
    pub async fn find_users_by_phone(&self, phone: &str) -> Result<Vec<UserHit>, GlpiError> {
        self.find_users_by_phone_fields(
            phone,
            &[user_field::PHONE, user_field::PHONE2, user_field::MOBILE],
        )
        .await
    }

    /// Users whose mobile is this number.
    pub async fn find_users_by_mobile(&self, mobile: &str) -> Result<Vec<UserHit>, GlpiError> {
        self.find_users_by_phone_fields(mobile, &[user_field::MOBILE])
            .await
    }

    async fn find_users_by_phone_fields(
        &self,
        phone: &str,
        fields: &[u32],
    ) -> Result<Vec<UserHit>, GlpiError> {
        let fragment = phone_fragment(phone)?;
        let query = SearchQuery::new("User")
            .criterion(any_of(fields, SearchType::Contains, &fragment))
            .display(&[
                user_field::LOGIN,
                user_field::PHONE,
                user_field::PHONE2,
                user_field::MOBILE,
                user_field::IS_ACTIVE,
            ]);
        let rows = self.search_rows(&query, PHONE_ROWS).await?;
        Ok(rows
            .iter()
            .filter_map(UserHit::from_row)
            .filter(|u| {
                fields.iter().any(|f| {
                    let cell = match *f {
                        user_field::PHONE => &u.phone,
                        user_field::PHONE2 => &u.phone2,
                        _ => &u.mobile,
                    };
                    cell.as_deref().is_some_and(|c| same_phone(c, phone))
                })
            })
            .collect())
    }

    /// Create a user with its emails (`_useremails` with negative keys, spec §12.2).
    pub async fn create_user(&self, user: &NewUser) -> Result<i64, GlpiError> {
        let input = user_input(user, self.default_entity())?;
        self.create_item("User", &input).await
    }

    /// Read a user.
    pub async fn get_user(&self, id: i64) -> Result<User, GlpiError> {
        self.get_item("User", id).await
    }

    /// Email addresses of a user.
    pub async fn user_emails(&self, user_id: i64) -> Result<Vec<UserEmail>, GlpiError> {
        self.list_sub_items("User", user_id, "UserEmail").await
    }

    /// Contacts with this email (case-insensitive exact match).
    pub async fn find_contacts_by_email(&self, email: &str) -> Result<Vec<ContactHit>, GlpiError> {
        let email = checked_email(email)?;
        let query = SearchQuery::new("Contact")
            .and(contact_field::EMAIL, SearchType::Contains, email.clone())
            .display(&[
                contact_field::NAME,
                contact_field::FIRSTNAME,
                contact_field::EMAIL,
            ])
            .range(0, 99);
        let page = self.search(&query).await?;
        Ok(page
            .rows
            .iter()
            .filter_map(ContactHit::from_row)
            .filter(|c| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&email))
            })
            .collect())
    }

    /// Contacts whose phone, phone 2 or mobile is this number (digits compared).
    pub async fn find_contacts_by_phone(&self, phone: &str) -> Result<Vec<ContactHit>, GlpiError> {
        let fragment = phone_fragment(phone)?;
        let fields = [
            contact_field::PHONE,
            contact_field::PHONE2,
            contact_field::MOBILE,
        ];
        let query = SearchQuery::new("Contact")
            .criterion(any_of(&fields, SearchType::Contains, &fragment))
            .display(&[
                contact_field::NAME,
                contact_field::FIRSTNAME,
                contact_field::EMAIL,
                contact_field::PHONE,
                contact_field::PHONE2,
                contact_field::MOBILE,
            ]);
        let rows = self.search_rows(&query, PHONE_ROWS).await?;
        Ok(rows
            .iter()
            .filter_map(ContactHit::from_row)
            .filter(|c| {
                [&c.phone, &c.phone2, &c.mobile]
                    .iter()
                    .any(|cell| cell.as_deref().is_some_and(|v| same_phone(v, phone)))
            })
            .collect())
    }

    /// Create a contact.
    pub async fn create_contact(&self, contact: &NewContact) -> Result<i64, GlpiError> {
        let mut input = Map::new();
        input.insert("name".into(), json!(contact.name));
        for (k, v) in [
            ("firstname", &contact.firstname),
            ("email", &contact.email),
            ("phone", &contact.phone),
            ("mobile", &contact.mobile),
        ] {
            if let Some(v) = v {
                input.insert(k.into(), json!(v));
            }
        }
        if let Some(e) = contact.entity_id.or(self.default_entity()) {
            input.insert("entities_id".into(), json!(e));
        }
        for (k, v) in &contact.extra {
            input.insert(k.clone(), v.clone());
        }
        self.create_item("Contact", &Value::Object(input)).await
    }

    /// Read a contact.
    pub async fn get_contact(&self, id: i64) -> Result<Contact, GlpiError> {
        self.get_item("Contact", id).await
    }
}

pub(crate) fn user_input(user: &NewUser, default_entity: Option<i64>) -> Result<Value, GlpiError> {
    if user.login.trim().is_empty() {
        return Err(GlpiError::InvalidInput("a user needs a login".into()));
    }
    let mut input = Map::new();
    input.insert("name".into(), json!(user.login));
    for (k, v) in [
        ("realname", &user.realname),
        ("firstname", &user.firstname),
        ("phone", &user.phone),
        ("mobile", &user.mobile),
    ] {
        if let Some(v) = v {
            input.insert(k.into(), json!(v));
        }
    }
    if !user.emails.is_empty() {
        let mut emails = Map::new();
        for (i, e) in user.emails.iter().enumerate() {
            emails.insert(format!("-{}", i + 1), json!(checked_email(e)?));
        }
        input.insert("_useremails".into(), Value::Object(emails));
        input.insert("_default_email".into(), json!("-1"));
    }
    let entity = user.entity_id.or(default_entity);
    if let Some(e) = entity {
        input.insert("entities_id".into(), json!(e));
    }
    if let Some(p) = user.profile_id {
        input.insert("_profiles_id".into(), json!(p));
        // The profile goes on the user's entity. Without one GLPI gives it on the
        // session's active entity, where it also creates the user: never the root
        // by default, which would open every entity below it to a recursive profile.
        if let Some(e) = entity {
            input.insert("_entities_id".into(), json!(e));
        }
        input.insert("_is_recursive".into(), json!(i64::from(user.is_recursive)));
    }
    if let Some(pw) = &user.password {
        input.insert("password".into(), json!(pw.expose_secret()));
        input.insert("password2".into(), json!(pw.expose_secret()));
    }
    for (k, v) in &user.extra {
        input.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_input_uses_negative_email_keys() {
        let input = user_input(
            &NewUser {
                login: "maria.silva".into(),
                emails: vec![
                    "maria.silva@example.com".into(),
                    "maria@acme.example".into(),
                ],
                profile_id: Some(1),
                entity_id: Some(1),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            input["_useremails"],
            json!({"-1":"maria.silva@example.com","-2":"maria@acme.example"})
        );
        assert_eq!(input["_default_email"], json!("-1"));
        assert_eq!(input["_entities_id"], json!(1));
    }

    #[test]
    fn phone_fragment_is_the_last_digits_with_any_separators() {
        assert_eq!(
            phone_fragment("+55 11 98765-4321").unwrap(),
            "8%7%6%5%4%3%2%1"
        );
        assert_eq!(phone_fragment("4321").unwrap(), "4%3%2%1");
        assert!(phone_fragment("12").is_err());
    }
}
