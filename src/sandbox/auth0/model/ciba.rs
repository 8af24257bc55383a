//! CIBA (`/bc-authorize` and its polling grant) with rich authorization details, and
//! the emulated phone that shows and answers the requests.

use super::{
    API_AUDIENCE, Auth0State, CibaRec, CibaStatus, ClientApp, ClientCred, GRANT_CIBA, OAuthError,
    PhoneRequest, err, split_scope,
};
use crate::sandbox::state::random_token;
use serde::Deserialize;

impl Auth0State {
    #[allow(clippy::too_many_arguments)]
    pub fn bc_authorize(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        login_hint: Option<&str>,
        scope: Option<&str>,
        binding_message: Option<&str>,
        audience: Option<&str>,
        requested_expiry: Option<&str>,
        authorization_details: Option<&str>,
    ) -> Result<serde_json::Value, OAuthError> {
        let client = self.authenticate(client_id, cred, GRANT_CIBA)?;
        let rar = self.lock().rar.clone();
        let details = super::super::rar::parse(authorization_details, &rar)?;
        let scope = scope.unwrap_or("");
        if !split_scope(scope).iter().any(|s| s == "openid") {
            return Err(err(
                400,
                "invalid_request",
                "The scope parameter must contain openid.",
            ));
        }
        let Some(bm) = binding_message.filter(|b| !b.is_empty()) else {
            return Err(err(
                400,
                "invalid_request",
                "Missing required parameter: binding_message",
            ));
        };
        if bm.chars().count() > 64 {
            return Err(err(
                400,
                "invalid_request",
                "binding_message must be 64 characters or fewer.",
            ));
        }
        if !bm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " +-_.,:#".contains(c))
        {
            return Err(err(
                400,
                "invalid_request",
                "binding_message contains characters that are not allowed.",
            ));
        }
        #[derive(Deserialize)]
        struct Hint {
            format: String,
            iss: String,
            sub: String,
        }
        let hint: Hint = login_hint
            .and_then(|h| serde_json::from_str(h).ok())
            .ok_or_else(|| {
                err(
                    400,
                    "invalid_request",
                    "login_hint must be a JSON object {\"format\":\"iss_sub\",\"iss\":...,\"sub\":...}.",
                )
            })?;
        if hint.format != "iss_sub" || hint.iss != self.issuer() {
            return Err(err(
                400,
                "invalid_request",
                "login_hint: format must be iss_sub and iss this tenant (with trailing slash).",
            ));
        }
        if self.user(&hint.sub).is_none() {
            return Err(err(400, "invalid_request", "login_hint: user not found."));
        }
        {
            let (now, minute, limit) = (self.now(), self.secs(60), self.timing().pushes_per_minute);
            let mut g = self.lock();
            let sent = g.pushes.entry(hint.sub.clone()).or_default();
            sent.retain(|t| now - t < minute);
            if sent.len() >= limit {
                return Err(err(
                    429,
                    "too_many_requests",
                    "Too many push notifications for this user. Try again later.",
                ));
            }
            sent.push(now);
        }
        let t = self.timing();
        let expiry_s = match requested_expiry {
            Some(e) => match e.parse::<i64>() {
                Ok(n) if (1..=259_200).contains(&n) => n,
                _ => {
                    return Err(err(
                        400,
                        "invalid_request",
                        "requested_expiry must be between 1 and 259200.",
                    ));
                }
            },
            None => t.ciba_expires_in_s,
        };
        let now = self.now();
        let id = random_token("sbx-areq-");
        let rec = CibaRec {
            phone_id: random_token("txl_"),
            client_id: client.client_id,
            sub: hint.sub,
            scope: scope.into(),
            audience: audience.unwrap_or(API_AUDIENCE).into(),
            binding_message: bm.into(),
            details,
            approved_details: None,
            expires_at: now + self.secs(expiry_s),
            interval_s: t.ciba_interval_s,
            last_poll: None,
            status: CibaStatus::Pending,
        };
        self.lock().ciba.insert(id.clone(), rec);
        Ok(serde_json::json!({
            "auth_req_id": id, "expires_in": expiry_s, "interval": t.ciba_interval_s,
        }))
    }

    pub(super) fn poll_ciba(
        &self,
        client: &ClientApp,
        auth_req_id: &str,
    ) -> Result<serde_json::Value, OAuthError> {
        let now = self.now();
        let ms = self.timing().ms_per_second;
        let (sub, scope, audience, details) = {
            let mut g = self.lock();
            let Some(rec) = g.ciba.get_mut(auth_req_id) else {
                return Err(err(400, "invalid_grant", "Invalid auth_req_id."));
            };
            if rec.client_id != client.client_id || rec.status == CibaStatus::Consumed {
                return Err(err(400, "invalid_grant", "Invalid auth_req_id."));
            }
            if now >= rec.expires_at && rec.status != CibaStatus::Denied {
                return Err(err(
                    403,
                    "access_denied",
                    "The end-user denied the authorization request or it has been expired",
                ));
            }
            let too_fast = rec
                .last_poll
                .is_some_and(|last| now - last < rec.interval_s * ms);
            let forced = self.forced_slow_down(rec.interval_s);
            if too_fast || forced.is_some() {
                rec.interval_s = forced.unwrap_or(rec.interval_s + 5);
                rec.last_poll = Some(now);
                let mut e = err(
                    429,
                    "slow_down",
                    format!(
                        "You are polling faster than allowed. Try again in {} seconds.",
                        rec.interval_s
                    ),
                );
                e.interval = Some(rec.interval_s);
                return Err(e);
            }
            rec.last_poll = Some(now);
            match rec.status {
                CibaStatus::Pending => {
                    return Err(err(
                        403,
                        "authorization_pending",
                        "The end-user authorization is pending",
                    ));
                }
                CibaStatus::Denied => {
                    return Err(err(
                        403,
                        "access_denied",
                        "The end-user denied the authorization request or it has been expired",
                    ));
                }
                _ => {}
            }
            rec.status = CibaStatus::Consumed;
            (
                rec.sub.clone(),
                rec.scope.clone(),
                rec.audience.clone(),
                rec.approved_details.clone(),
            )
        };
        self.token_response_with(&sub, &client.client_id, &scope, &audience, None, details)
    }

    /// Pending CIBA requests, as the phone lists them (all users).
    pub fn phone_requests(&self) -> Vec<PhoneRequest> {
        let now = self.now();
        let g = self.lock();
        let mut v: Vec<PhoneRequest> = g
            .ciba
            .values()
            .filter(|r| r.status == CibaStatus::Pending && now < r.expires_at)
            .map(|r| PhoneRequest {
                id: r.phone_id.clone(),
                binding_message: r.binding_message.clone(),
                requester: g
                    .clients
                    .get(&r.client_id)
                    .map_or_else(|| r.client_id.clone(), |c| c.name.clone()),
                user_sub: r.sub.clone(),
                user_name: g
                    .users
                    .get(&r.sub)
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                scope: r.scope.clone(),
                expires_in_ms: r.expires_at - now,
                authorization_details: r.details.clone().unwrap_or_default(),
            })
            .collect();
        v.sort_by_key(|r| r.expires_in_ms);
        v
    }

    /// Approves (everything asked) or denies a pending request by its phone id. False
    /// if none matched.
    pub fn phone_decide(&self, phone_id: &str, approve: bool) -> bool {
        self.phone_answer(phone_id, approve, None)
    }

    /// Approves only the `authorization_details` entries at `keep` (by position): the
    /// token then carries just those.
    pub fn phone_approve_only(&self, phone_id: &str, keep: &[usize]) -> bool {
        self.phone_answer(phone_id, true, Some(keep))
    }

    fn phone_answer(&self, phone_id: &str, approve: bool, keep: Option<&[usize]>) -> bool {
        let now = self.now();
        let mut g = self.lock();
        for r in g.ciba.values_mut() {
            if r.phone_id == phone_id && r.status == CibaStatus::Pending && now < r.expires_at {
                r.status = if approve {
                    CibaStatus::Approved
                } else {
                    CibaStatus::Denied
                };
                if approve {
                    r.approved_details = r.details.as_ref().map(|all| match keep {
                        Some(keep) => all
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| keep.contains(i))
                            .map(|(_, d)| d.clone())
                            .collect(),
                        None => all.clone(),
                    });
                }
                return true;
            }
        }
        false
    }
}
