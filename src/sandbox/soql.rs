//! The part of SOQL the emulated Salesforce answers: `SELECT fields FROM object
//! [WHERE condition] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST]] [LIMIT n]`, where a
//! condition is comparisons (`=`, `!=`, `<`, `>`, `<=`, `>=`, `LIKE`, `IN (…)`) joined
//! by AND / OR with parentheses. Relationship fields (`Account.Name`) read nested
//! objects. Anything else is a `MALFORMED_QUERY`, as Salesforce would answer.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match cs.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\\') => {
                            let e = cs.get(i + 1).ok_or("dangling escape")?;
                            // LIKE's escaped wildcards stay escaped for the matcher.
                            match e {
                                'n' => s.push('\n'),
                                'r' => s.push('\r'),
                                't' => s.push('\t'),
                                '%' | '_' => {
                                    s.push('\\');
                                    s.push(*e)
                                }
                                '\\' => s.push_str("\\\\"),
                                other => s.push(*other),
                            }
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' => {
                out.push(Tok::Op("=".into()));
                i += 1
            }
            '!' | '<' | '>' => {
                let two = cs.get(i + 1) == Some(&'=');
                let op = if two {
                    format!("{c}=")
                } else if c == '!' {
                    return Err("unexpected '!'".into());
                } else {
                    c.to_string()
                };
                i += if two { 2 } else { 1 };
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                    i += 1;
                }
                let s: String = cs[start..i].iter().collect();
                out.push(Tok::Num(s.parse().map_err(|_| format!("bad number {s}"))?));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < cs.len() && (cs[i].is_ascii_alphanumeric() || matches!(cs[i], '_' | '.'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(cs[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Cmp(String, String, Lit),
    In(String, Vec<Lit>),
    Like(String, String),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<String>,
    pub object: String,
    cond: Option<Cond>,
    order: Option<(String, bool)>,
    pub limit: Option<usize>,
}

struct P {
    toks: Vec<Tok>,
    i: usize,
    /// Parentheses open now: a query nested past [`MAX_DEPTH`] is refused, not recursed
    /// into until the stack runs out.
    depth: usize,
}

const MAX_DEPTH: usize = 32;

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn kw(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(k))
    }
    fn expect_kw(&mut self, k: &str) -> Result<(), String> {
        if self.kw(k) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {k}"))
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            t => Err(format!("expected a field, found {t:?}")),
        }
    }
    fn lit(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            t => Err(format!("expected a value, found {t:?}")),
        }
    }
    fn or(&mut self) -> Result<Cond, String> {
        let mut c = self.and()?;
        while self.kw("OR") {
            self.i += 1;
            c = Cond::Or(Box::new(c), Box::new(self.and()?));
        }
        Ok(c)
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut c = self.atom()?;
        while self.kw("AND") {
            self.i += 1;
            c = Cond::And(Box::new(c), Box::new(self.atom()?));
        }
        Ok(c)
    }
    fn atom(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH} parentheses"));
            }
            let c = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Tok::RParen) {
                return Err("expected )".into());
            }
            return Ok(c);
        }
        let field = self.ident()?;
        if self.kw("IN") {
            self.i += 1;
            if self.next() != Some(Tok::LParen) {
                return Err("expected ( after IN".into());
            }
            let mut vals = vec![self.lit()?];
            while self.peek() == Some(&Tok::Comma) {
                self.i += 1;
                vals.push(self.lit()?);
            }
            if self.next() != Some(Tok::RParen) {
                return Err("expected ) after IN values".into());
            }
            return Ok(Cond::In(field, vals));
        }
        if self.kw("LIKE") {
            self.i += 1;
            return match self.lit()? {
                Lit::Str(p) => Ok(Cond::Like(field, p)),
                _ => Err("LIKE takes a string".into()),
            };
        }
        match self.next() {
            Some(Tok::Op(op)) => Ok(Cond::Cmp(field, op, self.lit()?)),
            t => Err(format!("expected an operator, found {t:?}")),
        }
    }
}

pub fn parse(q: &str) -> Result<Query, String> {
    let mut p = P {
        toks: lex(q)?,
        i: 0,
        depth: 0,
    };
    p.expect_kw("SELECT")?;
    let mut fields = vec![p.ident()?];
    while p.peek() == Some(&Tok::Comma) {
        p.i += 1;
        fields.push(p.ident()?);
    }
    p.expect_kw("FROM")?;
    let object = p.ident()?;
    let cond = if p.kw("WHERE") {
        p.i += 1;
        Some(p.or()?)
    } else {
        None
    };
    let order = if p.kw("ORDER") {
        p.i += 1;
        p.expect_kw("BY")?;
        let f = p.ident()?;
        let mut asc = true;
        if p.kw("ASC") {
            p.i += 1;
        } else if p.kw("DESC") {
            p.i += 1;
            asc = false;
        }
        if p.kw("NULLS") {
            p.i += 2;
        }
        Some((f, asc))
    } else {
        None
    };
    let limit = if p.kw("LIMIT") {
        p.i += 1;
        match p.next() {
            Some(Tok::Num(n)) if n >= 0.0 => Some(n as usize),
            t => return Err(format!("LIMIT takes a number, found {t:?}")),
        }
    } else {
        None
    };
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?}"));
    }
    Ok(Query {
        fields,
        object,
        cond,
        order,
        limit,
    })
}

fn get<'a>(rec: &'a Value, path: &str) -> &'a Value {
    let mut v = rec;
    for part in path.split('.') {
        v = v.get(part).unwrap_or(&Value::Null);
    }
    v
}

fn cmp(v: &Value, lit: &Lit) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Value::String(a), Lit::Str(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Number(a), Lit::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Lit::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// SOQL LIKE: case-insensitive, `%` any run, `_` one character, `\` escapes.
fn like(text: &str, pat: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Ch(char),
    }
    let mut ps = Vec::new();
    let mut it = pat.chars();
    while let Some(c) = it.next() {
        ps.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => P::Ch(it.next().unwrap_or('\\')),
            c => P::Ch(c),
        });
    }
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let ps: Vec<P> = ps
        .into_iter()
        .map(|p| match p {
            P::Ch(c) => P::Ch(c.to_lowercase().next().unwrap_or(c)),
            o => o,
        })
        .collect();
    // dp[j]: the pattern's first i items match the text's first j characters.
    let mut dp = vec![false; t.len() + 1];
    dp[0] = true;
    for p in &ps {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match p {
                P::Any => dp[j] || (j > 0 && next[j - 1]),
                P::One => j > 0 && dp[j - 1],
                P::Ch(c) => j > 0 && dp[j - 1] && t[j - 1] == *c,
            };
        }
        dp = next;
    }
    dp[t.len()]
}

fn eval(c: &Cond, rec: &Value) -> bool {
    match c {
        Cond::And(a, b) => eval(a, rec) && eval(b, rec),
        Cond::Or(a, b) => eval(a, rec) || eval(b, rec),
        Cond::Like(f, p) => get(rec, f).as_str().is_some_and(|s| like(s, p)),
        Cond::In(f, vals) => vals
            .iter()
            .any(|l| cmp(get(rec, f), l) == Some(std::cmp::Ordering::Equal)),
        Cond::Cmp(f, op, l) => {
            let o = cmp(get(rec, f), l);
            use std::cmp::Ordering::*;
            match op.as_str() {
                "=" => o == Some(Equal),
                "!=" => o != Some(Equal),
                "<" => o == Some(Less),
                ">" => o == Some(Greater),
                "<=" => matches!(o, Some(Less | Equal)),
                ">=" => matches!(o, Some(Greater | Equal)),
                _ => false,
            }
        }
    }
}

/// Only the selected fields (and `attributes`), relationship fields nested.
fn project(rec: &Value, fields: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(a) = rec.get("attributes") {
        out.insert("attributes".into(), a.clone());
    }
    for f in fields {
        match f.split_once('.') {
            None => {
                out.insert(f.clone(), get(rec, f).clone());
            }
            Some((rel, inner)) => {
                let parent = rec.get(rel).cloned().unwrap_or(Value::Null);
                if parent.is_null() {
                    out.insert(rel.to_string(), Value::Null);
                    continue;
                }
                let entry = out
                    .entry(rel.to_string())
                    .or_insert_with(|| serde_json::json!({"attributes": parent.get("attributes")}));
                if let Some(o) = entry.as_object_mut() {
                    o.insert(inner.to_string(), get(&parent, inner).clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// The records of `q.object` among `records` that the query selects, in its order.
pub fn run(q: &Query, records: &[Value]) -> Vec<Value> {
    let mut hits: Vec<&Value> = records
        .iter()
        .filter(|r| q.cond.as_ref().is_none_or(|c| eval(c, r)))
        .collect();
    if let Some((f, asc)) = &q.order {
        hits.sort_by(|a, b| {
            let (x, y) = (get(a, f), get(b, f));
            let o = match (x, y) {
                (Value::Number(x), Value::Number(y)) => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
                (Value::String(x), Value::String(y)) => x.cmp(y),
                (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
                // Nulls last either way.
                (Value::Null, _) => return std::cmp::Ordering::Greater,
                (_, Value::Null) => return std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Equal,
            };
            if *asc { o } else { o.reverse() }
        });
    }
    hits.into_iter()
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|r| project(r, &q.fields))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_connectors_queries_select_what_they_say() {
        let recs = vec![
            json!({"Id": "1", "Name": "O'Brien 50%_off", "IsClosed": false, "Amount": 10.0, "Account": {"Name": "Acme"}}),
            json!({"Id": "2", "Name": "Other", "IsClosed": true, "Amount": 30.0, "Account": null}),
            json!({"Id": "3", "Name": "Third", "IsClosed": false, "Amount": 20.0, "Account": {"Name": "Initech"}}),
        ];
        let q = parse(
            "SELECT Id, Account.Name FROM Opportunity WHERE IsClosed = false ORDER BY Amount DESC",
        )
        .unwrap();
        let ids: Vec<_> = run(&q, &recs).iter().map(|r| r["Id"].clone()).collect();
        assert_eq!(ids, vec![json!("3"), json!("1")]);
        assert_eq!(run(&q, &recs)[0]["Account"]["Name"], json!("Initech"));
        let q = parse(r"SELECT Id FROM Opportunity WHERE Name LIKE '%o\'brien 50\%\_off%' OR Account.Name LIKE 'init%'").unwrap();
        assert_eq!(run(&q, &recs).len(), 2);
        let q = parse(r"SELECT Id FROM Opportunity WHERE Name LIKE '%50\%x%'").unwrap();
        assert!(run(&q, &recs).is_empty(), "an escaped % is a literal");
        let q = parse("SELECT Id FROM Opportunity WHERE Id IN ('2', '3') AND (Amount > 25 OR Amount < 21) LIMIT 1").unwrap();
        assert_eq!(run(&q, &recs).len(), 1);
        assert!(parse("SELECT Id FROM Opportunity WHERE Name = 'x").is_err());
        assert!(parse("DELETE FROM Opportunity").is_err());
        let deep = format!(
            "SELECT Id FROM Opportunity WHERE {}Id = '1'{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
    }
}
