#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Shared set-up: a simulator in GLPI 10 or 11 mode and a client logged in as `glpi`.

use std::time::Duration;

use glpi::{Auth, GlpiClient, GlpiConfig};
use secrecy::SecretString;
use sim_glpi::{GlpiSim, GlpiVersion, RunningSim, SimConfig};

pub async fn sim(mode: GlpiVersion) -> RunningSim {
    GlpiSim::start(SimConfig::with_mode(mode))
        .await
        .expect("simulator starts")
}

pub fn config_for(sim: &RunningSim, login: &str) -> GlpiConfig {
    let token = sim.user_token(login).expect("user has a token");
    GlpiConfig::new(sim.base_url(), Auth::UserToken(SecretString::from(token)))
        .with_app_token(SecretString::from(sim.app_token()))
        .with_timeout(Duration::from_secs(10))
}

pub fn client_for(sim: &RunningSim) -> GlpiClient {
    GlpiClient::new(config_for(sim, "glpi")).expect("client builds")
}

/// Run an async test body in GLPI 10 and GLPI 11 mode.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn glpi10() {
                    super::$name(sim_glpi::GlpiVersion::V10).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn glpi11() {
                    super::$name(sim_glpi::GlpiVersion::V11).await
                }
            }
        )*
    };
}
