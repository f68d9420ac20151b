//! Finding who asks and for which organisation: shared by the intake API,
//! the messaging channels and the Chatwoot sync so the rules live once.

use crate::claims::{self, ClaimError, HeldClaim, PersonClaims};
use crate::helpdesk::{
    Helpdesk, HelpdeskError, HelpdeskResult, NewPerson, Organisation, Person, PersonKind,
    PersonQuery, Requester,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Keeps the digits of a tax id (`12.345.678/0001-90` → `12345678000190`).
pub fn tax_id_digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

/// Why a phone number could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phone number {raw:?} is not valid: {reason}")]
pub struct PhoneError {
    pub raw: String,
    pub reason: String,
}

/// Normalises a phone number to E.164 (`+5511987654321`). Numbers without a
/// leading `+` or international prefix are read in `default_country`
/// (ISO 3166 alpha-2, e.g. `BR`). WhatsApp ids such as
/// `5511987654321@s.whatsapp.net` (and `…@c.us`, `…:12@s.whatsapp.net`) are
/// accepted as their number, read as international (a JID always carries
/// its country code: `4520123456@s.whatsapp.net` is Danish whatever
/// `default_country` says); a LID (`…@lid`, WhatsApp's id for a hidden
/// number) or a group id is refused, never read as a number.
pub fn normalize_phone(raw: &str, default_country: Option<&str>) -> Result<String, PhoneError> {
    let fail = |reason: &str| PhoneError {
        raw: raw.to_string(),
        reason: reason.to_string(),
    };
    // A person's JID names an international number, whatever the country.
    let mut jid = false;
    let head = match raw.split_once('@') {
        None => raw.trim(),
        Some((user, domain)) => {
            let domain = domain.trim().to_ascii_lowercase();
            match domain.as_str() {
                // A person's JID; `:12` names one of their devices.
                "s.whatsapp.net" | "c.us" => {
                    jid = true;
                    user.split(':').next().unwrap_or(user).trim()
                }
                "lid" => {
                    return Err(fail(
                        "a WhatsApp LID (…@lid) hides the number: it is not a phone number",
                    ));
                }
                "g.us" | "broadcast" | "newsletter" => {
                    return Err(fail("a WhatsApp group or channel id is not a phone number"));
                }
                _ => user.trim(),
            }
        }
    };
    if head.is_empty() {
        return Err(fail("empty"));
    }
    let country = default_country
        .map(|c| c.trim().to_ascii_uppercase())
        .and_then(|c| c.parse::<phonenumber::country::Id>().ok());
    let digits: String = head.chars().filter(char::is_ascii_digit).collect();
    let international = format!("+{digits}");
    // Brazilian mobiles gained a leading 9 in 2012–2016; WhatsApp still
    // names many older accounts without it (`553188776655@s.whatsapp.net`).
    // Ten digits are a national number only when nothing says they are
    // international.
    let brazilian = digits.starts_with("55") && digits.len() == 12
        || !jid && country == Some(phonenumber::country::Id::BR) && digits.len() == 10;
    let with_ninth = brazilian
        .then(|| &digits[digits.len() - 10..])
        .filter(|national| national[2..].starts_with(['6', '7', '8', '9']))
        .map(|national| format!("+55{}9{}", &national[..2], &national[2..]));
    let attempts: Vec<String> = if jid {
        // A JID's digits are the number with its country code: read in
        // `default_country` first, `4520123456@s.whatsapp.net` (Danish) would
        // become a Brazilian `+554520123456`. As written only as a last resort.
        [Some(international), with_ninth, Some(head.to_string())]
            .into_iter()
            .flatten()
            .collect()
    } else {
        // As written first (it may be national), then as an international
        // number without its `+` (bots often send `5511987654321`).
        [Some(head.to_string()), Some(international), with_ninth]
            .into_iter()
            .flatten()
            .collect()
    };
    for candidate in attempts.iter() {
        if let Ok(number) = phonenumber::parse(country, candidate)
            && phonenumber::is_valid(&number)
        {
            return Ok(number.format().mode(phonenumber::Mode::E164).to_string());
        }
    }
    Err(fail("not a valid number for its country"))
}

/// Loads the phone numbering plans the first phone reading needs (they are
/// read once per process, slowly); later calls cost one parse.
pub fn load_phone_data() {
    let _ = phonenumber::parse(None, "+12015550123");
}

/// The phone forms a target may have stored for an E.164 number: the E.164
/// text, its digits, and the national significant number. Adapters search
/// with these and compare digits.
pub fn phone_search_forms(e164: &str) -> Vec<String> {
    let mut forms = vec![e164.to_string()];
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        forms.push(digits);
    }
    if let Ok(number) = phonenumber::parse(None, e164) {
        let national = number.national().value().to_string();
        if !forms.contains(&national) {
            forms.push(national);
        }
    }
    forms
}

/// True when two stored phone values are the same number (digits compared,
/// tolerating a missing country code on one side, and a Brazilian mobile's
/// missing ninth digit): the GLPI client's comparison, which its searches
/// already apply, for every target.
pub use glpi::same_phone;

/// How well the best of a person's phone cells matches `phone` (`None`:
/// none is the same number). Empty cells match nothing.
pub fn best_phone_match<'a>(
    cells: impl IntoIterator<Item = &'a str>,
    phone: &str,
) -> Option<glpi::PhoneMatch> {
    cells
        .into_iter()
        .filter_map(|cell| glpi::phone_match(cell, phone))
        .max()
}

/// Who a phone designates among the people whose phone matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneChoice {
    One(i64),
    /// Only partial matches (a number stored without its area or country
    /// code), on several people: which one wrote cannot be told.
    Ambiguous(Vec<i64>),
    None,
}

/// The rule every adapter names a person by phone with, given each active
/// candidate's id and how well it matches ([`best_phone_match`]; disabled
/// people are left out by the caller): a full match wins (the oldest record,
/// the lowest id, among several, as they are the same number); else the
/// longest partial match, when only one person has it; else nobody.
pub fn choose_by_phone(ranked: impl IntoIterator<Item = (i64, glpi::PhoneMatch)>) -> PhoneChoice {
    let ranked: Vec<(i64, glpi::PhoneMatch)> = ranked.into_iter().collect();
    let Some(best) = ranked.iter().map(|(_, m)| *m).max() else {
        return PhoneChoice::None;
    };
    let mut at_best: Vec<i64> = ranked
        .iter()
        .filter(|(_, m)| *m == best)
        .map(|(id, _)| *id)
        .collect();
    at_best.sort_unstable();
    at_best.dedup();
    match at_best.as_slice() {
        [one] => PhoneChoice::One(*one),
        [first, ..] if best.full => PhoneChoice::One(*first),
        _ => PhoneChoice::Ambiguous(at_best),
    }
}

/// What to do when a tax id matches no organisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTaxId {
    /// Refuse the request (`entity_not_found`).
    #[default]
    Reject,
    /// Use the source's default organisation.
    UseDefault,
}

/// How a request says which organisation it is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganisationHint {
    pub tax_id: Option<String>,
    pub id: Option<i64>,
}

/// The outcome of organisation resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrganisationChoice {
    Found(i64),
    /// The tax id matched nothing and the policy is to reject.
    TaxIdNotFound(String),
    /// No hint and no default: the target's own default applies.
    TargetDefault,
}

/// Finds organisations by tax id with a TTL cache, so a burst of requests for
/// one company costs one search.
#[derive(Clone)]
pub struct OrganisationResolver {
    helpdesk: Arc<dyn Helpdesk>,
    cache: moka::future::Cache<String, Option<Organisation>>,
}

impl OrganisationResolver {
    pub fn new(helpdesk: Arc<dyn Helpdesk>, ttl: Duration) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(ttl)
            .build();
        OrganisationResolver { helpdesk, cache }
    }

    /// What the cache holds for a tax id, without asking the target: `None`
    /// when the cache does not know it.
    pub async fn cached_by_tax_id(&self, raw: &str) -> Option<Option<Organisation>> {
        let digits = tax_id_digits(raw);
        if digits.is_empty() {
            return Some(None);
        }
        self.cache.get(&digits).await
    }

    /// The organisation for a tax id (any punctuation), cached. A miss is
    /// cached too, for the same TTL.
    pub async fn by_tax_id(&self, raw: &str) -> HelpdeskResult<Option<Organisation>> {
        let digits = tax_id_digits(raw);
        if digits.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.cache.get(&digits).await {
            return Ok(hit);
        }
        let found = self.helpdesk.find_organisation_by_tax_id(&digits).await?;
        self.cache.insert(digits, found.clone()).await;
        Ok(found)
    }

    /// Applies the rule: tax id lookup, else explicit id, else the default;
    /// an unmatched tax id follows `policy`.
    pub async fn choose(
        &self,
        hint: &OrganisationHint,
        default: Option<i64>,
        policy: UnknownTaxId,
    ) -> HelpdeskResult<OrganisationChoice> {
        if let Some(tax_id) = hint.tax_id.as_deref().filter(|t| !t.trim().is_empty()) {
            if let Some(org) = self.by_tax_id(tax_id).await? {
                return Ok(OrganisationChoice::Found(org.id));
            }
            if policy == UnknownTaxId::Reject {
                return Ok(OrganisationChoice::TaxIdNotFound(tax_id.to_string()));
            }
        }
        if let Some(id) = hint.id {
            return Ok(OrganisationChoice::Found(id));
        }
        Ok(match default {
            Some(id) => OrganisationChoice::Found(id),
            None => OrganisationChoice::TargetDefault,
        })
    }
}

/// What is known about the person asking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub name: Option<String>,
    pub email: Option<String>,
    /// E.164, already normalised.
    pub phone: Option<String>,
}

/// Whether a requester missing from the directory may be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequesterPolicy {
    pub create_missing: bool,
    /// Create address-book contacts instead of users when only a phone is known.
    pub contact_when_phone_only: bool,
}

impl Default for RequesterPolicy {
    fn default() -> Self {
        RequesterPolicy {
            create_missing: true,
            contact_when_phone_only: false,
        }
    }
}

/// The requester chosen for a ticket, and the person record behind it when
/// there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRequester {
    pub requester: Requester,
    pub person: Option<Person>,
    pub created: bool,
}

/// Which directory lookup comes first when both an email and a phone are known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LookupOrder {
    /// Email, then phone: a shared office phone must not pick the wrong person
    /// (web forms, intake API).
    #[default]
    EmailFirst,
    /// Phone, then email: the phone is the channel's own identity (WhatsApp).
    PhoneFirst,
}

/// Why the requester could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Helpdesk(#[from] HelpdeskError),
    /// The person is being created by another job, or the store could not
    /// say whether it is.
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

impl ResolveError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ResolveError::Helpdesk(e) => e.is_retryable(),
            ResolveError::Claim(e) => e.is_retryable(),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ResolveError::Helpdesk(e) => e.retry_after(),
            ResolveError::Claim(e) => e.retry_after(),
        }
    }
}

impl From<ResolveError> for engine::JobError {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::Helpdesk(e) => e.into(),
            ResolveError::Claim(e) => e.into(),
        }
    }
}

/// Finds the requester: by email, then phone; else creates one when allowed;
/// else an email-only requester. Fails only when nothing identifies the caller.
/// A creation holds the caller's email and phone in `claims` (see
/// [`crate::claims`]): a second job creating the same caller at the same
/// moment, in this process or another, gets the retryable
/// [`ClaimError::Busy`] and finds the person when it tries again.
pub async fn resolve_requester(
    helpdesk: &dyn Helpdesk,
    claims: &PersonClaims,
    caller: &Caller,
    organisation: Option<i64>,
    policy: RequesterPolicy,
) -> Result<Option<ResolvedRequester>, ResolveError> {
    resolve_requester_in_order(
        helpdesk,
        claims,
        caller,
        organisation,
        policy,
        LookupOrder::EmailFirst,
    )
    .await
}

/// [`resolve_requester`] with the lookup order chosen by the caller.
pub async fn resolve_requester_in_order(
    helpdesk: &dyn Helpdesk,
    claims: &PersonClaims,
    caller: &Caller,
    organisation: Option<i64>,
    policy: RequesterPolicy,
    order: LookupOrder,
) -> Result<Option<ResolvedRequester>, ResolveError> {
    if let Some(person) = find_requester(helpdesk, caller, order).await? {
        return Ok(Some(found(person)));
    }
    if policy.create_missing && (caller.email.is_some() || caller.phone.is_some()) {
        let keys = claims::identity_keys(
            helpdesk.name(),
            caller.email.as_deref(),
            caller.phone.as_deref(),
        );
        let claim = claims.claim(keys, claims::lease_for(helpdesk)).await?;
        let outcome = create_claimed(helpdesk, &claim, caller, organisation, policy, order).await;
        claim.release().await;
        return outcome.map(Some);
    }
    Ok(caller.email.as_ref().map(|email| ResolvedRequester {
        requester: Requester::EmailOnly {
            email: email.clone(),
            name: caller.name.clone(),
        },
        person: None,
        created: false,
    }))
}

/// The person with the caller's email or phone, in `order`.
async fn find_requester(
    helpdesk: &dyn Helpdesk,
    caller: &Caller,
    order: LookupOrder,
) -> HelpdeskResult<Option<Person>> {
    let by_email = caller.email.as_ref().map(|email| PersonQuery {
        email: Some(email.clone()),
        phone: None,
    });
    let by_phone = caller.phone.as_ref().map(|phone| PersonQuery {
        email: None,
        phone: Some(phone.clone()),
    });
    let queries = match order {
        LookupOrder::EmailFirst => [by_email, by_phone],
        LookupOrder::PhoneFirst => [by_phone, by_email],
    };
    for query in queries.iter().flatten() {
        if let Some(person) = helpdesk.find_person(query).await? {
            return Ok(Some(person));
        }
    }
    Ok(None)
}

/// Holding the caller's claim: searches again (the job that held it before
/// may have just created the person), and creates only when still missing.
async fn create_claimed(
    helpdesk: &dyn Helpdesk,
    claim: &HeldClaim,
    caller: &Caller,
    organisation: Option<i64>,
    policy: RequesterPolicy,
    order: LookupOrder,
) -> Result<ResolvedRequester, ResolveError> {
    if let Some(person) = find_requester(helpdesk, caller, order).await? {
        return Ok(found(person));
    }
    let kind = if caller.email.is_none() && policy.contact_when_phone_only {
        PersonKind::Contact
    } else {
        PersonKind::User
    };
    let name = caller
        .name
        .clone()
        .or_else(|| caller.email.clone())
        .or_else(|| caller.phone.clone())
        .unwrap_or_default();
    claim.confirm().await?;
    let person = helpdesk
        .create_person(&NewPerson {
            kind,
            name,
            email: caller.email.clone(),
            phone: caller.phone.clone(),
            organisation,
        })
        .await?;
    Ok(ResolvedRequester {
        requester: Requester::Person {
            id: person.id,
            kind: person.kind,
        },
        person: Some(person),
        created: true,
    })
}

fn found(person: Person) -> ResolvedRequester {
    ResolvedRequester {
        requester: Requester::Person {
            id: person.id,
            kind: person.kind,
        },
        person: Some(person),
        created: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_ids_compare_by_digits() {
        assert_eq!(tax_id_digits("12.345.678/0001-90"), "12345678000190");
        assert_eq!(tax_id_digits("12345678000190"), "12345678000190");
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            normalize_phone("(11) 98765-4321", Some("BR")).as_deref(),
            Ok("+5511987654321")
        );
        assert_eq!(
            normalize_phone("5511987654321", Some("BR")).as_deref(),
            Ok("+5511987654321")
        );
        assert_eq!(
            normalize_phone("5511987654321@s.whatsapp.net", None).as_deref(),
            Ok("+5511987654321")
        );
        assert_eq!(
            normalize_phone("+33 1 23 45 67 89", Some("BR")).as_deref(),
            Ok("+33123456789")
        );
        // WhatsApp ids of Brazilian mobiles without their ninth digit.
        assert_eq!(
            normalize_phone("553188776655@s.whatsapp.net", None).as_deref(),
            Ok("+5531988776655")
        );
        assert_eq!(
            normalize_phone("(31) 8877-6655", Some("BR")).as_deref(),
            Ok("+5531988776655")
        );
        // A landline keeps its eight digits.
        assert_eq!(
            normalize_phone("(31) 3333-4444", Some("BR")).as_deref(),
            Ok("+553133334444")
        );
        assert!(normalize_phone("12", Some("BR")).is_err());
        assert!(normalize_phone("", None).is_err());
        // A device's JID is its person's number.
        assert_eq!(
            normalize_phone("5511987654321:12@s.whatsapp.net", None).as_deref(),
            Ok("+5511987654321")
        );
    }

    #[test]
    fn a_whatsapp_id_is_an_international_number_whatever_the_default_country() {
        // Danish: read in the default country first, it became +55 45 2012-3456.
        assert_eq!(
            normalize_phone("4520123456@s.whatsapp.net", Some("BR")).as_deref(),
            Ok("+4520123456")
        );
        assert_eq!(
            normalize_phone("4520123456@c.us", Some("BR")).as_deref(),
            Ok("+4520123456")
        );
        assert_eq!(
            normalize_phone("4520123456:3@s.whatsapp.net", Some("BR")).as_deref(),
            Ok("+4520123456")
        );
        // Brazilian JIDs, with and without the ninth digit, stay Brazilian.
        assert_eq!(
            normalize_phone("5511987654321@s.whatsapp.net", Some("BR")).as_deref(),
            Ok("+5511987654321")
        );
        assert_eq!(
            normalize_phone("553188776655@s.whatsapp.net", Some("BR")).as_deref(),
            Ok("+5531988776655")
        );
        // The same ten digits without a JID may be national: read in the
        // default country, as before.
        assert_eq!(
            normalize_phone("4520123456", Some("BR")).as_deref(),
            Ok("+554520123456")
        );
    }

    #[test]
    fn whatsapp_ids_that_are_not_numbers_are_refused() {
        // A LID's digits are an account id: read as a number it would name
        // whoever has that phone.
        let lid = normalize_phone("5511987654321@lid", None);
        assert!(lid.is_err_and(|e| e.to_string().contains("LID")));
        assert!(normalize_phone("120363041234567890@g.us", None).is_err());
        assert!(normalize_phone("5511987654321@g.us", None).is_err());
    }

    #[test]
    fn a_phone_names_the_best_match_and_never_guesses_between_partial_ones() {
        let sender = "+5531988776655";
        let rank = |people: &[(i64, &str)]| {
            choose_by_phone(
                people
                    .iter()
                    .filter_map(|(id, p)| Some((*id, best_phone_match([*p], sender)?))),
            )
        };
        // The full number wins over an older record without the area code.
        assert_eq!(
            rank(&[(1, "98877-6655"), (2, "+55 31 98877-6655")]),
            PhoneChoice::One(2)
        );
        assert_eq!(
            rank(&[(1, "98877-6655"), (2, "(31) 98877-6655")]),
            PhoneChoice::One(2)
        );
        // A mobile stored without its ninth digit nor its area code.
        assert_eq!(
            rank(&[(5, "8877-6655"), (9, "+55 31 98877-6655")]),
            PhoneChoice::One(9)
        );
        // Two people with the same partial number: nobody.
        assert_eq!(
            rank(&[(3, "98877-6655"), (1, "9 8877 6655")]),
            PhoneChoice::Ambiguous(vec![1, 3])
        );
        // The same full number twice: the oldest record, as before.
        assert_eq!(
            rank(&[(5, "+5531988776655"), (4, "+55 31 98877 6655")]),
            PhoneChoice::One(4)
        );
        assert_eq!(rank(&[(1, "+55 21 98877-6655")]), PhoneChoice::None);
        // The best of a person's cells counts; an empty cell matches nothing.
        assert_eq!(
            best_phone_match(["", "98877-6655", "+55 31 98877-6655"], sender),
            glpi::phone_match("+55 31 98877-6655", sender)
        );
        assert_eq!(best_phone_match(["", ""], sender), None);
    }

    #[test]
    fn stored_phones_match_by_digits() {
        assert!(same_phone("+55 (11) 98765-4321", "+5511987654321"));
        assert!(same_phone("11987654321", "+5511987654321"));
        assert!(!same_phone("11987654322", "+5511987654321"));
        assert!(!same_phone("", "+5511987654321"));
        // A mobile stored before its ninth digit is the same line.
        assert!(same_phone("(31) 8877-6655", "+5531988776655"));
        assert!(same_phone("+55 31 8877-6655", "+5531988776655"));
        assert!(!same_phone("(31) 8877-6656", "+5531988776655"));
    }
}
