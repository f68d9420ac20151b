//! The slice of iTop's data model the simulator knows: classes, their
//! attributes (in the order `output_fields:"*"` lists them) and labels.

/// How an attribute is stored or computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Plain string (also numbers iTop renders as strings).
    Str,
    /// HTML text: plain input comes back wrapped in `<p>`.
    Html,
    /// Enumeration of allowed codes.
    Enum(&'static [&'static str]),
    /// External key to a class; empty = "0".
    ExtKey(&'static str),
    /// Attribute of the object an external key points to.
    ExtField(&'static str, &'static str),
    /// Friendly name of the object an external key points to.
    FriendlyNameOf(&'static str),
    /// Always the empty string (obsolescence flags, class recalls).
    Empty,
    /// Date/time, `Y-m-d H:i:s` or empty.
    Date,
    CaseLog,
    Blob,
    LinkSet,
    /// Stopwatch seconds, rendered as a JSON number.
    Int,
    /// Always JSON null.
    Null,
    OperationalStatus,
    FinalClass,
    FriendlyName,
}

impl Kind {
    /// Whether the attribute holds a stored value (as opposed to computed).
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            Kind::Str
                | Kind::Html
                | Kind::Enum(_)
                | Kind::ExtKey(_)
                | Kind::Date
                | Kind::CaseLog
                | Kind::Blob
                | Kind::LinkSet
                | Kind::Int
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub code: &'static str,
    pub kind: Kind,
    pub default: &'static str,
}

const fn a(code: &'static str, kind: Kind) -> Attr {
    Attr {
        code,
        kind,
        default: "",
    }
}

const fn d(code: &'static str, kind: Kind, default: &'static str) -> Attr {
    Attr {
        code,
        kind,
        default,
    }
}

#[derive(Debug)]
pub struct ClassDef {
    pub name: &'static str,
    /// Root class: ids are shared by all classes with the same root.
    pub root: &'static str,
    pub is_abstract: bool,
    pub attrs: &'static [Attr],
    pub not_null: &'static [&'static str],
}

impl ClassDef {
    pub fn attr(&self, code: &str) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.code == code)
    }

    pub fn is_ticket(&self) -> bool {
        self.root == "Ticket"
    }
}

pub const STATUS: &[&str] = &[
    "new",
    "escalated_tto",
    "assigned",
    "escalated_ttr",
    "waiting_for_approval",
    "approved",
    "rejected",
    "pending",
    "resolved",
    "closed",
];
const INCIDENT_STATUS: &[&str] = &[
    "new",
    "escalated_tto",
    "assigned",
    "escalated_ttr",
    "pending",
    "resolved",
    "closed",
];
const IMPACT: &[&str] = &["1", "2", "3"];
const URGENCY: &[&str] = &["1", "2", "3", "4"];
const ORIGIN: &[&str] = &["chat", "in_person", "mail", "phone", "portal"];
const INCIDENT_ORIGIN: &[&str] = &["in_person", "mail", "monitoring", "phone", "portal"];
const RESOLUTION: &[&str] = &[
    "assistance",
    "bug fixed",
    "hardware repair",
    "other",
    "software patch",
    "system update",
    "training",
];
const YES_NO: &[&str] = &["no", "yes"];
const ACTIVE: &[&str] = &["active", "inactive"];

const USER_REQUEST: &[Attr] = &[
    a("operational_status", Kind::OperationalStatus),
    a("ref", Kind::Str),
    a("org_id", Kind::ExtKey("Organization")),
    a("org_name", Kind::ExtField("org_id", "name")),
    a("caller_id", Kind::ExtKey("Person")),
    a("caller_name", Kind::ExtField("caller_id", "name")),
    a("team_id", Kind::ExtKey("Team")),
    a("team_name", Kind::ExtField("team_id", "name")),
    a("team_email", Kind::ExtField("team_id", "email")),
    a("agent_id", Kind::ExtKey("Person")),
    a("agent_name", Kind::ExtField("agent_id", "name")),
    a("title", Kind::Str),
    a("description", Kind::Html),
    a("start_date", Kind::Date),
    a("end_date", Kind::Date),
    a("last_update", Kind::Date),
    a("close_date", Kind::Date),
    a("private_log", Kind::CaseLog),
    a("contacts_list", Kind::LinkSet),
    a("functionalcis_list", Kind::LinkSet),
    a("workorders_list", Kind::LinkSet),
    d("status", Kind::Enum(STATUS), "new"),
    d(
        "request_type",
        Kind::Enum(&["service_request"]),
        "service_request",
    ),
    d("impact", Kind::Enum(IMPACT), "1"),
    d("priority", Kind::Enum(URGENCY), "4"),
    d("urgency", Kind::Enum(URGENCY), "4"),
    d("origin", Kind::Enum(ORIGIN), "phone"),
    a("approver_id", Kind::ExtKey("Person")),
    a("approver_email", Kind::ExtField("approver_id", "email")),
    a("service_id", Kind::ExtKey("Service")),
    a("service_name", Kind::ExtField("service_id", "name")),
    a("servicesubcategory_id", Kind::ExtKey("ServiceSubcategory")),
    a(
        "servicesubcategory_name",
        Kind::ExtField("servicesubcategory_id", "name"),
    ),
    d("escalation_flag", Kind::Enum(YES_NO), "no"),
    a("escalation_reason", Kind::Str),
    a("assignment_date", Kind::Date),
    a("resolution_date", Kind::Date),
    a("last_pending_date", Kind::Date),
    a("cumulatedpending", Kind::Int),
    a("tto", Kind::Int),
    a("ttr", Kind::Int),
    a("tto_escalation_deadline", Kind::Date),
    d("sla_tto_passed", Kind::Str, "no"),
    a("sla_tto_over", Kind::Null),
    a("ttr_escalation_deadline", Kind::Date),
    d("sla_ttr_passed", Kind::Str, "no"),
    a("sla_ttr_over", Kind::Null),
    a("time_spent", Kind::Str),
    d("resolution_code", Kind::Enum(RESOLUTION), "assistance"),
    a("solution", Kind::Html),
    a("pending_reason", Kind::Str),
    a("parent_request_id", Kind::ExtKey("UserRequest")),
    a(
        "parent_request_ref",
        Kind::ExtField("parent_request_id", "ref"),
    ),
    a("parent_incident_id", Kind::ExtKey("Incident")),
    a(
        "parent_incident_ref",
        Kind::ExtField("parent_incident_id", "ref"),
    ),
    a("parent_problem_id", Kind::ExtKey("Problem")),
    a(
        "parent_problem_ref",
        Kind::ExtField("parent_problem_id", "ref"),
    ),
    a("parent_change_id", Kind::ExtKey("Change")),
    a(
        "parent_change_ref",
        Kind::ExtField("parent_change_id", "ref"),
    ),
    a("related_request_list", Kind::LinkSet),
    a("public_log", Kind::CaseLog),
    d("user_satisfaction", Kind::Enum(URGENCY), "1"),
    a("user_comment", Kind::Str),
    a("finalclass", Kind::FinalClass),
    a("friendlyname", Kind::FriendlyName),
    a("org_id_friendlyname", Kind::FriendlyNameOf("org_id")),
    a("org_id_obsolescence_flag", Kind::Empty),
    a("caller_id_friendlyname", Kind::FriendlyNameOf("caller_id")),
    a("caller_id_obsolescence_flag", Kind::Empty),
    a("team_id_friendlyname", Kind::FriendlyNameOf("team_id")),
    a("team_id_obsolescence_flag", Kind::Empty),
    a("agent_id_friendlyname", Kind::FriendlyNameOf("agent_id")),
    a("agent_id_obsolescence_flag", Kind::Empty),
    a(
        "approver_id_friendlyname",
        Kind::FriendlyNameOf("approver_id"),
    ),
    a("approver_id_obsolescence_flag", Kind::Empty),
    a(
        "service_id_friendlyname",
        Kind::FriendlyNameOf("service_id"),
    ),
    a(
        "servicesubcategory_id_friendlyname",
        Kind::FriendlyNameOf("servicesubcategory_id"),
    ),
    a(
        "parent_request_id_friendlyname",
        Kind::FriendlyNameOf("parent_request_id"),
    ),
    a(
        "parent_incident_id_friendlyname",
        Kind::FriendlyNameOf("parent_incident_id"),
    ),
    a(
        "parent_problem_id_friendlyname",
        Kind::FriendlyNameOf("parent_problem_id"),
    ),
    a(
        "parent_change_id_friendlyname",
        Kind::FriendlyNameOf("parent_change_id"),
    ),
    a("parent_change_id_finalclass_recall", Kind::Empty),
];

const INCIDENT: &[Attr] = &[
    a("operational_status", Kind::OperationalStatus),
    a("ref", Kind::Str),
    a("org_id", Kind::ExtKey("Organization")),
    a("org_name", Kind::ExtField("org_id", "name")),
    a("caller_id", Kind::ExtKey("Person")),
    a("caller_name", Kind::ExtField("caller_id", "name")),
    a("team_id", Kind::ExtKey("Team")),
    a("team_name", Kind::ExtField("team_id", "name")),
    a("agent_id", Kind::ExtKey("Person")),
    a("agent_name", Kind::ExtField("agent_id", "name")),
    a("title", Kind::Str),
    a("description", Kind::Html),
    a("start_date", Kind::Date),
    a("end_date", Kind::Date),
    a("last_update", Kind::Date),
    a("close_date", Kind::Date),
    a("private_log", Kind::CaseLog),
    a("contacts_list", Kind::LinkSet),
    a("functionalcis_list", Kind::LinkSet),
    a("workorders_list", Kind::LinkSet),
    d("status", Kind::Enum(INCIDENT_STATUS), "new"),
    d("impact", Kind::Enum(IMPACT), "1"),
    d("priority", Kind::Enum(URGENCY), "4"),
    d("urgency", Kind::Enum(URGENCY), "4"),
    d("origin", Kind::Enum(INCIDENT_ORIGIN), "phone"),
    a("service_id", Kind::ExtKey("Service")),
    a("service_name", Kind::ExtField("service_id", "name")),
    d("escalation_flag", Kind::Enum(YES_NO), "no"),
    a("assignment_date", Kind::Date),
    a("resolution_date", Kind::Date),
    a("last_pending_date", Kind::Date),
    a("time_spent", Kind::Str),
    d("resolution_code", Kind::Enum(RESOLUTION), "assistance"),
    a("solution", Kind::Html),
    a("pending_reason", Kind::Str),
    a("public_log", Kind::CaseLog),
    d("user_satisfaction", Kind::Enum(URGENCY), "1"),
    a("user_comment", Kind::Str),
    a("finalclass", Kind::FinalClass),
    a("friendlyname", Kind::FriendlyName),
    a("org_id_friendlyname", Kind::FriendlyNameOf("org_id")),
    a("caller_id_friendlyname", Kind::FriendlyNameOf("caller_id")),
    a("team_id_friendlyname", Kind::FriendlyNameOf("team_id")),
    a("agent_id_friendlyname", Kind::FriendlyNameOf("agent_id")),
    a(
        "service_id_friendlyname",
        Kind::FriendlyNameOf("service_id"),
    ),
];

const TICKET: &[Attr] = &[
    a("operational_status", Kind::OperationalStatus),
    a("ref", Kind::Str),
    a("org_id", Kind::ExtKey("Organization")),
    a("caller_id", Kind::ExtKey("Person")),
    a("team_id", Kind::ExtKey("Team")),
    a("agent_id", Kind::ExtKey("Person")),
    a("title", Kind::Str),
    a("description", Kind::Html),
    a("start_date", Kind::Date),
    a("end_date", Kind::Date),
    a("last_update", Kind::Date),
    a("close_date", Kind::Date),
    a("private_log", Kind::CaseLog),
    a("finalclass", Kind::FinalClass),
    a("friendlyname", Kind::FriendlyName),
];

const ORGANIZATION: &[Attr] = &[
    a("name", Kind::Str),
    a("code", Kind::Str),
    d("status", Kind::Enum(ACTIVE), "active"),
    a("parent_id", Kind::ExtKey("Organization")),
    a("parent_name", Kind::ExtField("parent_id", "name")),
    a("friendlyname", Kind::FriendlyName),
    a("parent_id_friendlyname", Kind::FriendlyNameOf("parent_id")),
];

const PERSON: &[Attr] = &[
    a("name", Kind::Str),
    d("status", Kind::Enum(ACTIVE), "active"),
    a("org_id", Kind::ExtKey("Organization")),
    a("org_name", Kind::ExtField("org_id", "name")),
    a("email", Kind::Str),
    a("phone", Kind::Str),
    d("notify", Kind::Enum(YES_NO), "yes"),
    a("function", Kind::Str),
    a("first_name", Kind::Str),
    a("employee_number", Kind::Str),
    a("mobile_phone", Kind::Str),
    a("manager_id", Kind::ExtKey("Person")),
    a("manager_name", Kind::ExtField("manager_id", "name")),
    a("team_list", Kind::LinkSet),
    a("tickets_list", Kind::LinkSet),
    a("finalclass", Kind::FinalClass),
    a("friendlyname", Kind::FriendlyName),
    a("org_id_friendlyname", Kind::FriendlyNameOf("org_id")),
    a(
        "manager_id_friendlyname",
        Kind::FriendlyNameOf("manager_id"),
    ),
];

const TEAM: &[Attr] = &[
    a("name", Kind::Str),
    d("status", Kind::Enum(ACTIVE), "active"),
    a("org_id", Kind::ExtKey("Organization")),
    a("org_name", Kind::ExtField("org_id", "name")),
    a("email", Kind::Str),
    a("phone", Kind::Str),
    d("notify", Kind::Enum(YES_NO), "yes"),
    a("function", Kind::Str),
    a("persons_list", Kind::LinkSet),
    a("tickets_list", Kind::LinkSet),
    a("finalclass", Kind::FinalClass),
    a("friendlyname", Kind::FriendlyName),
    a("org_id_friendlyname", Kind::FriendlyNameOf("org_id")),
];

const CONTACT: &[Attr] = &[
    a("name", Kind::Str),
    d("status", Kind::Enum(ACTIVE), "active"),
    a("org_id", Kind::ExtKey("Organization")),
    a("email", Kind::Str),
    a("phone", Kind::Str),
    a("finalclass", Kind::FinalClass),
    a("friendlyname", Kind::FriendlyName),
];

const SERVICE: &[Attr] = &[
    a("name", Kind::Str),
    a("org_id", Kind::ExtKey("Organization")),
    a("organization_name", Kind::ExtField("org_id", "name")),
    a("description", Kind::Str),
    d(
        "status",
        Kind::Enum(&["implementation", "obsolete", "production"]),
        "production",
    ),
    a("friendlyname", Kind::FriendlyName),
];

const NAMED: &[Attr] = &[a("name", Kind::Str), a("friendlyname", Kind::FriendlyName)];
const REFERENCED: &[Attr] = &[
    a("ref", Kind::Str),
    a("title", Kind::Str),
    a("friendlyname", Kind::FriendlyName),
];

const ATTACHMENT: &[Attr] = &[
    a("expire", Kind::Date),
    a("temp_id", Kind::Str),
    a("item_class", Kind::Str),
    a("item_id", Kind::Str),
    a("item_org_id", Kind::Str),
    a("contents", Kind::Blob),
    a("creation_date", Kind::Date),
    a("user_id", Kind::Str),
    a("contact_id", Kind::Str),
    a("friendlyname", Kind::FriendlyName),
];

/// `User` (abstract) and `UserLocal`: the account behind a case-log entry's
/// `user_id`, whose `contactid` is its Person.
const USER: &[Attr] = &[
    a("login", Kind::Str),
    a("contactid", Kind::ExtKey("Contact")),
    a("friendlyname", Kind::FriendlyName),
];

pub static CLASSES: &[ClassDef] = &[
    ClassDef {
        name: "User",
        root: "User",
        is_abstract: true,
        attrs: USER,
        not_null: &[],
    },
    ClassDef {
        name: "UserLocal",
        root: "User",
        is_abstract: false,
        attrs: USER,
        not_null: &["login"],
    },
    ClassDef {
        name: "Ticket",
        root: "Ticket",
        is_abstract: true,
        attrs: TICKET,
        not_null: &[],
    },
    ClassDef {
        name: "UserRequest",
        root: "Ticket",
        is_abstract: false,
        attrs: USER_REQUEST,
        not_null: &["org_id", "title", "description"],
    },
    ClassDef {
        name: "Incident",
        root: "Ticket",
        is_abstract: false,
        attrs: INCIDENT,
        not_null: &["org_id", "title", "description"],
    },
    ClassDef {
        name: "Organization",
        root: "Organization",
        is_abstract: false,
        attrs: ORGANIZATION,
        not_null: &["name"],
    },
    ClassDef {
        name: "Contact",
        root: "Contact",
        is_abstract: true,
        attrs: CONTACT,
        not_null: &[],
    },
    ClassDef {
        name: "Person",
        root: "Contact",
        is_abstract: false,
        attrs: PERSON,
        // `first_name` is mandatory too (is_null_allowed="false" in
        // itop-structure): a Person with an empty first name is refused.
        not_null: &["name", "first_name", "org_id"],
    },
    ClassDef {
        name: "Team",
        root: "Contact",
        is_abstract: false,
        attrs: TEAM,
        not_null: &["name", "org_id"],
    },
    ClassDef {
        name: "Service",
        root: "Service",
        is_abstract: false,
        attrs: SERVICE,
        not_null: &["name", "org_id"],
    },
    ClassDef {
        name: "ServiceSubcategory",
        root: "ServiceSubcategory",
        is_abstract: false,
        attrs: NAMED,
        not_null: &["name"],
    },
    ClassDef {
        name: "Problem",
        root: "Problem",
        is_abstract: false,
        attrs: REFERENCED,
        not_null: &["title"],
    },
    ClassDef {
        name: "Change",
        root: "Change",
        is_abstract: false,
        attrs: REFERENCED,
        not_null: &["title"],
    },
    ClassDef {
        name: "Attachment",
        root: "Attachment",
        is_abstract: false,
        attrs: ATTACHMENT,
        not_null: &["item_class"],
    },
];

pub fn class(name: &str) -> Option<&'static ClassDef> {
    CLASSES.iter().find(|c| c.name == name)
}

/// Whether `leaf` is `class` or one of its subclasses.
pub fn is_a(leaf: &str, class_name: &str) -> bool {
    if leaf == class_name {
        return true;
    }
    match (self::class(leaf), self::class(class_name)) {
        (Some(l), Some(c)) => c.is_abstract && l.root == c.root,
        _ => false,
    }
}

/// The label iTop uses for an attribute in validation messages.
pub fn label(code: &str) -> String {
    let known = match code {
        "org_id" => "Organization",
        "caller_id" => "Caller",
        "team_id" => "Team",
        "agent_id" => "Agent",
        "title" => "Title",
        "description" => "Description",
        "origin" => "Origin",
        "status" => "Status",
        "impact" => "Impact",
        "urgency" => "Urgency",
        "priority" => "Priority",
        "resolution_code" => "Resolution code",
        "user_satisfaction" => "User satisfaction",
        "request_type" => "Request type",
        "name" => "Last Name",
        "first_name" => "First Name",
        "item_class" => "Item class",
        "escalation_flag" => "On hold",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let mut s = code.replace('_', " ");
    if let Some(first) = s.get(0..1) {
        let up = first.to_uppercase();
        s.replace_range(0..1, &up);
    }
    s
}
