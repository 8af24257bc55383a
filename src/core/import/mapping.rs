//! Which column feeds which field: common header names recognised case- and
//! punctuation-insensitively ("Opportunity Name", "Last Activity Date"), with the user's
//! `--map field=Header` taken first.

use super::Kind;
use super::values::fold;

/// A field a file can fill, and the header names that mean it, best first.
pub struct FieldSpec {
    pub name: &'static str,
    /// Folded (lowercase, letters and digits only).
    aliases: &'static [&'static str],
}

const fn f(name: &'static str, aliases: &'static [&'static str]) -> FieldSpec {
    FieldSpec { name, aliases }
}

const ACCOUNT: &[&str] = &[
    "account",
    "accountname",
    "company",
    "companyname",
    "organization",
    "organisation",
    "customer",
];

const DEAL_FIELDS: &[FieldSpec] = &[
    f(
        "id",
        &[
            "id",
            "externalid",
            "dealid",
            "opportunityid",
            "recordid",
            "crmid",
        ],
    ),
    f(
        "name",
        &["name", "dealname", "deal", "opportunityname", "opportunity"],
    ),
    f("account", ACCOUNT),
    f(
        "amount",
        &["amount", "dealamount", "value", "dealvalue", "amountusd"],
    ),
    f("stage", &["stage", "dealstage", "stagename"]),
    f(
        "owner",
        &["owner", "dealowner", "opportunityowner", "ownername", "rep"],
    ),
    f(
        "last_touch",
        &[
            "lasttouch",
            "lastactivity",
            "lastactivitydate",
            "lastcontacted",
            "closedate",
        ],
    ),
    f("notes", &["notes", "note", "description"]),
];

const CONTACT_FIELDS: &[FieldSpec] = &[
    f("name", &["name", "fullname", "contactname", "contact"]),
    f("first_name", &["firstname", "first", "givenname"]),
    f("last_name", &["lastname", "last", "surname", "familyname"]),
    f("email", &["email", "emailaddress", "workemail", "email1"]),
    f("account", ACCOUNT),
    f("title", &["title", "jobtitle", "position", "role"]),
];

impl Kind {
    /// The fields a file of this kind can fill.
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Kind::Deals => DEAL_FIELDS,
            Kind::Contacts => CONTACT_FIELDS,
        }
    }

    fn field_names(self) -> String {
        let names: Vec<&str> = self.fields().iter().map(|f| f.name).collect();
        names.join(", ")
    }
}

/// Field → column index, for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub kind: Kind,
    pub headers: Vec<String>,
    /// One entry per field of the kind, in the kind's order.
    cols: Vec<(&'static str, Option<usize>)>,
}

impl Mapping {
    /// Matches `headers` to fields: each `--map field=Header` first (`field=` leaves the
    /// field unfilled), then each remaining field takes the first unused header that one
    /// of its aliases names. Errors name the fields or headers there are.
    pub fn detect(
        kind: Kind,
        headers: &[String],
        overrides: &[(String, String)],
    ) -> Result<Mapping, String> {
        let specs = kind.fields();
        let mut cols: Vec<(&'static str, Option<usize>)> =
            specs.iter().map(|s| (s.name, None)).collect();
        let mut fixed = vec![false; specs.len()];
        let mut used = vec![false; headers.len()];
        for (field, header) in overrides {
            let Some(i) = specs.iter().position(|s| s.name == field.trim()) else {
                return Err(format!(
                    "--map: {} has no field {:?}; its fields are {}",
                    kind.noun(2),
                    field.trim(),
                    kind.field_names()
                ));
            };
            if fixed[i] {
                return Err(format!("--map: {} is mapped twice", specs[i].name));
            }
            fixed[i] = true;
            let header = header.trim();
            if header.is_empty() {
                continue;
            }
            let col = headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(header))
                .or_else(|| headers.iter().position(|h| fold(h) == fold(header)))
                .ok_or_else(|| {
                    format!(
                        "--map {}={header}: the file has no column {header:?}; its columns are {}",
                        specs[i].name,
                        quoted(headers)
                    )
                })?;
            if used[col] {
                return Err(format!(
                    "--map: column {:?} is mapped to two fields",
                    headers[col]
                ));
            }
            used[col] = true;
            cols[i].1 = Some(col);
        }
        let folded: Vec<String> = headers.iter().map(|h| fold(h)).collect();
        for (i, spec) in specs.iter().enumerate() {
            if fixed[i] {
                continue;
            }
            let found = spec
                .aliases
                .iter()
                .find_map(|alias| (0..headers.len()).find(|&c| !used[c] && folded[c] == *alias));
            if let Some(c) = found {
                used[c] = true;
                cols[i].1 = Some(c);
            }
        }
        let m = Mapping {
            kind,
            headers: headers.to_vec(),
            cols,
        };
        m.check_required()?;
        Ok(m)
    }

    fn check_required(&self) -> Result<(), String> {
        let missing = |what: &str, hint: &str| {
            Err(format!(
                "no column for {what} among {}; name it with --map {hint}",
                quoted(&self.headers)
            ))
        };
        match self.kind {
            Kind::Deals if self.col("name").is_none() => missing("the deal's name", "name=HEADER"),
            Kind::Contacts if self.col("email").is_none() => missing("email", "email=HEADER"),
            Kind::Contacts
                if self.col("name").is_none()
                    && self.col("first_name").is_none()
                    && self.col("last_name").is_none() =>
            {
                missing(
                    "the contact's name",
                    "name=HEADER (or first_name= and last_name=)",
                )
            }
            _ => Ok(()),
        }
    }

    /// The column that fills `field`, if any.
    pub fn col(&self, field: &str) -> Option<usize> {
        self.cols
            .iter()
            .find(|(f, _)| *f == field)
            .and_then(|(_, c)| *c)
    }

    /// (field, header) for every field, `None` where no column fills it.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> + '_ {
        self.cols
            .iter()
            .map(|(f, c)| (*f, c.map(|c| self.headers[c].as_str())))
    }

    /// The header of column `c` (for error messages).
    pub fn header(&self, c: usize) -> &str {
        self.headers.get(c).map_or("?", String::as_str)
    }
}

/// `--map field=Header` into its two halves.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    let (field, header) = s.split_once('=').ok_or_else(|| {
        format!("--map {s:?}: expected field=Header, e.g. --map amount=\"Deal Value\"")
    })?;
    Ok((field.trim().to_string(), header.trim().to_string()))
}

fn quoted(headers: &[String]) -> String {
    let q: Vec<String> = headers
        .iter()
        .map(|h| format!("{:?}", crate::core::text::line(h)))
        .collect();
    q.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn salesforce_headers_are_recognised() {
        let m = Mapping::detect(
            Kind::Deals,
            &h(&[
                "Opportunity ID",
                "Opportunity Name",
                "Account Name",
                "Amount",
                "Stage",
                "Opportunity Owner",
                "Close Date",
                "Last Activity",
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(m.col("id"), Some(0));
        assert_eq!(m.col("name"), Some(1));
        assert_eq!(m.col("account"), Some(2));
        assert_eq!(m.col("owner"), Some(5));
        // "Last Activity" beats "Close Date" for the last touch.
        assert_eq!(m.col("last_touch"), Some(7));
        assert_eq!(m.col("notes"), None);
    }

    #[test]
    fn overrides_come_first_and_errors_name_what_there_is() {
        let headers = h(&["Deal", "Company", "Deal Value", "Worth"]);
        let m = Mapping::detect(
            Kind::Deals,
            &headers,
            &[
                ("amount".into(), "worth".into()),
                ("account".into(), "".into()),
            ],
        )
        .unwrap();
        assert_eq!(m.col("amount"), Some(3));
        assert_eq!(m.col("account"), None);
        let e =
            Mapping::detect(Kind::Deals, &headers, &[("size".into(), "Worth".into())]).unwrap_err();
        assert!(
            e.contains("no field \"size\"") && e.contains("last_touch"),
            "{e}"
        );
        let e = Mapping::detect(Kind::Deals, &headers, &[("amount".into(), "Nope".into())])
            .unwrap_err();
        assert!(e.contains("\"Deal Value\""), "{e}");
        let e = Mapping::detect(Kind::Contacts, &headers, &[]).unwrap_err();
        assert!(e.contains("email"), "{e}");
        let c = Mapping::detect(
            Kind::Contacts,
            &h(&["First Name", "Last Name", "E-mail", "Job Title"]),
            &[],
        )
        .unwrap();
        assert_eq!(
            (c.col("first_name"), c.col("email"), c.col("title")),
            (Some(0), Some(2), Some(3))
        );
        assert!(parse_override("amount").is_err());
        assert_eq!(
            parse_override("amount = Deal Value"),
            Ok(("amount".into(), "Deal Value".into()))
        );
    }
}
