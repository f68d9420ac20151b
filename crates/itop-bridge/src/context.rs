//! One configured bridge: its two iTop clients, its settings, and the names
//! under which it keeps links and own-write markers.

use std::collections::BTreeMap;
use std::sync::Arc;

use config::sources::ItopSource;
use config::{Config, SourceConfig, TargetConfig};
use flows::Targets;
use itop::ItopClient;

use crate::error::BridgeError;
use crate::side::Side;

/// Link kinds.
pub const TICKET_LINK: &str = "itop.ticket";
pub const ATTACHMENT_LINK: &str = "itop.attachment";
pub const LOG_LINK: &str = "itop.log";

/// Comment iTop records with every bridge write (visible in the history).
pub const COMMENT: &str = "ticketbridge itop bridge";

/// A bridge ready to run.
#[derive(Clone)]
pub struct Bridge {
    /// The source name (`[sources.<name>]`).
    pub source: String,
    pub settings: ItopSource,
    pub external: ItopClient,
    pub internal: ItopClient,
    /// REST logins of the bridge (echo detection by actor).
    pub own_logins: Vec<String>,
    pub max_attempts: i32,
}

impl Bridge {
    pub fn client(&self, side: Side) -> &ItopClient {
        match side {
            Side::External => &self.external,
            Side::Internal => &self.internal,
        }
    }

    pub fn target_name(&self, side: Side) -> &str {
        match side {
            Side::External => &self.settings.external_target,
            Side::Internal => &self.settings.target,
        }
    }

    /// System name used for own-write markers: `itop:<target>`.
    pub fn system(&self, side: Side) -> String {
        format!("itop:{}", self.target_name(side))
    }

    /// `source_system` / `target_system` of ticket links.
    pub fn ticket_system(&self, side: Side) -> String {
        format!("{}/{}", self.source, side.as_str())
    }

    /// `source_system` of the attachment and log links of one pair.
    pub fn pair_system(&self, external_id: u64) -> String {
        format!("{}/pair/{external_id}", self.source)
    }

    /// Ordering key of everything that touches one ticket pair.
    pub fn pair_key(&self, external_id: u64) -> String {
        format!("itop:{}:pair:{external_id}", self.source)
    }

    /// Queue of the bridge's jobs (the internal target, whose concurrency bounds them).
    pub fn queue(&self) -> &str {
        &self.settings.target
    }

    pub fn class(&self) -> &str {
        &self.settings.ticket_class
    }

    /// The marker written into a mirrored ticket's description, found again
    /// with `description LIKE` after a crash between create and link.
    pub fn marker(&self, external_id: u64) -> String {
        format!("[ticketbridge:{}:{external_id}]", self.source)
    }
}

/// Every bridge of the configuration, by source name.
#[derive(Clone, Default)]
pub struct Bridges(pub Arc<BTreeMap<String, Bridge>>);

impl Bridges {
    /// Builds a bridge for every `kind = "itop"` source. Both targets must be
    /// iTop targets.
    pub fn from_config(config: &Config, targets: &Targets) -> Result<Bridges, BridgeError> {
        let mut map = BTreeMap::new();
        for (name, source) in &config.sources {
            let SourceConfig::Itop(settings) = source else {
                continue;
            };
            let client = |target: &str, path: &str| {
                targets.itop(target).cloned().ok_or_else(|| {
                    BridgeError::Config(format!(
                        "sources.{name}.{path}: \"{target}\" is not an itop target"
                    ))
                })
            };
            let external = client(&settings.external_target, "external_target")?;
            let internal = client(&settings.target, "target")?;
            let mut own_logins = settings.own_logins.clone();
            for target in [&settings.external_target, &settings.target] {
                if let Some(TargetConfig::Itop(t)) = config.targets.get(target)
                    && let Some(user) = &t.user
                    && !own_logins.contains(user)
                {
                    own_logins.push(user.clone());
                }
            }
            map.insert(
                name.clone(),
                Bridge {
                    source: name.clone(),
                    settings: settings.clone(),
                    external,
                    internal,
                    own_logins,
                    max_attempts: i32::try_from(config.engine.max_attempts).unwrap_or(i32::MAX),
                },
            );
        }
        Ok(Bridges(Arc::new(map)))
    }

    pub fn get(&self, source: &str) -> Result<&Bridge, BridgeError> {
        self.0
            .get(source)
            .ok_or_else(|| BridgeError::Payload(format!("no itop source named {source:?}")))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
