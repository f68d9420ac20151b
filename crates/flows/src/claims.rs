//! One creator of a help-desk person at a time, across every process that
//! shares the store.
//!
//! Finding a person and creating one when none is found are two calls: two
//! jobs asking for the same new phone or email at once (a `contact_created`
//! and a `message_created` of one new Chatwoot contact on two instances, two
//! intake requests of one new caller) would both find nobody and both create.
//! GLPI Users are saved by their unique login; GLPI Contacts and iTop Persons
//! are not. So a job about to create claims the person's keys in the store
//! ([`store::Store::claim_key`]): the winner searches again, creates when still
//! missing, records what it needs and releases; a loser gets
//! [`ClaimError::Busy`], a retryable error whose retry finds the person.

use std::time::Duration;

use store::{Store, StoreError};

use crate::helpdesk::Helpdesk;

/// The kv namespace of person claims.
pub const NAMESPACE: &str = "claim.person";

/// When a job that found a person's creation under way tries again: the
/// creation is a search and one create call, usually well under a second.
pub const RETRY_AFTER: Duration = Duration::from_millis(1500);

/// The shortest lease, whatever the target's timeout.
const MIN_LEASE: Duration = Duration::from_secs(10);

/// Why a person could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another job (in this process or another) is creating this person now.
    #[error("another job is creating this person right now; trying again shortly")]
    Busy,
    /// The store could not say.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ClaimError {
    /// Busy always is (the retry finds the person); the store when its error is.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClaimError::Busy => true,
            ClaimError::Store(e) => e.is_retryable(),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClaimError::Busy => Some(RETRY_AFTER),
            ClaimError::Store(_) => None,
        }
    }
}

impl From<ClaimError> for engine::JobError {
    fn from(error: ClaimError) -> Self {
        let reason = error.to_string();
        match (error.is_retryable(), error.retry_after()) {
            (true, Some(after)) => engine::JobError::transient_after(reason, after),
            (true, None) => engine::JobError::transient(reason),
            (false, _) => engine::JobError::permanent(reason),
        }
    }
}

/// The claim key of a person by email on a target (trimmed, lower-cased).
pub fn email_key(target: &str, email: &str) -> String {
    format!("{target}:email:{}", email.trim().to_lowercase())
}

/// The claim key of a person by phone on a target (`phone` in E.164).
pub fn phone_key(target: &str, phone: &str) -> String {
    format!("{target}:phone:{}", phone.trim())
}

/// The keys of a person with this email and phone on `target`: whoever
/// creates someone with either holds it.
pub fn identity_keys(target: &str, email: Option<&str>, phone: Option<&str>) -> Vec<String> {
    let email = email
        .filter(|e| !e.trim().is_empty())
        .map(|e| email_key(target, e));
    let phone = phone
        .filter(|p| !p.trim().is_empty())
        .map(|p| phone_key(target, p));
    email.into_iter().chain(phone).collect()
}

/// How long a claim on `helpdesk` lasts: four of its call timeouts (a create
/// call that logs in again first takes two), at least ten seconds. The
/// holder renews it right before the create call ([`HeldClaim::confirm`]),
/// so the lease needs to cover that call, not the searches before it; a
/// crashed holder blocks the person's creation for at most this long.
pub fn lease_for(helpdesk: &dyn Helpdesk) -> Duration {
    helpdesk.call_timeout().saturating_mul(4).max(MIN_LEASE)
}

/// Claims persons in one store.
#[derive(Clone)]
pub struct PersonClaims {
    store: Store,
}

impl PersonClaims {
    pub fn new(store: Store) -> Self {
        PersonClaims { store }
    }

    /// Claims every key for `lease`, in sorted order. `Busy` when another
    /// owner holds one of them (the keys taken meanwhile are given back).
    pub async fn claim(&self, keys: Vec<String>, lease: Duration) -> Result<HeldClaim, ClaimError> {
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        let mut held = HeldClaim {
            store: self.store.clone(),
            owner: uuid::Uuid::new_v4().to_string(),
            keys: Vec::with_capacity(keys.len()),
            lease,
        };
        for key in keys {
            match self
                .store
                .claim_key(NAMESPACE, &key, &held.owner, lease)
                .await
            {
                Ok(true) => held.keys.push(key),
                Ok(false) => {
                    held.release().await;
                    return Err(ClaimError::Busy);
                }
                Err(error) => {
                    held.release().await;
                    return Err(error.into());
                }
            }
        }
        Ok(held)
    }
}

/// Person keys held by one job. Give them back with [`HeldClaim::release`];
/// one dropped unreleased (its job cancelled) is released in the background,
/// and one whose process died lapses with its lease.
pub struct HeldClaim {
    store: Store,
    owner: String,
    keys: Vec<String>,
    lease: Duration,
}

impl HeldClaim {
    /// Right before the create call: renews every key for a full lease, so
    /// the claim outlives the call, and fails with `Busy` when one was taken
    /// over meanwhile (its lease ran out during slow searches and another job
    /// claimed it: that job creates, this one must not).
    pub async fn confirm(&self) -> Result<(), ClaimError> {
        for key in &self.keys {
            if !self
                .store
                .claim_key(NAMESPACE, key, &self.owner, self.lease)
                .await?
            {
                return Err(ClaimError::Busy);
            }
        }
        Ok(())
    }

    /// Gives every key back. A failure is logged: the lease ends the claim.
    pub async fn release(mut self) {
        let keys = std::mem::take(&mut self.keys);
        release_keys(&self.store, &self.owner, &keys).await;
    }
}

async fn release_keys(store: &Store, owner: &str, keys: &[String]) {
    for key in keys {
        if let Err(error) = store.release_key(NAMESPACE, key, owner).await {
            tracing::warn!(%error, "a person claim could not be given back; it lapses with its lease");
        }
    }
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.keys);
        let store = self.store.clone();
        let owner = std::mem::take(&mut self.owner);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release_keys(&store, &owner, &keys).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_keys_are_per_target_and_normalised() {
        assert_eq!(
            identity_keys("glpi", Some(" Ana@ACME.com "), Some("+5511912345678")),
            vec![
                "glpi:email:ana@acme.com".to_string(),
                "glpi:phone:+5511912345678".to_string()
            ]
        );
        assert_eq!(identity_keys("itop", None, Some("")), Vec::<String>::new());
        assert_ne!(
            identity_keys("glpi", Some("a@b.c"), None),
            identity_keys("itop", Some("a@b.c"), None)
        );
    }

    #[tokio::test]
    async fn a_second_claim_is_busy_until_the_first_is_released() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let claims = PersonClaims::new(store);
        let lease = Duration::from_secs(60);
        let first = claims
            .claim(vec!["t:phone:+1".into(), "t:contact:7".into()], lease)
            .await
            .unwrap();
        first.confirm().await.unwrap();
        // One shared key is enough to lose, and the loser keeps nothing.
        let lost = claims
            .claim(vec!["t:contact:8".into(), "t:phone:+1".into()], lease)
            .await;
        assert!(matches!(lost, Err(ClaimError::Busy)));
        let other = claims
            .claim(vec!["t:contact:8".into()], lease)
            .await
            .unwrap();
        other.release().await;
        first.release().await;
        let again = claims
            .claim(vec!["t:phone:+1".into()], lease)
            .await
            .unwrap();
        // Dropped unreleased: given back in the background.
        drop(again);
        let back = crate::claims::tests::eventually(|| {
            let claims = claims.clone();
            async move { claims.claim(vec!["t:phone:+1".into()], lease).await.is_ok() }
        })
        .await;
        assert!(back);
    }

    pub(crate) async fn eventually<F, Fut>(mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..100 {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}
