//! The OQL subset clients send: `SELECT Class [AS x] [WHERE cond]` where `cond`
//! combines `field op value` with AND / OR / parentheses; ops `=`, `!=`, `<>`,
//! `<`, `>`, `<=`, `>=`, `LIKE`, `NOT LIKE`, `IN (…)`, `NOT IN (…)`.
//! Comparisons are case-insensitive, as with MySQL's default collation.

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub class: String,
    pub filter: Option<Cond>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Cmp {
        field: String,
        op: Op,
        value: Lit,
    },
    In {
        field: String,
        negated: bool,
        values: Vec<Lit>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Like,
    NotLike,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(String),
}

impl Lit {
    fn text(&self) -> &str {
        match self {
            Lit::Str(s) | Lit::Num(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Sym(String),
}

fn tokenize(input: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        if let Some(n) = chars.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some(ch) if *ch == quote => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["!=", "<>", "<=", ">="].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else if "=<>(),".contains(c) {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected character '{c}'"));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.atom()?;
        while self.keyword("AND") {
            let right = self.atom()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn literal(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }

    fn atom(&mut self) -> Result<Cond, String> {
        if self.sym("(") {
            let c = self.or()?;
            if !self.sym(")") {
                return Err("missing ')'".into());
            }
            return Ok(c);
        }
        let field = match self.next() {
            Some(Tok::Word(w)) => w.rsplit('.').next().unwrap_or(&w).to_string(),
            other => return Err(format!("expected a field, found {other:?}")),
        };
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            if !self.sym("(") {
                return Err("expected '(' after IN".into());
            }
            let mut values = vec![self.literal()?];
            while self.sym(",") {
                values.push(self.literal()?);
            }
            if !self.sym(")") {
                return Err("missing ')'".into());
            }
            return Ok(Cond::In {
                field,
                negated,
                values,
            });
        }
        if self.keyword("LIKE") {
            let value = self.literal()?;
            let op = if negated { Op::NotLike } else { Op::Like };
            return Ok(Cond::Cmp { field, op, value });
        }
        if negated {
            return Err("expected LIKE or IN after NOT".into());
        }
        let op = match self.next() {
            Some(Tok::Sym(s)) => match s.as_str() {
                "=" => Op::Eq,
                "!=" | "<>" => Op::Ne,
                "<" => Op::Lt,
                ">" => Op::Gt,
                "<=" => Op::Le,
                ">=" => Op::Ge,
                _ => return Err(format!("unexpected '{s}'")),
            },
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        let value = self.literal()?;
        Ok(Cond::Cmp { field, op, value })
    }
}

pub fn parse(input: &str) -> Result<Query, String> {
    let mut p = Parser {
        toks: tokenize(input)?,
        pos: 0,
    };
    if !p.keyword("SELECT") {
        return Err("expected SELECT".into());
    }
    let class = match p.next() {
        Some(Tok::Word(w)) => w,
        other => return Err(format!("expected a class name, found {other:?}")),
    };
    if p.keyword("AS") {
        p.next();
    }
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(format!("unexpected {:?}", p.peek()));
    }
    Ok(Query { class, filter })
}

impl Cond {
    /// Fields the condition reads (for validation against the class).
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Cond::And(a, b) | Cond::Or(a, b) => {
                let mut v = a.fields();
                v.extend(b.fields());
                v
            }
            Cond::Cmp { field, .. } | Cond::In { field, .. } => vec![field.as_str()],
        }
    }

    pub fn eval(&self, value_of: &dyn Fn(&str) -> String) -> bool {
        match self {
            Cond::And(a, b) => a.eval(value_of) && b.eval(value_of),
            Cond::Or(a, b) => a.eval(value_of) || b.eval(value_of),
            Cond::In {
                field,
                negated,
                values,
            } => {
                let v = value_of(field);
                let hit = values.iter().any(|l| equal(&v, l.text()));
                hit != *negated
            }
            Cond::Cmp { field, op, value } => {
                let v = value_of(field);
                let lit = value.text();
                match op {
                    Op::Eq => equal(&v, lit),
                    Op::Ne => !equal(&v, lit),
                    Op::Like => like(&v, lit),
                    Op::NotLike => !like(&v, lit),
                    Op::Lt | Op::Gt | Op::Le | Op::Ge => {
                        let ord = match (v.parse::<f64>(), lit.parse::<f64>()) {
                            (Ok(a), Ok(b)) => a.partial_cmp(&b),
                            _ => Some(v.to_lowercase().cmp(&lit.to_lowercase())),
                        };
                        match ord {
                            Some(o) => match op {
                                Op::Lt => o.is_lt(),
                                Op::Gt => o.is_gt(),
                                Op::Le => o.is_le(),
                                _ => o.is_ge(),
                            },
                            None => false,
                        }
                    }
                }
            }
        }
    }
}

pub fn equal(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.to_lowercase() == b.to_lowercase(),
    }
}

/// SQL LIKE with `%` and `_`, case-insensitive; a backslash makes the next
/// character literal (MySQL's default escape, which iTop keeps: the OQL
/// literal `'a\\_b'` matches only `a_b`).
pub fn like(value: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Char(char),
        One,
        Many,
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let mut p = Vec::new();
    let mut chars = pattern
        .to_lowercase()
        .chars()
        .collect::<Vec<_>>()
        .into_iter();
    while let Some(c) = chars.next() {
        p.push(match c {
            '\\' => Tok::Char(chars.next().unwrap_or('\\')),
            '_' => Tok::One,
            '%' => Tok::Many,
            c => Tok::Char(c),
        });
    }
    let (mut vi, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == Tok::One || p[pi] == Tok::Char(v[vi])) {
            vi += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == Tok::Many {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == Tok::Many {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_client_subset() {
        let q = parse(
            "SELECT Person WHERE phone LIKE '%3333-4444%' OR mobile_phone LIKE '%3333-4444%'",
        )
        .unwrap();
        assert_eq!(q.class, "Person");
        let f = q.filter.unwrap();
        assert!(f.eval(&|n| if n == "phone" {
            "+55 11 3333-4444".into()
        } else {
            String::new()
        }));
        let q =
            parse("SELECT Attachment WHERE item_class = 'UserRequest' AND item_id = 2").unwrap();
        let f = q.filter.unwrap();
        assert!(f.eval(&|n| if n == "item_class" {
            "UserRequest".into()
        } else {
            "2".into()
        }));
        assert!(!f.eval(&|n| if n == "item_class" {
            "UserRequest".into()
        } else {
            "3".into()
        }));
        let q = parse(r#"SELECT Organization WHERE name = "Demo""#).unwrap();
        assert!(q.filter.unwrap().eval(&|_| "demo".into()));
        let q =
            parse("SELECT UserRequest AS u WHERE u.id IN (1, 2) AND (status != 'closed')").unwrap();
        assert!(
            q.filter
                .unwrap()
                .eval(&|n| if n == "id" { "2".into() } else { "new".into() })
        );
        assert!(parse("SELECT").is_err());
        assert!(parse("SELECT X WHERE a = ").is_err());
    }

    #[test]
    fn like_escapes() {
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(like("50%", "%0\\%"));
        assert!(!like("500", "%0\\%"));
    }

    #[test]
    fn like_wildcards() {
        assert!(like("abc", "a%"));
        assert!(like("abc", "%b%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "%d%"));
    }
}
