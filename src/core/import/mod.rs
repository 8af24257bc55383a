//! CSV import, the pure half: header mapping, cell parsing, and deciding for each row
//! the record it becomes and whether that is new, changed or unchanged against what the
//! store holds. The CLI reads the bytes, drives this row by row and writes the result;
//! nothing here reads a file or a clock.
//!
//! Re-importing a file changes nothing: a deal's id comes from the file's external id
//! column, else from its folded (name, account); a contact's from its email. A cell left
//! empty (or a column the file lacks) keeps what the store has.

pub mod mapping;
pub mod values;

pub use mapping::{Mapping, parse_override};

use crate::core::domain::{Contact, Deal, Millis, Stage};
use crate::core::text::{control_in_block, control_in_line, line};
use std::collections::HashMap;

/// The largest cell accepted: notes are a few paragraphs, not a document.
pub const MAX_CELL: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Deals,
    Contacts,
}

impl Kind {
    /// "deal" / "deals" by count.
    pub fn noun(self, n: usize) -> &'static str {
        match (self, n == 1) {
            (Kind::Deals, true) => "deal",
            (Kind::Deals, false) => "deals",
            (Kind::Contacts, true) => "contact",
            (Kind::Contacts, false) => "contacts",
        }
    }
}

/// A row as it will be stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Deal(Deal),
    Contact(Contact),
}

impl Record {
    pub fn id(&self) -> &str {
        match self {
            Record::Deal(d) => &d.id,
            Record::Contact(c) => &c.id,
        }
    }
}

/// What importing a row does to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    Changed,
    Unchanged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
        }
    }
}

/// Why a row cannot be imported: where (line, column) and what (the value, shown escaped
/// and shortened, and the problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub value: String,
    pub problem: String,
}

impl RowError {
    pub fn new(line: u64, column: &str, value: &str, problem: impl Into<String>) -> RowError {
        RowError {
            line,
            column: column.to_string(),
            value: shown(value),
            problem: problem.into(),
        }
    }
}

/// `LINE: column "Amount": "-5": a negative amount` (the file name goes in front).
impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: column {:?}: {}: {}",
            self.line,
            line(&self.column),
            self.value,
            self.problem
        )
    }
}

/// A value for a message: control characters escaped, at most 60 characters.
fn shown(v: &str) -> String {
    let escaped = line(v);
    let mut out: String = escaped.chars().take(60).collect();
    if escaped.chars().nth(60).is_some() {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Decides row after row against the store's records as they were read once.
pub struct Importer {
    mapping: Mapping,
    now: Millis,
    deals: HashMap<String, Deal>,
    /// Folded (name, account) → id, so a file without ids finds deals made elsewhere.
    deal_names: HashMap<(String, String), String>,
    /// Lowercased email → contact.
    contacts: HashMap<String, Contact>,
    /// Record id → the line that first named it in this file.
    seen: HashMap<String, u64>,
}

impl Importer {
    /// `now` stamps `last_touch` on a new deal whose row has none.
    pub fn new(mapping: Mapping, now: Millis, deals: Vec<Deal>, contacts: Vec<Contact>) -> Self {
        let deal_names = deals
            .iter()
            .map(|d| {
                (
                    (values::fold(&d.name), values::fold(&d.account)),
                    d.id.clone(),
                )
            })
            .collect();
        Importer {
            mapping,
            now,
            deals: deals.into_iter().map(|d| (d.id.clone(), d)).collect(),
            deal_names,
            contacts: contacts
                .into_iter()
                .map(|c| (c.email.trim().to_lowercase(), c))
                .collect(),
            seen: HashMap::new(),
        }
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The record row `line` (its cells, in file order) becomes, and what that does.
    pub fn row(&mut self, line: u64, cells: &[&str]) -> Result<(Record, Status), RowError> {
        let m = &self.mapping;
        if cells.len() != m.headers.len() {
            let last = cells.last().copied().unwrap_or("");
            return Err(RowError::new(
                line,
                m.header(cells.len().saturating_sub(1)),
                last,
                format!(
                    "{} fields where the header has {}",
                    cells.len(),
                    m.headers.len()
                ),
            ));
        }
        if let Some((c, cell)) = cells.iter().enumerate().find(|(_, c)| c.len() > MAX_CELL) {
            return Err(RowError::new(
                line,
                m.header(c),
                cell,
                format!("a cell of {} bytes (at most {MAX_CELL})", cell.len()),
            ));
        }
        let (record, key_col) = match m.kind {
            Kind::Deals => self.deal(line, cells)?,
            Kind::Contacts => self.contact(line, cells)?,
        };
        if let Some(first) = self.seen.get(record.id()) {
            let c = key_col.unwrap_or(0);
            return Err(RowError::new(
                line,
                m.header(c),
                cells.get(c).copied().unwrap_or(""),
                format!("the same {} as line {first}", m.kind.noun(1)),
            ));
        }
        self.seen.insert(record.id().to_string(), line);
        let status = match &record {
            Record::Deal(d) => status(self.deals.get(&d.id), d),
            Record::Contact(c) => status(self.contacts.get(&c.email.to_lowercase()), c),
        };
        Ok((record, status))
    }

    /// The trimmed cell for `field`: `Ok(None)` when no column fills it or it is empty.
    fn cell<'a>(
        &self,
        line: u64,
        cells: &[&'a str],
        field: &str,
        block: bool,
    ) -> Result<Option<&'a str>, RowError> {
        let Some(c) = self.mapping.col(field) else {
            return Ok(None);
        };
        let v = cells.get(c).copied().unwrap_or("").trim();
        let bad = if block {
            control_in_block(v)
        } else {
            control_in_line(v)
        };
        if let Some(ch) = bad {
            return Err(RowError::new(
                line,
                self.mapping.header(c),
                v,
                format!("a control character (U+{:04X}) in the text", ch as u32),
            ));
        }
        Ok(Some(v).filter(|v| !v.is_empty()))
    }

    /// The cell for `field` through `parse`, the error located at its column.
    fn parsed<T>(
        &self,
        line: u64,
        cells: &[&str],
        field: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, RowError> {
        let Some(v) = self.cell(line, cells, field, false)? else {
            return Ok(None);
        };
        parse(v).map(Some).map_err(|p| {
            let c = self.mapping.col(field).unwrap_or(0);
            RowError::new(line, self.mapping.header(c), v, p)
        })
    }

    fn required(&self, line: u64, field: &str, what: &str) -> RowError {
        let c = self.mapping.col(field).unwrap_or(0);
        RowError::new(line, self.mapping.header(c), "", format!("{what} is empty"))
    }

    fn deal(&self, line: u64, cells: &[&str]) -> Result<(Record, Option<usize>), RowError> {
        let name = self
            .cell(line, cells, "name", false)?
            .ok_or_else(|| self.required(line, "name", "the deal's name"))?;
        let account = self.cell(line, cells, "account", false)?;
        let external = self.cell(line, cells, "id", false)?;
        let amount = self.parsed(line, cells, "amount", values::amount)?;
        let stage = self.parsed(line, cells, "stage", values::stage)?;
        let owner = self.cell(line, cells, "owner", false)?;
        let last_touch = self.parsed(line, cells, "last_touch", values::date)?;
        let notes = self.cell(line, cells, "notes", true)?;
        let (id, key_col) = match external {
            Some(x) => (values::deal_id_external(x), self.mapping.col("id")),
            None => {
                let folded = (values::fold(name), values::fold(account.unwrap_or("")));
                let id = self
                    .deal_names
                    .get(&folded)
                    .cloned()
                    .unwrap_or_else(|| values::deal_id_named(name, account.unwrap_or("")));
                (id, self.mapping.col("name"))
            }
        };
        let old = self.deals.get(&id);
        let keep = |new: Option<&str>, old: Option<&String>| {
            new.map(str::to_string)
                .or_else(|| old.cloned())
                .unwrap_or_default()
        };
        let deal = Deal {
            name: name.to_string(),
            account: keep(account, old.map(|d| &d.account)),
            amount_cents: amount.or(old.map(|d| d.amount_cents)).unwrap_or(0),
            stage: stage.or(old.map(|d| d.stage)).unwrap_or(Stage::Prospecting),
            owner: keep(owner, old.map(|d| &d.owner)),
            last_touch: last_touch.or(old.map(|d| d.last_touch)).unwrap_or(self.now),
            notes: keep(notes, old.map(|d| &d.notes)),
            // An imported deal is dealflow's own, whatever a mirror once said of it.
            crm: None,
            id,
        };
        Ok((Record::Deal(deal), key_col))
    }

    fn contact(&self, line: u64, cells: &[&str]) -> Result<(Record, Option<usize>), RowError> {
        let email = self
            .cell(line, cells, "email", false)?
            .ok_or_else(|| self.required(line, "email", "the email address"))?;
        if !values::email(email) {
            let c = self.mapping.col("email").unwrap_or(0);
            return Err(RowError::new(
                line,
                self.mapping.header(c),
                email,
                "not an email address",
            ));
        }
        let full = self.cell(line, cells, "name", false)?;
        let first = self.cell(line, cells, "first_name", false)?;
        let last = self.cell(line, cells, "last_name", false)?;
        let name = match (full, first, last) {
            (Some(n), _, _) => n.to_string(),
            (None, None, None) => {
                let field = ["name", "first_name", "last_name"]
                    .into_iter()
                    .find(|f| self.mapping.col(f).is_some())
                    .unwrap_or("name");
                return Err(self.required(line, field, "the contact's name"));
            }
            (None, f, l) => [f, l].into_iter().flatten().collect::<Vec<_>>().join(" "),
        };
        let account = self.cell(line, cells, "account", false)?;
        let title = self.cell(line, cells, "title", false)?;
        let old = self.contacts.get(&email.to_lowercase());
        let keep = |new: Option<&str>, old: Option<&String>| {
            new.map(str::to_string)
                .or_else(|| old.cloned())
                .unwrap_or_default()
        };
        let contact = Contact {
            id: old.map_or_else(|| values::contact_id(email), |c| c.id.clone()),
            name,
            email: email.to_string(),
            account: keep(account, old.map(|c| &c.account)),
            title: keep(title, old.map(|c| &c.title)),
        };
        Ok((Record::Contact(contact), self.mapping.col("email")))
    }
}

fn status<T: PartialEq>(old: Option<&T>, new: &T) -> Status {
    match old {
        None => Status::New,
        Some(o) if o == new => Status::Unchanged,
        Some(_) => Status::Changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn importer(kind: Kind, headers: &[&str], deals: Vec<Deal>) -> Importer {
        let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        let m = Mapping::detect(kind, &headers, &[]).unwrap();
        Importer::new(m, 5_000, deals, vec![])
    }

    #[test]
    fn a_row_becomes_a_deal_and_again_is_unchanged() {
        let h = ["Deal", "Company", "Amount", "Stage"];
        let mut i = importer(Kind::Deals, &h, vec![]);
        let (r, s) = i
            .row(2, &["Acme renewal", "Acme", "$1,200.50", "Closed Won"])
            .unwrap();
        assert_eq!(s, Status::New);
        let Record::Deal(d) = r else { panic!() };
        assert_eq!(
            (d.amount_cents, d.stage, d.last_touch),
            (120_050, Stage::ClosedWon, 5_000)
        );
        let mut again = importer(Kind::Deals, &h, vec![d.clone()]);
        let row = ["acme  RENEWAL", "ACME", "1200.50", "closed_won"];
        let (r, s) = again.row(2, &row).unwrap();
        assert_eq!(s, Status::Changed, "the name as written is stored");
        assert_eq!(r.id(), d.id);
        let mut changed = importer(Kind::Deals, &h, vec![d.clone()]);
        let (_, s) = changed
            .row(2, &["Acme renewal", "Acme", "1300", ""])
            .unwrap();
        assert_eq!(s, Status::Changed);
        let (_, s) = importer(Kind::Deals, &h, vec![d])
            .row(2, &["Acme renewal", "Acme", "", ""])
            .unwrap();
        assert_eq!(s, Status::Unchanged, "empty cells keep what is stored");
    }

    #[test]
    fn errors_name_line_column_and_value() {
        let mut i = importer(Kind::Deals, &["Name", "Account", "Amount"], vec![]);
        let e = i.row(7, &["X", "Y", "-5"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "7: column \"Amount\": \"-5\": a negative amount"
        );
        let e = i.row(8, &["X\u{1b}[2J", "Y", "5"]).unwrap_err();
        assert!(e.to_string().contains("\"X\\e[2J\"") && !e.to_string().contains('\u{1b}'));
        i.row(9, &["X", "Y", "5"]).unwrap();
        let e = i.row(10, &["x", "y", "6"]).unwrap_err();
        assert!(e.problem.contains("same deal as line 9"), "{e}");
        let e = i.row(11, &["X", "Y"]).unwrap_err();
        assert!(e.problem.contains("2 fields where the header has 3"), "{e}");
        let big = "a".repeat(MAX_CELL + 1);
        let e = i.row(12, &["X", "Y", &big]).unwrap_err();
        assert!(
            e.value.ends_with("…\"") && e.problem.contains("65537 bytes"),
            "{e}"
        );
    }

    #[test]
    fn contacts_key_by_email_and_join_first_and_last() {
        let mut i = importer(
            Kind::Contacts,
            &["First Name", "Last Name", "Email"],
            vec![],
        );
        let (r, _) = i
            .row(2, &["Bill", "Lumbergh", "Bill@Initech.example"])
            .unwrap();
        let Record::Contact(c) = r else { panic!() };
        assert_eq!(c.name, "Bill Lumbergh");
        assert_eq!(c.id, values::contact_id("bill@initech.example"));
        let e = i.row(3, &["B", "L", "bill@initech.example"]).unwrap_err();
        assert!(e.problem.contains("same contact as line 2"), "{e}");
        let e = i.row(4, &["B", "L", "nobody"]).unwrap_err();
        assert!(e.problem.contains("not an email"), "{e}");
    }
}
