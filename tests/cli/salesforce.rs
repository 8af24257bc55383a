//! `[crm] provider = "salesforce"` from the command line: its configuration errors, the
//! pipeline `status` shows from the org, the sandbox's Salesforce controls, and an
//! import that refuses to fork a copy of a CRM that lives elsewhere.

use super::*;

#[test]
fn salesforce_settings_are_checked_and_located() {
    let e = Env::new();
    let cases: [(&str, &str, &str); 4] = [
        (
            "[crm]\nprovider = \"salesforse\"\n",
            "config.toml:2",
            "did you mean \"salesforce\"?",
        ),
        (
            "[crm]\nprovider = \"salesforce\"\n\n[crm.salesforce.stages]\n\"Discovery\" = \"qualifed\"\n",
            "config.toml:5",
            "\"qualifed\" is not a dealflow stage",
        ),
        (
            "[crm.salesforce]\nexternal_id_field = \"Dealflow_Id\"\n",
            "config.toml:2",
            "ends in __c",
        ),
        (
            "[crm.salesforce]\nlogin_url = \"http://login.example.com\"\n",
            "config.toml:2",
            "clear text",
        ),
    ];
    for (text, at, says) in cases {
        e.write_config(text);
        let (_, err, _) = out(&e.cmd().args(["config", "check"]).assert().failure());
        assert!(err.contains(at), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    e.write_config("[crm.salesforce]\nlogn_url = \"https://test.salesforce.com\"\n");
    let (_, err, _) = out(&e.cmd().args(["config", "check"]).assert().failure());
    assert!(
        err.contains("unknown key `crm.salesforce.logn_url`") && err.contains("login_url"),
        "{err}"
    );
    // A good one: doctor says where the deals live and how the org is found.
    e.write_config(
        "[crm]\nprovider = \"salesforce\"\n[crm.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n[crm.salesforce.stages]\n\"Discovery\" = \"qualified\"\n",
    );
    let o = e.cmd().arg("doctor").assert().get_output().stdout.clone();
    let o = String::from_utf8_lossy(&o);
    assert!(
        o.contains("ok    crm       Salesforce through Token Vault's salesforce connection; instance https://acme.my.salesforce.com; creates keyed by Dealflow_Action_Id__c; 1 stage name(s) of your own"),
        "{o}"
    );
}

#[test]
fn with_salesforce_the_cli_shows_the_org_and_a_change_made_there() {
    let e = Env::new();
    let cfg = e.write_config("[crm]\nprovider = \"salesforce\"\n");
    let served = Served::start(&e);
    let (o, _, _) = out(&e.sandbox(&["status"]).success());
    assert!(o.contains("Salesforce: 6 open opportunities read"), "{o}");
    let stark = o
        .lines()
        .find(|l| l.contains("Stark Industries enterprise"))
        .unwrap_or_else(|| panic!("{o}"));
    let id = stark.split_whitespace().next().unwrap().to_string();
    assert!(id.starts_with("006SB"), "{stark}");
    assert!(
        !o.contains("deal-acme"),
        "no local demo deals beside the org's: {o}"
    );

    let (o, _, _) = out(&e.sandbox(&["sandbox", "salesforce"]).success());
    assert!(o.contains(&id) && o.contains("Proposal/Price Quote"), "{o}");
    // Someone moves it on in Salesforce: the next read shows it.
    let (o, _, _) = out(&e
        .sandbox(&[
            "sandbox",
            "salesforce",
            &id,
            "--stage",
            "Negotiation/Review",
        ])
        .success());
    assert!(o.contains("Negotiation/Review"), "{o}");
    let (o, _, _) = out(&e.sandbox(&["status"]).success());
    assert!(o.contains("(1 changed since the last read)"), "{o}");
    assert!(
        o.lines()
            .any(|l| l.starts_with(&format!("  {id}")) && l.ends_with("negotiation")),
        "{o}"
    );
    let (_, err, _) = out(&e
        .sandbox(&["sandbox", "salesforce", &id, "--stage", "Won-ish"])
        .failure());
    assert!(
        err.contains("restricted picklist") && err.contains("Closed Won"),
        "{err}"
    );

    // An import would fork a private copy of the CRM: refused, naming the setting.
    let csv = e.dir.path().join("deals.csv");
    std::fs::write(&csv, "name,account,amount\nWayne,Wayne,100\n").unwrap();
    let (_, err, _) = out(&e
        .sandbox(&["import", "deals", csv.to_str().unwrap()])
        .failure());
    assert!(
        err.contains("live in Salesforce") && err.contains(&cfg.display().to_string()),
        "{err}"
    );
    drop(served);
}

#[test]
fn the_world_script_does_not_fork_the_orgs_deals() {
    let e = Env::new();
    e.write_config("[crm]\nprovider = \"salesforce\"\n");
    let (_, err, _) = out(&e.sandbox(&["sandbox", "advance", "2d"]).failure());
    assert!(err.contains("change the org instead"), "{err}");
    assert!(
        !e.db().exists() || {
            let s = dealflow::store::SqliteStore::open(&e.db()).unwrap();
            use dealflow::store::Store;
            s.list_deals().unwrap().iter().all(|d| d.crm.is_some())
        }
    );
}

#[test]
fn a_closed_salesforce_stage_cannot_mean_an_open_one() {
    let e = Env::new();
    e.write_config("[crm.salesforce.stages]\n\"Closed Won\" = \"negotiation\"\n");
    let (_, err, _) = out(&e.cmd().args(["config", "check"]).assert().failure());
    assert!(
        err.contains("config.toml:2") && err.contains("a closed stage cannot mean"),
        "{err}"
    );
}
