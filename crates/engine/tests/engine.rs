//! Engine behaviour against a real store: SQLite always, PostgreSQL when
//! TICKETBRIDGE_TEST_POSTGRES_URL is set. "Two engines" means two stores (pools)
//! on one database, as two `ticketbridge serve` processes would have.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use engine::{Engine, EngineConfig, JobError, handler_fn};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Acceptance, JobFilter, JobStatus, NewInbound, NewJob, Store, now_ms};
use tokio_util::sync::CancellationToken;

/// A database two stores can open: (url, guard keeping a temp dir alive).
struct Database {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = store::testing::sqlite_url(&dir);
                    super::$name(super::Database { url, _dir: Some(dir) }).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(url) = store::testing::fresh_postgres_url().await else {
                        println!("{}", store::testing::POSTGRES_SKIPPED);
                        return;
                    };
                    super::$name(super::Database { url, _dir: None }).await;
                }
            )*
        }
    };
}

on_both_backends!(
    two_engines_keep_per_key_order,
    transient_failures_retry_then_succeed,
    permanent_failure_is_dead_at_once,
    exhausted_attempts_are_dead_then_revived,
    unknown_kind_is_dead,
    panicking_handler_is_retried,
    crashed_worker_job_is_taken_again,
    shutdown_releases_in_flight_jobs,
    a_handler_stops_before_its_lease_can_run_out_when_the_store_is_unreachable,
    delayed_job_runs_at_its_time,
    a_job_claimed_at_accept_runs_in_a_reserved_slot,
    a_handler_that_gives_its_slot_back_lets_the_next_job_start,
    a_job_claimed_while_its_slot_was_reserved_is_given_back_not_held,
    a_job_a_handler_enqueues_through_the_store_runs_without_waiting_for_a_poll,
    succeeded_jobs_are_deleted_after_the_retention_period,
    succeeded_jobs_are_kept_when_retention_is_off,
    audit_lines_are_deleted_after_the_retention_period,
    request_bodies_are_emptied_after_the_retention_period,
);

fn config(worker: &str) -> EngineConfig {
    EngineConfig {
        worker_id: worker.into(),
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(50),
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        default_concurrency: 4,
        shutdown_grace: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

async fn open(db: &Database) -> Store {
    Store::connect(&db.url).await.unwrap()
}

async fn wait_for(store: &Store, id: i64, status: JobStatus) -> store::Job {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = store.job(id).await.unwrap().unwrap();
        if job.status == status {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {status}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn two_engines_keep_per_key_order(db: Database) {
    const KEYS: i64 = 20;
    const PER_KEY: i64 = 8;
    let store = open(&db).await;
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for _round in 0..PER_KEY {
        for k in 0..KEYS {
            let key = format!("conv:{k}");
            let queue = if k % 2 == 0 { "glpi" } else { "itop" };
            let id = store
                .enqueue(NewJob::new(queue, "record", &key, json!({})))
                .await
                .unwrap();
            expected.entry(key).or_default().push(id);
        }
    }
    let executed: Arc<Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let mut runs = Vec::new();
    // Each engine's jobs wait until the other engine has started one, so
    // neither can drain the queue alone however the scheduler runs them. An
    // engine holds at most 4 keys per queue of the 10 each queue has, so the
    // other always finds a key it may take.
    let (a_started, _) = tokio::sync::watch::channel(false);
    let (b_started, _) = tokio::sync::watch::channel(false);
    let engines = [
        ("engine-a", a_started.clone(), b_started.clone()),
        ("engine-b", b_started, a_started),
    ];
    for (name, mine, other) in engines {
        let mut engine = Engine::new(open(&db).await, config(name));
        let (executed, running, overlaps) = (executed.clone(), running.clone(), overlaps.clone());
        engine.register(
            "record",
            handler_fn(move |job| {
                let (executed, running, overlaps) =
                    (executed.clone(), running.clone(), overlaps.clone());
                let (mine, mut other) = (mine.clone(), other.subscribe());
                async move {
                    if !running.lock().unwrap().insert(job.ordering_key.clone()) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    mine.send_replace(true);
                    let both = tokio::time::timeout(
                        Duration::from_secs(20),
                        other.wait_for(|started| *started),
                    )
                    .await
                    .is_ok_and(|seen| seen.is_ok());
                    assert!(both, "the other engine never started a job");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    executed
                        .lock()
                        .unwrap()
                        .entry(job.ordering_key.clone())
                        .or_default()
                        .push(job.id);
                    running.lock().unwrap().remove(&job.ordering_key);
                    Ok(())
                }
            }),
        );
        let token = shutdown.clone();
        runs.push(tokio::spawn(async move { engine.run(token).await }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: HashMap<JobStatus, i64> =
            store.job_counts().await.unwrap().into_iter().collect();
        if counts[&JobStatus::Succeeded] == KEYS * PER_KEY {
            break;
        }
        assert!(Instant::now() < deadline, "jobs not finished: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two jobs of one key ran at once"
    );
    let executed = executed.lock().unwrap().clone();
    for (key, ids) in &expected {
        assert_eq!(&executed[key], ids, "order of {key}");
    }
    // Both engines did work.
    let workers: HashSet<Option<String>> = store
        .jobs(&JobFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.locked_by)
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
}

async fn transient_failures_retry_then_succeed(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), config("w"));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    engine.register(
        "flaky",
        handler_fn(move |_job| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(JobError::transient("503 from GLPI")),
                    1 => Err(JobError::transient_after("429", Duration::from_millis(30))),
                    _ => Ok(()),
                }
            }
        }),
    );
    let id = engine
        .enqueue(NewJob::new("glpi", "flaky", "k", json!({})))
        .await
        .unwrap();
    let later = engine
        .enqueue(NewJob::new("glpi", "flaky", "k", json!({})))
        .await
        .unwrap();
    let (token, run) = spawn_run(&engine);
    let done = wait_for(&store, id, JobStatus::Succeeded).await;
    assert_eq!(done.attempts, 3);
    assert_eq!(done.last_error.as_deref(), Some("429"));
    let after = wait_for(&store, later, JobStatus::Succeeded).await;
    assert!(
        after.finished_at >= done.finished_at,
        "later job of the key ran after"
    );
    token.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

async fn permanent_failure_is_dead_at_once(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), config("w"));
    engine.register(
        "reject",
        handler_fn(|_job| async { Err(JobError::permanent("400: bad field")) }),
    );
    let id = engine
        .enqueue(NewJob::new("glpi", "reject", "k", json!({})))
        .await
        .unwrap();
    engine
        .run_until_idle(Duration::from_secs(20))
        .await
        .unwrap();
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Dead, 1));
    assert_eq!(job.last_error.as_deref(), Some("400: bad field"));
}

async fn exhausted_attempts_are_dead_then_revived(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), config("w"));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    engine.register(
        "push",
        handler_fn(move |_job| {
            let ok = flag.load(Ordering::SeqCst);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(JobError::transient("connection refused"))
                }
            }
        }),
    );
    let id = engine
        .enqueue(NewJob::new("glpi", "push", "k", json!({})).max_attempts(3))
        .await
        .unwrap();
    let (token, run) = spawn_run(&engine);
    let dead = wait_for(&store, id, JobStatus::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{dead:?}"
    );
    assert!(
        dead.last_error.as_deref().unwrap().contains("exhausted"),
        "{dead:?}"
    );

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(store.revive_dead(Some(id)).await.unwrap(), 1);
    engine.waker().wake();
    let revived = wait_for(&store, id, JobStatus::Succeeded).await;
    assert_eq!(revived.attempts, 1);
    token.cancel();
    run.await.unwrap().unwrap();
}

async fn unknown_kind_is_dead(db: Database) {
    let store = open(&db).await;
    let engine = Engine::new(store.clone(), config("w"));
    let id = engine
        .enqueue(NewJob::new("glpi", "nobody", "k", json!({})))
        .await
        .unwrap();
    assert_eq!(
        engine
            .run_until_idle(Duration::from_secs(20))
            .await
            .unwrap(),
        1
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert!(
        job.last_error
            .unwrap()
            .contains("no handler registered for job kind `nobody`")
    );
}

async fn panicking_handler_is_retried(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), config("w"));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    engine.register(
        "fragile",
        handler_fn(move |_job| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("boom");
                }
                Ok(())
            }
        }),
    );
    let id = engine
        .enqueue(NewJob::new("glpi", "fragile", "k", json!({})))
        .await
        .unwrap();
    let (token, run) = spawn_run(&engine);
    let job = wait_for(&store, id, JobStatus::Succeeded).await;
    assert_eq!(job.attempts, 2);
    assert!(job.last_error.unwrap().contains("handler panicked: boom"));
    token.cancel();
    run.await.unwrap().unwrap();
}

async fn crashed_worker_job_is_taken_again(db: Database) {
    let store = open(&db).await;
    let id = store
        .enqueue(NewJob::new("glpi", "work", "k", json!({})))
        .await
        .unwrap();
    // A "process" claims with a short lease and dies without finishing.
    {
        let crashed = open(&db).await;
        let taken = crashed
            .claim("glpi", "crashed-worker", 50, 1)
            .await
            .unwrap();
        assert_eq!(taken[0].id, id);
        crashed.close().await;
    }
    let mut engine = Engine::new(store.clone(), config("survivor"));
    engine.register("work", handler_fn(|_job| async { Ok(()) }));
    let (token, run) = spawn_run(&engine);
    let job = wait_for(&store, id, JobStatus::Succeeded).await;
    assert_eq!(job.attempts, 2);
    assert_eq!(job.locked_by.as_deref(), Some("survivor"));
    assert!(job.last_error.unwrap().contains("crashed-worker"));
    token.cancel();
    run.await.unwrap().unwrap();
}

async fn shutdown_releases_in_flight_jobs(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), config("w"));
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    engine.register(
        "slow",
        handler_fn(move |_job| {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                // Never finishes on its own: only shutdown ends it.
                std::future::pending::<()>().await;
                Ok(())
            }
        }),
    );
    let id = engine
        .enqueue(NewJob::new("glpi", "slow", "k", json!({})))
        .await
        .unwrap();
    let (token, run) = spawn_run(&engine);
    tokio::time::timeout(Duration::from_secs(20), started.notified())
        .await
        .unwrap();
    assert_eq!(
        store.job(id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    token.cancel();
    run.await.unwrap().unwrap();
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.attempts, job.locked_by),
        (JobStatus::Pending, 0, None)
    );
}

/// Make every update of `jobs` fail from now on, as if the store were
/// unreachable for writes (reads still work, so the test can look).
async fn refuse_job_updates(db: &Database) {
    use sqlx::Connection;
    if db.url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_updates BEFORE UPDATE ON jobs \
             BEGIN SELECT RAISE(ABORT, 'store unreachable'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        for statement in [
            "CREATE FUNCTION refuse_update() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'store unreachable'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_updates BEFORE UPDATE ON jobs \
             FOR EACH ROW EXECUTE FUNCTION refuse_update()",
        ] {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
    }
}

/// Once the lease cannot be extended, another process may take the job when
/// it runs out: the handler must have stopped before that moment.
async fn a_handler_stops_before_its_lease_can_run_out_when_the_store_is_unreachable(db: Database) {
    struct StopsAt(Arc<Mutex<Option<i64>>>);
    impl Drop for StopsAt {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(now_ms());
        }
    }
    let store = open(&db).await;
    // The handler is stopped a tenth of the lease before it ends: a lease long
    // enough that the tenth outlasts a busy machine's scheduling delays.
    let mut engine = Engine::new(
        store.clone(),
        EngineConfig {
            lease: Duration::from_secs(5),
            ..config("w")
        },
    );
    let started = Arc::new(tokio::sync::Notify::new());
    let stopped_at = Arc::new(Mutex::new(None));
    let (signal, stops) = (started.clone(), stopped_at.clone());
    engine.register(
        "slow",
        handler_fn(move |_job| {
            let (signal, guard) = (signal.clone(), StopsAt(stops.clone()));
            async move {
                let _guard = guard;
                signal.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            }
        }),
    );
    let id = engine
        .enqueue(NewJob::new("glpi", "slow", "k", json!({})))
        .await
        .unwrap();
    let (token, run) = spawn_run(&engine);
    tokio::time::timeout(Duration::from_secs(20), started.notified())
        .await
        .unwrap();
    refuse_job_updates(&db).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let stopped = loop {
        if let Some(at) = *stopped_at.lock().unwrap() {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "the handler still runs with a lease it cannot extend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let job = store.job(id).await.unwrap().unwrap();
    let lease_end = job.locked_until.unwrap();
    assert!(
        stopped < lease_end,
        "stopped at {stopped}, after the lease ran out at {lease_end}"
    );
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

/// PostgreSQL: the first attempt to record a success fails (a sequence is not
/// rolled back with the failed statement, so exactly one fails). The job ran
/// on its only attempt: it must end succeeded, not dead after its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_success_recorded_on_the_second_try_is_not_lost() {
    use sqlx::Connection;
    let Some(url) = store::testing::fresh_postgres_url().await else {
        println!("{}", store::testing::POSTGRES_SKIPPED);
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for statement in [
        "CREATE SEQUENCE completion_failures",
        "CREATE FUNCTION fail_first_completion() RETURNS trigger AS $$ BEGIN \
         IF NEW.status = 'succeeded' AND nextval('completion_failures') = 1 THEN \
         RAISE EXCEPTION 'connection lost'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER fail_first_completion BEFORE UPDATE ON jobs \
         FOR EACH ROW EXECUTE FUNCTION fail_first_completion()",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    let mut engine = Engine::new(
        store.clone(),
        EngineConfig {
            lease: Duration::from_secs(3),
            ..config("w")
        },
    );
    engine.register("once", handler_fn(|_job| async { Ok(()) }));
    let id = engine
        .enqueue(NewJob::new("glpi", "once", "k", json!({})).max_attempts(1))
        .await
        .unwrap();
    let (token, run) = spawn_run(&engine);
    let job = wait_for(&store, id, JobStatus::Succeeded).await;
    assert_eq!(job.attempts, 1);
    // Past a lease: nothing reclaims or buries it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        store.job(id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

async fn delayed_job_runs_at_its_time(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), config("w"));
    let ran_at = Arc::new(Mutex::new(None));
    let slot = ran_at.clone();
    engine.register(
        "flush",
        handler_fn(move |_job| {
            *slot.lock().unwrap() = Some(now_ms());
            async { Ok(()) }
        }),
    );
    // Far enough ahead that the enqueue and the idle check below come first
    // on a busy machine.
    let due = now_ms() + 2_000;
    let id = engine
        .enqueue(NewJob::new("chat", "flush", "chat:1", json!({})).run_at(due))
        .await
        .unwrap();
    // Not due yet: idle straight away, nothing ran.
    assert_eq!(
        engine
            .run_until_idle(Duration::from_secs(20))
            .await
            .unwrap(),
        0
    );
    let (token, run) = spawn_run(&engine);
    wait_for(&store, id, JobStatus::Succeeded).await;
    token.cancel();
    run.await.unwrap().unwrap();
    let ran = ran_at.lock().unwrap().unwrap();
    assert!(ran >= due, "ran at {ran}, due {due}");
}

fn one_slot(worker: &str) -> EngineConfig {
    EngineConfig {
        default_concurrency: 1,
        ..config(worker)
    }
}

/// `run` in the background, and a reservation once the engine is running.
/// Run `engine` in a task of its own: the token stops it.
fn spawn_run(
    engine: &Engine,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), engine::EngineError>>,
) {
    let token = CancellationToken::new();
    let run = tokio::spawn({
        let (engine, token) = (engine.clone(), token.clone());
        async move { engine.run(token).await }
    });
    (token, run)
}

async fn running_engine(
    engine: &Engine,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), engine::EngineError>>,
    engine::Reservation,
) {
    let (token, run) = spawn_run(engine);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(reservation) = engine.reserve("glpi") {
            return (token, run, reservation);
        }
        assert!(Instant::now() < deadline, "no slot was ever free");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_job_claimed_at_accept_runs_in_a_reserved_slot(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), one_slot("w"));
    let release = Arc::new(tokio::sync::Notify::new());
    let first_runs = Arc::new(Mutex::new(Vec::new()));
    let (gate, runs) = (release.clone(), first_runs.clone());
    engine.register(
        "create",
        handler_fn(move |job| {
            let gate = gate.clone();
            runs.lock().unwrap().push(job.is_first_run());
            async move {
                gate.notified().await;
                Ok(())
            }
        }),
    );
    let (token, run, reservation) = running_engine(&engine).await;
    // The queue has one slot, and the reservation holds it.
    assert!(engine.reserve("glpi").is_none());
    let accepted = store
        .accept(
            NewInbound {
                source: "web".into(),
                dedupe_key: "r1".into(),
                body: b"{}".to_vec(),
                headers: json!({}),
            },
            vec![NewJob::new("glpi", "create", "r1", json!({})).claim_now(reservation.claim())],
        )
        .await
        .unwrap();
    let Acceptance::Accepted {
        job_ids, claimed, ..
    } = accepted
    else {
        panic!("not accepted: {accepted:?}")
    };
    if store.groups_commits() {
        assert_eq!(claimed.len(), 1, "a SQLite file claims at accept");
        reservation.start(claimed[0].clone());
        // Still one job at a time: the started job has the slot.
        assert!(engine.reserve("glpi").is_none());
    } else {
        assert!(claimed.is_empty());
        drop(reservation);
        engine.waker().wake();
    }
    wait_for(&store, job_ids[0], JobStatus::Running).await;
    release.notify_one();
    let done = wait_for(&store, job_ids[0], JobStatus::Succeeded).await;
    assert_eq!(done.attempts, 1);
    assert_eq!(done.locked_by.as_deref(), Some("w"));
    assert_eq!(
        *first_runs.lock().unwrap(),
        vec![true],
        "ran once, as a first run"
    );
    token.cancel();
    run.await.unwrap().unwrap();
}

/// Holds every write to `jobs` (as a slow or busy store would) until the
/// returned function is awaited.
async fn hold_job_writes(db: &Database) -> impl std::future::Future<Output = ()> {
    use sqlx::Connection;
    enum Held {
        Sqlite(sqlx::SqliteConnection),
        Postgres(sqlx::PgConnection),
    }
    let held = if db.url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        Held::Sqlite(conn)
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE jobs IN EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        Held::Postgres(conn)
    };
    async move {
        match held {
            Held::Sqlite(mut c) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
            }
            Held::Postgres(mut c) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
            }
        }
    }
}

/// A runner claims as many jobs as it has free slots; a slot reserved for a
/// job claimed at accept while that claim runs must not leave a claimed job
/// waiting `running` with no heartbeat (taken again elsewhere once its lease
/// ran out, so run twice), and shutdown must not wait for such a slot.
async fn a_job_claimed_while_its_slot_was_reserved_is_given_back_not_held(db: Database) {
    let store = open(&db).await;
    let grace = Duration::from_millis(200);
    let mut engine = Engine::new(
        store.clone(),
        EngineConfig {
            lease: Duration::from_secs(3),
            concurrency: HashMap::from([("glpi".to_string(), 2)]),
            shutdown_grace: grace,
            ..config("w")
        },
    );
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = starts.clone();
    engine.register(
        "work",
        handler_fn(move |job| {
            log.lock().unwrap().push(job.id);
            async move {
                std::future::pending::<()>().await;
                Ok(())
            }
        }),
    );
    let mut ids = Vec::new();
    for key in ["a", "b", "c"] {
        ids.push(
            store
                .enqueue(NewJob::new("glpi", "work", key, json!({})))
                .await
                .unwrap(),
        );
    }
    // The runner counts two free slots, then its claim waits on the store...
    let release_writes = hold_job_writes(&db).await;
    let (token, run) = spawn_run(&engine);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... while one of them is reserved for a job claimed at accept.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reservation = loop {
        if let Some(r) = engine.reserve("glpi") {
            break r;
        }
        assert!(Instant::now() < deadline, "no slot was ever free");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    release_writes.await;

    // Longer than the lease, the reservation held: no claimed job waits
    // without its handler, none is taken again after its lease.
    let mut unstarted_since: HashMap<i64, Instant> = HashMap::new();
    let watch_until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < watch_until {
        let started: HashSet<i64> = starts.lock().unwrap().iter().copied().collect();
        for id in &ids {
            let job = store.job(*id).await.unwrap().unwrap();
            assert!(
                !job.last_error
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("lease expired"),
                "job {id} was held past its lease: {job:?}"
            );
            if job.status == JobStatus::Running && !started.contains(id) {
                let since = *unstarted_since.entry(*id).or_insert_with(Instant::now);
                // Well under the lease: the give-back is one write, which a
                // busy machine may take a while to make.
                assert!(
                    since.elapsed() < Duration::from_millis(1500),
                    "job {id} is running without its handler: {job:?}"
                );
            } else {
                unstarted_since.remove(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(starts.lock().unwrap().len(), 1, "one slot was free");

    // Shutdown with the reservation still held returns within the grace.
    let stopping = Instant::now();
    token.cancel();
    tokio::time::timeout(grace + Duration::from_secs(2), run)
        .await
        .expect("shutdown waited for a slot")
        .unwrap()
        .unwrap();
    assert!(stopping.elapsed() < grace + Duration::from_secs(2));
    drop(reservation);
    let started = starts.lock().unwrap().clone();
    let unique: HashSet<i64> = started.iter().copied().collect();
    assert_eq!(unique.len(), started.len(), "a job ran twice: {started:?}");
}

async fn a_handler_that_gives_its_slot_back_lets_the_next_job_start(db: Database) {
    let store = open(&db).await;
    let mut engine = Engine::new(store.clone(), one_slot("w"));
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    engine.register(
        "slow",
        handler_fn(move |_job| {
            let gate = gate.clone();
            async move {
                // Done with the target; only bookkeeping would be left.
                engine::release_slot();
                gate.notified().await;
                Ok(())
            }
        }),
    );
    engine.register("quick", handler_fn(|_job| async { Ok(()) }));
    let slow = engine
        .enqueue(NewJob::new("glpi", "slow", "a", json!({})))
        .await
        .unwrap();
    let (token, run, reservation) = running_engine(&engine).await;
    drop(reservation);
    wait_for(&store, slow, JobStatus::Running).await;
    let quick = engine
        .enqueue(NewJob::new("glpi", "quick", "b", json!({})))
        .await
        .unwrap();
    // One slot, and the slow job still runs: the quick one got the slot back.
    wait_for(&store, quick, JobStatus::Succeeded).await;
    assert_eq!(
        store.job(slow).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    release.notify_one();
    wait_for(&store, slow, JobStatus::Succeeded).await;
    token.cancel();
    run.await.unwrap().unwrap();
}

/// Handlers enqueue follow-up jobs with `Store::enqueue`, which wakes nobody;
/// the job's end must, or the follow-up would wait for the next poll.
async fn a_job_a_handler_enqueues_through_the_store_runs_without_waiting_for_a_poll(db: Database) {
    let store = open(&db).await;
    let slow_polls = EngineConfig {
        poll_interval: Duration::from_secs(60),
        sweep_interval: Duration::from_secs(60),
        ..config("w")
    };
    let mut engine = Engine::new(store.clone(), slow_polls);
    let follow_up = Arc::new(Mutex::new(None));
    let (handler_store, slot) = (store.clone(), follow_up.clone());
    engine.register(
        "first",
        handler_fn(move |_job| {
            let (store, slot) = (handler_store.clone(), slot.clone());
            async move {
                let id = store
                    .enqueue(NewJob::new("glpi", "second", "other-key", json!({})))
                    .await
                    .map_err(|e| JobError::transient(e.to_string()))?;
                *slot.lock().unwrap() = Some(id);
                Ok(())
            }
        }),
    );
    engine.register("second", handler_fn(|_job| async { Ok(()) }));
    let (token, run, reservation) = running_engine(&engine).await;
    drop(reservation);
    let first = engine
        .enqueue(NewJob::new("glpi", "first", "key", json!({})))
        .await
        .unwrap();
    wait_for(&store, first, JobStatus::Succeeded).await;
    let second = follow_up.lock().unwrap().expect("the handler enqueued");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.job(second).await.unwrap().unwrap().status != JobStatus::Succeeded {
        assert!(
            Instant::now() < deadline,
            "the follow-up waited for a poll (60 s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    token.cancel();
    run.await.unwrap().unwrap();
}

/// An engine that keeps succeeded jobs and request bodies for the given
/// periods and sweeps every 50 ms, with a `work` kind that succeeds and a
/// `reject` kind that fails for good.
fn retention_engine(
    store: &Store,
    keep_succeeded: Option<Duration>,
    keep_request_bodies: Option<Duration>,
) -> Engine {
    let mut engine = Engine::new(
        store.clone(),
        EngineConfig {
            keep_succeeded,
            keep_request_bodies,
            retention_interval: Duration::from_millis(50),
            ..config("w")
        },
    );
    engine.register("work", handler_fn(|_job| async { Ok(()) }));
    engine.register(
        "reject",
        handler_fn(|_job| async { Err(JobError::permanent("400: bad field")) }),
    );
    engine
}

async fn succeeded_jobs_are_deleted_after_the_retention_period(db: Database) {
    let store = open(&db).await;
    let engine = retention_engine(&store, Some(Duration::from_millis(300)), None);
    let done = engine
        .enqueue(NewJob::new("glpi", "work", "a", json!({})))
        .await
        .unwrap();
    let dead = engine
        .enqueue(NewJob::new("glpi", "reject", "b", json!({})))
        .await
        .unwrap();
    let later = engine
        .enqueue(NewJob::new("glpi", "work", "c", json!({})).run_at(now_ms() + 60_000))
        .await
        .unwrap();
    let (shutdown, running, _) = running_engine(&engine).await;
    let finished = wait_for(&store, done, JobStatus::Succeeded).await;
    wait_for(&store, dead, JobStatus::Dead).await;
    // Kept while younger than the retention period...
    let finished_at = finished.finished_at.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let present = store.job(done).await.unwrap().is_some();
        let age = now_ms() - finished_at;
        if age < 250 {
            assert!(present, "deleted {age} ms after it finished");
        }
        if !present {
            // ...and deleted once past it.
            assert!(age >= 300, "deleted after {age} ms");
            break;
        }
        assert!(Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dead letters and unfinished jobs stay.
    assert_eq!(
        store.job(dead).await.unwrap().unwrap().status,
        JobStatus::Dead
    );
    assert_eq!(
        store.job(later).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

async fn audit_lines_are_deleted_after_the_retention_period(db: Database) {
    let store = open(&db).await;
    let engine = Engine::new(
        store.clone(),
        EngineConfig {
            keep_succeeded: None,
            keep_request_bodies: None,
            keep_audit: Some(Duration::from_millis(300)),
            retention_interval: Duration::from_millis(50),
            ..config("w")
        },
    );
    store
        .audit(&store::NewAudit {
            job_id: None,
            system: "glpi".into(),
            action: "create".into(),
            object_key: "ticket:1".into(),
            detail: json!({}),
        })
        .await
        .unwrap();
    // The line's own time: a clock read after the write returned would be
    // later by however long the write took.
    let written = store.audit_entries(1).await.unwrap()[0].at;
    let (shutdown, running, _) = running_engine(&engine).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let present = !store.audit_entries(10).await.unwrap().is_empty();
        let age = now_ms() - written;
        if age < 250 {
            assert!(present, "deleted {age} ms after it was written");
        }
        if !present {
            assert!(age >= 300, "deleted after {age} ms");
            break;
        }
        assert!(Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

async fn succeeded_jobs_are_kept_when_retention_is_off(db: Database) {
    let store = open(&db).await;
    // The sweep runs (for request bodies) but must leave succeeded jobs alone.
    let engine = retention_engine(&store, None, Some(Duration::from_secs(3600)));
    let done = engine
        .enqueue(NewJob::new("glpi", "work", "a", json!({})))
        .await
        .unwrap();
    let (shutdown, running, _) = running_engine(&engine).await;
    wait_for(&store, done, JobStatus::Succeeded).await;
    // Several sweep periods later it is still there.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.job(done).await.unwrap().is_some());
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

async fn request_bodies_are_emptied_after_the_retention_period(db: Database) {
    let store = open(&db).await;
    let engine = retention_engine(&store, None, Some(Duration::from_millis(300)));
    let mut ids = Vec::new();
    for (key, kind) in [("a", "work"), ("b", "reject")] {
        let accepted = store
            .accept(
                NewInbound {
                    source: "web".into(),
                    dedupe_key: key.into(),
                    body: br#"{"ticket":"printer jammed"}"#.to_vec(),
                    headers: json!({}),
                },
                vec![NewJob::new("glpi", kind, key, json!({}))],
            )
            .await
            .unwrap();
        let Acceptance::Accepted {
            inbox_id, job_ids, ..
        } = accepted
        else {
            panic!("not accepted: {accepted:?}")
        };
        ids.push((inbox_id, job_ids[0]));
    }
    let [(done_inbox, done_job), (dead_inbox, dead_job)] = ids[..] else {
        panic!("two requests expected")
    };
    let (shutdown, running, _) = running_engine(&engine).await;
    wait_for(&store, done_job, JobStatus::Succeeded).await;
    wait_for(&store, dead_job, JobStatus::Dead).await;
    let received_at = store.inbox(done_inbox).await.unwrap().unwrap().received_at;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let emptied = store
            .inbox(done_inbox)
            .await
            .unwrap()
            .unwrap()
            .body
            .is_empty();
        let age = now_ms() - received_at;
        if age < 250 {
            assert!(!emptied, "emptied {age} ms after it was received");
        }
        if emptied {
            assert!(age >= 300, "emptied after {age} ms");
            break;
        }
        assert!(Instant::now() < deadline, "never emptied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The dead letter's request keeps its body, to be replayed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !store
            .inbox(dead_inbox)
            .await
            .unwrap()
            .unwrap()
            .body
            .is_empty()
    );
    // Jobs are kept (keep_succeeded is off).
    assert!(store.job(done_job).await.unwrap().is_some());
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
