//! The seed-style service of `bench intake`: what
//! `../shared/seeds/flask-glpi-ticket-api.md` describes, an HTTP API between
//! the caller and GLPI (`POST /criar-chamado` → `{"ticket_id": N}`) that opens
//! a GLPI session per request, searches the entity by its CNPJ field, creates
//! the ticket and kills the session.
//!
//! It is written on the same stack as ticketbridge (axum, a pooled reqwest
//! client) and runs on the same runtime, so the comparison measures the
//! pattern (four GLPI calls per ticket, nothing stored) and not Python
//! against Rust. It stores nothing and retries nothing, as the seed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where the seed service finds GLPI.
#[derive(Clone)]
pub(crate) struct SeedGlpi {
    pub base: String,
    pub app_token: String,
    pub user_token: String,
    /// The search option of the entities' CNPJ field.
    pub cnpj_field: u32,
}

struct Shared {
    glpi: SeedGlpi,
    http: reqwest::Client,
}

/// A running seed service; stops when dropped.
pub(crate) struct SeedService {
    pub url: String,
    stop: CancellationToken,
}

impl Drop for SeedService {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SeedService {
    /// Listen on a free loopback port, on the current runtime.
    pub async fn start(glpi: SeedGlpi) -> anyhow::Result<SeedService> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the seed service's HTTP client")?;
        let shared = Arc::new(Shared { glpi, http });
        let router = Router::new()
            .route("/criar-chamado", post(create))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the seed service")?;
        let url = format!("http://{}/criar-chamado", listener.local_addr()?);
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(until)
                .await
            {
                eprintln!("seed service failed: {error}");
            }
        });
        Ok(SeedService { url, stop })
    }
}

/// The seed's answers: `{"ticket_id": N}`, or `{"erro": ...}` with a status.
#[derive(Debug)]
pub(crate) struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"erro": self.1}))).into_response()
    }
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        let status = error
            .status()
            .and_then(|s| StatusCode::from_u16(s.as_u16()).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure(status, error.to_string())
    }
}

async fn create(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    match seed_ticket(&shared.http, &shared.glpi, &body).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({"ticket_id": id}))).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// What the seed does for one request body: a session, the entity search,
/// the ticket, the session killed. The ticket id.
pub(crate) async fn seed_ticket(
    http: &reqwest::Client,
    glpi: &SeedGlpi,
    body: &Value,
) -> Result<i64, Failure> {
    let field = |name: &str| body[name].as_str().unwrap_or_default().trim().to_string();
    let (name, cnpj, problem) = (
        field("nome_cliente"),
        field("cnpj_cliente"),
        field("descricao_problema"),
    );
    if name.is_empty() || cnpj.is_empty() || problem.is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "Campos obrigatórios ausentes".into(),
        ));
    }
    let session: Value = http
        .get(format!("{}/initSession", glpi.base))
        .header("App-Token", &glpi.app_token)
        .header("Authorization", format!("user_token {}", glpi.user_token))
        .send()
        .await?
        .error_for_status()
        .map_err(|_| Failure(StatusCode::UNAUTHORIZED, "Falha ao iniciar sessão".into()))?
        .json()
        .await?;
    let token = session["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let created = ticket_in_session(http, glpi, &token, &name, &cnpj, &problem, body).await;
    // The seed ends its session whatever happened.
    let _ = http
        .get(format!("{}/killSession", glpi.base))
        .header("App-Token", &glpi.app_token)
        .header("Session-Token", &token)
        .send()
        .await;
    created
}

async fn ticket_in_session(
    http: &reqwest::Client,
    glpi: &SeedGlpi,
    token: &str,
    name: &str,
    cnpj: &str,
    problem: &str,
    body: &Value,
) -> Result<i64, Failure> {
    let found: Value = http
        .get(format!("{}/search/Entity", glpi.base))
        .query(&[
            ("criteria[0][field]", glpi.cnpj_field.to_string().as_str()),
            ("criteria[0][searchtype]", "contains"),
            ("criteria[0][value]", cnpj),
            ("forcedisplay[0]", "2"),
        ])
        .header("App-Token", &glpi.app_token)
        .header("Session-Token", token)
        .send()
        .await?
        .json()
        .await?;
    let Some(entity) = found["data"][0]["2"].as_i64() else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            "Entidade não encontrada para o CNPJ informado".into(),
        ));
    };
    let category = body["categoria"].as_str().unwrap_or("1");
    let content = format!(
        "Cliente: {name}\nTelefone: {}\nAnyDesk: {}\n\n{problem}",
        body["telefone_cliente"].as_str().unwrap_or_default(),
        body["anydesk_cliente"].as_str().unwrap_or_default(),
    );
    let created: Value = http
        .post(format!("{}/Ticket", glpi.base))
        .header("App-Token", &glpi.app_token)
        .header("Session-Token", token)
        .json(&json!({"input": {
            "name": format!("Chamado de {name}"),
            "content": content,
            "entities_id": entity,
            "itilcategories_id": category.parse::<i64>().unwrap_or(1),
        }}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    created["id"].as_i64().ok_or_else(|| {
        Failure(
            StatusCode::BAD_GATEWAY,
            format!("GLPI answered without a ticket id: {created}"),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use sim::glpi::{GlpiSim, SimConfig};

    const CNPJ: &str = "12.345.678/0001-90";

    async fn post(url: &str, body: Value) -> (u16, Value) {
        let answer = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    #[tokio::test]
    async fn the_seed_service_makes_a_ticket_in_four_glpi_calls_and_answers_like_the_seed() {
        let sim = GlpiSim::start(SimConfig::default()).await.unwrap();
        let acme = sim.add_entity("ACME", 0, Some(CNPJ));
        let seed = SeedService::start(SeedGlpi {
            base: sim.base_url(),
            app_token: sim.app_token(),
            user_token: sim.user_token("glpi").unwrap(),
            cnpj_field: 76666,
        })
        .await
        .unwrap();
        sim.reset_counters();

        let (status, body) = post(
            &seed.url,
            json!({"nome_cliente": "Maria", "cnpj_cliente": CNPJ,
                "telefone_cliente": "5511987654321", "descricao_problema": "Impressora parada"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["ticket_id"].as_u64().unwrap();
        let ticket = sim.ticket(id).unwrap();
        assert_eq!(ticket.entities_id, acme);
        assert!(
            ticket.content.contains("Impressora parada"),
            "{}",
            ticket.content
        );
        assert_eq!(sim.calls_total(), 4, "{:?}", sim.calls_by_endpoint());
        assert_eq!(sim.sessions_active(), 0, "the session is killed");

        let (status, body) = post(
            &seed.url,
            json!({"nome_cliente": "Maria", "cnpj_cliente": "99.999.999/0001-99",
                "descricao_problema": "x"}),
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(sim.sessions_active(), 0, "killed after a failure too");

        let (status, body) = post(&seed.url, json!({"nome_cliente": "Maria"})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            sim.tickets().len(),
            1,
            "only the first request made a ticket"
        );
    }
}
