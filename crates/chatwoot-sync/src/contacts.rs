//! Contact → person: a user when the contact has an email, an address-book
//! contact when it only has a phone. Found by email, then by phone
//! (normalised to E.164), before anything is created; the link is kept and
//! the person's id mirrored into the contact's custom attributes.

use chatwoot::{Contact, Sender};
use flows::claims::{self, HeldClaim};
use flows::helpdesk::{NewPerson, PersonKind, PersonQuery};
use flows::identity::normalize_phone;
use serde_json::{Map, Value, json};

use crate::error::SyncResult;
use crate::source::SourceSync;

/// What a contact says about itself, from whichever body it came.
#[derive(Debug, Clone, Default)]
pub struct ContactInfo {
    pub id: u64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `None` when the body did not carry them.
    pub custom_attributes: Option<Map<String, Value>>,
}

impl From<&Sender> for ContactInfo {
    fn from(s: &Sender) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            email: s.email.clone(),
            phone: s.phone_number.clone(),
            custom_attributes: Some(s.custom_attributes.clone()),
        }
    }
}

impl From<&Contact> for ContactInfo {
    fn from(c: &Contact) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            email: c.email.clone(),
            phone: c.phone_number.clone(),
            custom_attributes: Some(c.custom_attributes.clone()),
        }
    }
}

/// A resolved contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonRef {
    pub id: i64,
    pub kind: PersonKind,
}

impl SourceSync {
    fn clean_email(contact: &ContactInfo) -> Option<String> {
        contact
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| e.contains('@'))
    }

    fn clean_phone(&self, contact: &ContactInfo) -> Option<String> {
        let raw = contact.phone.as_deref().filter(|p| !p.trim().is_empty())?;
        match normalize_phone(raw, self.settings.default_country.as_deref()) {
            Ok(phone) => Some(phone),
            Err(error) => {
                tracing::info!(source = %self.name, contact = contact.id, %error, "phone number ignored");
                None
            }
        }
    }

    /// The person of a contact: the link when there is one (and still
    /// right), else found by email then phone, else created.
    ///
    /// Creating holds claims in the store on the contact and on its email and
    /// phone (see [`flows::claims`]): a second job creating the same person
    /// at the same moment, in this process or another instance, through this
    /// contact or another contact with the same phone, gets a retryable
    /// `Claim(Busy)` and finds the person when it tries again.
    pub(crate) async fn ensure_person(&self, contact: &ContactInfo) -> SyncResult<PersonRef> {
        let _guard = self.lock_contact(contact.id).await;
        let email = Self::clean_email(contact);
        if let Some(person) = self.linked_person(contact, email.as_deref()).await? {
            if contact.custom_attributes.is_some() {
                self.mirror_person(contact, person).await;
            }
            return Ok(person);
        }
        let phone = self.clean_phone(contact);
        let person = match self.find_person(email.as_deref(), phone.as_deref()).await? {
            Some(person) => {
                self.links
                    .put_contact(contact.id, person.id, person.kind)
                    .await?;
                person
            }
            None => {
                let target = self.helpdesk.name();
                let mut keys = claims::identity_keys(target, email.as_deref(), phone.as_deref());
                keys.push(format!(
                    "{target}:chatwoot:{}:contact:{}",
                    self.name, contact.id
                ));
                let claim = self
                    .claims
                    .claim(keys, claims::lease_for(self.helpdesk.as_ref()))
                    .await?;
                let outcome = self
                    .create_claimed(contact, email.clone(), phone.clone(), &claim)
                    .await;
                claim.release().await;
                outcome?
            }
        };
        self.mirror_person(contact, person).await;
        Ok(person)
    }

    /// The linked person, unless a phone-only contact has gained an email
    /// since (it becomes a user).
    async fn linked_person(
        &self,
        contact: &ContactInfo,
        email: Option<&str>,
    ) -> SyncResult<Option<PersonRef>> {
        Ok(self
            .links
            .contact(contact.id)
            .await?
            .filter(|(_, kind)| *kind == PersonKind::User || email.is_none())
            .map(|(id, kind)| PersonRef { id, kind }))
    }

    /// Holding the person's claims: looks again (the job that held them
    /// before may have just created and linked the person), creates only
    /// when still missing, and links the contact before the claims go.
    async fn create_claimed(
        &self,
        contact: &ContactInfo,
        email: Option<String>,
        phone: Option<String>,
        claim: &HeldClaim,
    ) -> SyncResult<PersonRef> {
        if let Some(person) = self.linked_person(contact, email.as_deref()).await? {
            return Ok(person);
        }
        let person = match self.find_person(email.as_deref(), phone.as_deref()).await? {
            Some(person) => person,
            None => {
                claim.confirm().await?;
                match self
                    .create_person(contact, email.clone(), phone.clone())
                    .await
                {
                    Ok(person) => person,
                    Err(error) => {
                        // Someone else may have created it meanwhile (unique login).
                        match self.find_person(email.as_deref(), phone.as_deref()).await? {
                            Some(person) => person,
                            None => return Err(error),
                        }
                    }
                }
            }
        };
        self.links
            .put_contact(contact.id, person.id, person.kind)
            .await?;
        Ok(person)
    }

    async fn find_person(
        &self,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> SyncResult<Option<PersonRef>> {
        if let Some(email) = email {
            let query = PersonQuery {
                email: Some(email.to_owned()),
                phone: None,
            };
            if let Some(p) = self.helpdesk.find_person(&query).await? {
                return Ok(Some(PersonRef {
                    id: p.id,
                    kind: p.kind,
                }));
            }
        }
        if let Some(phone) = phone {
            let query = PersonQuery {
                email: None,
                phone: Some(phone.to_owned()),
            };
            if let Some(p) = self.helpdesk.find_person(&query).await? {
                // A user found by phone is fine; a contact found by phone is
                // not enough when we know an email (make a user instead).
                if p.kind == PersonKind::User || email.is_none() {
                    return Ok(Some(PersonRef {
                        id: p.id,
                        kind: p.kind,
                    }));
                }
            }
        }
        Ok(None)
    }

    async fn create_person(
        &self,
        contact: &ContactInfo,
        email: Option<String>,
        phone: Option<String>,
    ) -> SyncResult<PersonRef> {
        let kind = if email.is_some() {
            PersonKind::User
        } else {
            PersonKind::Contact
        };
        let name = contact
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| email.clone())
            .or_else(|| phone.clone())
            .unwrap_or_else(|| format!("Chatwoot contact {}", contact.id));
        let person = self
            .helpdesk
            .create_person(&NewPerson {
                kind,
                name,
                email,
                phone,
                organisation: self.settings.entity,
            })
            .await?;
        tracing::info!(source = %self.name, contact = contact.id, person = person.id, kind = ?person.kind, "person created");
        Ok(PersonRef {
            id: person.id,
            kind: person.kind,
        })
    }

    /// Writes the person id into the contact's custom attributes when it is
    /// not there yet. Chatwoot merges top-level keys, so other attributes
    /// stay. Failures are logged: the link in the store is what counts.
    async fn mirror_person(&self, contact: &ContactInfo, person: PersonRef) {
        let (key, stale) = match person.kind {
            PersonKind::User => ("glpi_user_id", "glpi_contact_id"),
            PersonKind::Contact => ("glpi_contact_id", "glpi_user_id"),
        };
        let current = contact.custom_attributes.as_ref();
        let has = current
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == &json!(person.id) || v == &json!(person.id.to_string()));
        // Chatwoot merges custom attributes key by key: the stale key sent as
        // null stays, with a null value, so null counts as cleared (else every
        // later event would send the same patch again).
        let has_stale = current.is_some_and(|a| a.get(stale).is_some_and(|v| !v.is_null()));
        if has && !has_stale {
            return;
        }
        let mut patch = Map::new();
        patch.insert(key.to_owned(), json!(person.id));
        if has_stale {
            patch.insert(stale.to_owned(), Value::Null);
        }
        if let Err(error) = self
            .chatwoot
            .merge_contact_custom_attributes(contact.id, &patch)
            .await
        {
            tracing::warn!(source = %self.name, contact = contact.id, %error, "could not mirror the person id into the contact");
        }
    }
}
