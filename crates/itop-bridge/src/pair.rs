//! Synchronising one ticket pair (external ticket E ↔ internal ticket I),
//! reading the current state of both sides through REST. Every run applies
//! the same rules, so a repeat, an out-of-order webhook or the reconciler
//! all converge to the same result:
//!
//! 1. no link yet: create the internal ticket (two-phase: pending link,
//!    create with a marker in the description, linked);
//! 2. private-log entries of each side become one attachment file each on
//!    the other side (linked by entry hash);
//! 3. attachments: linked pairs are compared by content hash (the changed
//!    side wins; deleted on one side → deleted on the other); unlinked ones
//!    are copied (or adopted when an identical copy exists after a crash);
//! 4. status: the side whose state differs from the last one seen is pushed
//!    to the other through the stimuli and fields the target state needs.

use std::collections::{BTreeSet, HashMap, HashSet};

use itop::{
    Attachment, Key, NewAttachment, NewUserRequest, USER_REQUEST_FIELDS, UserRequest, oql_quote,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use store::{Link, LinkFilter, LinkState, NewAudit, NewLink, Store};

use crate::context::{ATTACHMENT_LINK, Bridge, COMMENT, LOG_LINK, TICKET_LINK};
use crate::error::BridgeError;
use crate::fingerprint::{
    DELETED, attachment_hash, bucket_of, create_source, entry_hash, legacy_entry_hash, push_source,
    ticket_state,
};
use crate::lifecycle::{Step, next_step};
use crate::side::Side;

const ALL_LINKS: i64 = 100_000;

/// Store namespace of the items a side refused for good (a file too large,
/// a right missing): one key per item and content, so it is not tried on
/// every run, yet a changed item is.
pub const REFUSED_NS: &str = "itop-bridge.refused";

/// A refused item is tried again after this long (a limit raised, a right
/// granted).
const REFUSAL_RETRY_MS: i64 = 24 * 60 * 60 * 1000;

/// The error a run ends with: the first retryable one, else the first one.
#[derive(Default)]
struct Failure(Option<BridgeError>);

impl Failure {
    fn add(&mut self, error: BridgeError) {
        let replace = match &self.0 {
            None => true,
            Some(kept) => !kept.is_retryable() && error.is_retryable(),
        };
        if replace {
            self.0 = Some(error);
        }
    }
}

/// What the ticket link remembers between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PairState {
    /// External status last seen (after the bridge's own writes).
    pub external_status: Option<String>,
    /// Internal status last seen.
    pub internal_status: Option<String>,
    /// The external ticket's ref, for people reading links.
    #[serde(default)]
    pub external_ref: String,
    /// The external ticket's `last_update` when its status was last seen:
    /// the reconciler skips a pair closed on both sides until it changes.
    #[serde(default)]
    pub external_last_update: String,
    /// The last push an iTop refused for good. Not tried again until either
    /// ticket changes (its `last_update` differs from the one noted here), so
    /// the reconciler does not make a dead letter of it on every sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedPush>,
}

/// A status push an iTop refused for good, as the pair remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedPush {
    /// The side that refused.
    pub side: Side,
    /// The state the push was to reach.
    pub wanted: String,
    pub stimulus: String,
    /// iTop's answer.
    pub reason: String,
    /// Both tickets' `last_update` after the refusal.
    pub external_last_update: String,
    pub internal_last_update: String,
    /// `push_source` of the ticket the push came from.
    #[serde(default)]
    pub source: String,
}

/// The stimulus a side refused while `drive` walked it.
struct Refusal {
    stimulus: &'static str,
    reason: String,
}

/// What `sync_status` leaves: both tickets as they are now, and the push
/// refused on the way, if any.
struct StatusOutcome {
    external: UserRequest,
    internal: UserRequest,
    refused: Option<(Side, String, Refusal)>,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairOutcome {
    /// The internal ticket was created (or found by its marker) now.
    Created { internal_id: u64 },
    /// Both tickets exist and were compared.
    Synced { internal_id: u64 },
    /// Nothing to do (a ticket is gone, or the ticket class is wrong).
    Skipped(String),
}

/// One run over one pair.
pub struct PairSync<'a> {
    pub bridge: &'a Bridge,
    pub store: &'a Store,
    pub job_id: Option<i64>,
    /// Which side announced the change; it wins when both changed.
    pub origin: Option<Side>,
}

/// Text of an attachment file made from a private-log entry.
fn entry_file(reference: &str, side: Side, entry: &itop::CaseLogEntry) -> String {
    format!(
        "Private log entry of {reference} ({side} iTop)\nAuthor: {}\nDate: {}\n\n{}\n",
        entry.user_login, entry.date, entry.message
    )
}

fn entry_filename(entry: &itop::CaseLogEntry, hash: &str) -> String {
    let stamp: String = entry.date.chars().filter(char::is_ascii_digit).collect();
    format!("private-log-{stamp}-{}.txt", &hash[..12.min(hash.len())])
}

fn parse_id(text: Option<&str>) -> Option<u64> {
    text.and_then(|t| t.parse().ok())
}

/// The content hash an attachment link last synchronised.
fn link_hash(link: &Link) -> &str {
    link.data.get("hash").and_then(Value::as_str).unwrap_or("")
}

impl PairSync<'_> {
    async fn audit(&self, side: Side, action: &str, object_key: String, detail: Value) {
        let entry = NewAudit {
            job_id: self.job_id,
            system: self.bridge.system(side),
            action: action.to_string(),
            object_key,
            detail,
        };
        if let Err(error) = self.store.audit(&entry).await {
            tracing::warn!(%error, "could not write an audit line");
        }
    }

    /// Whether `note` names an item refused less than a day ago.
    async fn refused_recently(&self, note: &str) -> Result<bool, BridgeError> {
        let at = self
            .store
            .kv_get(REFUSED_NS, note)
            .await?
            .and_then(|v| v.get("at").and_then(Value::as_i64));
        Ok(at.is_some_and(|at| store::now_ms().saturating_sub(at) < REFUSAL_RETRY_MS))
    }

    /// One item's write. An iTop refusal (not worth retrying) is audited and
    /// noted under `note`, and the run goes on (`None`); anything a retry
    /// may fix is returned.
    async fn attempt<T>(
        &self,
        note: &str,
        side: Side,
        object_key: String,
        what: &str,
        write: impl Future<Output = Result<T, BridgeError>>,
    ) -> Result<Option<T>, BridgeError> {
        match write.await {
            Ok(value) => Ok(Some(value)),
            Err(error @ BridgeError::Itop { .. }) if !error.is_retryable() => {
                tracing::warn!(%side, %object_key, what, %error, "item refused");
                let detail =
                    json!({"what": what, "error": error.to_string(), "at": store::now_ms()});
                self.audit(side, "item_refused", object_key, detail.clone())
                    .await;
                self.store.kv_put(REFUSED_NS, note, &detail).await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    async fn read_ticket(&self, side: Side, id: u64) -> Result<Option<UserRequest>, BridgeError> {
        Ok(self
            .bridge
            .client(side)
            .get_one(self.bridge.class(), id, USER_REQUEST_FIELDS)
            .await
            .map_err(BridgeError::itop(side))?
            .as_ref()
            .map(UserRequest::from_object))
    }

    /// Runs the rules for the pair of external ticket `external_id`.
    pub async fn run(&self, external_id: u64) -> Result<PairOutcome, BridgeError> {
        let bridge = self.bridge;
        let Some(external) = self.read_ticket(Side::External, external_id).await? else {
            return Ok(PairOutcome::Skipped(format!(
                "external ticket {external_id} does not exist"
            )));
        };
        let link = self
            .store
            .link(
                TICKET_LINK,
                &bridge.ticket_system(Side::External),
                &external_id.to_string(),
                &bridge.ticket_system(Side::Internal),
            )
            .await?;
        let (internal_id, mut state, created) = match link {
            Some(Link {
                state: LinkState::Linked,
                target_id,
                data,
                ..
            }) => {
                let id = parse_id(target_id.as_deref()).ok_or_else(|| {
                    BridgeError::Payload(format!("ticket link of {external_id} has no target"))
                })?;
                (id, serde_json::from_value(data).unwrap_or_default(), false)
            }
            // Created by a run that did not finish (its files, its status):
            // the ticket is known, this run finishes the pair.
            Some(Link {
                state: LinkState::Pending,
                target_id: Some(target),
                data,
                ..
            }) if parse_id(Some(&target)).is_some() => {
                let id = parse_id(Some(&target)).unwrap_or_default();
                (id, serde_json::from_value(data).unwrap_or_default(), true)
            }
            pending => {
                let note = format!("{}/create-ticket", bridge.pair_system(external_id));
                let noted = |refused: &Value, field: &str, now: &str| {
                    refused.get(field).and_then(Value::as_str) == Some(now)
                };
                if let Some(refused) = self.store.kv_get(REFUSED_NS, &note).await?
                    && noted(&refused, "external_last_update", &external.last_update)
                    && noted(&refused, "source", &create_source(&external))
                {
                    return Ok(PairOutcome::Skipped(format!(
                        "the internal iTop refused to create the mirror of external ticket \
                         {external_id}; tried again when that ticket changes"
                    )));
                }
                let (id, state) = self
                    .create_internal(&external, pending.is_some(), &note)
                    .await?;
                (id, state, true)
            }
        };
        let Some(internal) = self.read_ticket(Side::Internal, internal_id).await? else {
            return Ok(PairOutcome::Skipped(format!(
                "internal ticket {internal_id} (linked to external {external_id}) does not exist"
            )));
        };
        if state.internal_status.is_none() && created {
            state.internal_status = Some(internal.status.clone());
        }
        // Each step runs whatever the others did: a refused file must not
        // stop the status (items refused for good are noted inside a step).
        let mut failure = Failure::default();
        let mut generated = HashMap::new();
        match self
            .sync_private_logs(&external, &internal, &mut generated)
            .await
        {
            // A file made from a log entry but not yet linked would look
            // like an ordinary attachment: attachments wait for the logs.
            Err(error) => failure.add(error),
            Ok(()) => {
                if let Err(error) = self
                    .sync_attachments(&external, &internal, &generated)
                    .await
                {
                    failure.add(error);
                }
            }
        }
        state.external_ref = external.reference.clone();
        match self.sync_status(&mut state, external, internal).await {
            Ok(StatusOutcome {
                external,
                internal,
                refused,
            }) => {
                state.external_status = Some(external.status.clone());
                state.internal_status = Some(internal.status.clone());
                state.external_last_update = external.last_update.clone();
                if let Some((side, wanted, refusal)) = refused {
                    // Seen as they are (so the next sweep does not send the
                    // same refused call again), with the refusal noted.
                    let ticket = match side {
                        Side::External => &external,
                        Side::Internal => &internal,
                    };
                    failure.add(BridgeError::StimulusRefused {
                        side,
                        ticket: format!("{}::{} ({})", bridge.class(), ticket.id, ticket.reference),
                        stimulus: refusal.stimulus.to_string(),
                        wanted: wanted.clone(),
                        reason: refusal.reason.clone(),
                    });
                    state.refused = Some(RefusedPush {
                        side,
                        wanted,
                        stimulus: refusal.stimulus.to_string(),
                        reason: refusal.reason,
                        external_last_update: external.last_update.clone(),
                        internal_last_update: internal.last_update.clone(),
                        source: push_source(match side {
                            Side::External => &internal,
                            Side::Internal => &external,
                        }),
                    });
                }
            }
            // The source side's state stays as last seen, so the next run
            // pushes again; the states a stimulus reached on the driven side
            // are recorded already (`drive`), so they are not pushed back.
            Err(error) => failure.add(error),
        }
        self.put_ticket_link(external_id, Some(internal_id), LinkState::Linked, &state)
            .await?;
        if let Some(error) = failure.0 {
            return Err(error);
        }
        Ok(if created {
            PairOutcome::Created { internal_id }
        } else {
            PairOutcome::Synced { internal_id }
        })
    }

    async fn put_ticket_link(
        &self,
        external_id: u64,
        internal_id: Option<u64>,
        link_state: LinkState,
        state: &PairState,
    ) -> Result<(), BridgeError> {
        self.store
            .put_link(&NewLink {
                kind: TICKET_LINK.into(),
                source_system: self.bridge.ticket_system(Side::External),
                source_id: external_id.to_string(),
                target_system: self.bridge.ticket_system(Side::Internal),
                target_id: internal_id.map(|id| id.to_string()),
                state: link_state,
                data: serde_json::to_value(state).unwrap_or(Value::Null),
            })
            .await?;
        Ok(())
    }

    /// Two-phase create: pending link, then (unless a previous attempt left
    /// a ticket with our marker) create, then the internal id is stored on
    /// the pending link at once, so that the internal ticket's webhooks find
    /// their pair while this first run copies files; the caller links.
    ///
    /// A create the internal iTop refuses for good (a mandatory field of its
    /// own, a value its model lacks) is noted under `note` with the external
    /// ticket's `last_update`: it is not sent again (each failed create costs
    /// a ref number there, and a dead letter here) until that ticket changes.
    async fn create_internal(
        &self,
        external: &UserRequest,
        was_pending: bool,
        note: &str,
    ) -> Result<(u64, PairState), BridgeError> {
        let bridge = self.bridge;
        let marker = bridge.marker(external.id);
        let mut state = PairState {
            external_ref: external.reference.clone(),
            ..PairState::default()
        };
        if was_pending {
            if let Some(id) = self.find_own_create(external).await? {
                self.audit(
                    Side::Internal,
                    "ticket_adopted",
                    format!("{}::{id}", bridge.class()),
                    json!({"external_id": external.id, "marker": marker}),
                )
                .await;
                self.put_ticket_link(external.id, Some(id), LinkState::Pending, &state)
                    .await?;
                return Ok((id, state));
            }
        } else {
            self.put_ticket_link(external.id, None, LinkState::Pending, &state)
                .await?;
        }
        let defaults = &bridge.settings.internal;
        let description = format!(
            "{}{}",
            external.description,
            self.marker_paragraph(external)
        );
        let mut new = NewUserRequest::new(
            Key::Id(defaults.org_id),
            external.title.clone(),
            description,
        );
        new.caller = Some(Key::Id(defaults.caller_id));
        new.team = defaults.team_id.map(Key::Id);
        new.agent = defaults.agent_id.map(Key::Id);
        new.service = defaults.service_id.map(Key::Id);
        new.impact = Some(external.impact.clone()).filter(|s| !s.is_empty());
        new.urgency = Some(external.urgency.clone()).filter(|s| !s.is_empty());
        let created = match bridge
            .internal
            .create(bridge.class(), new.to_fields(), COMMENT, "id,status")
            .await
        {
            Ok(created) => created,
            Err(error) => {
                let error = BridgeError::Itop {
                    side: Side::Internal,
                    source: error,
                };
                if !error.is_retryable() {
                    let detail = json!({
                        "what": "create the internal ticket",
                        "error": error.to_string(),
                        "at": store::now_ms(),
                        "external_last_update": external.last_update,
                        "source": create_source(external),
                    });
                    self.audit(
                        Side::Internal,
                        "ticket_refused",
                        format!("{}::{}", bridge.class(), external.id),
                        detail.clone(),
                    )
                    .await;
                    self.store.kv_put(REFUSED_NS, note, &detail).await?;
                }
                return Err(error);
            }
        };
        self.store.kv_delete(REFUSED_NS, note).await?;
        self.audit(
            Side::Internal,
            "ticket_created",
            format!("{}::{}", bridge.class(), created.key),
            json!({"external_id": external.id, "external_ref": external.reference}),
        )
        .await;
        let status = created.text("status");
        state.internal_status = Some(status).filter(|s| !s.is_empty());
        self.put_ticket_link(external.id, Some(created.key), LinkState::Pending, &state)
            .await?;
        Ok((created.key, state))
    }

    /// The last paragraph of a mirrored ticket's description: the marker and
    /// the external ref, as the bridge writes it.
    fn marker_paragraph(&self, external: &UserRequest) -> String {
        format!(
            "<p>{} {}</p>",
            html_escape::encode_text(&self.bridge.marker(external.id)),
            html_escape::encode_text(&external.reference)
        )
    }

    /// The internal ticket an earlier attempt created for `external` (its
    /// answer lost): the lowest id whose description holds the bridge's own
    /// marker paragraph (marker and external ref; a customer quoting the bare
    /// marker is not it), searched with LIKE's wildcards escaped, and not
    /// linked to another external ticket.
    async fn find_own_create(&self, external: &UserRequest) -> Result<Option<u64>, BridgeError> {
        let bridge = self.bridge;
        let paragraph = self.marker_paragraph(external);
        let escaped = paragraph
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let oql = format!(
            "SELECT {} WHERE description LIKE {}",
            bridge.class(),
            oql_quote(&format!("%{escaped}%"))
        );
        let mut found: Vec<(u64, String)> = bridge
            .internal
            .get(bridge.class(), Key::Oql(oql), "id,description")
            .await
            .map_err(BridgeError::itop(Side::Internal))?
            .iter()
            .map(|o| (o.key, o.text("description")))
            .collect();
        found.sort_by_key(|(id, _)| *id);
        let own = external.id.to_string();
        for (id, description) in found {
            if !description.contains(&paragraph) {
                continue;
            }
            let links = self
                .store
                .links_to(
                    TICKET_LINK,
                    &bridge.ticket_system(Side::Internal),
                    &id.to_string(),
                )
                .await?;
            if links.iter().all(|l| l.source_id == own) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn ticket_of(&self, side: Side, external: &UserRequest, internal: &UserRequest) -> u64 {
        match side {
            Side::External => external.id,
            Side::Internal => internal.id,
        }
    }

    fn org_of(side: Side, external: &UserRequest, internal: &UserRequest) -> u64 {
        match side {
            Side::External => external.org_id,
            Side::Internal => internal.org_id,
        }
        .unwrap_or(0)
    }

    /// Ids of a ticket's attachments, ascending (no contents: one small
    /// answer whatever the files weigh).
    async fn attachment_ids(&self, side: Side, ticket: u64) -> Result<Vec<u64>, BridgeError> {
        self.bridge
            .client(side)
            .attachment_ids_of(self.bridge.class(), ticket)
            .await
            .map_err(BridgeError::itop(side))
    }

    /// One attachment of `ticket` with its contents, alone in its answer;
    /// `None` when it is gone since it was listed (deleted, or moved to
    /// another object).
    async fn attachment(
        &self,
        side: Side,
        ticket: u64,
        id: u64,
    ) -> Result<Option<Attachment>, BridgeError> {
        let found = self
            .bridge
            .client(side)
            .attachment(id)
            .await
            .map_err(BridgeError::itop(side))?;
        Ok(found.filter(|a| a.item_id == ticket && a.item_class == self.bridge.class()))
    }

    /// Ids of the attachments at either end of this pair's attachment links.
    async fn linked_attachments(
        &self,
        external_id: u64,
    ) -> Result<(Vec<Link>, HashSet<(Side, u64)>), BridgeError> {
        let links = self
            .store
            .links(&LinkFilter {
                kind: Some(ATTACHMENT_LINK.into()),
                source_system: Some(self.bridge.pair_system(external_id)),
                limit: Some(ALL_LINKS),
                ..LinkFilter::default()
            })
            .await?;
        let ends = links
            .iter()
            .flat_map(|l| {
                let e = parse_id(Some(&l.source_id)).map(|id| (Side::External, id));
                let i = parse_id(l.target_id.as_deref()).map(|id| (Side::Internal, id));
                e.into_iter().chain(i)
            })
            .collect();
        Ok((links, ends))
    }

    /// Id and filename of each attachment of `ticket` not in `skip`, read
    /// one at a time (iTop has no filename apart from the contents); the
    /// contents are dropped as soon as the name is taken.
    async fn filenames(
        &self,
        side: Side,
        ticket: u64,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Vec<(u64, String)>, BridgeError> {
        let mut names = Vec::new();
        for id in self.attachment_ids(side, ticket).await? {
            if skip(id) {
                continue;
            }
            if let Some(file) = self.attachment(side, ticket, id).await? {
                names.push((id, file.filename));
            }
        }
        Ok(names)
    }

    async fn create_attachment(
        &self,
        side: Side,
        ticket: u64,
        org: u64,
        filename: &str,
        mimetype: &str,
        data: &[u8],
    ) -> Result<u64, BridgeError> {
        let id = self
            .bridge
            .client(side)
            .create_attachment(
                &NewAttachment {
                    item_class: self.bridge.class().to_string(),
                    item_id: ticket,
                    item_org_id: org,
                    filename: filename.to_string(),
                    mimetype: mimetype.to_string(),
                    data: data.to_vec(),
                },
                COMMENT,
            )
            .await
            .map_err(BridgeError::itop(side))?;
        self.store
            .remember_write(
                &self.bridge.system(side),
                &format!("Attachment::{id}"),
                &attachment_hash(filename, data),
            )
            .await?;
        Ok(id)
    }

    /// Each private-log entry of one side → one text file on the other side.
    /// Returns the ids of those files per side (they are not attachments to
    /// copy back).
    async fn sync_private_logs(
        &self,
        external: &UserRequest,
        internal: &UserRequest,
        generated: &mut HashMap<Side, BTreeSet<u64>>,
    ) -> Result<(), BridgeError> {
        let bridge = self.bridge;
        let pair = bridge.pair_system(external.id);
        let files_system = format!("{pair}/files");
        let existing = self
            .store
            .links(&LinkFilter {
                kind: Some(LOG_LINK.into()),
                source_system: Some(pair.clone()),
                limit: Some(ALL_LINKS),
                ..LinkFilter::default()
            })
            .await?;
        let mut known: BTreeSet<String> = BTreeSet::new();
        let by_source: HashMap<&str, &Link> =
            existing.iter().map(|l| (l.source_id.as_str(), l)).collect();
        for link in &existing {
            known.insert(link.source_id.clone());
            let file_side = link
                .data
                .get("file_side")
                .and_then(Value::as_str)
                .and_then(Side::parse);
            if let (Some(side), Some(id)) = (file_side, parse_id(link.target_id.as_deref())) {
                generated.entry(side).or_default().insert(id);
            }
        }
        for (side, ticket) in [(Side::External, external), (Side::Internal, internal)] {
            let other = side.other();
            // Unlinked files of the other ticket by name, read when first
            // needed: a file of an entry is found there by its name.
            let mut other_files: Option<Vec<(u64, String)>> = None;
            for entry in &ticket.private_log {
                let hash = entry_hash(entry);
                let source_id = format!("{side}:{hash}");
                let note = format!("{pair}/log/{source_id}");
                if known.contains(&source_id) {
                    continue;
                }
                // Filed by an older ticketbridge under the identity that
                // covered iTop's renderings: linked again under the stable
                // one, while the old identity still matches.
                if let Some(old) =
                    by_source.get(format!("{side}:{}", legacy_entry_hash(entry)).as_str())
                {
                    self.store
                        .put_link(&NewLink {
                            kind: LOG_LINK.into(),
                            source_system: pair.clone(),
                            source_id: source_id.clone(),
                            target_system: old.target_system.clone(),
                            target_id: old.target_id.clone(),
                            state: LinkState::Linked,
                            data: old.data.clone(),
                        })
                        .await?;
                    self.store.delete_link(old.id).await?;
                    known.insert(source_id);
                    continue;
                }
                if self.refused_recently(&note).await? {
                    continue;
                }
                let filename = entry_filename(entry, &hash);
                let other_ticket = self.ticket_of(other, external, internal);
                if other_files.is_none() {
                    // A file left by an attempt that crashed before linking
                    // is linked to nothing: files filed for other entries
                    // and attachments linked to their twin are not read.
                    let (_, linked) = self.linked_attachments(external.id).await?;
                    let made = generated.get(&other).cloned().unwrap_or_default();
                    let skip = |id: u64| made.contains(&id) || linked.contains(&(other, id));
                    other_files = Some(self.filenames(other, other_ticket, skip).await?);
                }
                let adopted = other_files
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .find(|(_, name)| *name == filename)
                    .map(|(id, _)| *id);
                let file_id = match adopted {
                    Some(id) => id,
                    None => {
                        let text = entry_file(&ticket.reference, side, entry);
                        let made = self
                            .attempt(
                                &note,
                                other,
                                format!("{}::{other_ticket}", bridge.class()),
                                "file a private-log entry",
                                self.create_attachment(
                                    other,
                                    other_ticket,
                                    Self::org_of(other, external, internal),
                                    &filename,
                                    "text/plain",
                                    text.as_bytes(),
                                ),
                            )
                            .await?;
                        let Some(id) = made else { continue };
                        id
                    }
                };
                self.store
                    .put_link(&NewLink {
                        kind: LOG_LINK.into(),
                        source_system: pair.clone(),
                        source_id: source_id.clone(),
                        target_system: files_system.clone(),
                        target_id: Some(file_id.to_string()),
                        state: LinkState::Linked,
                        data: json!({"file_side": other, "filename": filename, "author": entry.user_login, "date": entry.date}),
                    })
                    .await?;
                known.insert(source_id);
                generated.entry(other).or_default().insert(file_id);
                self.audit(
                    other,
                    "private_log_entry_filed",
                    format!("Attachment::{file_id}"),
                    json!({"from": side, "ticket": ticket.id, "filename": filename}),
                )
                .await;
            }
        }
        Ok(())
    }

    async fn copy_content(
        &self,
        side: Side,
        target: u64,
        from: &Attachment,
        hash: &str,
    ) -> Result<(), BridgeError> {
        let system = self.bridge.system(side);
        self.store
            .remember_write(&system, &format!("Attachment::{target}"), hash)
            .await?;
        self.bridge
            .client(side)
            .update_attachment(target, &from.filename, &from.mimetype, &from.data, COMMENT)
            .await
            .map_err(BridgeError::itop(side))?;
        self.audit(
            side,
            "attachment_updated",
            format!("Attachment::{target}"),
            json!({"from": from.id, "filename": from.filename}),
        )
        .await;
        Ok(())
    }

    async fn delete_attachment(&self, side: Side, id: u64) -> Result<(), BridgeError> {
        self.store
            .remember_write(
                &self.bridge.system(side),
                &format!("Attachment::{id}"),
                DELETED,
            )
            .await?;
        self.bridge
            .client(side)
            .delete_attachment(id, COMMENT)
            .await
            .map_err(BridgeError::itop(side))?;
        self.audit(
            side,
            "attachment_deleted",
            format!("Attachment::{id}"),
            json!({}),
        )
        .await;
        Ok(())
    }

    async fn put_attachment_link(
        &self,
        external_ticket: u64,
        external_att: u64,
        internal_att: u64,
        hash: &str,
        origin: Side,
    ) -> Result<(), BridgeError> {
        let pair = self.bridge.pair_system(external_ticket);
        self.store
            .put_link(&NewLink {
                kind: ATTACHMENT_LINK.into(),
                source_system: pair.clone(),
                source_id: external_att.to_string(),
                target_system: format!("{pair}/internal"),
                target_id: Some(internal_att.to_string()),
                state: LinkState::Linked,
                data: json!({"hash": hash, "origin": origin}),
            })
            .await?;
        Ok(())
    }

    /// Links a file of `from` to its copy (or twin) on the other side.
    async fn link_files(
        &self,
        external_ticket: u64,
        from: Side,
        from_id: u64,
        to_id: u64,
        hash: &str,
    ) -> Result<(), BridgeError> {
        let (external_att, internal_att) = match from {
            Side::External => (from_id, to_id),
            Side::Internal => (to_id, from_id),
        };
        self.put_attachment_link(external_ticket, external_att, internal_att, hash, from)
            .await
    }

    /// Attachments one by one, by identity (the link) and content hash.
    /// Each side's files are listed without their contents, then read one
    /// per answer: no answer holds more than one file, and memory no more
    /// than the two files of one linked pair or the one file being copied.
    async fn sync_attachments(
        &self,
        external: &UserRequest,
        internal: &UserRequest,
        generated: &HashMap<Side, BTreeSet<u64>>,
    ) -> Result<(), BridgeError> {
        let (links, _) = self.linked_attachments(external.id).await?;
        let ext_ids: BTreeSet<u64> = self
            .attachment_ids(Side::External, external.id)
            .await?
            .into_iter()
            .collect();
        let int_ids: BTreeSet<u64> = self
            .attachment_ids(Side::Internal, internal.id)
            .await?
            .into_iter()
            .collect();
        // A reconciler run does not read linked files: their changed
        // contents come with their attachment webhook.
        let compare = self.origin.is_some();
        let pair = self.bridge.pair_system(external.id);
        let mut linked_ext = BTreeSet::new();
        let mut linked_int = BTreeSet::new();
        for link in &links {
            let (Some(e_id), Some(i_id)) = (
                parse_id(Some(&link.source_id)),
                parse_id(link.target_id.as_deref()),
            ) else {
                continue;
            };
            linked_ext.insert(e_id);
            linked_int.insert(i_id);
            let mut e_there = ext_ids.contains(&e_id);
            let mut i_there = int_ids.contains(&i_id);
            if e_there && i_there {
                if !compare {
                    continue;
                }
                // A file gone since the listing counts as deleted.
                match self.attachment(Side::External, external.id, e_id).await? {
                    None => e_there = false,
                    Some(e) => {
                        let he = attachment_hash(&e.filename, &e.data);
                        // Unchanged contents are not the ones to copy: not
                        // held while the other file is read.
                        let e = (he != link_hash(link)).then_some(e);
                        match self.attachment(Side::Internal, internal.id, i_id).await? {
                            None => i_there = false,
                            Some(i) => {
                                self.sync_linked(link, external.id, &he, e.as_ref(), &i)
                                    .await?;
                                continue;
                            }
                        }
                    }
                }
            }
            if e_there == i_there {
                // Both gone (both there was handled above).
                self.store.delete_link(link.id).await?;
                continue;
            }
            // One gone: the other is deleted.
            let (side, id) = if e_there {
                (Side::External, e_id)
            } else {
                (Side::Internal, i_id)
            };
            let note = format!("{pair}/delete/{side}:{id}");
            if self.refused_recently(&note).await? {
                continue;
            }
            let deleted = self
                .attempt(
                    &note,
                    side,
                    format!("Attachment::{id}"),
                    "delete an attachment",
                    self.delete_attachment(side, id),
                )
                .await?;
            if deleted.is_some() {
                self.store.delete_link(link.id).await?;
            }
        }
        let empty = BTreeSet::new();
        let free = |ids: &BTreeSet<u64>, linked: &BTreeSet<u64>, side: Side| -> Vec<u64> {
            let made = generated.get(&side).unwrap_or(&empty);
            ids.iter()
                .copied()
                .filter(|id| !linked.contains(id) && !made.contains(id))
                .collect()
        };
        let free_ext = free(&ext_ids, &linked_ext, Side::External);
        let free_int = free(&int_ids, &linked_int, Side::Internal);
        self.sync_unlinked(external, internal, free_ext, free_int)
            .await
    }

    /// A linked pair whose two files were read (`e`: the external file's
    /// contents, kept only when its hash `he` differs from the link's):
    /// the side whose contents changed is copied to the other (the
    /// webhook's side if both changed).
    async fn sync_linked(
        &self,
        link: &Link,
        external_ticket: u64,
        he: &str,
        e: Option<&Attachment>,
        i: &Attachment,
    ) -> Result<(), BridgeError> {
        let known = link_hash(link);
        let origin = link
            .data
            .get("origin")
            .and_then(Value::as_str)
            .and_then(Side::parse)
            .unwrap_or(Side::External);
        let (Some(e_id), i_id) = (parse_id(Some(&link.source_id)), i.id) else {
            return Ok(());
        };
        let hi = attachment_hash(&i.filename, &i.data);
        if he == hi {
            if he != known {
                self.put_attachment_link(external_ticket, e_id, i_id, he, origin)
                    .await?;
            }
            return Ok(());
        }
        let ext_changed = he != known;
        let int_changed = hi != known;
        let (to, target, from, new_hash) =
            if ext_changed && (!int_changed || self.origin != Some(Side::Internal)) {
                // Changed, so its contents were kept.
                let Some(e) = e else { return Ok(()) };
                (Side::Internal, i_id, e, he)
            } else {
                (Side::External, e_id, i, hi.as_str())
            };
        let pair = self.bridge.pair_system(external_ticket);
        let note = format!("{pair}/copy/{to}:{target}:{new_hash}");
        if self.refused_recently(&note).await? {
            return Ok(());
        }
        let copied = self
            .attempt(
                &note,
                to,
                format!("Attachment::{target}"),
                "copy an attachment's contents",
                self.copy_content(to, target, from, new_hash),
            )
            .await?;
        if copied.is_some() {
            self.put_attachment_link(external_ticket, e_id, i_id, new_hash, origin)
                .await?;
        }
        Ok(())
    }

    /// Unlinked files: each is copied to the other side, or linked to an
    /// identical unlinked file there (a copy left by an attempt that crashed
    /// before linking). Read one at a time: the files of the side with fewer
    /// unlinked ones first, for their hashes only (not at all when the other
    /// side has none, as nothing there can be their twin); then each file of
    /// the other side, linked to its twin or copied with the contents just
    /// read; then the first side's files left without a twin, read again to
    /// be copied.
    async fn sync_unlinked(
        &self,
        external: &UserRequest,
        internal: &UserRequest,
        free_ext: Vec<u64>,
        free_int: Vec<u64>,
    ) -> Result<(), BridgeError> {
        let (hashed_side, hashed_ids, read_side, read_ids) = if free_int.len() < free_ext.len() {
            (Side::Internal, free_int, Side::External, free_ext)
        } else {
            (Side::External, free_ext, Side::Internal, free_int)
        };
        let ticket = |side| self.ticket_of(side, external, internal);
        // Each file's hash, its contents dropped once hashed; a file gone
        // since the listing is left out (nothing of it to copy).
        let mut hashed: Vec<(u64, Option<String>)> = Vec::new();
        for id in hashed_ids {
            if read_ids.is_empty() {
                hashed.push((id, None));
            } else if let Some(file) = self
                .attachment(hashed_side, ticket(hashed_side), id)
                .await?
            {
                hashed.push((id, Some(attachment_hash(&file.filename, &file.data))));
            }
        }
        let mut adopted = BTreeSet::new();
        for id in read_ids {
            let Some(file) = self.attachment(read_side, ticket(read_side), id).await? else {
                continue;
            };
            let hash = attachment_hash(&file.filename, &file.data);
            let twin = hashed
                .iter()
                .find(|(t, h)| !adopted.contains(t) && h.as_deref() == Some(hash.as_str()))
                .map(|(t, _)| *t);
            let other = match twin {
                Some(twin) => {
                    adopted.insert(twin);
                    twin
                }
                None => match self
                    .copy_file(read_side, &file, &hash, external, internal)
                    .await?
                {
                    Some(copy) => copy,
                    None => continue,
                },
            };
            self.link_files(external.id, read_side, id, other, &hash)
                .await?;
        }
        let pair = self.bridge.pair_system(external.id);
        let to = hashed_side.other();
        for (id, known) in hashed.into_iter().filter(|(id, _)| !adopted.contains(id)) {
            // A file refused with these contents is not read again.
            if let Some(hash) = known
                && self
                    .refused_recently(&format!("{pair}/create/{to}:{id}:{hash}"))
                    .await?
            {
                continue;
            }
            let Some(file) = self
                .attachment(hashed_side, ticket(hashed_side), id)
                .await?
            else {
                continue;
            };
            let hash = attachment_hash(&file.filename, &file.data);
            if let Some(copy) = self
                .copy_file(hashed_side, &file, &hash, external, internal)
                .await?
            {
                self.link_files(external.id, hashed_side, id, copy, &hash)
                    .await?;
            }
        }
        Ok(())
    }

    /// Copies a file of side `from` to the other side's ticket; its id
    /// there, or `None` when that side refused it (or did recently).
    async fn copy_file(
        &self,
        from: Side,
        file: &Attachment,
        hash: &str,
        external: &UserRequest,
        internal: &UserRequest,
    ) -> Result<Option<u64>, BridgeError> {
        let to = from.other();
        let pair = self.bridge.pair_system(external.id);
        let note = format!("{pair}/create/{to}:{}:{hash}", file.id);
        if self.refused_recently(&note).await? {
            return Ok(None);
        }
        let ticket = self.ticket_of(to, external, internal);
        let made = self
            .attempt(
                &note,
                to,
                format!("{}::{ticket}", self.bridge.class()),
                "copy an attachment",
                self.create_attachment(
                    to,
                    ticket,
                    Self::org_of(to, external, internal),
                    &file.filename,
                    &file.mimetype,
                    &file.data,
                ),
            )
            .await?;
        let Some(id) = made else { return Ok(None) };
        self.audit(
            to,
            "attachment_created",
            format!("Attachment::{id}"),
            json!({"from": file.id, "filename": file.filename}),
        )
        .await;
        Ok(Some(id))
    }

    /// Which side to drive to which state: the side whose state differs
    /// from the last one seen is pushed to the other. A push refused earlier
    /// counts as a change of its source side again once either ticket has
    /// changed since the refusal (the refusal is then forgotten).
    fn plan(
        &self,
        state: &mut PairState,
        external: &UserRequest,
        internal: &UserRequest,
    ) -> Option<(Side, String)> {
        let retry = state
            .refused
            .as_ref()
            .filter(|r| {
                let source = match r.side {
                    Side::External => internal,
                    Side::Internal => external,
                };
                r.external_last_update != external.last_update
                    || r.internal_last_update != internal.last_update
                    || r.source != push_source(source)
            })
            .map(|r| r.side);
        if retry.is_some() {
            state.refused = None;
        }
        let ext_changed = state.external_status.as_deref() != Some(external.status.as_str())
            || retry == Some(Side::Internal);
        let int_changed = state.internal_status.as_deref() != Some(internal.status.as_str())
            || retry == Some(Side::External);
        let settings = &self.bridge.settings;
        // A change to an unmapped state pushes nothing, so it must not hide
        // a change of the other side: only pushable changes compete.
        let to_internal = settings
            .status_to_internal
            .get(&external.status)
            .filter(|_| ext_changed);
        let to_external = settings
            .status_to_external
            .get(&internal.status)
            .filter(|_| int_changed);
        // Nor does a change that cannot reach the other ticket (nothing goes
        // back to new, closed is final) when the other side's can.
        let reachable =
            |current: &UserRequest, wanted: &String| next_step(&current.status, wanted).is_ok();
        match (to_internal, to_external) {
            (Some(i), Some(e)) if !reachable(internal, i) && reachable(external, e) => {
                Some((Side::External, e.clone()))
            }
            (Some(i), Some(e)) if reachable(internal, i) && !reachable(external, e) => {
                Some((Side::Internal, i.clone()))
            }
            (Some(wanted), other) if other.is_none() || self.origin != Some(Side::Internal) => {
                Some((Side::Internal, wanted.clone()))
            }
            (_, Some(wanted)) => Some((Side::External, wanted.clone())),
            _ => None,
        }
    }

    /// Pushes the status of the side that changed since the last run (see
    /// [`Self::plan`]). The ticket to drive is read again just before: the
    /// file steps before this one may have taken long, and a person may have
    /// moved it meanwhile; when they did, the push is planned again from what
    /// is there now. A stimulus the iTop calls invalid for the ticket's state
    /// (it moved between that read and the call) makes it read and plan once
    /// more too.
    async fn sync_status(
        &self,
        state: &mut PairState,
        mut external: UserRequest,
        mut internal: UserRequest,
    ) -> Result<StatusOutcome, BridgeError> {
        let mut replanned = false;
        loop {
            let Some((side, wanted)) = self.plan(state, &external, &internal) else {
                return Ok(StatusOutcome {
                    external,
                    internal,
                    refused: None,
                });
            };
            let planned = match side {
                Side::External => &external,
                Side::Internal => &internal,
            };
            let Some(fresh) = self.read_ticket(side, planned.id).await? else {
                // Gone since the run began: nothing to drive.
                return Ok(StatusOutcome {
                    external,
                    internal,
                    refused: None,
                });
            };
            let moved = fresh.status != planned.status;
            match side {
                Side::External => external = fresh,
                Side::Internal => internal = fresh,
            }
            if moved && !replanned {
                replanned = true;
                continue;
            }
            let refusal = match side {
                Side::Internal => {
                    let (now, refusal) = self
                        .drive(state, side, internal, &wanted, &external)
                        .await?;
                    internal = now;
                    refusal
                }
                Side::External => {
                    let (now, refusal) = self
                        .drive(state, side, external, &wanted, &internal)
                        .await?;
                    external = now;
                    refusal
                }
            };
            if let Some(refusal) = &refusal
                && refusal.reason.contains("Invalid stimulus")
                && !replanned
            {
                replanned = true;
                continue;
            }
            return Ok(StatusOutcome {
                external,
                internal,
                refused: refusal.map(|r| (side, wanted, r)),
            });
        }
    }

    /// Records the state a stimulus brought `current` (on `side`) to as
    /// seen, on the ticket link too, so that it holds whatever happens to the
    /// rest of the run.
    async fn record_driven(
        &self,
        state: &mut PairState,
        side: Side,
        current: &UserRequest,
        source: &UserRequest,
    ) -> Result<(), BridgeError> {
        let (external_id, internal_id) = match side {
            Side::External => {
                state.external_status = Some(current.status.clone());
                state.external_last_update = current.last_update.clone();
                (current.id, source.id)
            }
            Side::Internal => {
                state.internal_status = Some(current.status.clone());
                (source.id, current.id)
            }
        };
        self.put_ticket_link(external_id, Some(internal_id), LinkState::Linked, state)
            .await
    }

    fn stimulus_fields(
        &self,
        side: Side,
        step: Step,
        current: &UserRequest,
        source: &UserRequest,
    ) -> Value {
        let settings = &self.bridge.settings;
        let mut fields = Map::new();
        match step {
            Step::Assign => {
                let (team, agent) = match side {
                    Side::Internal => (settings.internal.team_id, settings.internal.agent_id),
                    Side::External => (settings.external.team_id, settings.external.agent_id),
                };
                if let Some(team) = current.team_id.or(team) {
                    fields.insert("team_id".into(), json!(team));
                }
                if let Some(agent) = current.agent_id.or(agent) {
                    fields.insert("agent_id".into(), json!(agent));
                }
            }
            Step::Pending => {
                let reason = Some(source.pending_reason.clone())
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| settings.pending_reason.clone());
                fields.insert("pending_reason".into(), json!(reason));
            }
            Step::Resolve => {
                let solution = Some(source.solution.clone())
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| settings.solution.clone());
                let code = Some(source.resolution_code.clone())
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| settings.resolution_code.clone());
                fields.insert("solution".into(), json!(solution));
                fields.insert("resolution_code".into(), json!(code));
                if side == Side::Internal
                    && current.service_id.is_none()
                    && let Some(service) = settings.internal.service_id
                {
                    fields.insert("service_id".into(), json!(service));
                }
            }
            Step::Close | Step::Reopen => {}
        }
        Value::Object(fields)
    }

    /// The fields to send again when `error` refused the resolution code
    /// copied from the other ticket and the configured one differs: iTop
    /// names the attribute code in its answer ("Unexpected value for
    /// attribute 'Resolution code' (resolution_code) : Value not allowed").
    fn with_fallback_code(&self, fields: &Value, error: &itop::ItopError) -> Option<Value> {
        let fallback = &self.bridge.settings.resolution_code;
        let sent = fields.get("resolution_code").and_then(Value::as_str)?;
        if sent == fallback || !error.to_string().contains("(resolution_code)") {
            return None;
        }
        let mut fields = fields.clone();
        fields
            .as_object_mut()?
            .insert("resolution_code".into(), json!(fallback));
        Some(fields)
    }

    /// Applies stimuli on `side` until `current` is in state `wanted`.
    /// A stimulus the iTop refuses for good stops the walk and is returned
    /// with the ticket as it is. Each state a stimulus reaches is recorded
    /// as seen at once (in `state` and on the ticket link): when a later
    /// stimulus fails and the run is retried, the driven side's new state is
    /// known as the bridge's own write, not taken for a person's change to
    /// push back.
    async fn drive(
        &self,
        state: &mut PairState,
        side: Side,
        mut current: UserRequest,
        wanted: &str,
        source: &UserRequest,
    ) -> Result<(UserRequest, Option<Refusal>), BridgeError> {
        let bridge = self.bridge;
        let object_key = format!("{}::{}", bridge.class(), current.id);
        for _ in 0..5 {
            let step = match next_step(&current.status, wanted) {
                Ok(Some(step)) => step,
                Ok(None) => break,
                Err(blocked) => {
                    tracing::warn!(%side, ticket = current.id, %blocked, "status not synchronised");
                    self.audit(
                        side,
                        "status_blocked",
                        object_key.clone(),
                        json!({"reason": blocked.to_string()}),
                    )
                    .await;
                    break;
                }
            };
            let lands = step.lands_in(&current.status);
            self.store
                .remember_write(
                    &bridge.system(side),
                    &object_key,
                    &ticket_state(lands, &current.private_log, bucket_of(store::now_ms())),
                )
                .await?;
            let mut fields = self.stimulus_fields(side, step, &current, source);
            let mut fallback_tried = false;
            let result = loop {
                let result = bridge
                    .client(side)
                    .apply_stimulus(
                        bridge.class(),
                        current.id,
                        step.stimulus(),
                        fields.clone(),
                        COMMENT,
                        USER_REQUEST_FIELDS,
                    )
                    .await;
                if let Err(error) = &result
                    && step == Step::Resolve
                    && !fallback_tried
                    && !error.is_retryable()
                    && let Some(retry) = self.with_fallback_code(&fields, error)
                {
                    tracing::warn!(%side, ticket = current.id, %error, "resolution code refused, sending the configured one");
                    self.audit(
                        side,
                        "resolution_code_replaced",
                        object_key.clone(),
                        json!({"refused": fields.get("resolution_code"), "sent": retry.get("resolution_code"), "error": error.to_string()}),
                    )
                    .await;
                    fields = retry;
                    fallback_tried = true;
                    continue;
                }
                break result;
            };
            match result {
                Ok(object) => {
                    current = UserRequest::from_object(&object);
                    self.record_driven(state, side, &current, source).await?;
                    self.audit(
                        side,
                        "stimulus_applied",
                        object_key.clone(),
                        json!({"stimulus": step.stimulus(), "fields": fields, "status": current.status}),
                    )
                    .await;
                }
                Err(error) if error.is_retryable() => {
                    return Err(BridgeError::Itop {
                        side,
                        source: error,
                    });
                }
                Err(error) => {
                    tracing::warn!(%side, ticket = current.id, %error, "stimulus refused");
                    self.audit(
                        side,
                        "stimulus_refused",
                        object_key.clone(),
                        json!({"stimulus": step.stimulus(), "wanted": wanted, "error": error.to_string()}),
                    )
                    .await;
                    return Ok((
                        current,
                        Some(Refusal {
                            stimulus: step.stimulus(),
                            reason: error.to_string(),
                        }),
                    ));
                }
            }
        }
        Ok((current, None))
    }
}
