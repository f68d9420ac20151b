//! One configured Chatwoot source: its settings, its Chatwoot client, its
//! target and its records. The synchronisation steps are `impl SourceSync`
//! blocks in the sibling modules.

use std::collections::HashMap;
use std::sync::Arc;

use chatwoot::{ChatwootClient, ChatwootConfig, SenderKind};
use config::sources::ChatwootSource;
use flows::Helpdesk;
use flows::claims::PersonClaims;
use serde_json::Value;
use store::Store;

use crate::attachments::{AllowedHosts, download_client};
use crate::error::{SyncError, SyncResult};
use crate::links::Links;
use crate::messages::ChatMessage;
use crate::text::fingerprint;

/// Custom-attribute keys the bridge writes on conversations.
pub const CONVERSATION_KEYS: [&str; 2] = ["glpi_ticket_id", "glpi_ticket_url"];
/// Custom-attribute keys the bridge writes on contacts.
pub const CONTACT_KEYS: [&str; 2] = ["glpi_user_id", "glpi_contact_id"];
/// Every custom-attribute key the bridge writes (their changes are noise).
pub const OWN_KEYS: [&str; 4] = [
    "glpi_ticket_id",
    "glpi_ticket_url",
    "glpi_user_id",
    "glpi_contact_id",
];
/// `source_id` prefix of the private notes the bridge posts.
pub const SOURCE_ID_PREFIX: &str = "ticketbridge:";
/// Fingerprint of "the bridge wrote this object".
const BY_BRIDGE: &str = "bridge";

/// The synchronisation of one Chatwoot account with one target.
pub struct SourceSync {
    pub(crate) name: String,
    pub(crate) settings: ChatwootSource,
    pub(crate) helpdesk: Arc<dyn Helpdesk>,
    pub(crate) chatwoot: ChatwootClient,
    pub(crate) links: Links,
    pub(crate) store: Store,
    /// Attachment downloads (redirects followed to allowed hosts only).
    pub(crate) http: reqwest::Client,
    /// Where attachments may be downloaded from.
    pub(crate) allowed_hosts: Arc<AllowedHosts>,
    category: tokio::sync::OnceCell<Option<i64>>,
    contact_locks: KeyedLocks,
    /// Who is creating which person, across every instance on the store.
    pub(crate) claims: PersonClaims,
}

/// Async locks by id; an entry lives only while someone holds or waits for
/// it, so the map does not grow with every contact ever seen.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    map: parking_lot::Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held [`KeyedLocks`] lock; dropping it frees the entry nobody else uses.
pub(crate) struct KeyedGuard<'a> {
    locks: &'a KeyedLocks,
    key: u64,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub(crate) async fn lock(&self, key: u64) -> KeyedGuard<'_> {
        let mutex = self.map.lock().entry(key).or_default().clone();
        let guard = mutex.lock_owned().await;
        KeyedGuard {
            locks: self,
            key,
            guard: Some(guard),
        }
    }

    /// Entries kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        // Release first: then the map holds the only other reference unless
        // someone waits (their clone was taken under the map's lock).
        drop(self.guard.take());
        let mut map = self.locks.map.lock();
        if map
            .get(&self.key)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            map.remove(&self.key);
        }
    }
}

impl SourceSync {
    /// Builds the source; no network call is made.
    pub fn new(
        name: &str,
        settings: ChatwootSource,
        helpdesk: Arc<dyn Helpdesk>,
        store: Store,
    ) -> SyncResult<Self> {
        let chatwoot = ChatwootClient::new(ChatwootConfig {
            base_url: settings.url.clone(),
            api_access_token: settings.api_access_token.clone(),
            account_id: settings.account_id,
            timeout: settings.timeout,
            max_response_bytes: chatwoot::DEFAULT_MAX_RESPONSE_BYTES,
        })?;
        let allowed_hosts = Arc::new(AllowedHosts::new(&settings.url, &settings.attachment_hosts));
        let http = download_client(allowed_hosts.clone(), settings.timeout)?;
        let links = Links::new(store.clone(), name, helpdesk.name());
        let claims = PersonClaims::new(store.clone());
        Ok(Self {
            name: name.to_owned(),
            settings,
            helpdesk,
            chatwoot,
            links,
            store,
            http,
            allowed_hosts,
            category: tokio::sync::OnceCell::new(),
            contact_locks: KeyedLocks::default(),
            claims,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> &ChatwootSource {
        &self.settings
    }

    /// The target's name (its job queue).
    pub fn target(&self) -> &str {
        self.helpdesk.name()
    }

    /// True when the inbox filter lets this inbox through.
    pub fn allows_inbox(&self, inbox: Option<u64>) -> bool {
        self.settings.inboxes.is_empty()
            || inbox.is_some_and(|id| self.settings.inboxes.contains(&id))
    }

    /// The configured category, resolved by name once.
    pub(crate) async fn category(&self) -> SyncResult<Option<i64>> {
        use config::sources::CategorySetting;
        let found = self
            .category
            .get_or_try_init(|| async {
                match &self.settings.category {
                    None => Ok::<_, SyncError>(None),
                    Some(CategorySetting::Id(id)) => Ok(Some(*id)),
                    Some(CategorySetting::Name(name)) => {
                        let id = self.helpdesk.find_category(name).await?.map(|c| c.id);
                        if id.is_none() {
                            tracing::warn!(source = %self.name, category = %name, "category not found in the target; tickets get none");
                        }
                        Ok(id)
                    }
                }
            })
            .await?;
        Ok(*found)
    }

    /// Ticket `id` as people read it in a note: `#7` on GLPI, the `ref`
    /// (`R-000004`) on iTop, read from the target; `#id` when the ticket
    /// cannot be found.
    pub(crate) async fn ticket_reference(&self, id: i64) -> SyncResult<String> {
        let reference = match self.helpdesk.reference_of_id(id) {
            Some(reference) => reference,
            None => self
                .helpdesk
                .ticket(id)
                .await?
                .map(|t| t.reference)
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| id.to_string()),
        };
        Ok(flows::helpdesk::display_reference(&reference))
    }

    /// Serialises work on one contact inside this process (contact events
    /// and conversation jobs may resolve the same contact at once).
    pub(crate) async fn lock_contact(&self, contact_id: u64) -> KeyedGuard<'_> {
        self.contact_locks.lock(contact_id).await
    }

    // ---- loop prevention ---------------------------------------------------

    fn target_system(&self) -> String {
        format!("target:{}", self.helpdesk.name())
    }

    /// Before writing `text` to a ticket: its echo will be recognised even
    /// if the process dies before the followup id is known.
    pub(crate) async fn remember_followup_text(&self, ticket: i64, text: &str) -> SyncResult<()> {
        self.store
            .remember_write(
                &self.target_system(),
                &format!("ticket:{ticket}"),
                &fingerprint(text),
            )
            .await?;
        Ok(())
    }

    /// After the write: its id now says "the bridge's", and the content
    /// marker goes, so a later followup with the same text ("Obrigado")
    /// written by someone else is not taken for an echo.
    pub(crate) async fn forget_followup_text(&self, ticket: i64, text: &str) -> SyncResult<()> {
        self.store
            .forget_write(
                &self.target_system(),
                &format!("ticket:{ticket}"),
                &fingerprint(text),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn remember_followup(&self, followup: i64) -> SyncResult<()> {
        self.store
            .remember_write(
                &self.target_system(),
                &format!("followup:{followup}"),
                BY_BRIDGE,
            )
            .await?;
        Ok(())
    }

    /// Whether a target followup was written by the bridge: by its id, or
    /// by a content marker left by a write whose id was never recorded (a
    /// crash). Such a marker is taken by the first followup it matches, and
    /// that followup's id recorded instead: one write, one echo.
    pub(crate) async fn is_own_followup(
        &self,
        ticket: i64,
        followup: i64,
        text: &str,
    ) -> SyncResult<bool> {
        let system = self.target_system();
        if self
            .store
            .is_own_write(&system, &format!("followup:{followup}"), BY_BRIDGE)
            .await?
        {
            return Ok(true);
        }
        if self
            .store
            .forget_write(&system, &format!("ticket:{ticket}"), &fingerprint(text))
            .await?
        {
            self.remember_followup(followup).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Before posting `text` in a conversation.
    pub(crate) async fn remember_message_text(
        &self,
        conversation: u64,
        text: &str,
    ) -> SyncResult<()> {
        self.store
            .remember_write(
                &self.links.chatwoot,
                &format!("conversation:{conversation}"),
                &fingerprint(text),
            )
            .await?;
        Ok(())
    }

    /// After the post: the id stands for it, the content marker goes.
    pub(crate) async fn forget_message_text(
        &self,
        conversation: u64,
        text: &str,
    ) -> SyncResult<()> {
        self.store
            .forget_write(
                &self.links.chatwoot,
                &format!("conversation:{conversation}"),
                &fingerprint(text),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn remember_message(&self, message: u64) -> SyncResult<()> {
        self.store
            .remember_write(
                &self.links.chatwoot,
                &format!("message:{message}"),
                BY_BRIDGE,
            )
            .await?;
        Ok(())
    }

    /// Whether the bridge posted `message` (see [`Self::remember_message`]).
    pub(crate) async fn is_remembered_message(&self, message: u64) -> SyncResult<bool> {
        Ok(self
            .store
            .is_own_write(
                &self.links.chatwoot,
                &format!("message:{message}"),
                BY_BRIDGE,
            )
            .await?)
    }

    /// Whether a Chatwoot message is the echo of the bridge's own post.
    /// Customer (incoming) messages never are.
    pub(crate) async fn is_own_message(&self, message: &ChatMessage) -> SyncResult<bool> {
        if message.sender_kind == Some(SenderKind::Contact) || message.is_incoming() {
            return Ok(false);
        }
        if message
            .source_id
            .as_deref()
            .is_some_and(|s| s.starts_with(SOURCE_ID_PREFIX))
        {
            return Ok(true);
        }
        if self.is_remembered_message(message.id).await? {
            return Ok(true);
        }
        // A post whose id was never recorded: its content marker is taken by
        // the first message it matches (one post, one echo).
        if self
            .store
            .forget_write(
                &self.links.chatwoot,
                &format!("conversation:{}", message.conversation_id),
                &fingerprint(&message.content),
            )
            .await?
        {
            self.remember_message(message.id).await?;
            return Ok(true);
        }
        Ok(false)
    }

    // ---- agents --------------------------------------------------------------

    fn agents_namespace(&self) -> String {
        format!("{}:agents", self.links.chatwoot)
    }

    /// Remembers an agent's email (webhook senders carry it, API ones do not).
    pub(crate) async fn learn_agent(&self, agent_id: u64, email: &str) -> SyncResult<()> {
        let ns = self.agents_namespace();
        let key = agent_id.to_string();
        let known = self.store.kv_get(&ns, &key).await?;
        if known.as_ref().and_then(Value::as_str) != Some(email) {
            self.store
                .kv_put(&ns, &key, &Value::String(email.to_owned()))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn agent_email(&self, agent_id: u64) -> SyncResult<Option<String>> {
        Ok(self
            .store
            .kv_get(&self.agents_namespace(), &agent_id.to_string())
            .await?
            .and_then(|v| v.as_str().map(str::to_owned)))
    }

    /// The target user of a Chatwoot agent, matched by email.
    pub(crate) async fn agent_user(
        &self,
        agent_id: u64,
        email: Option<&str>,
    ) -> SyncResult<Option<i64>> {
        let email = match email {
            Some(email) => Some(email.to_owned()),
            None => self.agent_email(agent_id).await?,
        };
        let Some(email) = email.filter(|e| e.contains('@')) else {
            return Ok(None);
        };
        let person = self
            .helpdesk
            .find_person(&flows::helpdesk::PersonQuery {
                email: Some(email),
                phone: None,
            })
            .await?;
        Ok(person
            .filter(|p| p.kind == flows::helpdesk::PersonKind::User)
            .map(|p| p.id))
    }
}

#[cfg(test)]
mod tests {
    use super::KeyedLocks;

    #[tokio::test]
    async fn contact_locks_keep_no_entry_nobody_holds() {
        let locks = KeyedLocks::default();
        for id in 0..100 {
            let _held = locks.lock(id).await;
        }
        assert_eq!(locks.len(), 0);
        // Held by one, awaited by another: the entry stays until both are done.
        let first = locks.lock(7).await;
        let second = locks.lock(7);
        tokio::join!(
            async {
                let held = second.await;
                assert_eq!(locks.len(), 1);
                drop(held);
            },
            async {
                tokio::task::yield_now().await;
                assert_eq!(locks.len(), 1);
                drop(first);
            }
        );
        assert_eq!(locks.len(), 0);
    }
}
