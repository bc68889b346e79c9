//! Reaching one etcd member: endpoints and TLS files as etcdctl takes them,
//! and the choice of member (exactly one endpoint, or the leader with
//! `--leader`; never a learner).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// Connection flags, named as etcdctl names them.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// etcd client URL. One member: a snapshot reads one member's database, so
    /// several endpoints are refused unless --leader picks one.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        env = "ETCDCTL_ENDPOINTS"
    )]
    pub endpoints: Vec<String>,

    /// CA bundle that signed the members' serving certificates.
    #[arg(long, value_name = "FILE", env = "ETCDCTL_CACERT")]
    pub cacert: Option<PathBuf>,

    /// Client certificate (etcd's --client-cert-auth).
    #[arg(long, value_name = "FILE", env = "ETCDCTL_CERT", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Client key.
    #[arg(long, value_name = "FILE", env = "ETCDCTL_KEY", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Connect to the endpoints, find the leader in the member list and use it.
    #[arg(long)]
    pub leader: bool,

    /// How long to wait for a connection.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub dial_timeout: Duration,
}

/// Errors reaching a member.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Several endpoints without --leader.
    #[error(
        "a snapshot is read from one member, but {0} endpoints were given: pass one, or add --leader to use the current leader"
    )]
    SeveralEndpoints(usize),
    /// A TLS file cannot be read.
    #[error("cannot read {what} {path}")]
    TlsFile {
        /// CA, certificate or key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The member did not answer.
    #[error("{action} at {endpoint} failed{hint}")]
    Rpc {
        /// What was asked.
        action: &'static str,
        /// The endpoint(s).
        endpoint: String,
        /// The client error.
        source: etcd_client::Error,
        /// A hint about what to check.
        hint: String,
    },
    /// The chosen member is a learner.
    #[error(
        "member {name} ({id:x}) at {endpoint} is a learner (not yet promoted, its data may lag): snapshot a voting member, or use --leader"
    )]
    Learner {
        /// Member name.
        name: String,
        /// Member id.
        id: u64,
        /// Its endpoint.
        endpoint: String,
    },
    /// No leader was found.
    #[error("no member reports a leader (is the cluster quorate?)")]
    NoLeader,
    /// The leader has no client URL.
    #[error("the leader {0:x} advertises no client URL")]
    LeaderWithoutUrl(u64),
}

/// A connection to the one member a command works on.
pub struct Member {
    /// The client, bound to this member only.
    pub client: Client,
    /// Its client URL.
    pub endpoint: String,
    /// Member id.
    pub id: u64,
    /// Member name ("" if the member list does not say).
    pub name: String,
    /// etcd cluster id.
    pub cluster_id: u64,
    /// Server version.
    pub version: String,
    /// Database size as the member reports it.
    pub db_size: i64,
}

impl ConnectArgs {
    /// Do any TLS flags say the endpoints are https?
    fn wants_tls(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some()
    }

    /// An endpoint with its scheme: etcdctl accepts `host:port` and picks
    /// https when TLS files are given.
    pub fn normalize(&self, endpoint: &str) -> String {
        if endpoint.contains("://") {
            endpoint.to_owned()
        } else if self.wants_tls() {
            format!("https://{endpoint}")
        } else {
            format!("http://{endpoint}")
        }
    }

    fn options(&self, https: bool) -> Result<ConnectOptions, ConnectError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        if https {
            let read = |what: &'static str, path: &PathBuf| {
                std::fs::read(path).map_err(|source| ConnectError::TlsFile {
                    what,
                    path: path.clone(),
                    source,
                })
            };
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.cacert {
                tls = tls.ca_certificate(Certificate::from_pem(read("CA file", ca)?));
            }
            if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
                tls = tls.identity(Identity::from_pem(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                ));
            }
            options = options.with_tls(tls);
        }
        Ok(options)
    }

    /// Connect to `endpoints` (already normalized).
    pub async fn client_for(&self, endpoints: &[String]) -> Result<Client, ConnectError> {
        let https = endpoints.iter().any(|e| e.starts_with("https://"));
        let options = self.options(https)?;
        Client::connect(endpoints, Some(options))
            .await
            .map_err(|source| self.rpc_error("connecting", &endpoints.join(","), source))
    }

    fn rpc_error(
        &self,
        action: &'static str,
        endpoint: &str,
        source: etcd_client::Error,
    ) -> ConnectError {
        let text = format!("{source:?}").to_lowercase();
        let hint = if text.contains("certificate")
            || text.contains("tls")
            || text.contains("handshake")
        {
            " (check --cacert: the CA that signed the member's certificate, and --cert/--key: a client certificate the member trusts, not expired)"
        } else if text.contains("connect")
            || text.contains("transport")
            || text.contains("unavailable")
        {
            " (is etcd listening there, and reachable from here?)"
        } else {
            ""
        };
        ConnectError::Rpc {
            action,
            endpoint: endpoint.to_owned(),
            source,
            hint: hint.to_owned(),
        }
    }

    /// The one member to work on: the single endpoint given, or the leader
    /// with `--leader`. Learners are refused.
    pub async fn member(&self) -> Result<Member, ConnectError> {
        let endpoints: Vec<String> = self.endpoints.iter().map(|e| self.normalize(e)).collect();
        if endpoints.len() > 1 && !self.leader {
            return Err(ConnectError::SeveralEndpoints(endpoints.len()));
        }
        let endpoint = if self.leader {
            self.leader_endpoint(&endpoints).await?
        } else {
            endpoints[0].clone()
        };
        let mut client = self.client_for(std::slice::from_ref(&endpoint)).await?;
        let status = tokio::time::timeout(self.dial_timeout * 2, client.status())
            .await
            .map_err(|_| ConnectError::Rpc {
                action: "status",
                endpoint: endpoint.clone(),
                source: etcd_client::Error::InvalidArgs("timed out".into()),
                hint: " (is etcd listening there, and reachable from here?)".into(),
            })?
            .map_err(|e| self.rpc_error("status", &endpoint, e))?;
        let header = status.header();
        let id = header.map_or(0, |h| h.member_id());
        let cluster_id = header.map_or(0, |h| h.cluster_id());
        let members = client
            .member_list()
            .await
            .map_err(|e| self.rpc_error("member list", &endpoint, e))?;
        let me = members.members().iter().find(|m| m.id() == id);
        let name = me.map(|m| m.name().to_owned()).unwrap_or_default();
        if status.is_learner() || me.is_some_and(|m| m.is_learner()) {
            return Err(ConnectError::Learner { name, id, endpoint });
        }
        Ok(Member {
            client,
            endpoint,
            id,
            name,
            cluster_id,
            version: status.version().to_owned(),
            db_size: status.db_size(),
        })
    }

    /// Ask the endpoints one at a time (a balanced client would send each
    /// call to any of them, dead ones included) for the leader's client URL.
    async fn leader_endpoint(&self, endpoints: &[String]) -> Result<String, ConnectError> {
        let mut last_error = None;
        for endpoint in endpoints {
            match self.leader_via(endpoint).await {
                Ok(url) => return Ok(url),
                Err(e @ (ConnectError::Rpc { .. } | ConnectError::NoLeader)) => {
                    tracing::info!(%endpoint, error = %e, "no leader information here; trying the next endpoint");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(ConnectError::NoLeader))
    }

    async fn leader_via(&self, endpoint: &str) -> Result<String, ConnectError> {
        let mut client = self.client_for(&[endpoint.to_owned()]).await?;
        let status = tokio::time::timeout(self.dial_timeout * 2, client.status())
            .await
            .map_err(|_| ConnectError::Rpc {
                action: "status",
                endpoint: endpoint.to_owned(),
                source: etcd_client::Error::InvalidArgs("timed out".into()),
                hint: " (is etcd listening there, and reachable from here?)".into(),
            })?
            .map_err(|e| self.rpc_error("status", endpoint, e))?;
        let leader = status.leader();
        if leader == 0 {
            return Err(ConnectError::NoLeader);
        }
        let members = client
            .member_list()
            .await
            .map_err(|e| self.rpc_error("member list", endpoint, e))?;
        members
            .members()
            .iter()
            .find(|m| m.id() == leader && !m.is_learner())
            .and_then(|m| m.client_urls().first().cloned())
            .ok_or(ConnectError::LeaderWithoutUrl(leader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: ConnectArgs,
    }

    #[test]
    fn endpoints_get_a_scheme_like_etcdctl() {
        let t = T::parse_from(["t", "--endpoints", "10.0.0.1:2379,https://x:2379"]);
        assert_eq!(t.c.normalize("10.0.0.1:2379"), "http://10.0.0.1:2379");
        assert_eq!(t.c.normalize("https://x:2379"), "https://x:2379");
        let t = T::parse_from(["t", "--cacert", "/ca.crt"]);
        assert_eq!(t.c.normalize("127.0.0.1:2379"), "https://127.0.0.1:2379");
    }

    #[tokio::test]
    async fn several_endpoints_are_refused_without_leader() {
        let t = T::parse_from(["t", "--endpoints", "a:1,b:2"]);
        assert!(matches!(
            t.c.member().await,
            Err(ConnectError::SeveralEndpoints(2))
        ));
    }
}
