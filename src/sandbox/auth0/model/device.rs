//! The device authorization flow (RFC 8628): codes, the user's decision on the
//! activation page, and polling with `slow_down`.

use super::{
    Auth0State, ClientApp, ClientCred, DeviceRec, DeviceStatus, GRANT_DEVICE, OAuthError,
    code_chars, err, split_scope,
};
use crate::sandbox::state::random_token;

impl Auth0State {
    pub fn device_code(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        scope: &str,
        audience: &str,
    ) -> Result<serde_json::Value, OAuthError> {
        let client = self.authenticate(client_id, cred, GRANT_DEVICE)?;
        let t = self.timing();
        let device_code = random_token("sbx-dc-");
        let user_code = format!("{}-{}", code_chars(4), code_chars(4));
        let now = self.now();
        let rec = DeviceRec {
            user_code: user_code.clone(),
            client_id: client.client_id,
            scope: scope.into(),
            audience: audience.into(),
            expires_at: now + self.secs(t.device_expires_in_s),
            interval_s: t.device_interval_s,
            last_poll: None,
            status: DeviceStatus::Pending,
        };
        self.lock().devices.insert(device_code.clone(), rec);
        let uri = format!("{}activate", self.issuer());
        Ok(serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": format!("{uri}?user_code={user_code}"),
            "expires_in": t.device_expires_in_s,
            "interval": t.device_interval_s,
        }))
    }

    /// The user approves (or denies) a device code on the activation page.
    pub fn decide_device(&self, user_code: &str, sub: &str, approve: bool) -> bool {
        let now = self.now();
        let mut g = self.lock();
        if !g.users.contains_key(sub) {
            return false;
        }
        let wanted = user_code.trim().to_ascii_uppercase();
        for rec in g.devices.values_mut() {
            if rec.user_code == wanted
                && rec.status == DeviceStatus::Pending
                && now < rec.expires_at
            {
                rec.status = if approve {
                    DeviceStatus::Approved(sub.into())
                } else {
                    DeviceStatus::Denied
                };
                return true;
            }
        }
        false
    }

    pub(super) fn poll_device(
        &self,
        client: &ClientApp,
        device_code: &str,
    ) -> Result<serde_json::Value, OAuthError> {
        let now = self.now();
        let ms = self.timing().ms_per_second;
        let (sub, scope, audience) = {
            let mut g = self.lock();
            let Some(rec) = g.devices.get_mut(device_code) else {
                return Err(err(400, "invalid_grant", "Invalid or expired device code."));
            };
            if rec.client_id != client.client_id {
                return Err(err(
                    400,
                    "invalid_grant",
                    "Device code was issued to another client.",
                ));
            }
            match rec.status {
                DeviceStatus::Used | DeviceStatus::ExpiredReported => {
                    return Err(err(400, "invalid_grant", "Invalid or expired device code."));
                }
                _ => {}
            }
            if now >= rec.expires_at {
                rec.status = DeviceStatus::ExpiredReported;
                return Err(err(403, "expired_token", "Expired device code."));
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
            match rec.status.clone() {
                DeviceStatus::Pending => {
                    return Err(err(
                        403,
                        "authorization_pending",
                        "User has yet to authorize device code.",
                    ));
                }
                DeviceStatus::Denied => {
                    rec.status = DeviceStatus::Used;
                    return Err(err(
                        403,
                        "access_denied",
                        "User refused to authorize the device.",
                    ));
                }
                DeviceStatus::Approved(sub) => {
                    rec.status = DeviceStatus::Used;
                    (sub, rec.scope.clone(), rec.audience.clone())
                }
                _ => return Err(err(400, "invalid_grant", "Invalid device code.")),
            }
        };
        let rt = split_scope(&scope)
            .iter()
            .any(|s| s == "offline_access")
            .then(|| self.mint_refresh(None, &sub, &client.client_id, &scope, &audience));
        self.token_response(&sub, &client.client_id, &scope, &audience, rt)
    }
}
