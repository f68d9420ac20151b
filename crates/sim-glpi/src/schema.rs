//! The itemtypes the simulator knows: their columns in table order with defaults, which
//! foreign keys become hateoas links, and which children a Ticket advertises.

use crate::row::Row;
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Def {
    Null,
    Int(i64),
    Str(&'static str),
    Now,
}

use Def::{Int, Now, Null, Str};

const TICKET: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("entities_id", Int(0)),
    ("name", Str("")),
    ("date", Now),
    ("closedate", Null),
    ("solvedate", Null),
    ("takeintoaccountdate", Null),
    ("date_mod", Now),
    ("users_id_lastupdater", Int(0)),
    ("status", Int(1)),
    ("users_id_recipient", Int(0)),
    ("requesttypes_id", Int(1)),
    ("content", Str("")),
    ("urgency", Int(3)),
    ("impact", Int(3)),
    ("priority", Int(3)),
    ("itilcategories_id", Int(0)),
    ("type", Int(1)),
    ("global_validation", Int(1)),
    ("slas_id_ttr", Int(0)),
    ("slas_id_tto", Int(0)),
    ("slalevels_id_ttr", Int(0)),
    ("time_to_resolve", Null),
    ("time_to_own", Null),
    ("begin_waiting_date", Null),
    ("sla_waiting_duration", Int(0)),
    ("ola_waiting_duration", Int(0)),
    ("olas_id_tto", Int(0)),
    ("olas_id_ttr", Int(0)),
    ("olalevels_id_ttr", Int(0)),
    ("ola_tto_begin_date", Null),
    ("ola_ttr_begin_date", Null),
    ("internal_time_to_resolve", Null),
    ("internal_time_to_own", Null),
    ("waiting_duration", Int(0)),
    ("close_delay_stat", Int(0)),
    ("solve_delay_stat", Int(0)),
    ("takeintoaccount_delay_stat", Int(0)),
    ("actiontime", Int(0)),
    ("is_deleted", Int(0)),
    ("locations_id", Int(0)),
    ("validation_percent", Int(0)),
    ("date_creation", Now),
];

const FOLLOWUP: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("itemtype", Str("")),
    ("items_id", Int(0)),
    ("date", Now),
    ("users_id", Int(0)),
    ("users_id_editor", Int(0)),
    ("content", Str("")),
    ("is_private", Int(0)),
    ("requesttypes_id", Int(0)),
    ("date_mod", Now),
    ("date_creation", Now),
    ("timeline_position", Int(1)),
    ("sourceitems_id", Int(0)),
    ("sourceof_items_id", Int(0)),
];

const SOLUTION: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("itemtype", Str("")),
    ("items_id", Int(0)),
    ("solutiontypes_id", Int(0)),
    ("solutiontype_name", Null),
    ("content", Str("")),
    ("date_creation", Now),
    ("date_mod", Now),
    ("date_approval", Null),
    ("users_id", Int(0)),
    ("user_name", Null),
    ("users_id_editor", Int(0)),
    ("users_id_approval", Int(0)),
    ("user_name_approval", Null),
    ("status", Int(2)),
    ("itilfollowups_id", Null),
];

const TASK: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("tickets_id", Int(0)),
    ("taskcategories_id", Int(0)),
    ("date", Now),
    ("users_id", Int(0)),
    ("users_id_editor", Int(0)),
    ("content", Str("")),
    ("is_private", Int(0)),
    ("actiontime", Int(0)),
    ("begin", Null),
    ("end", Null),
    ("state", Int(1)),
    ("users_id_tech", Int(0)),
    ("groups_id_tech", Int(0)),
    ("date_mod", Now),
    ("date_creation", Now),
    ("tasktemplates_id", Int(0)),
    ("timeline_position", Int(1)),
    ("sourceitems_id", Int(0)),
    ("sourceof_items_id", Int(0)),
];

const USER: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("name", Str("")),
    ("password_last_update", Null),
    ("phone", Null),
    ("phone2", Null),
    ("mobile", Null),
    ("realname", Null),
    ("firstname", Null),
    ("locations_id", Int(0)),
    ("language", Null),
    ("use_mode", Int(0)),
    ("list_limit", Null),
    ("is_active", Int(1)),
    ("comment", Null),
    ("auths_id", Int(0)),
    ("authtype", Int(1)),
    ("last_login", Null),
    ("date_mod", Now),
    ("date_sync", Null),
    ("is_deleted", Int(0)),
    ("profiles_id", Int(0)),
    ("entities_id", Int(0)),
    ("usertitles_id", Int(0)),
    ("usercategories_id", Int(0)),
    ("date_format", Null),
    ("number_format", Null),
    ("names_format", Null),
    ("csv_delimiter", Null),
    ("is_ids_visible", Null),
    ("use_flat_dropdowntree", Null),
    ("use_flat_dropdowntree_on_search_result", Null),
    ("show_jobs_at_login", Null),
    ("priority_1", Null),
    ("priority_2", Null),
    ("priority_3", Null),
    ("priority_4", Null),
    ("priority_5", Null),
    ("priority_6", Null),
    ("followup_private", Null),
    ("task_private", Null),
    ("default_requesttypes_id", Null),
    ("password_forget_token", Null),
    ("password_forget_token_date", Null),
    ("user_dn", Null),
    ("user_dn_hash", Null),
    ("registration_number", Null),
    ("show_count_on_tabs", Null),
    ("refresh_views", Null),
    ("set_default_tech", Null),
    ("personal_token_date", Null),
    ("api_token_date", Null),
    ("cookie_token_date", Null),
    ("display_count_on_home", Null),
    ("notification_to_myself", Null),
    ("duedateok_color", Null),
    ("duedatewarning_color", Null),
    ("duedatecritical_color", Null),
    ("duedatewarning_less", Null),
    ("duedatecritical_less", Null),
    ("duedatewarning_unit", Null),
    ("duedatecritical_unit", Null),
    ("display_options", Null),
    ("is_deleted_ldap", Int(0)),
    ("pdffont", Null),
    ("picture", Null),
    ("begin_date", Null),
    ("end_date", Null),
    ("keep_devices_when_purging_item", Null),
    ("privatebookmarkorder", Null),
    ("backcreated", Null),
    ("task_state", Null),
    ("palette", Null),
    ("page_layout", Null),
    ("fold_menu", Null),
    ("fold_search", Null),
    ("savedsearches_pinned", Null),
    ("timeline_order", Null),
    ("itil_layout", Null),
    ("richtext_layout", Null),
    ("set_default_requester", Null),
    ("lock_autolock_mode", Null),
    ("lock_directunlock_notification", Null),
    ("date_creation", Now),
    ("highcontrast_css", Int(0)),
    ("plannings", Null),
    ("sync_field", Null),
    ("groups_id", Int(0)),
    ("users_id_supervisor", Int(0)),
    ("timezone", Null),
    ("default_dashboard_central", Null),
    ("default_dashboard_assets", Null),
    ("default_dashboard_helpdesk", Null),
    ("default_dashboard_mini_ticket", Null),
    ("default_central_tab", Int(0)),
    ("nickname", Null),
];

const USER_EMAIL: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("users_id", Int(0)),
    ("is_default", Int(0)),
    ("is_dynamic", Int(0)),
    ("email", Str("")),
];

const CONTACT: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("name", Str("")),
    ("firstname", Null),
    ("registration_number", Null),
    ("phone", Null),
    ("phone2", Null),
    ("mobile", Null),
    ("fax", Null),
    ("email", Null),
    ("address", Null),
    ("postcode", Null),
    ("town", Null),
    ("state", Null),
    ("country", Null),
    ("contacttypes_id", Int(0)),
    ("usertitles_id", Int(0)),
    ("comment", Null),
    ("is_deleted", Int(0)),
    ("date_mod", Now),
    ("date_creation", Now),
    ("pictures", Null),
];

const ENTITY: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("name", Str("")),
    ("entities_id", Int(0)),
    ("completename", Str("")),
    ("comment", Null),
    ("level", Int(1)),
    ("sons_cache", Null),
    ("ancestors_cache", Null),
    ("registration_number", Null),
    ("address", Null),
    ("postcode", Null),
    ("town", Null),
    ("state", Null),
    ("country", Null),
    ("website", Null),
    ("phonenumber", Null),
    ("fax", Null),
    ("email", Null),
    ("admin_email", Null),
    ("admin_email_name", Null),
    ("from_email", Null),
    ("from_email_name", Null),
    ("noreply_email", Null),
    ("noreply_email_name", Null),
    ("replyto_email", Null),
    ("replyto_email_name", Null),
    ("notification_subject_tag", Null),
    ("ldap_dn", Null),
    ("tag", Null),
    ("authldaps_id", Int(0)),
    ("mail_domain", Null),
    ("entity_ldapfilter", Null),
    ("mailing_signature", Null),
    ("cartridges_alert_repeat", Int(-2)),
    ("consumables_alert_repeat", Int(-2)),
    ("use_licenses_alert", Int(-2)),
    ("send_licenses_alert_before_delay", Int(-2)),
    ("use_certificates_alert", Int(-2)),
    ("send_certificates_alert_before_delay", Int(-2)),
    ("certificates_alert_repeat_interval", Int(-2)),
    ("use_contracts_alert", Int(-2)),
    ("send_contracts_alert_before_delay", Int(-2)),
    ("use_infocoms_alert", Int(-2)),
    ("send_infocoms_alert_before_delay", Int(-2)),
    ("use_reservations_alert", Int(-2)),
    ("use_domains_alert", Int(-2)),
    ("send_domains_alert_close_expiries_delay", Int(-2)),
    ("send_domains_alert_expired_delay", Int(-2)),
    ("autoclose_delay", Int(-2)),
    ("autopurge_delay", Int(-2)),
    ("notclosed_delay", Int(-2)),
    ("calendars_id", Int(-2)),
    ("auto_assign_mode", Int(-2)),
    ("tickettype", Int(-2)),
    ("max_closedate", Null),
    ("inquest_config", Int(-2)),
    ("inquest_rate", Int(0)),
    ("inquest_delay", Int(-10)),
    ("inquest_URL", Null),
    ("autofill_warranty_date", Str("-2")),
    ("autofill_use_date", Str("-2")),
    ("autofill_buy_date", Str("-2")),
    ("autofill_delivery_date", Str("-2")),
    ("autofill_order_date", Str("-2")),
    ("tickettemplates_id", Int(-2)),
    ("changetemplates_id", Int(-2)),
    ("problemtemplates_id", Int(-2)),
    ("entities_strategy_software", Int(-2)),
    ("entities_id_software", Int(-2)),
    ("default_contract_alert", Int(-2)),
    ("default_infocom_alert", Int(-2)),
    ("default_cartridges_alarm_threshold", Int(-2)),
    ("default_consumables_alarm_threshold", Int(-2)),
    ("delay_send_emails", Int(-2)),
    ("is_notif_enable_default", Int(-2)),
    ("inquest_duration", Int(0)),
    ("date_mod", Now),
    ("date_creation", Now),
    ("autofill_decommission_date", Str("-2")),
    ("suppliers_as_private", Int(-2)),
    ("anonymize_support_agents", Int(-2)),
    ("display_users_initials", Int(-2)),
    ("contracts_strategy_default", Int(-2)),
    ("contracts_id_default", Int(0)),
    ("enable_custom_css", Int(-2)),
    ("custom_css_code", Null),
    ("latitude", Null),
    ("longitude", Null),
    ("altitude", Null),
    ("transfers_strategy", Int(-2)),
    ("transfers_id", Int(-2)),
    ("agent_base_url", Null),
];

const ITIL_CATEGORY: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("itilcategories_id", Int(0)),
    ("name", Str("")),
    ("completename", Str("")),
    ("comment", Null),
    ("level", Int(1)),
    ("knowbaseitemcategories_id", Int(0)),
    ("users_id", Int(0)),
    ("groups_id", Int(0)),
    ("code", Null),
    ("ancestors_cache", Null),
    ("sons_cache", Null),
    ("is_helpdeskvisible", Int(1)),
    ("tickettemplates_id_incident", Int(0)),
    ("tickettemplates_id_demand", Int(0)),
    ("changetemplates_id", Int(0)),
    ("problemtemplates_id", Int(0)),
    ("is_incident", Int(1)),
    ("is_request", Int(1)),
    ("is_problem", Int(1)),
    ("is_change", Int(1)),
    ("date_mod", Now),
    ("date_creation", Now),
];

const REQUEST_TYPE: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("name", Str("")),
    ("is_helpdesk_default", Int(0)),
    ("is_followup_default", Int(0)),
    ("is_mail_default", Int(0)),
    ("is_mailfollowup_default", Int(0)),
    ("is_active", Int(1)),
    ("is_ticketheader", Int(1)),
    ("is_itilfollowup", Int(1)),
    ("comment", Null),
    ("date_mod", Now),
    ("date_creation", Now),
];

const DOCUMENT: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("name", Str("")),
    ("filename", Null),
    ("filepath", Null),
    ("documentcategories_id", Int(0)),
    ("mime", Null),
    ("date_mod", Now),
    ("comment", Null),
    ("is_deleted", Int(0)),
    ("link", Null),
    ("users_id", Int(0)),
    ("tickets_id", Int(0)),
    ("sha1sum", Null),
    ("is_blacklisted", Int(0)),
    ("tag", Null),
    ("date_creation", Now),
];

const DOCUMENT_ITEM: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("documents_id", Int(0)),
    ("items_id", Int(0)),
    ("itemtype", Str("")),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("date_mod", Now),
    ("users_id", Int(0)),
    ("timeline_position", Int(1)),
    ("date_creation", Now),
    ("date", Null),
];

const TICKET_USER: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("tickets_id", Int(0)),
    ("users_id", Int(0)),
    ("type", Int(1)),
    ("use_notification", Int(1)),
    ("alternative_email", Str("")),
];

const PROFILE_USER: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("users_id", Int(0)),
    ("profiles_id", Int(0)),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("is_dynamic", Int(0)),
    ("is_default_profile", Int(0)),
];

const FIELDS_CONTAINER: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("name", Str("")),
    ("label", Str("")),
    ("itemtypes", Null),
    ("type", Str("tab")),
    ("subtype", Null),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("is_active", Int(1)),
];

const FIELDS_FIELD: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("name", Str("")),
    ("label", Str("")),
    ("type", Str("text")),
    ("plugin_fields_containers_id", Int(0)),
    ("ranking", Int(1)),
    ("default_value", Null),
    ("is_active", Int(1)),
    ("is_readonly", Int(1)),
    ("mandatory", Int(0)),
    ("multiple", Int(0)),
    ("allowed_values", Null),
];

const GENERIC: &[(&str, Def)] = &[
    ("id", Int(0)),
    ("name", Str("")),
    ("entities_id", Int(0)),
    ("is_recursive", Int(0)),
    ("comment", Null),
    ("date_mod", Now),
    ("date_creation", Now),
];

/// Itemtypes answered with their own columns.
const SPECIFIC: &[(&str, &[(&str, Def)])] = &[
    ("Ticket", TICKET),
    ("ITILFollowup", FOLLOWUP),
    ("ITILSolution", SOLUTION),
    ("TicketTask", TASK),
    ("User", USER),
    ("UserEmail", USER_EMAIL),
    ("Contact", CONTACT),
    ("Entity", ENTITY),
    ("ITILCategory", ITIL_CATEGORY),
    ("RequestType", REQUEST_TYPE),
    ("Document", DOCUMENT),
    ("Document_Item", DOCUMENT_ITEM),
    ("Ticket_User", TICKET_USER),
    ("Profile_User", PROFILE_USER),
    ("PluginFieldsContainer", FIELDS_CONTAINER),
    ("PluginFieldsField", FIELDS_FIELD),
];

/// Other CommonDBTM itemtypes accepted with generic columns (any input key is kept).
const GENERIC_TYPES: &[&str] = &[
    "Profile",
    "Location",
    "Group",
    "Group_User",
    "Group_Ticket",
    "Supplier",
    "Supplier_Ticket",
    "SolutionType",
    "TaskCategory",
    "DocumentCategory",
    "DocumentType",
    "Computer",
    "Monitor",
    "Printer",
    "Phone",
    "Problem",
    "Change",
    "KnowbaseItem",
    "UserTitle",
    "UserCategory",
    "ContactType",
    "Item_Ticket",
    "TicketValidation",
    "TicketCost",
    "Problem_Ticket",
    "Change_Ticket",
    "Ticket_Ticket",
    "Calendar",
    "SLA",
    "OLA",
    "Notification",
    "Config",
];

/// The canonical name of an itemtype (case-insensitive), `None` if GLPI would not know it.
/// `extra` lists runtime itemtypes (Fields plugin containers).
pub(crate) fn canonical(name: &str, extra: &[String]) -> Option<String> {
    if name.eq_ignore_ascii_case("TicketFollowup") {
        return Some("ITILFollowup".to_string());
    }
    SPECIFIC
        .iter()
        .map(|(n, _)| *n)
        .chain(GENERIC_TYPES.iter().copied())
        .find(|n| n.eq_ignore_ascii_case(name))
        .map(str::to_string)
        .or_else(|| extra.iter().find(|n| n.eq_ignore_ascii_case(name)).cloned())
}

pub(crate) fn columns(itemtype: &str) -> Option<&'static [(&'static str, Def)]> {
    SPECIFIC
        .iter()
        .find(|(n, _)| *n == itemtype)
        .map(|(_, c)| *c)
}

/// A row with every column at its default value.
pub(crate) fn default_row(itemtype: &str, now: &str) -> Row {
    let mut row = Row::new();
    for (name, def) in columns(itemtype).unwrap_or(GENERIC) {
        let v = match def {
            Null => Value::Null,
            Int(i) => Value::from(*i),
            Str(s) => Value::from(*s),
            Now => Value::from(now),
        };
        row.set(name, v);
    }
    row
}

/// Whether an input key is a column of this itemtype (generic types accept anything).
pub(crate) fn is_column(itemtype: &str, key: &str) -> bool {
    match columns(itemtype) {
        Some(cols) => cols.iter().any(|(n, _)| *n == key),
        None => !key.starts_with('_'),
    }
}

/// Itemtypes with a trash bin (`is_deleted`); the others are purged by DELETE.
pub(crate) fn has_trash(itemtype: &str) -> bool {
    matches!(
        itemtype,
        "Ticket" | "User" | "Contact" | "Document" | "Computer" | "Problem" | "Change"
    )
}

/// Itemtypes restricted to the session's active entities.
pub(crate) fn entity_assigned(itemtype: &str) -> bool {
    matches!(
        itemtype,
        "Ticket"
            | "Contact"
            | "Document"
            | "ITILCategory"
            | "Computer"
            | "Problem"
            | "Change"
            | "Location"
            | "Group"
            | "Supplier"
    ) || itemtype.starts_with("PluginFields") && itemtype != "PluginFieldsField"
}

/// The itemtype a foreign-key column points to (`users_id_recipient` -> `User`).
pub(crate) fn fk_target(column: &str) -> Option<&'static str> {
    let base = column.split("_id").next().unwrap_or("");
    if !column.contains("_id")
        || column == "items_id"
        || column.starts_with("sourceitems")
        || column.starts_with("sourceof")
    {
        return None;
    }
    Some(match base {
        "entities" => "Entity",
        "users" => "User",
        "requesttypes" => "RequestType",
        "itilcategories" => "ITILCategory",
        "documents" => "Document",
        "tickets" => "Ticket",
        "locations" => "Location",
        "profiles" => "Profile",
        "groups" => "Group",
        "suppliers" => "Supplier",
        "solutiontypes" => "SolutionType",
        "taskcategories" => "TaskCategory",
        "documentcategories" => "DocumentCategory",
        "usertitles" => "UserTitle",
        "usercategories" => "UserCategory",
        "contacttypes" => "ContactType",
        "plugin_fields_containers" => "PluginFieldsContainer",
        _ => return None,
    })
}

/// Child itemtypes advertised in a Ticket's hateoas links.
pub(crate) const TICKET_CHILDREN: &[&str] = &[
    "Document_Item",
    "TicketTask",
    "TicketValidation",
    "TicketCost",
    "Problem_Ticket",
    "Change_Ticket",
    "Item_Ticket",
    "ITILSolution",
    "ITILFollowup",
    "Ticket_User",
    "Group_Ticket",
    "Supplier_Ticket",
];

/// The foreign key a child row uses to point at a parent of this itemtype.
pub(crate) fn parent_fk(parent: &str) -> String {
    match parent {
        "Entity" => "entities_id".to_string(),
        "ITILCategory" => "itilcategories_id".to_string(),
        "RequestType" => "requesttypes_id".to_string(),
        "PluginFieldsContainer" => "plugin_fields_containers_id".to_string(),
        other => format!("{}s_id", other.to_lowercase()),
    }
}
