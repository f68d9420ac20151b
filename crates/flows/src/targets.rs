//! The configured targets, each behind the [`Helpdesk`] interface.

use crate::glpi::{GlpiHelpdesk, GlpiTargetOptions};
use crate::helpdesk::Helpdesk;
use crate::itop::{IMPACT_PERSON, ItopHelpdesk, ItopTargetOptions};
use config::{Config, GlpiTarget, ItopTarget, TargetConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a target could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("targets.{name}: {reason}")]
pub struct TargetError {
    pub name: String,
    pub reason: String,
}

/// Every configured target by name. GLPI targets also keep their client for
/// the GLPI-only work some flows do (documents, polling); iTop targets their
/// iTop client.
#[derive(Clone, Default)]
pub struct Targets {
    helpdesks: BTreeMap<String, Arc<dyn Helpdesk>>,
    glpi: BTreeMap<String, GlpiHelpdesk>,
    itop: BTreeMap<String, itop::ItopClient>,
}

/// The GLPI client settings of a configured GLPI target (also used by
/// `ticketbridge check`).
pub fn glpi_client_config(t: &GlpiTarget) -> Result<glpi::GlpiConfig, String> {
    let auth = match (&t.user_token, &t.login, &t.password) {
        (Some(token), _, _) => glpi::Auth::UserToken(token.clone()),
        (None, Some(login), Some(password)) => glpi::Auth::Password {
            login: login.clone(),
            password: password.clone(),
        },
        _ => return Err("set user_token, or login and password".to_string()),
    };
    let mut glpi_config = glpi::GlpiConfig::new(t.url.as_str(), auth);
    glpi_config.app_token = t.app_token.clone();
    glpi_config.timeout = t.timeout;
    glpi_config.default_entity = t.default_entity;
    if let Some(limit) = t.max_response_bytes {
        glpi_config.max_response_bytes = limit;
    }
    Ok(glpi_config)
}

/// The iTop client settings of a configured iTop target.
pub fn itop_client_config(t: &ItopTarget) -> Result<itop::ItopConfig, String> {
    let auth = match (&t.token, &t.user, &t.password) {
        (Some(token), _, _) => itop::ItopAuth::Token(token.clone()),
        (None, Some(user), Some(password)) => itop::ItopAuth::Basic {
            user: user.clone(),
            password: password.clone(),
        },
        _ => return Err("set token, or user and password".to_string()),
    };
    let mut itop_config = itop::ItopConfig::new(t.url.clone(), auth);
    itop_config.timeout = t.timeout;
    if let Some(limit) = t.max_response_bytes {
        itop_config.max_response_bytes = limit;
    }
    Ok(itop_config)
}

impl Targets {
    /// Builds a client for every target in the configuration. No network
    /// call is made: GLPI sessions open on first use.
    pub fn from_config(config: &Config) -> Result<Targets, TargetError> {
        let mut targets = Targets::default();
        for (name, target) in &config.targets {
            let fail = |reason: String| TargetError {
                name: name.clone(),
                reason,
            };
            match target {
                TargetConfig::Glpi(t) => {
                    let mut glpi_config = glpi_client_config(t).map_err(fail)?;
                    if t.max_response_bytes.is_none()
                        && let Some(largest) = config.largest_attachment_bytes(name)
                    {
                        glpi_config.max_response_bytes = glpi::response_limit_for(largest);
                    }
                    let client =
                        glpi::GlpiClient::new(glpi_config).map_err(|e| fail(e.to_string()))?;
                    let helpdesk = GlpiHelpdesk::new(
                        name.clone(),
                        client,
                        GlpiTargetOptions {
                            tax_id_search_option: t.tax_id_search_option,
                            web_url: t.web_url.as_ref().map(|u| u.to_string()),
                            request_type: t.request_type,
                            new_user_profile: t.new_user_profile,
                        },
                    );
                    targets.add_glpi(name, helpdesk);
                }
                TargetConfig::Itop(t) => {
                    let mut itop_config = itop_client_config(t).map_err(fail)?;
                    if t.max_response_bytes.is_none()
                        && let Some(largest) = config.largest_attachment_bytes(name)
                    {
                        itop_config.max_response_bytes = itop::response_limit_for(largest);
                    }
                    let client =
                        itop::ItopClient::new(itop_config).map_err(|e| fail(e.to_string()))?;
                    let helpdesk = ItopHelpdesk::new(
                        name.clone(),
                        client.clone(),
                        ItopTargetOptions {
                            tax_id_field: t.tax_id_field.clone().unwrap_or_else(|| "code".into()),
                            web_url: t.web_url.as_ref().map(|u| u.to_string()),
                            default_org: t.default_org,
                            impact: t
                                .impact
                                .map_or_else(|| IMPACT_PERSON.to_string(), |i| i.to_string()),
                        },
                    );
                    targets.add_helpdesk(name, Arc::new(helpdesk));
                    targets.itop.insert(name.clone(), client);
                }
            }
        }
        Ok(targets)
    }

    /// Registers a GLPI target (tests and the demo build them by hand).
    pub fn add_glpi(&mut self, name: &str, helpdesk: GlpiHelpdesk) {
        self.helpdesks.insert(
            name.to_string(),
            Arc::new(helpdesk.clone()) as Arc<dyn Helpdesk>,
        );
        self.glpi.insert(name.to_string(), helpdesk);
    }

    /// Registers any helpdesk under a name.
    pub fn add_helpdesk(&mut self, name: &str, helpdesk: Arc<dyn Helpdesk>) {
        self.helpdesks.insert(name.to_string(), helpdesk);
    }

    /// Registers an iTop client under a name.
    pub fn add_itop_client(&mut self, name: &str, client: itop::ItopClient) {
        self.itop.insert(name.to_string(), client);
    }

    pub fn helpdesk(&self, name: &str) -> Option<Arc<dyn Helpdesk>> {
        self.helpdesks.get(name).cloned()
    }

    pub fn glpi(&self, name: &str) -> Option<&GlpiHelpdesk> {
        self.glpi.get(name)
    }

    pub fn itop(&self, name: &str) -> Option<&itop::ItopClient> {
        self.itop.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.helpdesks
            .keys()
            .chain(
                self.itop
                    .keys()
                    .filter(|k| !self.helpdesks.contains_key(*k)),
            )
            .map(String::as_str)
    }

    /// Closes GLPI sessions (killSession) at shutdown. Failures are logged,
    /// not returned: the process is ending anyway.
    pub async fn close(&self) {
        for (name, glpi) in &self.glpi {
            if let Err(err) = glpi.client().close().await {
                tracing::warn!(target_name = %name, error = %err, "could not close the GLPI session");
            }
        }
    }
}
