//! What every token request goes through, on either API: on its way in, its body is read,
//! it is counted and delayed, and an outage or a canned response may answer it
//! ([`Shared::begin_token_request`]); on its way out, it is recorded
//! ([`Shared::end_token_request`]).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::{
    answer::{Api, Failure, ServerBody},
    config::ECHO_PLACEHOLDER,
    counts::{TokenRequestRecord, bump},
    fields::{MAX_REQUEST_BODY, Received, is_json, parse_fields},
    outage::{Outage, Paths, canned_response, in_force, refused},
    state::{MAX_LOG_RECORDS, Shared},
};
use crate::provider::portsip::PORTSIP_TOKEN_PATH;

impl Shared {
    /// Starts a token request on either API: reads its body, counts it, waits the
    /// [token delay](super::TestServer::set_token_delay), and answers it as an
    /// [outage](super::TestServer::set_token_outage) or the next
    /// [canned response](super::TestServer::respond_next) says, if either does (`Err`).
    pub(super) async fn begin_token_request(
        &self,
        req: Request<Incoming>,
    ) -> Result<Received, Response<ServerBody>> {
        bump(&self.counters.token_requests);
        let (parts, body) = req.into_parts();
        // A body that cannot be read is answered as an empty one: a refusal.
        let body = Limited::new(body, MAX_REQUEST_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // Counted now, whatever the answer or however long it takes.
        let api = if parts.uri.path() == PORTSIP_TOKEN_PATH {
            let fields = parse_fields(is_json(&parts.headers), &body).unwrap_or_default();
            self.counters
                .oauth_grant(fields.get("grant_type").map(String::as_str));
            Api::OAuth
        } else {
            self.counters.sign_in_request(parts.uri.path());
            Api::SignIn
        };
        let delay = self.lock().token_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(response) = self.token_outage(api).await {
            return Err(response);
        }
        let Some(canned) = self.lock().canned.pop_front() else {
            return Ok(Request::from_parts(parts, Full::new(body)));
        };
        if !canned.status.is_success() {
            bump(&self.counters.failed_token_requests);
        }
        let body = if canned.echo {
            let template = String::from_utf8_lossy(&canned.body);
            let echoed = template.replace(ECHO_PLACEHOLDER, &String::from_utf8_lossy(&body));
            Bytes::from(echoed)
        } else {
            canned.body.clone()
        };
        Err(canned_response(canned, body))
    }

    /// The outage's answer to a token request on `api`, if one is switched on.
    async fn token_outage(&self, api: Api) -> Option<Response<ServerBody>> {
        match in_force(&self.outages, Paths::Token).await? {
            Outage::Refuse => Some(refused()),
            _ => {
                bump(&self.counters.failed_token_requests);
                let unavailable = Failure {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: "temporarily_unavailable",
                    code: "SERVICE_UNAVAILABLE",
                    message: "Service unavailable",
                    detail: "the server is down for maintenance",
                };
                Some(unavailable.answer(api, &self.lock().config))
            }
        }
    }

    /// Ends a token request: records it, and counts a failure.
    pub(super) fn end_token_request(
        &self,
        mut record: TokenRequestRecord,
        response: Response<ServerBody>,
    ) -> Response<ServerBody> {
        record.status = response.status().as_u16();
        if !response.status().is_success() {
            bump(&self.counters.failed_token_requests);
        }
        let mut state = self.lock();
        if state.log.len() >= MAX_LOG_RECORDS {
            state.log.pop_front();
        }
        state.log.push_back(record);
        drop(state);
        response
    }
}
