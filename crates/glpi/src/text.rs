//! Text decoding (spec §16, §17 trap 8).
//!
//! GLPI 9.5/10 entity-encode every string they store (`<` → `&#60;`, `&` → `&#38;`), and
//! return it encoded. The client decodes exactly once on read, and never encodes on write
//! (the server does that itself). GLPI 11 stores and returns raw HTML: nothing to decode.

use serde_json::Value;

/// Decode one GLPI-encoded string (single pass, so `&#38;amp;` becomes `&amp;`).
pub fn decode_text(text: &str) -> String {
    if text.contains('&') {
        html_escape::decode_html_entities(text).into_owned()
    } else {
        text.to_owned()
    }
}

/// Text as GLPI 9.5/10 store it: `&`, `<`, `>` as `&#38;`, `&#60;`, `&#62;` (quotes kept).
/// Their search engine compares a criterion's value with the stored text as it comes, so
/// a value must be sent the way the text is stored to match ("Redes & Internet" is stored
/// "Redes &#38; Internet").
pub fn encode_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            other => out.push(other),
        }
    }
    out
}

/// Decode every string inside a JSON value, in place.
pub(crate) fn decode_value(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('&') => *s = decode_text(s),
        Value::Array(items) => items.iter_mut().for_each(decode_value),
        Value::Object(map) => map.values_mut().for_each(decode_value),
        _ => {}
    }
}

/// Only the digits of a value (phones, CNPJ/CPF numbers).
pub fn digits_only(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Whether two phone numbers designate the same line: equal digits, or one is a suffix of the
/// other with at least 8 digits (country/area code present on one side only). A Brazilian
/// mobile is also the same line without its ninth digit (`+55 31 98877-6655` and
/// `(31) 8877-6655`): phones stored before 2016, and WhatsApp's ids of older accounts, lack it.
/// [`phone_match`] says how well they match, to choose between several people.
pub fn same_phone(a: &str, b: &str) -> bool {
    phone_match(a, b).is_some()
}

/// How well two phone numbers match. Ordered: a full match beats any suffix match, and a
/// longer suffix beats a shorter one (`98877-6655` stored without its area code matches
/// `+55 31 98877-6655` less well than `(31) 98877-6655` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhoneMatch {
    /// Every digit agrees (up to a Brazilian mobile's ninth digit).
    pub full: bool,
    /// How many digits agree.
    pub digits: usize,
}

/// How well `a` and `b` match as phone numbers, `None` when they are not the same line (see
/// [`same_phone`]).
pub fn phone_match(a: &str, b: &str) -> Option<PhoneMatch> {
    let (a, b) = (digits_only(a), digits_only(b));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let brazilian = |d: &str| d.starts_with("55") && d.len() == 13;
    let mut forms = vec![(a.clone(), b.clone())];
    if brazilian(&b)
        && let Some(b9) = without_brazilian_ninth(&b)
    {
        forms.push((a.clone(), b9));
    }
    if brazilian(&a)
        && let Some(a9) = without_brazilian_ninth(&a)
    {
        forms.push((a9, b.clone()));
    }
    forms.iter().filter_map(|(a, b)| digits_match(a, b)).max()
}

fn digits_match(a: &str, b: &str) -> Option<PhoneMatch> {
    if a == b {
        return Some(PhoneMatch {
            full: true,
            digits: a.len(),
        });
    }
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    (short.len() >= 8 && long.ends_with(short)).then_some(PhoneMatch {
        full: false,
        digits: short.len(),
    })
}

/// `5531988776655` → `553188776655`: a Brazilian mobile's digits without the 9 after the
/// area code.
fn without_brazilian_ninth(digits: &str) -> Option<String> {
    let national = digits.strip_prefix("55")?;
    (national.len() == 11 && national.as_bytes().get(2) == Some(&b'9'))
        .then(|| format!("55{}{}", &national[..2], &national[3..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_glpi10_transcript_content_once() {
        // GET /Ticket/1 content from the real GLPI 10.0.12 transcript.
        let stored = "&#60;p&#62;Olá! A impressora do 2º andar não imprime &#38;amp; mostra \"erro 0x50\".&#60;/p&#62;";
        assert_eq!(
            decode_text(stored),
            "<p>Olá! A impressora do 2º andar não imprime &amp; mostra \"erro 0x50\".</p>"
        );
    }

    #[test]
    fn decodes_nested_values() {
        let mut v = json!({"name":"Root entity &#62; ACME","list":[{"c":"a &#38; b"}],"n":1});
        decode_value(&mut v);
        assert_eq!(
            v,
            json!({"name":"Root entity > ACME","list":[{"c":"a & b"}],"n":1})
        );
    }

    #[test]
    fn phone_matching() {
        assert!(same_phone("+55 11 3333-4444", "1133334444"));
        assert!(same_phone("+55 11 3333-4444", "+551133334444"));
        assert!(!same_phone("+55 11 3333-4444", "+55 11 3333-4445"));
        assert!(!same_phone("4444", "+55 11 3333-4444"));
        assert!(!same_phone("", ""));
    }

    #[test]
    fn a_full_match_beats_a_suffix_and_a_longer_suffix_a_shorter_one() {
        let sender = "5531988776655";
        let full = phone_match("+55 31 98877-6655", sender);
        let national = phone_match("(31) 98877-6655", sender);
        let no_area_code = phone_match("98877-6655", sender);
        assert_eq!(
            full,
            Some(PhoneMatch {
                full: true,
                digits: 13
            })
        );
        assert!(national.is_some_and(|n| !n.full));
        assert!(no_area_code.is_some_and(|n| !n.full));
        assert!(full > national && national > no_area_code);
        // Without the ninth digit on one side it is still the whole number.
        assert!(phone_match("+55 31 8877-6655", sender).is_some_and(|m| m.full));
        assert_eq!(phone_match("98877-6656", sender), None);
    }
}
