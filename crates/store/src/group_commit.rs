//! Group commit for SQLite file stores: one OS thread owns the write connection
//! that stores inbound requests (and the two writes every job ends with: its
//! claim, its link and its completion), and a second one checkpoints the WAL.
//!
//! Why a thread of its own: SQLite has a single writer, so every accepted
//! request waits for the commit that carries it. Through sqlx each statement
//! is a hand-off to sqlx's worker thread and back, and on a two-core machine
//! busy with HTTP every hand-off waits for a core. Here a request costs one
//! hand-off each way: the caller encodes its rows (in parallel with the
//! others), sends them down a channel and awaits a oneshot; the writer thread
//! takes everything queued, stores it in one `BEGIN IMMEDIATE` transaction
//! with prepared statements and answers every caller after the commit, so
//! "accepted" still means "durable". `Store::claim`, `Store::complete` and
//! `Store::put_link` take the same road, so a busy engine's completions share commits too
//! instead of each paying a sqlx round trip and a commit of its own.
//!
//! Why a checkpointer: with SQLite's automatic checkpoints the commit that
//! crosses the WAL threshold copies the WAL into the database and syncs it,
//! which stalls every request in that group (the p99 spikes). All of this
//! store's connections run with `wal_autocheckpoint = 0` and the checkpointer
//! thread runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection, which
//! copies pages while the writer goes on appending. Under constant load such a
//! checkpoint never catches up with the last frame, so the WAL would never
//! start over and would grow without end: when the WAL is past [`RESTART_FRAMES`]
//! the checkpointer repeats its passes until one has little left to copy
//! (each pass copies what was appended during the one before), then asks the
//! writer to run one last, short pass itself right after its next commit,
//! while it still holds the store's write turn (so no other writer appends
//! meanwhile). With every frame copied, the next transaction writes the WAL
//! from its start again. The writer does it rather than the checkpointer
//! holding the writer back: on a busy machine the writer is the thread that is
//! running, and a stall is then the pass itself, not the pass plus the wait
//! for a core to wake the checkpointer up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// The store's in-process write lock (see `Store::write_turn`).
pub(crate) type WriteTurns = tokio::sync::Mutex<()>;
use std::time::Duration;

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, TransactionBehavior, named_params, params,
};
use tokio::sync::oneshot;

use crate::batch::{FIND_INBOX, INSERT_INBOX};
use crate::jobs::{
    CLAIM_SQLITE, CLAIM_STORED, COMPLETE, INSERT_JOB_PLAIN, RELEASE_UNSTARTED, SUCCESSOR_PENDING,
    debounce_statement,
};
use crate::links::PUT_LINK;
use crate::model::{Acceptance, ClaimNow, Completion, Job, Link, NewInbound, NewJob, NewLink};
use crate::rows::{JobRow, LinkRow, convert_all, parse_json, to_json_text};
use crate::{DEFAULT_MAX_ATTEMPTS, StoreError, now_ms};

/// Most inbound requests stored in one transaction.
const MAX_GROUP: usize = 512;
/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL length (frames of one page) past which the checkpointer holds the writer
/// to make the WAL start over (64 MiB with 4 KiB pages). Below it the WAL
/// starts over by itself whenever the writer pauses for one checkpoint pass,
/// which any load but a flat-out one does; holding the writer costs it a few
/// milliseconds per hundred pages left to copy (the database file's sync).
const RESTART_FRAMES: i64 = 16_384;
/// A catch-up pass that copied at most this many frames leaves about as few
/// for the pass that holds the writer.
const SHORT_PASS_FRAMES: i64 = 32;
/// How long the checkpointer waits for the writer to run the last pass.
const RESTART_WAIT_STEP: Duration = Duration::from_millis(1);
const RESTART_WAIT_STEPS: usize = 200;
/// Most catch-up passes before the writer is held anyway (so the WAL stays
/// bounded even when it is written faster than it can be copied).
const MAX_CATCH_UP_PASSES: usize = 16;
/// Busy timeout of the writer's and the checkpointer's connections.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Size the WAL file is truncated back to when it starts over (bytes): above
/// what [`RESTART_FRAMES`] lets it reach, so that in steady use the file keeps
/// its size and a restart costs no truncation (about 10 ms on ext4 here).
const JOURNAL_SIZE_LIMIT: i64 = 2 * RESTART_FRAMES * 4096;

/// An inbound request with its JSON already encoded (by the caller, off the
/// writer thread).
struct Encoded {
    source: String,
    dedupe_key: String,
    body: Vec<u8>,
    headers: String,
    jobs: Vec<(NewJob, String)>,
}

/// A write the thread carries out inside its group commit.
enum Work {
    /// Store these requests in order (one caller's batch).
    Accept(Vec<Encoded>),
    /// Mark a job succeeded under its lease fence.
    Complete {
        id: i64,
        worker: Option<String>,
        attempts: i32,
        ordering_key: String,
    },
    /// Claim up to `limit` runnable jobs of `queue` (the engine's claim).
    Claim {
        queue: String,
        worker: String,
        lease_ms: i64,
        limit: i64,
    },
    /// Upsert a link (data already encoded).
    PutLink { link: NewLink, data: String },
}

/// What a [`Work`] came to.
enum Done {
    Accepted(Vec<Acceptance>),
    Completed(Completion),
    Claimed(Vec<Job>),
    Linked(Link),
}

/// What the writer sends back: the outcome, and the work itself, so that the
/// caller's thread frees what it allocated. (Freed on the writer, every string
/// of every request went back to another thread's malloc arena under that
/// arena's lock: a fifth of the writer's time under load.)
struct Returned {
    result: Result<Done, StoreError>,
    _work: Work,
}

type Reply = oneshot::Sender<Returned>;

enum Command {
    Write {
        work: Work,
        reply: Reply,
    },
    /// Put these jobs, claimed at accept for a caller that went away, back to
    /// pending (see [`Answer`]).
    Release(Vec<Job>),
    /// Finish what is queued before this, close the connection, answer.
    Close(oneshot::Sender<()>),
}

/// The caller's end of a write. A caller that goes away (a timeout, a closed
/// connection) between the writer's answer and reading it leaves the jobs
/// claimed for it unstarted: dropping this hands them back to the writer to be
/// released, as the writer does itself when the caller was gone before it
/// answered.
struct Answer {
    answer: oneshot::Receiver<Returned>,
    commands: mpsc::Sender<Command>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Ok(Returned {
            result: Ok(done), ..
        }) = self.answer.try_recv()
        {
            let claimed = claimed_jobs(done);
            if !claimed.is_empty() {
                let _ = self.commands.send(Command::Release(claimed));
            }
        }
    }
}

/// Handle to the writer and checkpointer threads of one SQLite file. The threads
/// stop when the last handle is dropped (or at [`GroupCommitter::close`]).
pub(crate) struct GroupCommitter {
    commands: mpsc::Sender<Command>,
    /// Dropping it stops the checkpointer.
    checkpointer: Mutex<Option<mpsc::Sender<()>>>,
}

/// Pragmas every connection of a SQLite file store runs with: checkpoints are the
/// checkpointer thread's job, never a commit's.
pub(crate) const NO_AUTO_CHECKPOINT: (&str, &str) = ("wal_autocheckpoint", "0");

impl GroupCommitter {
    /// Open the writer's and the checkpointer's connections to the (migrated)
    /// database at `path` and start their threads.
    /// `write_turns` is the store's in-process write lock: the writer holds it
    /// while it commits, the checkpointer while it holds the writer back.
    pub(crate) fn start(path: &Path, write_turns: Arc<WriteTurns>) -> Result<Self, StoreError> {
        let writer = open(path)?;
        let checkpointer = open(path)?;
        // The checkpointer's own handle on the database file, to sync it.
        let database = std::fs::File::open(path).map_err(|e| {
            StoreError::Writer(format!("cannot open {} for syncing: {e}", path.display()))
        })?;
        let (commands, queue) = mpsc::channel();
        let (stop_checkpoints, stopped) = mpsc::channel();
        let restart = Arc::new(RestartRequest::default());
        let writer_restart = restart.clone();
        let spawn_error =
            |e: std::io::Error| StoreError::Writer(format!("cannot start thread: {e}"));
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_groups(writer, queue, &write_turns, &writer_restart))
            .map_err(spawn_error)?;
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(checkpointer, &database, stopped, &restart))
            .map_err(spawn_error)?;
        Ok(Self {
            commands,
            checkpointer: Mutex::new(Some(stop_checkpoints)),
        })
    }

    /// Store `batch` (inbox rows and their jobs) in the next group commit; one
    /// outcome per item, in order, answered after the commit.
    pub(crate) async fn accept(
        &self,
        batch: Vec<(NewInbound, Vec<NewJob>)>,
    ) -> Result<Vec<Acceptance>, StoreError> {
        let mut items = Vec::with_capacity(batch.len());
        for (inbound, jobs) in batch {
            let headers = to_json_text("inbox headers", &inbound.headers)?;
            let mut encoded_jobs = Vec::with_capacity(jobs.len());
            for job in jobs {
                let payload = to_json_text("job payload", &job.payload)?;
                encoded_jobs.push((job, payload));
            }
            items.push(Encoded {
                source: inbound.source,
                dedupe_key: inbound.dedupe_key,
                body: inbound.body,
                headers,
                jobs: encoded_jobs,
            });
        }
        match self.write(Work::Accept(items)).await? {
            Done::Accepted(outcomes) => Ok(outcomes),
            _ => Err(StoreError::Writer("unexpected answer to accept".into())),
        }
    }

    /// `Store::complete` in the next group commit.
    pub(crate) async fn complete(&self, job: &Job) -> Result<Completion, StoreError> {
        let work = Work::Complete {
            id: job.id,
            worker: job.locked_by.clone(),
            attempts: job.attempts,
            ordering_key: job.ordering_key.clone(),
        };
        match self.write(work).await? {
            Done::Completed(done) => Ok(done),
            _ => Err(StoreError::Writer("unexpected answer to complete".into())),
        }
    }

    /// `Store::claim` in the next group commit.
    pub(crate) async fn claim(
        &self,
        queue: &str,
        worker: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let work = Work::Claim {
            queue: queue.to_owned(),
            worker: worker.to_owned(),
            lease_ms,
            limit,
        };
        match self.write(work).await? {
            Done::Claimed(jobs) => Ok(jobs),
            _ => Err(StoreError::Writer("unexpected answer to claim".into())),
        }
    }

    /// `Store::put_link` in the next group commit.
    pub(crate) async fn put_link(&self, link: &NewLink) -> Result<Link, StoreError> {
        let data = to_json_text("link data", &link.data)?;
        let work = Work::PutLink {
            link: link.clone(),
            data,
        };
        match self.write(work).await? {
            Done::Linked(link) => Ok(link),
            _ => Err(StoreError::Writer("unexpected answer to put_link".into())),
        }
    }

    async fn write(&self, work: Work) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Write { work, reply })
            .map_err(|_| StoreError::Writer("the store is closed".into()))?;
        let mut answer = Answer {
            answer,
            commands: self.commands.clone(),
        };
        let returned = (&mut answer.answer)
            .await
            .map_err(|_| StoreError::Writer("the writer thread stopped".into()))?;
        returned.result
    }

    /// Let the writer finish what is queued, then close its connection; stop the
    /// checkpointer.
    pub(crate) async fn close(&self) {
        if let Ok(mut checkpointer) = self.checkpointer.lock() {
            checkpointer.take();
        }
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(StoreError::from)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, NO_AUTO_CHECKPOINT.0, NO_AUTO_CHECKPOINT.1)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    Ok(conn)
}

/// The writer thread: take every command queued, commit them as one group.
fn write_groups(
    mut conn: Connection,
    queue: mpsc::Receiver<Command>,
    write_turns: &WriteTurns,
    restart: &RestartRequest,
) {
    let mut group: Vec<(Work, Reply)> = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut close = None;
        let mut rows = 0;
        let mut released = Vec::new();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Write { work, reply } => {
                    if let Work::Accept(items) = &work {
                        rows += items.len();
                    }
                    group.push((work, reply));
                }
                Command::Release(jobs) => released.extend(jobs),
                Command::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if group.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        if !group.is_empty() {
            if rows > 0 {
                metrics::histogram!("ticketbridge_ingest_batch_size").record(rows as f64);
            }
            let _turn = write_turns.blocking_lock();
            commit_group(&mut conn, &mut group);
            restart.carry_out(&conn);
        }
        if !released.is_empty() {
            let _turn = write_turns.blocking_lock();
            release_unstarted(&mut conn, &released);
        }
        if let Some(done) = close {
            drop(conn);
            let _ = done.send(());
            return;
        }
    }
}

/// Write a group in one transaction and answer each caller. When the group
/// fails, each caller's work is tried again on its own, so one bad request
/// cannot fail the others.
fn commit_group(conn: &mut Connection, group: &mut Vec<(Work, Reply)>) {
    let works: Vec<&Work> = group.iter().map(|(work, _)| work).collect();
    let mut orphans = Vec::new();
    match store_in_transaction(conn, &works) {
        Ok(outcomes) => {
            for ((work, reply), outcome) in group.drain(..).zip(outcomes) {
                answer(reply, Ok(outcome), work, &mut orphans);
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some((work, reply)) = group.pop() {
                answer(reply, Err(error), work, &mut orphans);
            }
        }
        Err(error) => {
            tracing::debug!(%error, "group commit failed, storing each request alone");
            for (work, reply) in group.drain(..) {
                let result = store_in_transaction(conn, &[&work]).and_then(|mut done| {
                    done.pop()
                        .ok_or_else(|| StoreError::Writer("no outcome".into()))
                });
                answer(reply, result, work, &mut orphans);
            }
        }
    }
    if !orphans.is_empty() {
        release_unstarted(conn, &orphans);
    }
}

/// Answer a caller. One that went away (a timeout, a closed connection) stored
/// its rows anyway; jobs claimed at accept for it will never be started by it,
/// so they are collected in `orphans` to be released at once rather than wait
/// for their lease to expire.
fn answer(reply: Reply, result: Result<Done, StoreError>, work: Work, orphans: &mut Vec<Job>) {
    let returned = Returned {
        result,
        _work: work,
    };
    if let Err(Returned {
        result: Ok(done), ..
    }) = reply.send(returned)
    {
        orphans.extend(claimed_jobs(done));
    }
}

/// The jobs an accept claimed for its caller (none for any other write).
fn claimed_jobs(done: Done) -> Vec<Job> {
    match done {
        Done::Accepted(outcomes) => outcomes
            .into_iter()
            .flat_map(|outcome| match outcome {
                Acceptance::Accepted { claimed, .. } => claimed,
                Acceptance::Duplicate { .. } => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Put jobs claimed at accept for a caller that went away back to pending.
/// Should it fail, their leases expire and they run then.
fn release_unstarted(conn: &mut Connection, jobs: &[Job]) {
    let released = (|| -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut release = tx.prepare_cached(RELEASE_UNSTARTED)?;
            let now = now_ms();
            for job in jobs {
                // By name: `$4` comes first in the statement's text.
                release.execute(named_params! {
                    "$1": job.id,
                    "$2": job.locked_by,
                    "$3": job.attempts,
                    "$4": now,
                })?;
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if let Err(error) = released {
        tracing::warn!(%error, jobs = jobs.len(),
            "releasing jobs claimed for a caller that went away failed; their leases will expire");
    }
}

/// One transaction for `works`; one outcome per work. `now` is read once the
/// write lock is held: read before, a claim's lease would lose however long
/// the lock was waited for.
fn store_in_transaction(conn: &mut Connection, works: &[&Work]) -> Result<Vec<Done>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let mut outcomes = Vec::with_capacity(works.len());
    {
        // Inbox rows stored by this transaction: a repeat inside the group is a
        // duplicate whose first delivery has no response yet.
        let mut stored_now: HashMap<(&str, &str), i64> = HashMap::new();
        for work in works {
            outcomes.push(match work {
                Work::Accept(items) => Done::Accepted(accept_in(&tx, items, &mut stored_now, now)?),
                Work::Complete {
                    id,
                    worker,
                    attempts,
                    ordering_key,
                } => Done::Completed(complete_in(
                    &tx,
                    *id,
                    worker.as_deref(),
                    *attempts,
                    ordering_key,
                    now,
                )?),
                Work::Claim {
                    queue,
                    worker,
                    lease_ms,
                    limit,
                } => Done::Claimed(claim_in(&tx, queue, worker, *lease_ms, *limit, now)?),
                Work::PutLink { link, data } => Done::Linked(put_link_in(&tx, link, data, now)?),
            });
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// One caller's requests: inbox rows, their jobs, the claims asked for.
fn accept_in<'w>(
    tx: &rusqlite::Transaction<'_>,
    items: &'w [Encoded],
    stored_now: &mut HashMap<(&'w str, &'w str), i64>,
    now: i64,
) -> Result<Vec<Acceptance>, StoreError> {
    let mut insert_inbox = tx.prepare_cached(INSERT_INBOX)?;
    let mut find_inbox = tx.prepare_cached(FIND_INBOX)?;
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let identity = (item.source.as_str(), item.dedupe_key.as_str());
        if let Some(inbox_id) = stored_now.get(&identity) {
            outcomes.push(Acceptance::Duplicate {
                inbox_id: *inbox_id,
                response: None,
            });
            continue;
        }
        let inserted = insert_inbox.execute(params![
            item.source,
            item.dedupe_key,
            item.body,
            item.headers,
            now
        ])?;
        if inserted == 0 {
            let (inbox_id, response): (i64, Option<String>) = find_inbox
                .query_row(params![item.source, item.dedupe_key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            outcomes.push(Acceptance::Duplicate {
                inbox_id,
                response: response
                    .as_deref()
                    .map(|text| parse_json("inbox response", text))
                    .transpose()?,
            });
            continue;
        }
        let inbox_id = tx.last_insert_rowid();
        stored_now.insert(identity, inbox_id);
        let mut job_ids = Vec::with_capacity(item.jobs.len());
        let mut claimed = Vec::new();
        for (job, payload) in &item.jobs {
            let id = insert_job_in(tx, job, payload, inbox_id, now)?;
            job_ids.push(id);
            if let Some(claim) = &job.claim
                && let Some(job) = claim_stored_in(tx, id, claim, now)?
            {
                claimed.push(job);
            }
        }
        outcomes.push(Acceptance::Accepted {
            inbox_id,
            job_ids,
            claimed,
        });
    }
    Ok(outcomes)
}

/// Insert (or debounce into a pending job with its unique key) one job.
fn insert_job_in(
    tx: &rusqlite::Transaction<'_>,
    job: &NewJob,
    payload: &str,
    inbox_id: i64,
    now: i64,
) -> Result<i64, StoreError> {
    let run_at = job.run_at.unwrap_or(now);
    if let Some(key) = &job.unique_key {
        let mut debounce_job = tx.prepare_cached(debounce_statement(job))?;
        if let Some(id) = debounce_job
            .query_row(params![run_at, payload, now, key], |row| row.get(0))
            .optional()?
        {
            return Ok(id);
        }
    }
    let mut insert_job = tx.prepare_cached(INSERT_JOB_PLAIN)?;
    insert_job.execute(params![
        job.queue,
        job.kind,
        job.ordering_key,
        payload,
        job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        run_at,
        job.unique_key,
        inbox_id,
        now
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Claim job `id`, just stored, for `claim.worker` when the claim rule lets it run.
fn claim_stored_in(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    claim: &ClaimNow,
    now: i64,
) -> Result<Option<Job>, StoreError> {
    let mut claim_stored = tx.prepare_cached(CLAIM_STORED)?;
    let row = claim_stored
        .query_row(
            named_params! {
                "$1": claim.worker,
                "$2": now.saturating_add(claim.lease_ms),
                "$3": now,
                "$4": id,
            },
            JobRow::from_rusqlite,
        )
        .optional()?;
    row.map(Job::try_from).transpose()
}

/// Mark a job succeeded under its lease fence; also whether its key has a
/// pending job.
fn complete_in(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    worker: Option<&str>,
    attempts: i32,
    ordering_key: &str,
    now: i64,
) -> Result<Completion, StoreError> {
    let mut complete = tx.prepare_cached(COMPLETE)?;
    // By name: SQLite numbers `$N` parameters in order of first appearance,
    // and `$4` comes first in this text.
    let changed = complete.execute(named_params! {
        "$1": id,
        "$2": worker,
        "$3": attempts,
        "$4": now,
    })?;
    let mut successor = tx.prepare_cached(SUCCESSOR_PENDING)?;
    let successor_pending: bool = successor.query_row(params![ordering_key], |row| row.get(0))?;
    Ok(Completion {
        recorded: changed == 1,
        successor_pending,
    })
}

/// The engine's claim. One statement inside the write transaction: the ordering
/// check and the update see the same state.
fn claim_in(
    tx: &rusqlite::Transaction<'_>,
    queue: &str,
    worker: &str,
    lease_ms: i64,
    limit: i64,
    now: i64,
) -> Result<Vec<Job>, StoreError> {
    let mut claim = tx.prepare_cached(CLAIM_SQLITE)?;
    let rows = claim.query_map(
        named_params! {
            "$1": worker,
            "$2": now.saturating_add(lease_ms),
            "$3": now,
            "$4": queue,
            "$5": limit,
        },
        JobRow::from_rusqlite,
    )?;
    let rows: Vec<JobRow> = rows.collect::<Result<_, _>>()?;
    convert_all(rows)
}

/// Upsert a link.
fn put_link_in(
    tx: &rusqlite::Transaction<'_>,
    link: &NewLink,
    data: &str,
    now: i64,
) -> Result<Link, StoreError> {
    let mut put_link = tx.prepare_cached(PUT_LINK)?;
    let row = put_link.query_row(
        params![
            link.kind,
            link.source_system,
            link.source_id,
            link.target_system,
            link.target_id,
            link.state.as_str(),
            data,
            now
        ],
        LinkRow::from_rusqlite,
    )?;
    Link::try_from(row)
}

/// The WAL file of `conn`'s main database, when it has one on disk.
fn wal_file(conn: &Connection) -> Option<std::fs::File> {
    let path = conn.path()?;
    std::fs::File::open(format!("{path}-wal")).ok()
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (frames in the WAL, frames copied to the
/// database so far).
fn checkpoint(conn: &Connection) -> Result<(i64, i64), rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// The checkpointer's request that the writer complete a checkpoint between
/// two commits, so that the WAL starts over.
#[derive(Default)]
struct RestartRequest {
    wanted: AtomicBool,
}

impl RestartRequest {
    /// The writer, after a commit and holding the write turn: run the last
    /// pass when asked to. Asked once per request, whatever the result: when a
    /// reader still holds old frames, the checkpointer asks again later.
    fn carry_out(&self, conn: &Connection) {
        if self.wanted.swap(false, Ordering::AcqRel)
            && let Err(error) = checkpoint(conn)
        {
            tracing::warn!(%error, "WAL checkpoint failed; will try again");
        }
    }

    /// The checkpointer: ask, then wait (a little) for the writer to answer,
    /// so that its own next pass does not compete with the writer's.
    fn ask_and_wait(&self) {
        self.wanted.store(true, Ordering::Release);
        for _ in 0..RESTART_WAIT_STEPS {
            if !self.wanted.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(RESTART_WAIT_STEP);
        }
        // The writer is idle: the next background pass copies everything and
        // the WAL starts over by itself.
        self.wanted.store(false, Ordering::Release);
    }
}

/// The checkpointer thread: a PASSIVE checkpoint every [`CHECKPOINT_EVERY`]
/// until the store is dropped or closed, and a restart of the WAL when it is
/// past [`RESTART_FRAMES`] (see the module documentation).
fn checkpoint_until_stopped(
    conn: Connection,
    database: &std::fs::File,
    stop: mpsc::Receiver<()>,
    restart: &RestartRequest,
) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(error) = checkpoint_and_restart(&conn, database, restart, RESTART_FRAMES) {
            tracing::warn!(%error, "WAL checkpoint failed; will try again");
        }
    }
}

fn checkpoint_and_restart(
    conn: &Connection,
    database: &std::fs::File,
    restart: &RestartRequest,
    restart_frames: i64,
) -> Result<(), StoreError> {
    let (log, mut copied) = checkpoint(conn)?;
    if log <= restart_frames {
        return Ok(());
    }
    for _ in 0..MAX_CATCH_UP_PASSES {
        let before = copied;
        (_, copied) = checkpoint(conn)?;
        if copied - before <= SHORT_PASS_FRAMES {
            break;
        }
    }
    // A pass that leaves nothing behind syncs the database file before the
    // WAL may start over; passes that do not (all of the above, under load)
    // leave every page they copied unsynced. Sync them here, off the writer
    // thread, so that the writer's last pass syncs only the few pages it
    // copies itself (tens of milliseconds less in which nothing commits).
    // Likewise the frames appended since the last pass: the last pass first
    // syncs the WAL up to its end.
    database
        .sync_data()
        .map_err(|e| StoreError::Writer(format!("cannot sync the database file: {e}")))?;
    if let Some(wal) = wal_file(conn) {
        wal.sync_data()
            .map_err(|e| StoreError::Writer(format!("cannot sync the WAL file: {e}")))?;
    }
    restart.ask_and_wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::jobs::{DEBOUNCE_JOB, DEBOUNCE_JOB_KEEP_EARLIER};
    use std::sync::atomic::AtomicI64;

    /// The writer binds these statements by position, and SQLite numbers `$N`
    /// parameters in order of first appearance: they must appear as $1, $2, …
    #[test]
    fn positionally_bound_statements_name_their_parameters_in_order() {
        for sql in [
            INSERT_INBOX,
            FIND_INBOX,
            INSERT_JOB_PLAIN,
            DEBOUNCE_JOB,
            DEBOUNCE_JOB_KEEP_EARLIER,
            PUT_LINK,
        ] {
            let mut order: Vec<u32> = Vec::new();
            let mut rest = sql;
            while let Some(at) = rest.find('$') {
                rest = &rest[at + 1..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse::<u32>()
                    && !order.contains(&n)
                {
                    order.push(n);
                }
            }
            let expected: Vec<u32> = (1..=order.len() as u32).collect();
            assert_eq!(order, expected, "{sql}");
        }
    }

    #[test]
    fn a_wal_past_the_limit_starts_over_while_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let setup = Connection::open(&path).unwrap();
        setup.pragma_update(None, "journal_mode", "WAL").unwrap();
        setup
            .execute("CREATE TABLE t (x BLOB NOT NULL)", [])
            .unwrap();
        drop(setup);
        let checkpointer = open(&path).unwrap();
        let database = std::fs::File::open(&path).unwrap();
        let restart = Arc::new(RestartRequest::default());
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicI64::new(0));

        // A writer that never pauses and answers restart requests like the
        // writer thread: a plain PASSIVE checkpoint never catches up with it.
        let writer = {
            let (restart, stop, written) = (restart.clone(), stop.clone(), written.clone());
            let writer = open(&path).unwrap();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    writer
                        .execute("INSERT INTO t (x) VALUES (?1)", [vec![7u8; 8_000]])
                        .unwrap();
                    written.fetch_add(1, Ordering::Relaxed);
                    restart.carry_out(&writer);
                }
            })
        };
        let mut sizes = Vec::new();
        for _ in 0..10 {
            checkpoint_and_restart(&checkpointer, &database, &restart, 200).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            sizes.push(checkpoint(&checkpointer).unwrap().0);
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();

        let restarts = sizes.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(restarts > 0, "the WAL never started over: {sizes:?}");
        let largest = sizes.iter().copied().max().unwrap_or_default();
        assert!(
            largest < 20_000,
            "the WAL grew to {largest} frames: {sizes:?}"
        );
        let rows: i64 = checkpointer
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, written.load(Ordering::Relaxed), "no commit was lost");
    }
}
