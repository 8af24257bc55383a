//! One test binary for the consent engine: its properties over the pure gate and over a
//! real store, the rule table, attacks on the real binary, trust features, fuzzing, the
//! purity of core and the layering of the modules. One binary instead of six: each links
//! tokio, reqwest, rusqlite and rmcp, and linking was most of a CI run (issue 17). Each
//! module is the file it was.

mod consent_attacks;
mod consent_props;
mod consent_table;
mod core_purity;
mod fuzz_props;
mod layering;
mod trust_props;
