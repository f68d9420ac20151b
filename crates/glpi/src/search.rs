//! The search engine (`GET /search/:itemtype`, spec §5).

use serde_json::{Map, Value};

use crate::client::{Call, GlpiClient, is_partial};
use crate::error::GlpiError;
use crate::items::checked_itemtype;
use crate::lenient::int_from_value;
use crate::text::encode_text;

/// How a criterion compares (per-option list in `listSearchOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchType {
    Contains,
    NotContains,
    Equals,
    NotEquals,
    LessThan,
    MoreThan,
    Under,
    NotUnder,
}

impl SearchType {
    fn as_str(self) -> &'static str {
        match self {
            SearchType::Contains => "contains",
            SearchType::NotContains => "notcontains",
            SearchType::Equals => "equals",
            SearchType::NotEquals => "notequals",
            SearchType::LessThan => "lessthan",
            SearchType::MoreThan => "morethan",
            SearchType::Under => "under",
            SearchType::NotUnder => "notunder",
        }
    }
}

/// How a criterion joins the previous ones (ignored on the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    And,
    Or,
    AndNot,
    OrNot,
}

impl Link {
    fn as_str(self) -> &'static str {
        match self {
            Link::And => "AND",
            Link::Or => "OR",
            Link::AndNot => "AND NOT",
            Link::OrNot => "OR NOT",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One criterion, or a parenthesised group of criteria.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    Field {
        link: Link,
        field: u32,
        searchtype: SearchType,
        value: String,
    },
    Group {
        link: Link,
        criteria: Vec<Criterion>,
    },
}

impl Criterion {
    /// A field criterion joined with AND.
    pub fn field(field: u32, searchtype: SearchType, value: impl Into<String>) -> Criterion {
        Criterion::Field {
            link: Link::And,
            field,
            searchtype,
            value: value.into(),
        }
    }

    /// The same criterion joined with `link`.
    pub fn linked(mut self, new_link: Link) -> Criterion {
        match &mut self {
            Criterion::Field { link, .. } | Criterion::Group { link, .. } => *link = new_link,
        }
        self
    }

    fn encode(&self, prefix: &str, out: &mut Vec<(String, String)>) {
        match self {
            Criterion::Field {
                link,
                field,
                searchtype,
                value,
            } => {
                out.push((format!("{prefix}[link]"), link.as_str().to_owned()));
                out.push((format!("{prefix}[field]"), field.to_string()));
                out.push((
                    format!("{prefix}[searchtype]"),
                    searchtype.as_str().to_owned(),
                ));
                out.push((format!("{prefix}[value]"), value.clone()));
            }
            Criterion::Group { link, criteria } => {
                out.push((format!("{prefix}[link]"), link.as_str().to_owned()));
                for (i, c) in criteria.iter().enumerate() {
                    c.encode(&format!("{prefix}[criteria][{i}]"), out);
                }
            }
        }
    }
}

/// A search request builder.
///
/// ```
/// use glpi::{SearchQuery, SearchType, Order};
/// let q = SearchQuery::new("Ticket")
///     .and(19, SearchType::MoreThan, "2026-01-01 00:00:00")
///     .display(&[2, 12, 19])
///     .sort(19, Order::Asc)
///     .range(0, 499);
/// assert_eq!(q.itemtype(), "Ticket");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    itemtype: String,
    criteria: Vec<Criterion>,
    forcedisplay: Vec<u32>,
    range: Option<(u64, u64)>,
    sort: Option<(u32, Order)>,
}

impl SearchQuery {
    pub fn new(itemtype: impl Into<String>) -> SearchQuery {
        SearchQuery {
            itemtype: itemtype.into(),
            criteria: Vec::new(),
            forcedisplay: vec![2],
            range: None,
            sort: None,
        }
    }

    pub fn itemtype(&self) -> &str {
        &self.itemtype
    }

    /// Add a criterion (any link, or a group).
    pub fn criterion(mut self, criterion: Criterion) -> SearchQuery {
        self.criteria.push(criterion);
        self
    }

    /// `AND field searchtype value`.
    pub fn and(self, field: u32, searchtype: SearchType, value: impl Into<String>) -> SearchQuery {
        self.criterion(Criterion::field(field, searchtype, value))
    }

    /// `OR field searchtype value`.
    pub fn or(self, field: u32, searchtype: SearchType, value: impl Into<String>) -> SearchQuery {
        self.criterion(Criterion::field(field, searchtype, value).linked(Link::Or))
    }

    /// Extra columns (`forcedisplay[]`). Option 2 (id) is always included.
    pub fn display(mut self, fields: &[u32]) -> SearchQuery {
        for f in fields {
            if !self.forcedisplay.contains(f) {
                self.forcedisplay.push(*f);
            }
        }
        self
    }

    /// Rows `start..=end` (0-based, inclusive).
    pub fn range(mut self, start: u64, end: u64) -> SearchQuery {
        self.range = Some((start, end.max(start)));
        self
    }

    /// Sort by a search option id.
    pub fn sort(mut self, field: u32, order: Order) -> SearchQuery {
        self.sort = Some((field, order));
        self
    }

    /// The query-string pairs GLPI expects.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, c) in self.criteria.iter().enumerate() {
            c.encode(&format!("criteria[{i}]"), &mut out);
        }
        for (i, f) in self.forcedisplay.iter().enumerate() {
            out.push((format!("forcedisplay[{i}]"), f.to_string()));
        }
        let (start, end) = self.range.unwrap_or((0, 999));
        out.push(("range".into(), format!("{start}-{end}")));
        if let Some((field, order)) = self.sort {
            out.push(("sort".into(), field.to_string()));
            out.push((
                "order".into(),
                match order {
                    Order::Asc => "ASC",
                    Order::Desc => "DESC",
                }
                .into(),
            ));
        }
        out
    }
}

/// One result row: cells keyed by search option id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRow(pub Map<String, Value>);

impl SearchRow {
    /// Raw cell.
    pub fn get(&self, field: u32) -> Option<&Value> {
        self.0.get(&field.to_string())
    }

    /// The item id (option 2), as number or numeric string.
    pub fn id(&self) -> Option<i64> {
        self.int(2)
    }

    /// A cell as an integer (numbers and numeric strings).
    pub fn int(&self, field: u32) -> Option<i64> {
        self.get(field).and_then(int_from_value)
    }

    /// A cell as text (first value of a multi-valued cell); None for null/empty.
    pub fn text(&self, field: u32) -> Option<String> {
        self.texts(field).into_iter().next()
    }

    /// Every value of a cell: multi-valued columns come as arrays or `$$##$$`-joined text.
    pub fn texts(&self, field: u32) -> Vec<String> {
        fn push(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.extend(
                    s.split("$$##$$")
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned),
                ),
                Value::Number(n) => out.push(n.to_string()),
                Value::Array(items) => items.iter().for_each(|i| push(i, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(v) = self.get(field) {
            push(v, &mut out);
        }
        out
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchPage {
    /// Rows matching in total (`totalcount`).
    pub total: u64,
    /// Rows in this page.
    pub rows: Vec<SearchRow>,
    /// More rows exist past this page (HTTP 206).
    pub partial: bool,
}

impl GlpiClient {
    /// Run a search page after page of 200 rows, while GLPI says more exist, up to
    /// `max_rows` rows.
    pub async fn search_rows(
        &self,
        query: &SearchQuery,
        max_rows: u64,
    ) -> Result<Vec<SearchRow>, GlpiError> {
        const PAGE: u64 = 200;
        let mut rows = Vec::new();
        let mut start = 0;
        while start < max_rows {
            let page = self
                .search(&query.clone().range(start, start + PAGE - 1))
                .await?;
            let got = page.rows.len() as u64;
            rows.extend(page.rows);
            if !page.partial || got == 0 {
                break;
            }
            start += got;
        }
        Ok(rows)
    }

    /// Run a search. An empty result (no `data` key) is an empty page, not an error.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage, GlpiError> {
        let itemtype = checked_itemtype(&query.itemtype)?;
        let encode = self.stores_encoded_text().await?;
        let mut call = Call::get(format!("search/{itemtype}"));
        call.query = query.to_query();
        if encode {
            for (key, value) in &mut call.query {
                if key.ends_with("[value]") {
                    *value = encode_text(value);
                }
            }
        }
        let (value, reply) = self.get_json(call).await?;
        let total = value
            .get("totalcount")
            .and_then(int_from_value)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0);
        let rows: Vec<SearchRow> = match value.get("data") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|r| r.as_object().cloned().map(SearchRow))
                .collect(),
            Some(Value::Object(by_id)) => by_id
                .values()
                .filter_map(|r| r.as_object().cloned().map(SearchRow))
                .collect(),
            _ => Vec::new(),
        };
        let partial = is_partial(&reply) || (rows.len() as u64) < total;
        Ok(SearchPage {
            total,
            rows,
            partial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_criteria_groups_and_display() {
        let q = SearchQuery::new("User")
            .criterion(Criterion::Group {
                link: Link::And,
                criteria: vec![
                    Criterion::field(6, SearchType::Contains, "4444"),
                    Criterion::field(11, SearchType::Contains, "4444").linked(Link::Or),
                ],
            })
            .display(&[5, 2])
            .range(0, 49)
            .sort(1, Order::Desc);
        let pairs = q.to_query();
        let has = |k: &str, v: &str| pairs.iter().any(|(a, b)| a == k && b == v);
        assert!(has("criteria[0][criteria][1][link]", "OR"));
        assert!(has("criteria[0][criteria][1][field]", "11"));
        assert!(has("forcedisplay[0]", "2"));
        assert!(has("forcedisplay[1]", "5"));
        assert!(!has("forcedisplay[2]", "2"));
        assert!(has("range", "0-49"));
        assert!(has("order", "DESC"));
    }

    #[test]
    fn row_accessors_handle_strings_arrays_and_separators() {
        let row = SearchRow(
            json!({"2":"7","5":["a@x","b@x"],"6":"x$$##$$y","9":null})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(row.id(), Some(7));
        assert_eq!(row.texts(5), vec!["a@x", "b@x"]);
        assert_eq!(row.texts(6), vec!["x", "y"]);
        assert_eq!(row.text(9), None);
    }
}
