//! Loading: defaults, TOML file, environment overrides, `${VAR}` references,
//! then typed extraction that collects every problem instead of stopping at
//! the first one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use figment::error::Kind;
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;

use crate::model::{
    Config, EngineSettings, EventsSource, GlpiTarget, ItopTarget, ServerConfig, SourceConfig,
    StoreConfig, TargetConfig,
};
use crate::validate;

/// Environment variables starting with this prefix override file values.
pub const ENV_PREFIX: &str = "TICKETBRIDGE_";

const SECTIONS: [&str; 5] = ["server", "store", "engine", "targets", "sources"];
const TARGET_KINDS: [&str; 2] = ["glpi", "itop"];
const SOURCE_KINDS: &[&str] = &["events", "intake", "messaging", "chatwoot", "itop"];

/// One thing wrong with the configuration, at a field path such as
/// `sources.web.api_keys[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found while loading; never empty.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.lines())]
pub struct ConfigErrors(pub Vec<Problem>);

impl ConfigErrors {
    /// One line per problem.
    pub fn lines(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A configuration error is fixed by editing the configuration, never by
    /// retrying.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// What the running binary can do, for the checks that depend on it (the
/// configuration crate knows no handler). Empty lists check nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handlers<'a> {
    /// Job kinds an `events` source may enqueue (`job_kind`).
    pub event_job_kinds: &'a [&'a str],
}

/// Loads the configuration from `path` (a missing file means built-in
/// defaults unless `required`) and the given environment (pass
/// `std::env::vars()` in the binary).
pub fn load(
    path: &Path,
    required: bool,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    load_with(path, required, env, Handlers::default())
}

/// [`load`], also refusing settings the binary has no handler for (an
/// `events` source's `job_kind` outside `handlers.event_job_kinds`).
pub fn load_with(
    path: &Path,
    required: bool,
    env: impl IntoIterator<Item = (String, String)>,
    handlers: Handlers<'_>,
) -> Result<Config, ConfigErrors> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
        Err(e) => {
            return Err(ConfigErrors(vec![Problem {
                path: String::new(),
                message: format!("cannot read config file {}: {e}", path.display()),
            }]));
        }
    };
    load_named(&path.display().to_string(), &text, env, handlers)
}

/// Loads the configuration from TOML text and the given environment.
pub fn load_str(
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    load_named("<config>", toml_text, env, Handlers::default())
}

/// [`load_str`] with the checks of [`load_with`].
pub fn load_str_with(
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    handlers: Handlers<'_>,
) -> Result<Config, ConfigErrors> {
    load_named("<config>", toml_text, env, handlers)
}

fn load_named(
    name: &str,
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    handlers: Handlers<'_>,
) -> Result<Config, ConfigErrors> {
    let env: BTreeMap<String, String> = env.into_iter().collect();
    let mut root: Dict = toml::from_str(toml_text).map_err(|e| {
        ConfigErrors(vec![Problem {
            path: String::new(),
            message: format!(
                "{name}: invalid TOML{}: {}",
                toml_position(toml_text, &e),
                e.message().trim().lines().collect::<Vec<_>>().join("; ")
            ),
        }])
    })?;
    let mut problems = Vec::new();
    let in_file = named_entries(&root);
    let overrides = env_overrides(&env);
    merge(&mut root, overrides.values.clone());
    // A variable named in a `${...}` reference is a value, not a misspelt
    // override (`metrics_token = "${TICKETBRIDGE_METRICS_TOKEN}"`).
    let mut referenced = BTreeSet::new();
    references(&Value::from(root.clone()), &mut referenced);
    problems.extend(
        overrides
            .misspelt
            .iter()
            .filter(|problem| !referenced.contains(&problem.path))
            .cloned(),
    );

    let mut value = Value::from(root);
    resolve_references(&mut value, &mut Vec::new(), &env, &mut problems);
    let root = match value {
        Value::Dict(_, dict) => dict,
        _ => Dict::new(),
    };

    let (config, unreadable_targets) = extract_config(root, &overrides, &mut problems);
    // A field already reported (missing, wrong type, unset variable) is not
    // reported again by the checks that ran on its stand-in or default.
    let reported: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    problems.extend(
        validate::validate(&config, &unreadable_targets, handlers, &reported)
            .into_iter()
            .filter(|problem| !reported.iter().any(|path| within(&problem.path, path))),
    );
    if problems.is_empty() {
        Ok(config)
    } else {
        // A value set by a variable is fixed there, not in the file.
        for problem in &mut problems {
            if let Some(name) = overrides.variable_behind(&problem.path) {
                problem.message.push_str(&format!(" (from {name})"));
            } else if let Some(entry) = named_entry(&problem.path)
                && !in_file.contains(entry)
            {
                // A target or source that only variables define (its `kind`
                // missing, say): the file has nothing to fix.
                let names = overrides.variables_under(entry);
                if !names.is_empty() {
                    problem.message.push_str(&format!(
                        " ({entry} is defined only by {})",
                        names.join(", ")
                    ));
                }
            }
        }
        Err(ConfigErrors(problems))
    }
}

/// Where a TOML error is (" at line 3, column 26"), without quoting the line:
/// it may hold a secret written in the file.
fn toml_position(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else {
        return String::new();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(1, |start_of_line| start_of_line.chars().count() + 1);
    format!(" at line {line}, column {column}")
}

/// The configuration values set by environment variables, and where each
/// came from.
struct EnvOverrides {
    values: Dict,
    /// Field path (`server.listen`) → (variable, value as written).
    origins: BTreeMap<String, (String, String)>,
    /// `TICKETBRIDGE_*` variables that set nothing, each with its problem
    /// (reported unless a `${...}` reference names it).
    misspelt: Vec<Problem>,
}

impl EnvOverrides {
    /// The variable that set `path` or a table or list holding it.
    fn variable_behind(&self, path: &str) -> Option<&str> {
        self.origins
            .iter()
            .find(|(origin, _)| within(path, origin))
            .map(|(_, (name, _))| name.as_str())
    }

    /// The variables that set something under `entry` (`targets.main`).
    fn variables_under(&self, entry: &str) -> Vec<&str> {
        self.origins
            .iter()
            .filter(|(origin, _)| within(origin, entry))
            .map(|(_, (name, _))| name.as_str())
            .collect()
    }

    /// The text of the variable that set exactly `path`, for a string field
    /// whose value read like a number or a boolean (`12345678000199`).
    fn text_at(&self, path: &str) -> Option<&str> {
        self.origins
            .get(path)
            .map(|(_, raw)| raw.as_str())
            .filter(|raw| !raw.contains("${"))
    }
}

/// The targets and sources the file defines (`targets.main`).
fn named_entries(root: &Dict) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for section in ["targets", "sources"] {
        if let Some(Value::Dict(_, entries)) = root.get(section) {
            out.extend(entries.keys().map(|name| format!("{section}.{name}")));
        }
    }
    out
}

/// The target or source a field path is in: `targets.main` for
/// `targets.main.kind`.
fn named_entry(path: &str) -> Option<&str> {
    let section = ["targets.", "sources."]
        .into_iter()
        .find(|section| path.starts_with(section))?;
    let rest = &path[section.len()..];
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    (end > 0).then(|| &path[..section.len() + end])
}

/// `TICKETBRIDGE_*` variables that are not configuration values: the file's
/// name, and the knobs of the test suites.
fn not_a_setting(rest: &str) -> bool {
    rest == "CONFIG" || rest.starts_with("TEST_")
}

/// `TICKETBRIDGE_A__B__C=v` becomes `a.b.c = v` (value parsed like TOML
/// scalars/arrays: numbers, booleans, `[a, b]`; otherwise a string). Any
/// other `TICKETBRIDGE_*` variable, except `TICKETBRIDGE_CONFIG`,
/// `TICKETBRIDGE_TEST_*` and those named by a `${...}` reference, is a
/// problem: a misspelt override would otherwise be ignored in silence.
fn env_overrides(env: &BTreeMap<String, String>) -> EnvOverrides {
    let mut out = EnvOverrides {
        values: Dict::new(),
        origins: BTreeMap::new(),
        misspelt: Vec::new(),
    };
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if not_a_setting(rest) {
            continue;
        }
        let parts: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if parts.len() < 2
            || parts.iter().any(String::is_empty)
            || !SECTIONS.contains(&parts[0].as_str())
        {
            out.misspelt.push(Problem {
                path: key.clone(),
                message: misspelt_variable(&parts),
            });
            continue;
        }
        // A secret stays the text it is, digits or not ("123456" is a
        // password, not a number); a list of them keeps its items as text too.
        let value: Value = if names_a_secret(&parts) {
            secret_value(raw)
        } else {
            raw.parse().unwrap_or_else(|_| Value::from(raw.clone()))
        };
        out.origins
            .insert(parts.join("."), (key.clone(), raw.clone()));
        let mut nested = value;
        for part in parts.iter().rev() {
            let mut dict = Dict::new();
            dict.insert(part.clone(), nested);
            nested = Value::from(dict);
        }
        if let Value::Dict(_, dict) = nested {
            merge(&mut out.values, dict);
        }
    }
    out
}

/// Why a `TICKETBRIDGE_*` variable sets nothing, with its likely spelling
/// (`SERVER_LISTEN` → `SERVER__LISTEN`, `TARGET__…` → `TARGETS__…`).
fn misspelt_variable(parts: &[String]) -> String {
    let rule = format!(
        "overrides are spelt TICKETBRIDGE_<SECTION>__<KEY> with two underscores between parts, sections {}; TICKETBRIDGE_CONFIG names the file",
        SECTIONS.join(", ")
    );
    let first = parts.first().map(String::as_str).unwrap_or_default();
    let singular = |section: &str| section.strip_suffix('s').map(str::to_owned);
    let mut guess: Option<Vec<String>> = None;
    for section in SECTIONS {
        let spellings: Vec<String> = std::iter::once(section.to_owned())
            .chain(singular(section).filter(|_| matches!(section, "targets" | "sources")))
            .collect();
        for spelling in spellings {
            if first == spelling && section != spelling && parts.len() > 1 {
                guess = Some(
                    std::iter::once(section.to_owned())
                        .chain(parts[1..].iter().cloned())
                        .collect(),
                );
            } else if let Some(key) = first.strip_prefix(&format!("{spelling}_"))
                && !key.is_empty()
            {
                guess = Some(
                    [section.to_owned(), key.to_owned()]
                        .into_iter()
                        .chain(parts[1..].iter().cloned())
                        .collect(),
                );
            }
        }
    }
    match guess {
        Some(parts) if parts.iter().all(|part| !part.is_empty()) => format!(
            "sets nothing: did you mean {ENV_PREFIX}{}? ({rule})",
            parts.join("__").to_uppercase()
        ),
        _ => format!("sets nothing ({rule})"),
    }
}

fn merge(base: &mut Dict, overlay: Dict) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => merge(existing, incoming),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[derive(Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
        }
    }
    out
}

/// The names of the variables `${NAME}` references in `value`'s strings.
fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(_, text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else { break };
                out.insert(after[..end].to_owned());
                rest = &after[end + 1..];
            }
        }
        Value::Dict(_, dict) => dict.values().for_each(|child| references(child, out)),
        Value::Array(_, items) => items.iter().for_each(|child| references(child, out)),
        _ => {}
    }
}

/// Replaces `${NAME}` in every string with the variable's value, reporting
/// each unset variable with the field path.
fn resolve_references(
    value: &mut Value,
    path: &mut Vec<Segment>,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::String(_, text) if text.contains("${") => {
            let mut out = String::new();
            let mut rest = text.as_str();
            let mut ok = true;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    problems.push(Problem {
                        path: render_path(path),
                        message: "unterminated ${...} reference".to_owned(),
                    });
                    ok = false;
                    break;
                };
                let name = &after[..end];
                match env.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        problems.push(Problem {
                            path: render_path(path),
                            message: format!("environment variable {name} is not set"),
                        });
                        ok = false;
                    }
                }
                rest = &after[end + 1..];
            }
            if ok {
                out.push_str(rest);
                *text = out;
            }
        }
        Value::Dict(_, dict) => {
            for (key, child) in dict.iter_mut() {
                path.push(Segment::Key(key.clone()));
                resolve_references(child, path, env, problems);
                path.pop();
            }
        }
        Value::Array(_, items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(Segment::Index(i));
                resolve_references(child, path, env, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The configuration, and the names of the targets that were defined but
/// could not be read (their problems are reported under their own path).
fn extract_config(
    mut root: Dict,
    env: &EnvOverrides,
    problems: &mut Vec<Problem>,
) -> (Config, Vec<String>) {
    for key in root.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(Problem {
                path: key.clone(),
                message: format!("unknown section, expected one of {}", SECTIONS.join(", ")),
            });
        }
    }
    let mut config = Config::default();
    let mut unreadable = Vec::new();
    if let Some(v) = root.remove("server") {
        config.server = extract::<ServerConfig>("server", v, env, problems).unwrap_or_default();
    }
    if let Some(v) = root.remove("store") {
        config.store = extract::<StoreConfig>("store", v, env, problems).unwrap_or_default();
    }
    if let Some(v) = root.remove("engine") {
        config.engine = extract::<EngineSettings>("engine", v, env, problems).unwrap_or_default();
    }
    if let Some(v) = root.remove("targets") {
        for (name, v) in table("targets", v, problems) {
            let prefix = format!("targets.{name}");
            match extract_target(&prefix, v, env, problems) {
                Some(target) => {
                    config.targets.insert(name, target);
                }
                None => unreadable.push(name),
            }
        }
    }
    if let Some(v) = root.remove("sources") {
        for (name, v) in table("sources", v, problems) {
            let prefix = format!("sources.{name}");
            if let Some(source) = extract_source(&prefix, v, env, problems) {
                config.sources.insert(name, source);
            }
        }
    }
    (config, unreadable)
}

fn table(prefix: &str, value: Value, problems: &mut Vec<Problem>) -> Dict {
    match value {
        Value::Dict(_, dict) => dict,
        _ => {
            problems.push(Problem {
                path: prefix.to_owned(),
                message: "must be a table of named entries".to_owned(),
            });
            Dict::new()
        }
    }
}

/// Takes the `kind` field out of a tagged entry so the variant's struct can
/// be extracted with precise field paths.
fn take_kind(
    prefix: &str,
    value: &mut Value,
    kinds: &[&str],
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let Value::Dict(_, dict) = value else {
        problems.push(Problem {
            path: prefix.to_owned(),
            message: "must be a table".to_owned(),
        });
        return None;
    };
    let expected = kinds.join(", ");
    match dict.remove("kind") {
        Some(Value::String(_, kind)) if kinds.contains(&kind.as_str()) => Some(kind),
        Some(Value::String(_, kind)) => {
            problems.push(Problem {
                path: format!("{prefix}.kind"),
                message: format!("unknown kind \"{kind}\", expected one of {expected}"),
            });
            None
        }
        Some(_) => {
            problems.push(Problem {
                path: format!("{prefix}.kind"),
                message: format!("must be a string, one of {expected}"),
            });
            None
        }
        None => {
            problems.push(Problem {
                path: format!("{prefix}.kind"),
                message: format!("missing (required), one of {expected}"),
            });
            None
        }
    }
}

fn extract_target(
    prefix: &str,
    mut value: Value,
    env: &EnvOverrides,
    problems: &mut Vec<Problem>,
) -> Option<TargetConfig> {
    let kind = take_kind(prefix, &mut value, &TARGET_KINDS, problems)?;
    match kind.as_str() {
        "glpi" => extract::<GlpiTarget>(prefix, value, env, problems).map(TargetConfig::Glpi),
        "itop" => extract::<ItopTarget>(prefix, value, env, problems).map(TargetConfig::Itop),
        _ => None,
    }
}

/// New source kinds: add the kind to `SOURCE_KINDS` and a match arm here.
fn extract_source(
    prefix: &str,
    mut value: Value,
    env: &EnvOverrides,
    problems: &mut Vec<Problem>,
) -> Option<SourceConfig> {
    let kind = take_kind(prefix, &mut value, SOURCE_KINDS, problems)?;
    match kind.as_str() {
        "events" => extract::<EventsSource>(prefix, value, env, problems).map(SourceConfig::Events),
        "chatwoot" => extract::<crate::sources::ChatwootSource>(prefix, value, env, problems)
            .map(SourceConfig::Chatwoot),
        "intake" => extract::<crate::sources::IntakeSource>(prefix, value, env, problems)
            .map(SourceConfig::Intake),
        "messaging" => extract::<crate::sources::MessagingSource>(prefix, value, env, problems)
            .map(SourceConfig::Messaging),
        "itop" => extract::<crate::sources::ItopSource>(prefix, value, env, problems)
            .map(SourceConfig::Itop),
        _ => None,
    }
}

/// Deserializes `value`; on each error records it, removes the offending
/// key and tries again, so one run reports every bad field of the section.
fn extract<T: DeserializeOwned>(
    prefix: &str,
    mut value: Value,
    env: &EnvOverrides,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut reported: Vec<String> = Vec::new();
    // Missing fields given a stand-in, and how many kinds were tried.
    let mut stand_ins: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for _ in 0..128 {
        // After repairs the parsed value carries defaults for the removed
        // fields; it is still returned so cross-field checks can run on it.
        let error = match value.deserialize::<T>() {
            Ok(parsed) => return Some(parsed),
            Err(errors) => errors.into_iter().next()?,
        };
        let mut path: Vec<String> = error.path.clone();
        let message = match &error.kind {
            Kind::UnknownField(field, expected) => {
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                format!("unknown field, expected one of {}", expected.join(", "))
            }
            Kind::MissingField(field) => {
                if path.last().map(String::as_str) != Some(field.as_ref()) {
                    path.push(field.to_string());
                }
                let full = join_path(prefix, &path);
                if !reported.contains(&full) {
                    problems.push(Problem {
                        path: full.clone(),
                        message: "missing (required)".to_owned(),
                    });
                    reported.push(full);
                }
                // A stand-in lets the rest of the section be read, so every
                // problem is reported at once (its own checks are dropped).
                next_stand_in(&mut stand_ins, &path, &mut value)?;
                continue;
            }
            _ if stand_ins.contains_key(&path) => {
                // The stand-in was of the wrong type or refused: the next one.
                next_stand_in(&mut stand_ins, &path, &mut value)?;
                continue;
            }
            Kind::InvalidType(_, expected) if expected == "a string" => {
                // A variable's value reads like TOML ("20231" a number), but
                // a string field takes it as the text it is.
                match env.text_at(&join_path(prefix, &path)) {
                    Some(text)
                        if !matches!(at_path(&mut value, &path), Some(Value::String(..))) =>
                    {
                        if insert_at(&mut value, &path, Value::from(text.to_owned())) {
                            continue;
                        }
                        in_plain_words(&error.kind, !names_a_secret(&path))
                    }
                    _ => in_plain_words(&error.kind, !names_a_secret(&path)),
                }
            }
            other => in_plain_words(other, !names_a_secret(&path)),
        };
        let full = join_path(prefix, &path);
        reported.push(full.clone());
        problems.push(Problem {
            path: full,
            message,
        });
        if path.is_empty() || !remove_at(&mut value, &path) {
            return None;
        }
    }
    None
}

/// Whether the field at `path` holds a secret (its name, or its list's name
/// for an item, speaks of a password, token, secret or key).
fn names_a_secret(path: &[String]) -> bool {
    path.iter()
        .rev()
        .find(|part| part.parse::<usize>().is_err())
        .is_some_and(|name| {
            let name = name.to_ascii_lowercase();
            ["password", "token", "secret", "key"]
                .iter()
                .any(|word| name.contains(word))
        })
}

/// An environment value for a secret field: a string, or for `[a, b]` a list
/// of strings (items taken as written, quotes optional).
fn secret_value(raw: &str) -> Value {
    let trimmed = raw.trim();
    match trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(items) => Value::from(
            items
                .split(',')
                .map(|item| item.trim().trim_matches('"').to_owned())
                .filter(|item| !item.is_empty())
                .map(Value::from)
                .collect::<Vec<_>>(),
        ),
        None => Value::from(raw.to_owned()),
    }
}

/// A deserialization error in an operator's words: what the field takes
/// ("a whole number", "a duration such as \"30s\"") and what was found,
/// with the value only when `show_value` (never for a secret: serde's own
/// messages quote it, "found signed int `123456`").
fn in_plain_words(kind: &Kind, show_value: bool) -> String {
    match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let found = match (show_value, shown(actual)) {
                (true, Some(value)) => value,
                _ => what_it_is(actual).to_owned(),
            };
            let hint = match actual {
                figment::error::Actual::Unsigned(_)
                | figment::error::Actual::Signed(_)
                | figment::error::Actual::Float(_)
                    if expected == "a string" =>
                {
                    " (quote it to make it a string)"
                }
                figment::error::Actual::Unsigned(_) | figment::error::Actual::Signed(_)
                    if expected == "a duration" =>
                {
                    " (give it a unit, in quotes: \"5s\")"
                }
                _ => "",
            };
            format!(
                "expected {}, found {found}{hint}",
                expected_in_words(expected)
            )
        }
        Kind::InvalidLength(_, expected) => format!("invalid length, expected {expected}"),
        Kind::UnknownVariant(found, expected) => {
            let found = if show_value {
                format!(", found {found:?}")
            } else {
                String::new()
            };
            format!("expected one of: {}{found}", expected.join(", "))
        }
        Kind::Message(message) if url_problem(message).is_some() => {
            // The url crate's message quotes the text, which may carry a
            // password: only the reason is kept.
            let reason = url_problem(message).unwrap_or_default();
            format!("expected an absolute URL such as \"https://host.example.com/path\" ({reason})")
        }
        Kind::Message(message) => match message.as_str() {
            "invalid socket address syntax" => {
                "expected an address and port such as \"127.0.0.1:8080\"".to_owned()
            }
            "invalid IP address syntax" => {
                "expected an IP address such as \"127.0.0.1\"".to_owned()
            }
            other if show_value => other.to_owned(),
            _ => "invalid value (not shown: the field holds a secret)".to_owned(),
        },
        other if show_value => other.to_string(),
        _ => "invalid value (not shown: the field holds a secret)".to_owned(),
    }
}

/// The reason of a URL that did not parse ("relative URL without a base"),
/// from the url crate's message `<reason>: "<text>"`.
fn url_problem(message: &str) -> Option<&str> {
    const REASONS: [&str; 10] = [
        "empty host",
        "invalid international domain name",
        "invalid port number",
        "invalid IPv4 address",
        "invalid IPv6 address",
        "invalid domain character",
        "relative URL without a base",
        "relative URL with a cannot-be-a-base base",
        "a cannot-be-a-base URL doesn’t have a host to set",
        "URLs more than 4 GB are not supported",
    ];
    let (reason, _) = message.split_once(": \"")?;
    REASONS.contains(&reason).then_some(reason)
}

/// serde's name of an expected type, as an operator would say it.
fn expected_in_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a duration" => "a duration such as \"30s\", \"5m\" or \"1h 30m\"".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a table".to_owned(),
        "socket address" => "an address and port such as \"127.0.0.1:8080\"".to_owned(),
        "a boolean" => "true or false".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

/// The value itself, as written in TOML, for the scalar kinds.
fn shown(actual: &figment::error::Actual) -> Option<String> {
    use figment::error::Actual;
    match actual {
        Actual::Bool(value) => Some(value.to_string()),
        Actual::Unsigned(value) => Some(value.to_string()),
        Actual::Signed(value) => Some(value.to_string()),
        Actual::Float(value) => Some(value.to_string()),
        Actual::Char(value) => Some(format!("{:?}", value.to_string())),
        Actual::Str(value) => Some(format!("{value:?}")),
        _ => None,
    }
}

/// What sort of value `actual` is, without the value: "a number", "a string".
fn what_it_is(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) => "a number",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// Values tried in turn for a missing field until one has the right type.
const STAND_INS: [fn() -> Value; 6] = [
    || Value::from(String::new()),
    || Value::from(0_i64),
    || Value::from(Dict::new()),
    || Value::from(Vec::<Value>::new()),
    || Value::from(false),
    // For URL fields, which refuse an empty string.
    || Value::from("http://stand-in.invalid/".to_owned()),
];

/// Put the next untried stand-in at `path`; `None` when every kind was tried
/// (or the path cannot take one).
fn next_stand_in(
    tried: &mut BTreeMap<Vec<String>, usize>,
    path: &[String],
    value: &mut Value,
) -> Option<()> {
    let tries = tried.entry(path.to_vec()).or_insert(0);
    let stand_in = STAND_INS.get(*tries)?;
    *tries += 1;
    insert_at(value, path, stand_in()).then_some(())
}

/// Whether `path` is `parent` or a field or item below it.
pub(crate) fn within(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Set the value at `path` (its parents must exist), replacing what is there.
fn insert_at(value: &mut Value, path: &[String], new: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    match at_path(value, parents) {
        Some(Value::Dict(_, dict)) => {
            dict.insert(last.clone(), new);
            true
        }
        _ => false,
    }
}

/// The value at `path` (table keys and list indexes), if there is one.
fn at_path<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = value;
    for part in path {
        current = match current {
            Value::Dict(_, dict) => dict.get_mut(part)?,
            Value::Array(_, items) => items.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn join_path(prefix: &str, path: &[String]) -> String {
    let mut out = prefix.to_owned();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn remove_at(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let Some(current) = at_path(value, parents) else {
        return false;
    };
    match current {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        Value::Array(_, items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
