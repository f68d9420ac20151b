//! The bridge's job handlers: `itop.webhook` (echo checks, pair lookup),
//! `itop.sync` (one pair, ordered per pair) and `itop.reconcile` (the
//! self-rescheduling sweep over every linked pair).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use engine::{Handler, JobError};
use itop::{Key, oql_quote};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Job, LinkFilter, LinkState, NewAudit, NewJob, Store};

use crate::context::{ATTACHMENT_LINK, Bridge, Bridges, LOG_LINK, TICKET_LINK};
use crate::cursor;
use crate::error::BridgeError;
use crate::fingerprint::{
    DELETED, TICKET_STATE, TICKET_STATE_KEPT_MS, attachment_hash, bucket_of, ticket_state,
};
use crate::pair::{PairOutcome, PairState, PairSync};
use crate::side::Side;
use crate::webhook::{Webhook, next_generation};

pub const SYNC_JOB: &str = "itop.sync";
pub const RECONCILE_JOB: &str = "itop.reconcile";

/// How many closed tickets one attachment listing of the reconciler covers.
const CLOSED_LISTING_CHUNK: usize = 200;

/// The `itop.sync` job of a pair (debounced: one pending per pair and
/// kind of run). A reconciler run (`origin` None) does not read the contents
/// of linked attachments, so it never replaces a pending webhook run.
pub fn sync_job(bridge: &Bridge, external_id: u64, origin: Option<Side>) -> NewJob {
    let run = if origin.is_some() { "" } else { ":sweep" };
    NewJob::new(
        bridge.queue(),
        SYNC_JOB,
        bridge.pair_key(external_id),
        json!({"source": bridge.source, "external_id": external_id, "origin": origin}),
    )
    .unique_key(format!("{SYNC_JOB}:{}:{external_id}{run}", bridge.source))
    .max_attempts(bridge.max_attempts)
}

/// How long after an attachment webhook whose file is still there, with
/// the contents the bridge last wrote or synchronised, its pair is compared:
/// iTop sends the webhook of a deletion before the file is gone.
pub const ATTACHMENT_GONE_DELAY_MS: i64 = 5_000;

/// The `itop.sync` of a pair `delay_ms` from now, on a debounce key of its
/// own (it neither postpones nor replaces a run due now).
pub fn later_sync_job(bridge: &Bridge, external_id: u64, origin: Side, delay_ms: i64) -> NewJob {
    NewJob::new(
        bridge.queue(),
        SYNC_JOB,
        bridge.pair_key(external_id),
        json!({"source": bridge.source, "external_id": external_id, "origin": origin}),
    )
    .unique_key(format!("{SYNC_JOB}:{}:{external_id}:later", bridge.source))
    .run_at(store::now_ms().saturating_add(delay_ms))
    .max_attempts(bridge.max_attempts)
}

/// The next `itop.reconcile` run of a bridge (one pending per bridge).
pub fn reconcile_job(bridge: &Bridge, run_at: i64) -> NewJob {
    NewJob::new(
        bridge.queue(),
        RECONCILE_JOB,
        format!("itop:{}:reconcile", bridge.source),
        json!({"source": bridge.source}),
    )
    .unique_key(format!("{RECONCILE_JOB}:{}", bridge.source))
    .run_at(run_at)
    .max_attempts(bridge.max_attempts)
}

fn payload<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T, BridgeError> {
    serde_json::from_value(job.payload.clone()).map_err(|e| BridgeError::Payload(e.to_string()))
}

async fn audit(store: &Store, job: &Job, system: String, action: &str, key: String, detail: Value) {
    let entry = NewAudit {
        job_id: Some(job.id),
        system,
        action: action.to_string(),
        object_key: key,
        detail,
    };
    if let Err(error) = store.audit(&entry).await {
        tracing::warn!(%error, "could not write an audit line");
    }
}

/// `itop.webhook`: drops echoes of the bridge's own writes, finds the pair
/// and enqueues its `itop.sync`.
pub struct WebhookHandler {
    pub bridges: Bridges,
    pub store: Store,
}

#[derive(Deserialize)]
struct WebhookPayload {
    source: String,
    webhook: Webhook,
}

impl WebhookHandler {
    async fn run(&self, job: &Job) -> Result<(), BridgeError> {
        let WebhookPayload { source, webhook } = payload(job)?;
        let bridge = self.bridges.get(&source)?;
        next_generation(&self.store, &source, &webhook).await?;
        let side = webhook.side;
        let system = bridge.system(side);
        let echo = |why: &str, key: String| {
            audit(
                &self.store,
                job,
                system.clone(),
                "echo_dropped",
                key,
                json!({"why": why, "event": webhook.event}),
            )
        };
        if let Some(actor) = &webhook.actor
            && bridge.own_logins.iter().any(|l| l == actor)
        {
            echo("actor is the bridge", webhook.subject()).await;
            return Ok(());
        }
        if let Some(class) = &webhook.class
            && class != bridge.class()
        {
            return Ok(());
        }
        let client = bridge.client(side);
        // iTop sends an attachment's deletion webhook (the same payload as an
        // update's) before the file is gone: a file still there with the
        // contents the bridge wrote may be on its way out. Its pair is
        // compared a little later rather than the webhook dropped as an echo.
        let mut later = false;
        // The contents of the attachment the webhook names, when it is there.
        let mut contents = None;
        let ticket_id = match webhook.attachment_id {
            Some(att) => {
                let found = client
                    .attachment(att)
                    .await
                    .map_err(BridgeError::itop(side))?;
                let fingerprint = found
                    .as_ref()
                    .map(|a| attachment_hash(&a.filename, &a.data))
                    .unwrap_or_else(|| DELETED.to_string());
                let key = format!("Attachment::{att}");
                // Deleted by the bridge (gone, or still going: its own call).
                if self.store.is_own_write(&system, &key, DELETED).await? {
                    echo("attachment deleted by the bridge", key).await;
                    return Ok(());
                }
                if self.store.is_own_write(&system, &key, &fingerprint).await? {
                    later = true;
                }
                if found.is_some() {
                    contents = Some(fingerprint);
                }
                found
                    .map(|a| a.item_id)
                    .filter(|id| *id > 0)
                    .or(webhook.ticket_id)
            }
            None => webhook.ticket_id,
        };
        let Some(ticket_id) = ticket_id else {
            return Ok(());
        };
        if webhook.attachment_id.is_none() {
            let found = client
                .get_one(bridge.class(), ticket_id, "id,status,private_log")
                .await
                .map_err(BridgeError::itop(side))?;
            let Some(ticket) = found else {
                return Ok(());
            };
            let status = ticket.text("status");
            let log = itop::CaseLogEntry::parse_log(ticket.fields.get("private_log"));
            let key = format!("{}::{ticket_id}", bridge.class());
            let bucket = bucket_of(store::now_ms());
            for b in [bucket, bucket - 1] {
                if self
                    .store
                    .is_own_write(&system, &key, &ticket_state(&status, &log, b))
                    .await?
                {
                    echo("ticket state written by the bridge", key).await;
                    return Ok(());
                }
            }
        }
        let external_id = match side {
            Side::External => ticket_id,
            Side::Internal => {
                let links = self
                    .store
                    .links_to(
                        TICKET_LINK,
                        &bridge.ticket_system(Side::Internal),
                        &ticket_id.to_string(),
                    )
                    .await?;
                let Some(external) = links.iter().find_map(|l| l.source_id.parse::<u64>().ok())
                else {
                    audit(
                        &self.store,
                        job,
                        system.clone(),
                        "not_synchronised",
                        format!("{}::{ticket_id}", bridge.class()),
                        json!({"why": "the ticket did not come from the external iTop"}),
                    )
                    .await;
                    return Ok(());
                };
                external
            }
        };
        if later {
            self.store
                .enqueue(later_sync_job(
                    bridge,
                    external_id,
                    side,
                    ATTACHMENT_GONE_DELAY_MS,
                ))
                .await?;
            return Ok(());
        }
        self.store
            .enqueue(sync_job(bridge, external_id, Some(side)))
            .await?;
        // A person's file still there with the contents last synchronised:
        // a deletion whose webhook came first, or a save that changed
        // nothing. The run now normally finds it gone; a later one makes
        // sure, should iTop still have been removing it.
        if let (Some(att), Some(hash)) = (webhook.attachment_id, &contents)
            && synchronised_as(&self.store, bridge, side, external_id, att, hash).await?
        {
            self.store
                .enqueue(later_sync_job(
                    bridge,
                    external_id,
                    side,
                    ATTACHMENT_GONE_DELAY_MS,
                ))
                .await?;
        }
        Ok(())
    }
}

/// Whether attachment `att` of `side` (pair of external ticket
/// `external_id`) is linked with content hash `hash`: unchanged since the
/// bridge last synchronised it.
async fn synchronised_as(
    store: &Store,
    bridge: &Bridge,
    side: Side,
    external_id: u64,
    att: u64,
    hash: &str,
) -> Result<bool, BridgeError> {
    let pair = bridge.pair_system(external_id);
    let internal_system = format!("{pair}/internal");
    let links = match side {
        Side::External => store
            .link(ATTACHMENT_LINK, &pair, &att.to_string(), &internal_system)
            .await?
            .into_iter()
            .collect(),
        Side::Internal => {
            store
                .links_to(ATTACHMENT_LINK, &internal_system, &att.to_string())
                .await?
        }
    };
    Ok(links
        .iter()
        .any(|l| l.data.get("hash").and_then(Value::as_str) == Some(hash)))
}

#[async_trait::async_trait]
impl Handler for WebhookHandler {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.run(job).await.map_err(JobError::from)
    }
}

/// `itop.sync`: one run of the rules over a pair.
pub struct SyncHandler {
    pub bridges: Bridges,
    pub store: Store,
}

#[derive(Deserialize)]
struct SyncPayload {
    source: String,
    external_id: u64,
    origin: Option<Side>,
}

#[async_trait::async_trait]
impl Handler for SyncHandler {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let run = async {
            let p: SyncPayload = payload(job)?;
            let bridge = self.bridges.get(&p.source)?;
            let outcome = PairSync {
                bridge,
                store: &self.store,
                job_id: Some(job.id),
                origin: p.origin,
            }
            .run(p.external_id)
            .await?;
            if let PairOutcome::Skipped(why) = &outcome {
                tracing::info!(source = %p.source, external_id = p.external_id, %why, "pair skipped");
            }
            Ok::<_, BridgeError>(())
        };
        run.await.map_err(JobError::from)
    }
}

/// `itop.reconcile`: schedules its next run, then a sync of every linked
/// (or half-created) pair and of every external ticket changed since its
/// cursor that has no link — iTop never retries a webhook.
pub struct ReconcileHandler {
    pub bridges: Bridges,
    pub store: Store,
}

#[derive(Deserialize)]
struct ReconcilePayload {
    source: String,
}

impl ReconcileHandler {
    async fn run(&self, job: &Job) -> Result<(), BridgeError> {
        let p: ReconcilePayload = payload(job)?;
        let bridge = self.bridges.get(&p.source)?;
        let interval =
            i64::try_from(bridge.settings.reconcile_interval.as_millis()).unwrap_or(i64::MAX);
        self.store
            .enqueue(reconcile_job(
                bridge,
                store::now_ms().saturating_add(interval),
            ))
            .await?;
        let links = self
            .store
            .links(&LinkFilter {
                kind: Some(TICKET_LINK.into()),
                source_system: Some(bridge.ticket_system(Side::External)),
                limit: Some(100_000),
                ..LinkFilter::default()
            })
            .await?;
        let mut known = BTreeSet::new();
        let mut closed = BTreeMap::new();
        let mut closed_pairs = BTreeMap::new();
        for link in links {
            // Linked pairs are compared; pending ones finish their creation.
            let Ok(external_id) = link.source_id.parse::<u64>() else {
                continue;
            };
            known.insert(external_id);
            let seen: PairState = serde_json::from_value(link.data).unwrap_or_default();
            let done = |status: &Option<String>| status.as_deref() == Some("closed");
            if link.state == LinkState::Linked
                && done(&seen.external_status)
                && done(&seen.internal_status)
            {
                // Both closed when last seen: nothing is left to push, unless
                // the external ticket changes (below), a file is added or
                // removed through REST (no webhook, no `last_update`: the
                // listings below) or a webhook comes.
                if let Some(internal_id) = link.target_id.as_deref().and_then(|t| t.parse().ok()) {
                    closed_pairs.insert(external_id, internal_id);
                }
                closed.insert(external_id, seen.external_last_update);
                continue;
            }
            self.store
                .enqueue(sync_job(bridge, external_id, None))
                .await?;
        }
        for external_id in self.closed_with_other_files(bridge, &closed_pairs).await? {
            self.store
                .enqueue(sync_job(bridge, external_id, None))
                .await?;
        }
        self.discover(job, bridge, &known, &closed).await?;
        // Ticket-state markers past their minute can match no echo: without
        // this they would pile up, one per status the bridge ever wrote.
        let forgotten = self
            .store
            .forget_writes_starting_before(
                TICKET_STATE,
                store::now_ms().saturating_sub(TICKET_STATE_KEPT_MS),
            )
            .await?;
        if forgotten > 0 {
            tracing::debug!(forgotten, "old ticket-state markers forgotten");
        }
        Ok(())
    }

    /// The pairs closed on both sides (external id → internal id) whose
    /// tickets' attachments are not exactly the files the bridge knows for
    /// them (linked attachments, files made from log entries): a file added
    /// or deleted through REST fires no webhook and leaves the ticket's
    /// `last_update` as it was. One listing per side of ids only, for up to
    /// [`CLOSED_LISTING_CHUNK`] tickets, whatever their files weigh.
    async fn closed_with_other_files(
        &self,
        bridge: &Bridge,
        closed: &BTreeMap<u64, u64>,
    ) -> Result<BTreeSet<u64>, BridgeError> {
        let mut differ = BTreeSet::new();
        if closed.is_empty() {
            return Ok(differ);
        }
        let mut expected: BTreeMap<(Side, u64), BTreeSet<u64>> = BTreeMap::new();
        for (&external_id, &internal_id) in closed {
            let pair = bridge.pair_system(external_id);
            expected.entry((Side::External, external_id)).or_default();
            expected.entry((Side::Internal, internal_id)).or_default();
            for kind in [ATTACHMENT_LINK, LOG_LINK] {
                let links = self
                    .store
                    .links(&LinkFilter {
                        kind: Some(kind.into()),
                        source_system: Some(pair.clone()),
                        limit: Some(100_000),
                        ..LinkFilter::default()
                    })
                    .await?;
                for link in links {
                    let target = link.target_id.as_deref().and_then(|t| t.parse().ok());
                    if kind == ATTACHMENT_LINK {
                        if let Ok(id) = link.source_id.parse::<u64>() {
                            expected
                                .entry((Side::External, external_id))
                                .or_default()
                                .insert(id);
                        }
                        if let Some(id) = target {
                            expected
                                .entry((Side::Internal, internal_id))
                                .or_default()
                                .insert(id);
                        }
                    } else if let Some(id) = target {
                        let side = link
                            .data
                            .get("file_side")
                            .and_then(Value::as_str)
                            .and_then(Side::parse);
                        let ticket = match side {
                            Some(Side::External) => (Side::External, external_id),
                            Some(Side::Internal) => (Side::Internal, internal_id),
                            None => continue,
                        };
                        expected.entry(ticket).or_default().insert(id);
                    }
                }
            }
        }
        let mut found: BTreeMap<(Side, u64), BTreeSet<u64>> = BTreeMap::new();
        for side in [Side::External, Side::Internal] {
            let tickets: Vec<u64> = expected
                .keys()
                .filter(|(s, _)| *s == side)
                .map(|(_, t)| *t)
                .collect();
            for chunk in tickets.chunks(CLOSED_LISTING_CHUNK) {
                let ids = chunk
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let oql = format!(
                    "SELECT Attachment WHERE item_class = {} AND item_id IN ({ids})",
                    oql_quote(bridge.class())
                );
                let listed = bridge
                    .client(side)
                    .get("Attachment", Key::Oql(oql), "id,item_id")
                    .await
                    .map_err(BridgeError::itop(side))?;
                for attachment in listed {
                    if let Ok(ticket) = attachment.text("item_id").parse::<u64>() {
                        found
                            .entry((side, ticket))
                            .or_default()
                            .insert(attachment.key);
                    }
                }
            }
        }
        for (&external_id, &internal_id) in closed {
            let same = |key: (Side, u64)| {
                expected.get(&key).cloned().unwrap_or_default()
                    == found.get(&key).cloned().unwrap_or_default()
            };
            if !same((Side::External, external_id)) || !same((Side::Internal, internal_id)) {
                differ.insert(external_id);
            }
        }
        Ok(differ)
    }

    /// External tickets changed since the cursor that have no link (their
    /// create webhook was lost) get the `itop.sync` a webhook would have
    /// caused: the same two-phase create, so a late webhook makes no twin.
    /// The first run only places the cursor (tickets older than the bridge
    /// are mirrored when they change, as with a webhook).
    async fn discover(
        &self,
        job: &Job,
        bridge: &Bridge,
        known: &BTreeSet<u64>,
        closed: &BTreeMap<u64, String>,
    ) -> Result<(), BridgeError> {
        let name = discovery_cursor(bridge);
        let stored = self.store.cursor(&name).await?;
        let from = match &stored {
            Some(c) => cursor::query_from(c),
            None => cursor::start(time::OffsetDateTime::now_utc()),
        };
        let oql = format!(
            "SELECT {} WHERE last_update >= {}",
            bridge.class(),
            oql_quote(&from)
        );
        let found = bridge
            .external
            .get(bridge.class(), Key::Oql(oql), "id,last_update")
            .await
            .map_err(BridgeError::itop(Side::External))?;
        if stored.is_some() {
            let changed = |t: &&itop::ItopObject| {
                closed
                    .get(&t.key)
                    .is_some_and(|seen| *seen != t.text("last_update"))
            };
            for ticket in found.iter().filter(changed) {
                self.store
                    .enqueue(sync_job(bridge, ticket.key, None))
                    .await?;
            }
            for ticket in found.iter().filter(|t| !known.contains(&t.key)) {
                audit(
                    &self.store,
                    job,
                    bridge.system(Side::External),
                    "unlinked_ticket_found",
                    format!("{}::{}", bridge.class(), ticket.key),
                    json!({"last_update": ticket.text("last_update")}),
                )
                .await;
                self.store
                    .enqueue(sync_job(bridge, ticket.key, Some(Side::External)))
                    .await?;
            }
        }
        let dates: Vec<String> = found.iter().map(|t| t.text("last_update")).collect();
        let newest = cursor::newest(
            stored.as_deref().unwrap_or(&from),
            dates.iter().map(String::as_str),
        );
        if stored.as_deref() != Some(newest.as_str()) {
            self.store.set_cursor(&name, &newest).await?;
        }
        Ok(())
    }
}

/// Cursor name of a bridge's discovery of unlinked external tickets (the
/// external iTop's `last_update`, in its own clock and format).
pub fn discovery_cursor(bridge: &Bridge) -> String {
    format!("itop:{}:external:last_update", bridge.source)
}

#[async_trait::async_trait]
impl Handler for ReconcileHandler {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.run(job).await.map_err(JobError::from)
    }
}

/// The three handlers of a set of bridges.
pub fn handlers(bridges: &Bridges, store: &Store) -> [(&'static str, Arc<dyn Handler>); 3] {
    [
        (
            crate::webhook::WEBHOOK_JOB,
            Arc::new(WebhookHandler {
                bridges: bridges.clone(),
                store: store.clone(),
            }),
        ),
        (
            SYNC_JOB,
            Arc::new(SyncHandler {
                bridges: bridges.clone(),
                store: store.clone(),
            }),
        ),
        (
            RECONCILE_JOB,
            Arc::new(ReconcileHandler {
                bridges: bridges.clone(),
                store: store.clone(),
            }),
        ),
    ]
}
