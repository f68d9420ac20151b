//! `ticketbridge bench intake`: tickets/s and GLPI requests per ticket
//! through the intake API against the GLPI simulator, next to a seed-style
//! baseline at the same concurrency: the seed's HTTP service
//! ([`crate::bench_seed`]: initSession, search Entity, POST Ticket,
//! killSession per ticket) between the same callers and the same simulator.
//! The seed's four GLPI calls made by the callers themselves, with no service
//! between, are measured as well and reported beside it.
//!
//! The GLPI simulator and the load generator each run on a runtime (one
//! thread) of their own, as the GLPI server and the callers would be other
//! processes: the service's two worker threads run only the service, and no
//! simulator or client task waits in the service's run queues (nor the
//! other way round). The baseline gets the same simulator and client runtimes,
//! and its service runs on the service's runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sim::glpi::{GlpiSim, NewUser, RunningSim, SimConfig};
use ticketbridge::testkit::TestApp;

use crate::bench_seed::{SeedGlpi, SeedService, seed_ticket};
use crate::cli::IntakeBench;
use ticketbridge::say;

const KEY: &str = "bench-key";
const CNPJ: &str = "12.345.678/0001-90";

struct Figures {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    glpi_calls: u64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn per_ticket(&self) -> f64 {
        self.glpi_calls as f64 / self.ok.max(1) as f64
    }
}

/// A runtime of one worker thread standing for another process (the GLPI
/// server, the callers).
struct Peer {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Peer {
    fn new(name: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .with_context(|| format!("cannot start the {name} runtime"))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Run `future` on this peer's thread and wait for it.
    async fn run<F>(&self, future: F) -> anyhow::Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .context("the peer runtime is stopped")?;
        runtime
            .spawn(future)
            .await
            .context("a task on a peer runtime failed")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block; let it wind down alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A simulator seeded with what the requests name, serving on `peer`.
async fn seeded_sim(peer: &Peer) -> anyhow::Result<RunningSim> {
    let sim = peer
        .run(async { GlpiSim::start(SimConfig::default()).await })
        .await??;
    sim.add_entity("ACME", 0, Some(CNPJ));
    sim.add_user(NewUser {
        login: "maria".into(),
        emails: vec!["maria@acme.com.br".into()],
        ..NewUser::default()
    });
    sim.add_category("Printers");
    Ok(sim)
}

/// The service on its own store, pointing at `sim`.
async fn service(
    options: &IntakeBench,
    sim: &RunningSim,
    callers: &Peer,
    dir: &tempfile::TempDir,
    run: &str,
) -> anyhow::Result<Arc<TestApp>> {
    let store_url = match &options.store {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}",
            dir.path().join(format!("{run}.db")).display()
        ),
    };
    let concurrency = options.concurrency.unwrap_or(options.clients).max(1);
    let toml = format!(
        r#"
[engine]
concurrency = {concurrency}
[targets.glpi]
kind = "glpi"
url = "{url}"
app_token = "${{APP}}"
user_token = "${{USER}}"
tax_id_search_option = 76666
[sources.web]
kind = "intake"
target = "glpi"
api_keys = ["{KEY}"]
default_entity = 0
"#,
        url = sim.base_url()
    );
    let env = vec![
        ("APP".to_string(), sim.app_token()),
        (
            "USER".to_string(),
            sim.user_token("glpi").unwrap_or_default(),
        ),
    ];
    let config = config::load_str(&toml, env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = store::Store::connect_with(
        &store_url,
        &store::ConnectOptions {
            max_connections: options.pool,
            ..store::ConnectOptions::default()
        },
    )
    .await
    .with_context(|| format!("cannot open {}", config::redact_url(&store_url)))?;
    if run == "i1" {
        say!(
            "store: {:?}, pool {}, engine.concurrency {concurrency}",
            store.backend(),
            options
                .pool
                .map_or_else(|| "default".to_string(), |p| p.to_string())
        );
    }
    let app = Arc::new(TestApp::spawn(config, store).await?);
    // Warm the caches and the session.
    intake_run(
        callers,
        &app,
        sim,
        options.clients,
        options.clients,
        &format!("warm-{run}"),
    )
    .await?;
    Ok(app)
}

async fn stop(app: Arc<TestApp>, sim: RunningSim, glpi: &Peer) -> anyhow::Result<()> {
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
    glpi.run(sim.shutdown()).await
}

/// Each run gets a fresh simulator (and, without `--store`, a fresh store),
/// so no run pays for the rows an earlier one left in the simulator.
pub async fn run(options: IntakeBench) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    say!(
        "intake benchmark: {} tickets per run, {} concurrent clients",
        options.tickets,
        options.clients
    );
    let glpi = Peer::new("glpi-sim")?;
    let callers = Peer::new("bench-callers")?;
    let latency = Duration::from_millis(options.latency_ms);

    // Rounds of (intake API, baseline) back to back: on a shared machine the
    // same binary moves by ±10 % from one minute to the next, so each ratio
    // compares runs seconds apart and the median of the ratios is reported.
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        let tag = format!("i{round}");
        let sim = seeded_sim(&glpi).await?;
        let app = service(&options, &sim, &callers, &dir, &tag).await?;
        sim.faults().set_latency(latency);
        let intake =
            intake_run(&callers, &app, &sim, options.tickets, options.clients, &tag).await?;
        stop(app, sim, &glpi).await?;

        let sim = seeded_sim(&glpi).await?;
        let seed = SeedService::start(seed_glpi(&sim)).await?;
        sim.faults().set_latency(latency);
        let baseline =
            seed_run(&callers, &sim, &seed.url, options.tickets, options.clients).await?;
        drop(seed);
        glpi.run(sim.shutdown()).await?;

        let sim = seeded_sim(&glpi).await?;
        sim.faults().set_latency(latency);
        let direct = direct_run(&callers, &sim, options.tickets, options.clients).await?;
        glpi.run(sim.shutdown()).await?;
        rounds.push((intake, baseline, direct));
    }

    let sim = seeded_sim(&glpi).await?;
    let app = service(&options, &sim, &callers, &dir, "z").await?;
    let zero = intake_run(&callers, &app, &sim, options.tickets, options.clients, "z").await?;
    stop(app, sim, &glpi).await?;

    say!("| run | latency | tickets | failed | tickets/s | GLPI requests/ticket |");
    say!("|---|---|---|---|---|---|");
    let line = |name: &str, latency: u64, f: &Figures| {
        say!(
            "| {name} | {latency} ms | {} | {} | {:.0} | {:.2} |",
            f.ok,
            f.failed,
            f.rate(),
            f.per_ticket()
        );
    };
    let (mut ratios, mut direct_ratios) = (Vec::new(), Vec::new());
    for (round, (intake, baseline, direct)) in rounds.iter().enumerate() {
        let round = round + 1;
        line(
            &format!("intake API (warm caches), round {round}"),
            options.latency_ms,
            intake,
        );
        line(
            &format!("seed-style service (baseline), round {round}"),
            options.latency_ms,
            baseline,
        );
        line(
            &format!("the seed's GLPI calls from the callers, no service, round {round}"),
            options.latency_ms,
            direct,
        );
        ratios.push(intake.rate() / baseline.rate().max(f64::MIN_POSITIVE));
        direct_ratios.push(intake.rate() / direct.rate().max(f64::MIN_POSITIVE));
    }
    line("intake API (warm caches)", 0, &zero);
    let listed = |ratios: &[f64]| {
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    say!(
        "speed-up over the seed-style service at {} ms: median {:.2}x (rounds: {})",
        options.latency_ms,
        crate::bench::median(&ratios),
        listed(&ratios)
    );
    say!(
        "over the seed's GLPI calls with no service between: median {:.2}x (rounds: {})",
        crate::bench::median(&direct_ratios),
        listed(&direct_ratios)
    );
    Ok(())
}

/// `clients` callers on the callers' runtime, each making the next ticket
/// (`one(n)`, true when it was created) until `tickets` were asked for.
async fn drive<F, Fut>(
    callers: &Peer,
    sim: &RunningSim,
    tickets: usize,
    clients: usize,
    one: F,
) -> anyhow::Result<Figures>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    sim.reset_counters();
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (one, next, ok, failed) = (one.clone(), next.clone(), ok.clone(), failed.clone());
        tasks.push(callers.run(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= tickets {
                    break;
                }
                if one(n).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    futures::future::try_join_all(tasks).await?;
    Ok(Figures {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        glpi_calls: sim.calls_total(),
    })
}

/// A client of the callers' own: its connections live on their runtime.
fn callers_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The callers against the intake API (wait mode: 201 with the ticket).
async fn intake_run(
    callers: &Peer,
    app: &Arc<TestApp>,
    sim: &RunningSim,
    tickets: usize,
    clients: usize,
    tag: &str,
) -> anyhow::Result<Figures> {
    let http = callers_client()?;
    let url = Arc::new(app.url("/api/v1/tickets"));
    let tag = Arc::new(tag.to_string());
    drive(callers, sim, tickets, clients, move |n| {
        let (http, url, tag) = (http.clone(), url.clone(), tag.clone());
        async move {
            let body = json!({"requester": {"email": "maria@acme.com.br"},
                "organisation": {"tax_id": CNPJ}, "category": "Printers",
                "description": format!("Bench {tag} {n}")});
            let sent = http
                .post(url.as_str())
                .header("x-api-key", KEY)
                .json(&body)
                .send()
                .await;
            matches!(sent, Ok(r) if r.status().as_u16() == 201)
        }
    })
    .await
}

/// The seed's request body for ticket `n`.
fn seed_body(n: usize) -> Value {
    json!({"nome_cliente": "Maria", "telefone_cliente": "5511987654321",
        "cnpj_cliente": CNPJ, "anydesk_cliente": "123 456 789",
        "descricao_problema": format!("Seed {n}"), "categoria": "1"})
}

/// The callers against the seed-style service.
async fn seed_run(
    callers: &Peer,
    sim: &RunningSim,
    url: &str,
    tickets: usize,
    clients: usize,
) -> anyhow::Result<Figures> {
    let http = callers_client()?;
    let url = Arc::new(url.to_string());
    drive(callers, sim, tickets, clients, move |n| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let sent = http.post(url.as_str()).json(&seed_body(n)).send().await;
            matches!(sent, Ok(r) if r.status().as_u16() == 201)
        }
    })
    .await
}

/// The seed's four GLPI calls (a session per ticket and an entity search
/// per request) made by the callers themselves, with no service between.
async fn direct_run(
    callers: &Peer,
    sim: &RunningSim,
    tickets: usize,
    clients: usize,
) -> anyhow::Result<Figures> {
    let http = callers_client()?;
    let glpi = Arc::new(seed_glpi(sim));
    drive(callers, sim, tickets, clients, move |n| {
        let (http, glpi) = (http.clone(), glpi.clone());
        async move { seed_ticket(&http, &glpi, &seed_body(n)).await.is_ok() }
    })
    .await
}

/// Where the seed finds the simulator.
fn seed_glpi(sim: &RunningSim) -> SeedGlpi {
    SeedGlpi {
        base: sim.base_url(),
        app_token: sim.app_token(),
        user_token: sim.user_token("glpi").unwrap_or_default(),
        cnpj_field: 76666,
    }
}
