//! Emulated Salesforce: the identity service's UserInfo (under `/salesforce`) and, on
//! the instance it names (`/salesforce/instance`), the REST API's query and
//! Opportunity endpoints dealflow uses, with the demo pipeline as Opportunities.
//!
//! It checks the bearer against what the emulated Token Vault issued for the
//! `salesforce` connection, answers in Salesforce's error arrays
//! (`[{"message","errorCode","fields"}]`), keeps `LastModifiedDate` on every write and
//! honours `If-Unmodified-Since`, upserts on the external-id field, validates the stage
//! picklist and amounts, and pages query results through `nextRecordsUrl`. Faults and
//! latency come from [`super::providers::ProviderData`] (endpoints `salesforce.userinfo`,
//! `salesforce.query`, `salesforce.get`, `salesforce.update`, `salesforce.upsert`), and
//! the org is kept on disk with the rest of the world.

#![allow(clippy::result_large_err)]

use super::state::SandboxState;
use crate::wall::now_ms;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The external-id field this org has (as the README asks a tenant admin to add).
pub const EXTERNAL_ID_FIELD: &str = "Dealflow_Action_Id__c";

pub use org::{Opportunity, Org, SfContact, datetime};
use org::{in_picklist, picklist, sf_id};

mod org;

fn sf_fail(status: u16, code: &str, message: &str, fields: &[&str]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!([{"message": message, "errorCode": code, "fields": fields}])),
    )
        .into_response()
}

/// The default body of an injected fault on a `salesforce.*` endpoint.
pub fn fault_body(status: u16) -> String {
    let (code, message) = match status {
        401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
        403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        404 => ("NOT_FOUND", "The requested resource does not exist"),
        400 => ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "injected fault"),
        412 => (
            "PRECONDITION_FAILED",
            "The requested entity has been modified.",
        ),
        _ => ("UNKNOWN_EXCEPTION", "injected fault"),
    };
    json!([{"message": message, "errorCode": code, "fields": []}]).to_string()
}

/// A live token of the salesforce connection with the `api` scope.
fn auth(st: &SandboxState, headers: &HeaderMap, scope: &str) -> Result<(), Response> {
    let invalid = || sf_fail(401, "INVALID_SESSION_ID", "Session expired or invalid", &[]);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(invalid)?;
    let grant = st.provider_grant(token).ok_or_else(invalid)?;
    if grant.connection != "salesforce" || grant.expires_at <= now_ms() {
        return Err(invalid());
    }
    if !grant.scopes.iter().any(|s| s == scope || s == "full") {
        return Err(if scope == "api" {
            sf_fail(
                403,
                "INVALID_SESSION_ID",
                "This session is not valid for use with the REST API",
                &[],
            )
        } else {
            (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "insufficient_scope", "error_description": format!("the token lacks the {scope} scope")})),
            )
                .into_response()
        });
    }
    Ok(())
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn lock_org(st: &SandboxState) -> std::sync::MutexGuard<'_, Org> {
    let mut g = st
        .providers
        .salesforce
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if !g.seeded {
        g.seed(now_ms());
    }
    g
}

pub fn router(state: Arc<SandboxState>) -> axum::Router {
    const DATA: &str = "/salesforce/instance/services/data/{version}";
    axum::Router::new()
        .route("/salesforce/services/oauth2/userinfo", get(userinfo))
        .route(&format!("{DATA}/query"), get(query))
        .route(&format!("{DATA}/query/{{locator}}"), get(query_more))
        .route(
            &format!("{DATA}/sobjects/Opportunity/{{id}}"),
            get(get_by_id).patch(update),
        )
        .route(
            &format!("{DATA}/sobjects/Opportunity/{{field}}/{{value}}"),
            get(get_by_external).patch(upsert),
        )
        .route("/sandbox/salesforce", get(org_summary))
        .route("/sandbox/salesforce/opportunities/{id}", post(edit_control))
        .with_state(state)
}

async fn userinfo(State(st): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    if let Some(r) = st.providers.enter("salesforce.userinfo").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "id") {
        return r;
    }
    let instance = format!("{}/salesforce/instance", origin(&headers));
    Json(json!({
        "sub": format!("{}/id/00DSB0000000001/005SB0000000001", origin(&headers)),
        "user_id": "005SB0000000001",
        "organization_id": "00DSB0000000001",
        "preferred_username": "dana@dealflow.example",
        "urls": {
            "rest": format!("{instance}/services/data/v{{version}}/"),
            "sobjects": format!("{instance}/services/data/v{{version}}/sobjects/"),
            "query": format!("{instance}/services/data/v{{version}}/query/"),
            "custom_domain": instance,
        },
    }))
    .into_response()
}

async fn query(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = st.providers.enter("salesforce.query").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "api") {
        return r;
    }
    let Some(soql) = q.get("q") else {
        return sf_fail(400, "MALFORMED_QUERY", "q is required", &[]);
    };
    let parsed = match super::soql::parse(soql) {
        Ok(p) => p,
        Err(e) => return sf_fail(400, "MALFORMED_QUERY", &e, &[]),
    };
    let Some(records) = lock_org(&st).records(&parsed.object) else {
        return sf_fail(
            400,
            "INVALID_TYPE",
            &format!("sObject type '{}' is not supported.", parsed.object),
            &[],
        );
    };
    let hits = super::soql::run(&parsed, &records);
    page(&st, &version, hits)
}

/// The first page of `hits`; the rest wait behind a `nextRecordsUrl` locator.
fn page(st: &SandboxState, version: &str, mut hits: Vec<Value>) -> Response {
    let size = st.providers.salesforce_page_size();
    let total = hits.len();
    let rest = if hits.len() > size {
        hits.split_off(size)
    } else {
        Vec::new()
    };
    let mut body = json!({"totalSize": total, "done": rest.is_empty(), "records": hits});
    if !rest.is_empty() {
        let locator = format!("01gSB{}-{}", now_ms(), total - rest.len());
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}"));
        st.providers
            .salesforce_cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(locator, (total, rest));
    }
    Json(body).into_response()
}

async fn query_more(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    if let Some(r) = st.providers.enter("salesforce.query").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "api") {
        return r;
    }
    let Some((total, rest)) = st
        .providers
        .salesforce_cursors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&locator)
    else {
        return sf_fail(400, "INVALID_QUERY_LOCATOR", "invalid query locator", &[]);
    };
    let r = page(&st, &version, rest);
    // The total is the query's, not the page's.
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    v["totalSize"] = json!(total);
    (parts, Json(v)).into_response()
}

async fn get_by_id(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = st.providers.enter("salesforce.get").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "api") {
        return r;
    }
    let org = lock_org(&st);
    match org.opportunities.get(&id) {
        Some(o) => Json(org.record(o)).into_response(),
        None => sf_fail(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        ),
    }
}

async fn get_by_external(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path((_, field, value)): Path<(String, String, String)>,
) -> Response {
    if let Some(r) = st.providers.enter("salesforce.get").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "api") {
        return r;
    }
    if field != EXTERNAL_ID_FIELD {
        return no_such_external_field(&field);
    }
    let org = lock_org(&st);
    match org
        .opportunities
        .values()
        .find(|o| o.external_id.as_deref() == Some(value.as_str()))
    {
        Some(o) => Json(org.record(o)).into_response(),
        None => sf_fail(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        ),
    }
}

async fn answer_delay(st: &SandboxState) {
    let ms = st
        .providers
        .salesforce_answer_delay_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

fn no_such_external_field(field: &str) -> Response {
    sf_fail(
        404,
        "NOT_FOUND",
        &format!("Provided external ID field does not exist or is not accessible: {field}"),
        &[],
    )
}

/// The fields a write may set, checked as Salesforce's validation would.
struct Fields {
    name: Option<String>,
    amount: Option<f64>,
    stage: Option<String>,
    close_date: Option<String>,
    account_id: Option<String>,
    description: Option<String>,
}

fn fields(body: &Value) -> Result<Fields, Response> {
    let Some(obj) = body.as_object() else {
        return Err(sf_fail(
            400,
            "JSON_PARSER_ERROR",
            "The request body is not a JSON object",
            &[],
        ));
    };
    for k in obj.keys() {
        if ![
            "Name",
            "Amount",
            "StageName",
            "CloseDate",
            "AccountId",
            "Description",
        ]
        .contains(&k.as_str())
        {
            return Err(sf_fail(
                400,
                "INVALID_FIELD",
                &format!("No such column '{k}' on sobject of type Opportunity"),
                &[],
            ));
        }
    }
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let f = Fields {
        name: s("Name"),
        amount: obj.get("Amount").and_then(Value::as_f64),
        stage: s("StageName"),
        close_date: s("CloseDate"),
        account_id: s("AccountId"),
        description: s("Description"),
    };
    if let Some(st) = &f.stage
        && !in_picklist(st)
    {
        return Err(sf_fail(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            &format!("Stage: bad value for restricted picklist field: {st}"),
            &["StageName"],
        ));
    }
    if f.amount.is_some_and(|a| a < 0.0) {
        return Err(sf_fail(
            400,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Amount must not be negative",
            &["Amount"],
        ));
    }
    if f.name.as_deref().is_some_and(|n| n.chars().count() > 120) {
        return Err(sf_fail(
            400,
            "STRING_TOO_LONG",
            "Name: data value too large",
            &["Name"],
        ));
    }
    Ok(f)
}

/// `If-Unmodified-Since` (second precision, as HTTP dates are).
fn modified_since(headers: &HeaderMap, last_modified_ms: i64) -> bool {
    let Some(v) = headers
        .get("if-unmodified-since")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match chrono::DateTime::parse_from_rfc2822(v) {
        Ok(d) => last_modified_ms / 1000 > d.timestamp(),
        Err(_) => false,
    }
}

async fn update(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = st.providers.enter("salesforce.update").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "api") {
        return r;
    }
    let f = match fields(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    {
        let mut org = lock_org(&st);
        let Some(o) = org.opportunities.get_mut(&id) else {
            return sf_fail(
                404,
                "NOT_FOUND",
                "The requested resource does not exist",
                &[],
            );
        };
        if modified_since(&headers, o.last_modified_ms) {
            return sf_fail(
                412,
                "PRECONDITION_FAILED",
                "The requested entity has been modified.",
                &[],
            );
        }
        if let Some(v) = f.name {
            o.name = v;
        }
        if let Some(v) = f.amount {
            o.amount = v;
        }
        if let Some(v) = f.stage {
            o.stage_name = v;
        }
        if let Some(v) = f.close_date {
            o.close_date = v;
        }
        if let Some(v) = f.account_id {
            o.account_id = Some(v);
        }
        if let Some(v) = f.description {
            o.description = v;
        }
        o.last_modified_ms = now_ms().max(o.last_modified_ms + 1);
    }
    st.providers.save();
    answer_delay(&st).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn upsert(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path((_, field, value)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = st.providers.enter("salesforce.upsert").await {
        return r;
    }
    if let Err(r) = auth(&st, &headers, "api") {
        return r;
    }
    if field != EXTERNAL_ID_FIELD {
        return no_such_external_field(&field);
    }
    let f = match fields(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (id, created) = {
        let mut org = lock_org(&st);
        let existing = org
            .opportunities
            .values()
            .find(|o| o.external_id.as_deref() == Some(value.as_str()))
            .map(|o| o.id.clone());
        match existing {
            Some(id) => {
                if let Some(o) = org.opportunities.get_mut(&id) {
                    if let Some(v) = f.name {
                        o.name = v;
                    }
                    if let Some(v) = f.amount {
                        o.amount = v;
                    }
                    if let Some(v) = f.stage {
                        o.stage_name = v;
                    }
                    o.last_modified_ms = now_ms().max(o.last_modified_ms + 1);
                }
                (id, false)
            }
            None => {
                let (Some(name), Some(stage), Some(close_date)) = (f.name, f.stage, f.close_date)
                else {
                    return sf_fail(
                        400,
                        "REQUIRED_FIELD_MISSING",
                        "Required fields are missing: [Name, StageName, CloseDate]",
                        &["Name", "StageName", "CloseDate"],
                    );
                };
                let id = sf_id("006", &format!("ext:{value}"));
                let now = now_ms();
                org.opportunities.insert(
                    id.clone(),
                    Opportunity {
                        id: id.clone(),
                        name,
                        amount: f.amount.unwrap_or(0.0),
                        stage_name: stage,
                        close_date,
                        account_id: f.account_id,
                        owner_name: "Dana Demo".into(),
                        last_activity_date: None,
                        last_modified_ms: now,
                        description: f.description.unwrap_or_default(),
                        external_id: Some(value.clone()),
                    },
                );
                org.creates += 1;
                (id, true)
            }
        }
    };
    st.providers.save();
    answer_delay(&st).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({"id": id, "success": true, "errors": [], "created": created})),
    )
        .into_response()
}

/// Sandbox control: the org as it is (the owner's alone, like the other controls).
async fn org_summary(State(st): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    if let Some(r) = super::auth0::not_admin(&st, &headers) {
        return r;
    }
    let org = lock_org(&st);
    let opps: Vec<Value> = org.opportunities.values().map(|o| org.record(o)).collect();
    Json(json!({"opportunities": opps, "creates": org.creates})).into_response()
}

/// Sandbox control: someone edits an Opportunity in Salesforce (`sandbox crm set`).
async fn edit_control(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = super::auth0::not_admin(&st, &headers) {
        return r;
    }
    let stage = body.get("StageName").and_then(Value::as_str);
    if let Some(s) = stage
        && !in_picklist(s)
    {
        return sf_fail(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            &format!(
                "Stage: bad value for restricted picklist field: {s}; one of {}",
                picklist()
            ),
            &["StageName"],
        );
    }
    let amount = body.get("Amount").and_then(Value::as_f64);
    let edited = lock_org(&st).edit(&id, stage, amount, now_ms());
    if !edited {
        return sf_fail(404, "NOT_FOUND", &format!("no Opportunity {id}"), &[]);
    }
    st.providers.save();
    let org = lock_org(&st);
    Json(org.opportunities.get(&id).map(|o| org.record(o))).into_response()
}
