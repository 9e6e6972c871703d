//! A small client for the router's HTTP API, with the result mapping the `weave` script uses:
//! 2xx is success, 404 means "not there", anything else is an error whose body is the message.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Api {
    addr: SocketAddr,
    agent: ureq::Agent,
}

#[derive(Debug)]
pub enum CallError {
    /// Nothing accepts connections on the API address.
    NotRunning,
    /// The router answered with a non-2xx status.
    Status { code: u16, body: String },
    /// The connection failed some other way.
    Transport(String),
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_timeout(addr, Duration::from_secs(30))
    }

    /// A client whose calls give up after `timeout` in all.
    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3).min(timeout))
            .timeout(timeout)
            .build();
        Api { addr, agent }
    }

    /// A client that waits as long as the router takes (IPAM allocations wait for
    /// consensus or free space, as Weave's do); connecting still gives up after 3 s.
    pub fn without_timeout(addr: SocketAddr) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            .build();
        Api { addr, agent }
    }

    /// `METHOD path?query` with no body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<String, CallError> {
        let mut req = self
            .agent
            .request(method, &format!("http://{}{}", self.addr, path));
        for (k, v) in query {
            req = req.query(k, v);
        }
        Self::finish(req.call())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` with an optional `Accept` header; the body on 2xx.
    pub fn get(&self, path: &str, accept: Option<&str>) -> Result<String, CallError> {
        let mut req = self.agent.get(&format!("http://{}{}", self.addr, path));
        if let Some(a) = accept {
            req = req.set("Accept", a);
        }
        Self::finish(req.call())
    }

    /// `GET path?query` with the query pairs url-encoded.
    pub fn get_query(&self, path: &str, query: &[(&str, &str)]) -> Result<String, CallError> {
        let mut req = self.agent.get(&format!("http://{}{}", self.addr, path));
        for (k, v) in query {
            req = req.query(k, v);
        }
        Self::finish(req.call())
    }

    /// `POST path` with an urlencoded form body.
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<String, CallError> {
        let req = self.agent.post(&format!("http://{}{}", self.addr, path));
        Self::finish(req.send_form(form))
    }

    /// `PUT path` with an urlencoded form body.
    pub fn put_form(&self, path: &str, form: &[(&str, &str)]) -> Result<String, CallError> {
        let req = self.agent.put(&format!("http://{}{}", self.addr, path));
        Self::finish(req.send_form(form))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<String, CallError> {
        let req = self.agent.delete(&format!("http://{}{}", self.addr, path));
        Self::finish(req.call())
    }

    fn finish(result: Result<ureq::Response, ureq::Error>) -> Result<String, CallError> {
        match result {
            Ok(resp) => read_body(resp).map_err(CallError::Transport),
            Err(ureq::Error::Status(code, resp)) => Err(CallError::Status {
                code,
                body: read_body(resp).unwrap_or_default(),
            }),
            Err(ureq::Error::Transport(t)) => Err(match t.kind() {
                ureq::ErrorKind::ConnectionFailed => CallError::NotRunning,
                _ => CallError::Transport(t.to_string()),
            }),
        }
    }
}

fn read_body(resp: ureq::Response) -> Result<String, String> {
    let mut body = String::new();
    resp.into_reader()
        .take(16 << 20)
        .read_to_string(&mut body)
        .map_err(|e| format!("reading the router's answer: {e}"))?;
    Ok(body)
}
