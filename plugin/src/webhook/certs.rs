//! The webhook's TLS material: a private CA and a serving certificate for
//! `<service>.<namespace>.svc`, generated with rcgen. The API server trusts
//! the CA through the webhook configurations' `caBundle`.

use chrono::{DateTime, Datelike as _, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("cannot generate the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM certificate could not be parsed.
    #[error("cannot parse the certificate: {0}")]
    Parse(String),
}

/// A CA, a serving certificate and its key, all PEM.
#[derive(Clone)]
pub struct ServingCerts {
    /// The CA certificate (goes into `caBundle` and `ca.crt`).
    pub ca_pem: String,
    /// The serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// The serving key (`tls.key`).
    pub key_pem: String,
    /// When the serving certificate expires.
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for ServingCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ServingCerts")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The DNS names the API server may use for a Service.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// Generate a CA (valid twice as long) and a serving certificate for `names`
/// (DNS names or IP addresses) valid for `validity`.
pub fn generate(names: Vec<String>, validity: chrono::Duration) -> Result<ServingCerts, CertError> {
    let now = Utc::now();
    let not_before = now - chrono::Duration::days(1);
    let not_after = now + validity;
    // Day precision is all a validity period needs (and rcgen's helper
    // spares a direct dependency on the `time` crate). Month and day always fit a u8.
    let at = |t: DateTime<Utc>| {
        rcgen::date_time_ymd(
            t.year(),
            u8::try_from(t.month()).unwrap_or(1),
            u8::try_from(t.day()).unwrap_or(1),
        )
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "kubectl-backup webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = at(not_before);
    ca.not_after = at(now + validity + validity);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let common_name = names.first().cloned().unwrap_or_default();
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name
        .push(DnType::CommonName, common_name);
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = at(not_before);
    leaf.not_after = at(not_after);
    let cert = leaf.signed_by(&key, &issuer)?;
    let cert_pem = cert.pem();
    let not_after = not_after_of(&cert_pem)?;
    Ok(ServingCerts {
        ca_pem: ca_cert.pem(),
        cert_pem,
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// The expiry of the first certificate in a PEM bundle.
pub fn not_after_of(pem: &str) -> Result<DateTime<Utc>, CertError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = parsed
        .parse_x509()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let ts = cert.validity().not_after.timestamp();
    DateTime::from_timestamp(ts, 0).ok_or_else(|| CertError::Parse(format!("bad timestamp {ts}")))
}

/// The DNS names a PEM certificate is valid for.
pub fn names_of(pem: &str) -> Result<Vec<String>, CertError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = parsed
        .parse_x509()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                names.push((*d).to_owned());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_cert_is_for_the_service_and_chains_to_the_ca() {
        crate::install_crypto_provider();
        let certs = generate(
            dns_names("backup-webhook", "tools"),
            chrono::Duration::days(365),
        )
        .unwrap();
        let names = names_of(&certs.cert_pem).unwrap();
        assert!(
            names.contains(&"backup-webhook.tools.svc".to_owned()),
            "{names:?}"
        );
        let days = (certs.not_after - Utc::now()).num_days();
        assert!((363..=366).contains(&days), "{days}");
        assert!(not_after_of(&certs.ca_pem).unwrap() > certs.not_after);

        // rustls accepts the chain for the service name.
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(certs.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("backup-webhook.tools.svc").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap();
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(not_after_of("nope").is_err());
    }
}
