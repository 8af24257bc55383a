//! Unit tests of doctor's pure helpers: the tenant URL it reaches and a redacted store URL.

use super::{redacted, tenant_base};

#[test]
fn a_bare_domain_is_https() {
    assert_eq!(tenant_base("t.eu.auth0.com/"), "https://t.eu.auth0.com");
    assert_eq!(tenant_base("http://127.0.0.1:9"), "http://127.0.0.1:9");
}

#[test]
fn a_password_in_a_url_is_not_shown() {
    assert_eq!(
        redacted("redis://:hunter2@db.example:6379"),
        "redis://:***@db.example:6379"
    );
    assert_eq!(redacted("redis://127.0.0.1:1"), "redis://127.0.0.1:1");
}
