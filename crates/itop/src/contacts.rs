//! Persons (callers) and organisations.

use serde_json::{Value, json};

use crate::client::ItopClient;
use crate::error::ItopError;
use crate::response::{ItopObject, Key, oql_quote};

const PERSON_FIELDS: &str =
    "id,name,first_name,org_id,email,phone,mobile_phone,friendlyname,status";

/// A Person (`name` is the last name).
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub org_id: Option<u64>,
    pub email: String,
    pub phone: String,
    pub mobile_phone: String,
    /// "First Last".
    pub friendly_name: String,
    /// `status` is not `inactive` (a Contact's status: `active` or
    /// `inactive`; an answer without the field counts as active).
    pub active: bool,
}

impl Person {
    pub fn from_object(o: &ItopObject) -> Person {
        Person {
            id: o.key,
            first_name: o.text("first_name"),
            last_name: o.text("name"),
            org_id: o.ext_key("org_id"),
            email: o.text("email"),
            phone: o.text("phone"),
            mobile_phone: o.text("mobile_phone"),
            friendly_name: o.text("friendlyname"),
            active: o.text("status") != "inactive",
        }
    }
}

/// A Person to create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewPerson {
    pub first_name: String,
    pub last_name: String,
    pub org_id: u64,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile_phone: Option<String>,
}

/// An Organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: u64,
    pub name: String,
    pub code: String,
}

impl ItopClient {
    /// The person with this email (the lowest id if several share it, active
    /// or not: see [`Self::find_persons_by_email`]).
    pub async fn find_person_by_email(&self, email: &str) -> Result<Option<Person>, ItopError> {
        Ok(self.find_persons_by_email(email).await?.into_iter().next())
    }

    /// Every Person with this email, active or not, by id.
    pub async fn find_persons_by_email(&self, email: &str) -> Result<Vec<Person>, ItopError> {
        let mut found: Vec<Person> = self
            .get("Person", Key::criteria([("email", email)]), PERSON_FIELDS)
            .await?
            .iter()
            .map(Person::from_object)
            .collect();
        found.sort_by_key(|p| p.id);
        Ok(found)
    }

    /// Persons whose phone or mobile phone contains `phone` as typed (iTop does
    /// not normalise numbers: search with the stored formatting), active or not,
    /// by id.
    pub async fn find_persons_by_phone(&self, phone: &str) -> Result<Vec<Person>, ItopError> {
        let pattern = oql_quote(&format!("%{phone}%"));
        let oql =
            format!("SELECT Person WHERE phone LIKE {pattern} OR mobile_phone LIKE {pattern}");
        let mut found: Vec<Person> = self
            .get("Person", Key::Oql(oql), PERSON_FIELDS)
            .await?
            .iter()
            .map(Person::from_object)
            .collect();
        found.sort_by_key(|p| p.id);
        Ok(found)
    }

    pub async fn person(&self, id: u64) -> Result<Option<Person>, ItopError> {
        Ok(self
            .get_one("Person", id, PERSON_FIELDS)
            .await?
            .as_ref()
            .map(Person::from_object))
    }

    pub async fn create_person(&self, new: &NewPerson, comment: &str) -> Result<Person, ItopError> {
        let mut fields =
            json!({"first_name": new.first_name, "name": new.last_name, "org_id": new.org_id});
        for (name, v) in [
            ("email", &new.email),
            ("phone", &new.phone),
            ("mobile_phone", &new.mobile_phone),
        ] {
            if let (Some(v), Some(map)) = (v, fields.as_object_mut()) {
                map.insert(name.into(), Value::String(v.clone()));
            }
        }
        let o = self
            .create("Person", fields, comment, PERSON_FIELDS)
            .await?;
        Ok(Person::from_object(&o))
    }

    pub async fn organization(&self, id: u64) -> Result<Option<Organization>, ItopError> {
        Ok(self
            .get_one("Organization", id, "id,name,code")
            .await?
            .map(|o| Organization {
                id: o.key,
                name: o.text("name"),
                code: o.text("code"),
            }))
    }

    /// The organisation with exactly this name (the lowest id if several).
    pub async fn find_organization_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Organization>, ItopError> {
        let mut found: Vec<Organization> = self
            .get(
                "Organization",
                Key::criteria([("name", name)]),
                "id,name,code",
            )
            .await?
            .iter()
            .map(|o| Organization {
                id: o.key,
                name: o.text("name"),
                code: o.text("code"),
            })
            .collect();
        found.sort_by_key(|o| o.id);
        Ok(found.into_iter().next())
    }

    /// The Person of account `user_id`: a case-log entry's `user_id` is a User id (the
    /// `rest` account is User 2 with Person 1 in the recorded iTop), not a Person id.
    /// None when the account has no contact or does not exist.
    pub async fn person_of_user(&self, user_id: u64) -> Result<Option<u64>, ItopError> {
        Ok(self
            .get_one("User", user_id, "contactid")
            .await?
            .and_then(|user| user.text("contactid").parse::<u64>().ok())
            .filter(|id| *id > 0))
    }
}
