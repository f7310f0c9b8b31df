//! The Cerbos PDP over HTTP: `/api/plan/resources` and `/api/check/resources`
//! (`../shared/spec/integrations.md` §1). Any transport error, non-200 or answer we cannot map
//! is an error; the caller falls back or refuses (it never reads one as an allow).

use std::time::Duration;

use serde_json::{json, Value};

use super::plan::Plan;
use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum PdpError {
    #[error("PDP unreachable: {0}")]
    Transport(String),
    #[error("PDP answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("PDP answer not understood: {0}")]
    Unmappable(String),
}

pub struct Pdp {
    http: reqwest::Client,
    base: String,
    api_key: Option<Secret>,
}

impl Pdp {
    pub fn new(base: &str, api_key: Option<Secret>, timeout: Duration) -> Pdp {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        Pdp {
            http,
            base: base.trim_end_matches('/').to_string(),
            api_key,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, PdpError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let res = req.send().await.map_err(|e| PdpError::Transport(e.to_string()))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| PdpError::Transport(e.to_string()))?;
        if !status.is_success() {
            let body: String = text.chars().take(300).collect();
            return Err(PdpError::Status {
                status: status.as_u16(),
                body,
            });
        }
        serde_json::from_str(&text).map_err(|e| PdpError::Unmappable(e.to_string()))
    }

    /// The filter for `action` on `kind`.
    pub async fn plan(&self, principal: &Value, kind: &str, action: &str) -> Result<Plan, PdpError> {
        let body = json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "action": action,
            "principal": principal,
            "resource": {"kind": kind},
        });
        let answer = self.post("/api/plan/resources", &body).await?;
        let filter = answer
            .get("filter")
            .ok_or_else(|| PdpError::Unmappable("no filter".into()))?;
        Plan::from_pdp(filter).ok_or_else(|| PdpError::Unmappable(filter.to_string()))
    }

    /// One call for many resources (`{kind, id, attr}`): allowed or not, in request order.
    pub async fn check(
        &self,
        principal: &Value,
        resources: &[Value],
        action: &str,
    ) -> Result<Vec<bool>, PdpError> {
        let items: Vec<Value> = resources
            .iter()
            .map(|r| json!({"actions": [action], "resource": r}))
            .collect();
        let body = json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "principal": principal,
            "resources": items,
        });
        let answer = self.post("/api/check/resources", &body).await?;
        let results = answer
            .get("results")
            .and_then(Value::as_array)
            .filter(|r| r.len() == resources.len())
            .ok_or_else(|| PdpError::Unmappable("results do not match the request".into()))?;
        results
            .iter()
            .zip(resources)
            .map(|(result, asked)| {
                if result.pointer("/resource/id") != asked.get("id") {
                    return Err(PdpError::Unmappable("results out of order".into()));
                }
                match result
                    .pointer(&format!("/actions/{action}"))
                    .and_then(Value::as_str)
                {
                    Some("EFFECT_ALLOW") => Ok(true),
                    Some(_) => Ok(false),
                    None => Err(PdpError::Unmappable(format!("no effect for {action}"))),
                }
            })
            .collect()
    }

    /// `GET /_cerbos/health`.
    pub async fn healthy(&self) -> bool {
        match self
            .http
            .get(format!("{}/_cerbos/health", self.base))
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }
}
