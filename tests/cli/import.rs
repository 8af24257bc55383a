//! `dealflow import deals|contacts`: the real binary into the sandbox's real SQLite file.

use super::{Env, out};
use dealflow::core::domain::{Deal, Stage};
use dealflow::store::{SqliteStore, Store};

const DEALS: &str = "\
Opportunity ID,Opportunity Name,Account Name,Amount,Stage,Opportunity Owner,Last Activity,Description
006A1,Wayne retrofit,\"Wayne Enterprises, Inc.\",\"$90,000.00\",Negotiation/Review,dana,2025-03-01,\"two lines
of notes\"
006A2,Cyberdyne pilot,Cyberdyne,4000,Prospecting,lee,2025-02-01T10:00:00Z,
006A3,Tyrell expansion,Tyrell,\"1,250.5\",Proposal/Price Quote,dana,2025-01-15T09:30:00+01:00,
";

impl Env {
    fn file(&self, name: &str, body: impl AsRef<[u8]>) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }
    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.db()).unwrap()
    }
    /// The deals the import wrote (the sandbox's demo deals have hand-made ids).
    fn imported(&self) -> Vec<Deal> {
        let mut d: Vec<Deal> = self
            .store()
            .list_deals()
            .unwrap()
            .into_iter()
            .filter(|d| d.id.len() == 17)
            .collect();
        d.sort_by(|a, b| a.name.cmp(&b.name));
        d
    }
    fn audit(&self) -> Vec<serde_json::Value> {
        let (o, _, _) = out(&self.sandbox(&["audit", "export"]).success());
        o.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| e["event"] == "store.imported")
            .collect()
    }
}

#[test]
fn deals_import_show_in_status_and_a_reimport_changes_nothing() {
    let e = Env::new();
    let f = e.file("deals.csv", DEALS);
    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f]).success());
    assert!(
        o.starts_with("imported 3 deals: 3 new, 0 changed, 0 unchanged, 0 invalid in "),
        "{o}"
    );
    let (o, _, _) = out(&e.sandbox(&["status"]).success());
    assert!(o.contains("Wayne retrofit") && o.contains("$90,000"), "{o}");
    let d = e.imported();
    assert_eq!(d.len(), 3);
    let (cyber, tyrell, wayne) = (&d[0], &d[1], &d[2]);
    assert_eq!(wayne.account, "Wayne Enterprises, Inc.");
    assert_eq!(wayne.amount_cents, 9_000_000);
    assert_eq!(wayne.stage, Stage::Negotiation);
    assert_eq!(wayne.notes, "two lines\nof notes");
    assert_eq!(wayne.last_touch, 1_740_787_200_000);
    assert_eq!(cyber.last_touch, 1_738_404_000_000);
    assert_eq!(
        (tyrell.amount_cents, tyrell.stage),
        (125_050, Stage::Proposal)
    );
    assert_eq!(tyrell.last_touch, 1_736_929_800_000);

    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f]).success());
    assert!(
        o.contains("imported 3 deals: 0 new, 0 changed, 3 unchanged"),
        "{o}"
    );
    assert_eq!(e.imported(), d);

    // A changed amount updates that deal and only it, under the same id.
    let f2 = e.file("deals2.csv", DEALS.replace("\"$90,000.00\"", "95000"));
    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f2]).success());
    assert!(o.contains("0 new, 1 changed, 2 unchanged"), "{o}");
    let after = e.imported();
    assert_eq!(after[2].id, wayne.id);
    assert_eq!(after[2].amount_cents, 9_500_000);
    assert_eq!(after[..2], d[..2]);

    // No external id: the key is the name and account, case and punctuation aside, and
    // an empty cell keeps what is stored.
    let f3 = e.file(
        "named.csv",
        "Deal,Company,Value\nWAYNE retrofit,wayne enterprises inc,\nHooli team plan,Hooli,9500\n",
    );
    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f3]).success());
    // The Wayne deal is found by its name and account (its name now as written here),
    // the demo's Hooli deal too, unchanged.
    assert!(o.contains("0 new, 1 changed, 1 unchanged"), "{o}");
    let after = e.imported();
    assert_eq!(after.len(), 3);
    let w = after.iter().find(|d| d.id == wayne.id).unwrap();
    assert_eq!(
        (w.name.as_str(), w.amount_cents),
        ("WAYNE retrofit", 9_500_000)
    );
}

#[test]
fn contacts_key_by_email_and_read_stdin() {
    let e = Env::new();
    let csv = "First Name,Last Name,E-mail,Company,Job Title\n\
               Bruce,Wayne,bruce@wayne.example,Wayne Enterprises,CEO\n\
               Bill,Lumbergh,BILL@initech.example,Initech,VP\n";
    let (o, _, _) = out(&e
        .cmd()
        .args(["--sandbox", "import", "contacts", "-"])
        .write_stdin(csv)
        .assert()
        .success());
    // Bill is the demo's contact (by email, whatever its case): changed, not doubled.
    assert!(
        o.contains("imported 2 contacts: 1 new, 1 changed, 0 unchanged"),
        "{o}"
    );
    let contacts = e.store().list_contacts().unwrap();
    let bills: Vec<_> = contacts
        .iter()
        .filter(|c| c.email.eq_ignore_ascii_case("bill@initech.example"))
        .collect();
    assert_eq!(bills.len(), 1, "{contacts:?}");
    assert_eq!(bills[0].title, "VP");
    let bruce = contacts.iter().find(|c| c.name == "Bruce Wayne").unwrap();
    assert_eq!(bruce.account, "Wayne Enterprises");
    let (o, _, _) = out(&e
        .cmd()
        .args(["--sandbox", "import", "contacts", "-"])
        .write_stdin(csv)
        .assert()
        .success());
    assert!(o.contains("0 new, 0 changed, 2 unchanged"), "{o}");
    assert_eq!(e.audit()[1]["detail"]["file"], "<stdin>");
}

#[test]
fn a_dry_run_shows_mapping_rows_and_counts_and_writes_nothing() {
    let e = Env::new();
    e.sandbox(&["status"]).success();
    let before = e.store().list_deals().unwrap();
    let f = e.file(
        "deals.csv",
        format!("{DEALS}006A4,Soylent,Soylent,-3,Prospecting,x,,\n"),
    );
    let (o, err, code) = out(&e.sandbox(&["import", "deals", &f, "--dry-run"]).failure());
    assert_eq!(code, Some(1), "the import would fail: {err}");
    assert!(o.contains("name        ← \"Opportunity Name\""), "{o}");
    assert!(o.contains("last_touch  ← \"Last Activity\""), "{o}");
    assert!(o.contains("first 3 rows as they would be stored"), "{o}");
    assert!(
        o.contains("      2 new       Wayne retrofit") && o.contains("$90,000"),
        "{o}"
    );
    assert!(
        o.contains(" deal-") && o.contains("· last touch 2025-03-01 · owner dana"),
        "{o}"
    );
    // A rep on SSH at 80 columns reads the preview without wrapping.
    assert!(
        o.lines()
            .filter(|l| l.starts_with("  "))
            .all(|l| l.chars().count() <= 80),
        "{o}"
    );
    assert!(
        o.contains("would import 3 deals: 3 new, 0 changed, 0 unchanged, 1 invalid"),
        "{o}"
    );
    assert!(err.contains("deals.csv:6: column \"Amount\""), "{err}");
    assert_eq!(e.store().list_deals().unwrap(), before);
    assert!(e.audit().is_empty());
    // With --skip-invalid the same preview would succeed.
    e.sandbox(&["import", "deals", &f, "--dry-run", "--skip-invalid"])
        .success();
    assert_eq!(e.store().list_deals().unwrap(), before);
}

#[test]
fn invalid_rows_name_file_line_column_and_value_and_import_nothing() {
    let e = Env::new();
    e.sandbox(&["status"]).success();
    let before = e.store().list_deals().unwrap();
    let mut csv = String::from(DEALS);
    csv.push_str("006B1,Bad amount,X,12abc,Prospecting,x,2025-01-01,\n");
    csv.push_str("006B2,Bad stage,X,1,Maybe Later,x,2025-01-01,\n");
    csv.push_str("006B3,Bad date,X,1,Prospecting,x,01/02/2025,\n");
    csv.push_str(",,X,1,Prospecting,x,2025-01-01,\n");
    csv.push_str("006A1,Wayne again,X,1,Prospecting,x,2025-01-01,\n");
    for i in 0..20 {
        csv.push_str(&format!("006C{i},Neg {i},X,-{i},Prospecting,x,,\n"));
    }
    let f = e.file("deals.csv", csv);
    let (o, err, code) = out(&e.sandbox(&["import", "deals", &f]).failure());
    assert_eq!(code, Some(1));
    assert!(o.is_empty(), "{o}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("{f}:6: column \"Amount\": \"12abc\": not an amount (e.g. 12500, $12,500.00)")
    );
    assert!(lines[1].starts_with(&format!(
        "{f}:7: column \"Stage\": \"Maybe Later\": not a stage"
    )));
    assert!(lines[2].starts_with(&format!(
        "{f}:8: column \"Last Activity\": \"01/02/2025\": not a date"
    )));
    assert_eq!(
        lines[3],
        format!("{f}:9: column \"Opportunity Name\": \"\": the deal's name is empty")
    );
    assert_eq!(
        lines[4],
        format!("{f}:10: column \"Opportunity ID\": \"006A1\": the same deal as line 2")
    );
    assert_eq!(lines[20], "and 5 more invalid rows");
    assert!(
        lines[21].starts_with("nothing imported: 25 invalid row(s)"),
        "{err}"
    );
    assert_eq!(e.store().list_deals().unwrap(), before);
    assert!(e.audit().is_empty());
}

#[test]
fn skip_invalid_imports_the_valid_rows_and_lists_the_others() {
    let e = Env::new();
    let f = e.file(
        "deals.csv",
        format!("{DEALS}006A4,Soylent,Soylent,lots,Prospecting,x,,\n"),
    );
    let (o, err, _) = out(&e
        .sandbox(&["import", "deals", &f, "--skip-invalid"])
        .success());
    assert!(
        o.contains("imported 3 deals: 3 new, 0 changed, 0 unchanged, 1 invalid"),
        "{o}"
    );
    assert!(
        err.contains("deals.csv:6: column \"Amount\": \"lots\""),
        "{err}"
    );
    assert_eq!(e.imported().len(), 3);
    let audit = e.audit();
    assert_eq!(audit[0]["detail"]["invalid"], 1);
    assert_eq!(audit[0]["detail"]["skip_invalid"], true);
}

#[test]
fn map_names_the_column_for_a_field_and_unknown_fields_are_refused() {
    let e = Env::new();
    let f = e.file(
        "odd.csv",
        "Deal,Client,Worth,Phase\nWayne retrofit,Wayne,\"$1,000\",won\n",
    );
    // "Client" and "Worth" are not headers dealflow knows: without --map, no account
    // and no amount.
    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f, "--dry-run"]).success());
    assert!(o.contains("account       (no column"), "{o}");
    let (o, _, _) = out(&e
        .sandbox(&[
            "import",
            "deals",
            &f,
            "--map",
            "account=client",
            "--map",
            "amount=Worth",
            "--map",
            "stage=Phase",
        ])
        .success());
    assert!(o.contains("1 new"), "{o}");
    let d = &e.imported()[0];
    assert_eq!(
        (d.account.as_str(), d.amount_cents, d.stage),
        ("Wayne", 100_000, Stage::ClosedWon)
    );
    assert_eq!(e.audit()[0]["detail"]["mapping"]["amount"], "Worth");

    let (_, err, _) = out(&e
        .sandbox(&["import", "deals", &f, "--map", "size=Worth"])
        .failure());
    assert!(
        err.contains("no field \"size\"")
            && err.contains("id, name, account, amount, stage, owner, last_touch, notes"),
        "{err}"
    );
    let (_, err, _) = out(&e
        .sandbox(&["import", "deals", &f, "--map", "amount=Price"])
        .failure());
    assert!(
        err.contains("no column \"Price\"") && err.contains("\"Worth\""),
        "{err}"
    );
    let (_, err, _) = out(&e.sandbox(&["import", "contacts", &f]).failure());
    assert!(err.contains("no column for email"), "{err}");
}

#[test]
fn ten_thousand_rows_import_in_one_go() {
    let e = Env::new();
    let mut csv = String::from("Deal,Company,Amount,Stage,Owner,Close Date\n");
    for i in 0..10_000 {
        csv.push_str(&format!(
            "Deal {i},Account {},\"${},{:03}.{:02}\",Qualification,rep{},2025-{:02}-{:02}\n",
            i % 300,
            1 + i / 1000,
            i % 1000,
            i % 100,
            i % 5,
            1 + i % 12,
            1 + i % 28
        ));
    }
    let f = e.file("big.csv", csv);
    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f]).success());
    assert!(
        o.starts_with("imported 10000 deals: 10000 new, 0 changed, 0 unchanged, 0 invalid in "),
        "{o}"
    );
    let deals = e.imported();
    assert_eq!(deals.len(), 10_000);
    let d = deals.iter().find(|d| d.name == "Deal 1234").unwrap();
    assert_eq!(d.amount_cents, 223_434);
    let (o, _, _) = out(&e.sandbox(&["import", "deals", &f]).success());
    assert!(o.contains("0 new, 0 changed, 10000 unchanged"), "{o}");
}

#[test]
fn every_import_is_audited_with_the_signed_in_actor_never_user() {
    let e = Env::new();
    let f = e.file("deals.csv", DEALS);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(DEALS.as_bytes()))
    };
    for _ in 0..2 {
        e.cmd()
            .env("USER", "mallory")
            .env("LOGNAME", "mallory")
            .args(["--sandbox", "import", "deals", &f])
            .assert()
            .success();
    }
    let audit = e.audit();
    assert_eq!(audit.len(), 2, "one entry per import");
    let a = &audit[1];
    assert_eq!(a["actor"], "user:auth0|demo-user");
    assert_eq!(a["surface"], "cli");
    assert!(!a.to_string().contains("mallory"), "{a}");
    let d = &a["detail"];
    assert_eq!(d["file"], f.as_str());
    assert_eq!(d["sha256"], sha.as_str());
    assert_eq!(d["kind"], "deals");
    assert_eq!(
        (
            &d["rows"],
            &d["new"],
            &d["changed"],
            &d["unchanged"],
            &d["invalid"]
        ),
        (&3.into(), &0.into(), &0.into(), &3.into(), &0.into())
    );
    assert_eq!(audit[0]["detail"]["new"], 3);
    let (o, _, _) = out(&e.sandbox(&["audit", "verify"]).success());
    assert!(o.contains("audit chain OK"), "{o}");
}

#[test]
fn a_hostile_csv_is_text_escaped_bounded_and_located() {
    let e = Env::new();
    // Formula-looking cells are text: stored as written, never evaluated; in an amount
    // they are not a number.
    let f = e.file(
        "formula.csv",
        "name,account,amount\n\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",@SUM(A1),5\nOk,Acme,=1+1\n",
    );
    let (_, err, _) = out(&e
        .sandbox(&["import", "deals", &f, "--skip-invalid"])
        .success());
    assert!(
        err.contains(":3: column \"amount\": \"=1+1\": not an amount"),
        "{err}"
    );
    let d = &e.imported()[0];
    assert_eq!(d.name, "=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(d.account, "@SUM(A1)");

    // An escape sequence in a name never reaches the terminal raw: not in the preview,
    // not in the error, and the row is refused.
    let f = e.file(
        "esc.csv",
        "name,account,amount\n\"Wayne\u{1b}[2J\u{1b}[31mAPPROVED\",Wayne,5\nTyrell,\"Ty\u{9b}rell\",1\n",
    );
    let (o, err, _) = out(&e.sandbox(&["import", "deals", &f, "--dry-run"]).failure());
    for s in [&o, &err] {
        assert!(!s.contains('\u{1b}') && !s.contains('\u{9b}'), "{s:?}");
    }
    assert!(
        err.contains("\"Wayne\\e[2J\\e[31mAPPROVED\": a control character (U+001B)"),
        "{err}"
    );
    assert!(
        err.contains(":3: column \"account\": \"Ty\\u{9b}rell\""),
        "{err}"
    );

    // A 10 MB field: a clear error on its line, no panic, nothing written.
    let mut big = b"name,account,notes\nBig,Acme,".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big.extend(b"\nSmall,Acme,fine\n");
    let f = e.file("big.csv", big);
    let before = e.imported();
    let (_, err, code) = out(&e.sandbox(&["import", "deals", &f]).failure());
    assert_eq!(code, Some(1));
    assert!(
        err.contains(":2: column \"notes\": \"xxxx")
            && err.contains("a cell of 10485760 bytes (at most 65536)"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 2_000, "the value is shortened");
    assert_eq!(e.imported(), before);

    // Invalid UTF-8: the row's line and column.
    let f = e.file(
        "latin1.csv",
        b"name,account\nCaf\xe9 deal,Acme\n".as_slice(),
    );
    let (_, err, _) = out(&e.sandbox(&["import", "deals", &f]).failure());
    assert!(
        err.contains(
            "latin1.csv:2: column \"name\": \"Caf\u{fffd} deal\": not UTF-8 (at byte 3 of the cell)"
        ),
        "{err}"
    );
    let f = e.file("header.csv", b"na\xffme,account\nx,y\n".as_slice());
    let (_, err, _) = out(&e.sandbox(&["import", "deals", &f]).failure());
    assert!(
        err.contains("header.csv:1: column 1 of the header is not UTF-8"),
        "{err}"
    );
    let f = e.file("empty.csv", "");
    let (_, err, _) = out(&e.sandbox(&["import", "deals", &f]).failure());
    assert!(err.contains("empty.csv: empty"), "{err}");
}
