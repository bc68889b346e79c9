//! One behavioural suite over the plugin's `Store`, run against every
//! backend the tests have a real server for: the local folder, moto (S3,
//! also behind TLS with a private CA, also through STS AssumeRole), Azurite
//! (account key and SAS) and, as far as it goes, fake-gcs-server (reads and
//! listings of objects uploaded through its JSON API; object_store's writes
//! use the GCS XML API, which fake-gcs-server lacks).

use std::time::Duration;

use bytes::Bytes;
use e2e::servers::{AzuriteServer, GcsServer, S3Server, TlsProxy};
use futures::TryStreamExt;
use kubectl_backup::location::open::{OpenOptions, open_spec};
use kubectl_backup::location::spec::{AwsAuth, Credentials, LocationSpec, Provider};
use kubectl_backup::location::{Store, open_local, open_url};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStoreExt, PutMode, PutOptions, RetryConfig,
    WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Few retries: a failing backend should fail the test quickly.
fn quick() -> OpenOptions {
    OpenOptions {
        retry: RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 1,
            retry_timeout: Duration::from_secs(10),
        },
        connect_timeout: Duration::from_secs(5),
    }
}

/// Deterministic, incompressible-enough test data.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn read_all(store: &Store, key: &Path) -> Bytes {
    store
        .object_store()
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("read {key}: {e}"))
}

/// Server bugs that keep parts of the suite from running on one backend.
/// Each part is covered by every other backend.
#[derive(Clone, Copy, Default)]
struct Quirks {
    /// Azurite answers 500 to a blob batch (object_store deletes through
    /// batches) authorized by a SAS token.
    no_delete: bool,
}

/// The behaviour every writable backend must show.
async fn writable_suite(store: &Store) {
    writable_suite_with(store, Quirks::default()).await
}

async fn writable_suite_with(store: &Store, quirks: Quirks) {
    let os = store.object_store();
    let run = format!("suite-{}", uuid::Uuid::new_v4().simple());
    let key = |rel: &str| store.path(&format!("{run}/{rel}"));

    // put / get / head
    let small = Bytes::from_static(b"0123456789abcdefghij");
    os.put(&key("a/one.txt"), small.clone().into())
        .await
        .expect("put");
    assert_eq!(read_all(store, &key("a/one.txt")).await, small);
    let meta = os.head(&key("a/one.txt")).await.expect("head");
    assert_eq!(meta.size, 20);
    assert_eq!(meta.location, key("a/one.txt"));

    // ranges
    let range = os.get_range(&key("a/one.txt"), 5..12).await.expect("range");
    assert_eq!(&range[..], b"56789ab");
    let offset = os
        .get_opts(
            &key("a/one.txt"),
            GetOptions {
                // Azure has no offset ranges; offsets work everywhere.
                range: Some(GetRange::Offset(16)),
                ..GetOptions::default()
            },
        )
        .await
        .expect("offset range")
        .bytes()
        .await
        .expect("offset body");
    assert_eq!(&offset[..], b"ghij");

    // listing: recursive, and one level with common prefixes
    os.put(&key("a/two.txt"), "2".into()).await.expect("put 2");
    os.put(&key("b/three.txt"), "3".into())
        .await
        .expect("put 3");
    let root = store.path(&run);
    let mut all: Vec<String> = os
        .list(Some(&root))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    all.sort();
    assert_eq!(
        all,
        [key("a/one.txt"), key("a/two.txt"), key("b/three.txt")]
            .map(|p| p.to_string())
            .to_vec()
    );
    let level = os
        .list_with_delimiter(Some(&root))
        .await
        .expect("list level");
    let mut dirs: Vec<String> = level
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    dirs.sort();
    assert_eq!(dirs, vec![key("a").to_string(), key("b").to_string()]);
    assert!(level.objects.is_empty(), "{:?}", level.objects);

    // create-only put refuses to overwrite (backups are never overwritten)
    let manifest = key("backup.json");
    os.put_opts(&manifest, "first".into(), PutOptions::from(PutMode::Create))
        .await
        .expect("first create-only put");
    let second = os
        .put_opts(
            &manifest,
            "second".into(),
            PutOptions::from(PutMode::Create),
        )
        .await
        .expect_err("a second create-only put must fail");
    assert!(
        matches!(second, object_store::Error::AlreadyExists { .. }),
        "expected AlreadyExists, got {second:?}"
    );
    assert_eq!(&read_all(store, &manifest).await[..], b"first");

    // multipart through WriteMultipart: 12 MiB in 5 MiB parts
    let big = data(12 * 1024 * 1024 + 123, 1);
    let upload = os
        .put_multipart(&key("big/multipart.bin"))
        .await
        .expect("start multipart");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    for chunk in big.chunks(1024 * 1024) {
        writer.write(chunk);
    }
    writer.finish().await.expect("finish multipart");
    let got = read_all(store, &key("big/multipart.bin")).await;
    assert_eq!(got.len(), big.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(&big));

    // multipart through BufWriter (what a tar/zstd stream writes into)
    let big2 = data(11 * 1024 * 1024 + 7, 2);
    let mut buffered = BufWriter::new(os.clone(), key("big/bufwriter.bin"));
    for chunk in big2.chunks(300 * 1024) {
        buffered.write_all(chunk).await.expect("buffered write");
    }
    buffered.shutdown().await.expect("buffered finish");
    let got = read_all(store, &key("big/bufwriter.bin")).await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&big2));

    // an aborted multipart upload leaves no object behind
    let mut aborted = os
        .put_multipart(&key("big/aborted.bin"))
        .await
        .expect("start multipart to abort");
    aborted
        .put_part(data(5 * 1024 * 1024, 3).into())
        .await
        .expect("part");
    aborted.abort().await.expect("abort");
    assert!(matches!(
        os.head(&key("big/aborted.bin")).await,
        Err(object_store::Error::NotFound { .. })
    ));

    if quirks.no_delete {
        let err = os
            .delete(&key("a/one.txt"))
            .await
            .expect_err("the server bug is gone: drop the no_delete quirk");
        assert!(err.to_string().contains("500"), "{err}");
        return;
    }

    // delete, then the object is gone and a missing key is NotFound
    for rel in [
        "a/one.txt",
        "a/two.txt",
        "b/three.txt",
        "backup.json",
        "big/multipart.bin",
        "big/bufwriter.bin",
    ] {
        os.delete(&key(rel)).await.expect("delete");
    }
    assert!(matches!(
        os.get(&key("a/one.txt")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    let left: Vec<_> = os.list(Some(&root)).try_collect().await.expect("list");
    assert!(left.is_empty(), "left behind: {left:?}");
}

// === local folder ===

#[tokio::test]
async fn local_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_local(dir.path()).expect("open");
    writable_suite(&store).await;
}

#[tokio::test]
async fn local_folder_by_url_and_spec_with_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().join("by-url").display());
    writable_suite(&open_url(&url).expect("open url")).await;

    let mut spec = LocationSpec::new(Provider::Fs);
    spec.path = Some(dir.path().join("by-spec").display().to_string());
    spec.prefix = Some("team/prod".to_owned());
    let store = open_spec("local", &spec, &Credentials::default(), &quick()).expect("open");
    writable_suite(&store).await;
    // The prefix really is a folder inside the location's path.
    store
        .object_store()
        .put(&store.path("marker"), "x".into())
        .await
        .expect("put");
    assert!(dir.path().join("by-spec/team/prod/marker").is_file());
}

// === S3 (moto) ===

fn s3_spec(endpoint: String, bucket: &str, provider: Provider) -> LocationSpec {
    let mut spec = LocationSpec::new(provider);
    spec.bucket = Some(bucket.to_owned());
    spec.endpoint = Some(endpoint);
    spec.region = Some("us-east-1".to_owned());
    spec.force_path_style = true;
    spec.prefix = Some("cluster-a".to_owned());
    spec
}

fn s3_keys(server: &S3Server) -> Credentials {
    Credentials {
        aws_access_key_id: Some(server.credentials().access_key_id.clone()),
        aws_secret_access_key: Some(server.credentials().secret_access_key.clone()),
        ..Credentials::default()
    }
}

#[tokio::test]
async fn s3_moto() {
    let server = S3Server::start();
    server.create_bucket("suite").await.expect("bucket");
    let spec = s3_spec(server.endpoint(), "suite", Provider::Aws);
    let store = open_spec("moto", &spec, &s3_keys(&server), &quick()).expect("open");
    writable_suite(&store).await;
}

#[tokio::test]
async fn s3_minio_style_behind_tls_with_private_ca() {
    let server = S3Server::start();
    server.create_bucket("tls").await.expect("bucket");
    let proxy = TlsProxy::start(server.port()).await;
    let mut spec = s3_spec(proxy.endpoint(), "tls", Provider::Minio);
    spec.ca_certificate = Some(proxy.ca_pem().to_owned());
    let store = open_spec("minio", &spec, &s3_keys(&server), &quick()).expect("open");
    writable_suite(&store).await;
}

#[tokio::test]
async fn s3_through_sts_assume_role() {
    let server = S3Server::start_with_auth().await;
    server.create_bucket("role").await.expect("bucket");
    let role = server.role().expect("role").clone();
    let mut spec = s3_spec(server.endpoint(), "role", Provider::Aws);
    spec.aws_auth = Some(AwsAuth::AssumeRole {
        role_arn: role.role_arn.clone(),
        sts_endpoint: None,
    });
    let mut credentials = s3_keys(&server);
    credentials.aws_external_id = Some(role.external_id.clone());
    let store = open_spec("role", &spec, &credentials, &quick()).expect("open");
    writable_suite(&store).await;
}

// === Azure Blob (Azurite) ===

fn azure_spec(server: &AzuriteServer, container: &str) -> LocationSpec {
    let mut spec = LocationSpec::new(Provider::Azure);
    spec.bucket = Some(container.to_owned());
    spec.storage_account = Some(server.account().to_owned());
    spec.endpoint = Some(server.endpoint());
    spec.prefix = Some("backups".to_owned());
    spec
}

#[tokio::test]
async fn azure_azurite_account_key() {
    let server = AzuriteServer::start();
    server.create_container("suite").await.expect("container");
    let credentials = Credentials {
        azure_account_key: Some(server.key().to_owned()),
        ..Credentials::default()
    };
    let store = open_spec(
        "azurite",
        &azure_spec(&server, "suite"),
        &credentials,
        &quick(),
    )
    .expect("open");
    writable_suite(&store).await;
}

#[tokio::test]
async fn azure_azurite_sas_token() {
    let server = AzuriteServer::start();
    server.create_container("sas").await.expect("container");
    let credentials = Credentials {
        azure_sas_token: Some(format!("?{}", server.account_sas("rwdlac").expect("sas"))),
        ..Credentials::default()
    };
    let store = open_spec(
        "azurite-sas",
        &azure_spec(&server, "sas"),
        &credentials,
        &quick(),
    )
    .expect("open");
    writable_suite_with(&store, Quirks { no_delete: true }).await;
}

// === GCS (fake-gcs-server): configuration, credentials, reads, listing ===

#[tokio::test]
async fn gcs_fake_server_reads_lists_and_deletes() {
    let server = GcsServer::start();
    server.create_bucket("suite").await.expect("bucket");
    let payload = data(3 * 1024 * 1024 + 5, 9);
    for (name, body) in [
        (
            "team/backups/one/backup.json",
            b"{\"phase\":\"Completed\"}".to_vec(),
        ),
        ("team/backups/one/resources.tar.zst", payload.clone()),
        ("team/backups/two/backup.json", b"{}".to_vec()),
        ("elsewhere/x", b"x".to_vec()),
    ] {
        server.upload("suite", name, body).await.expect("upload");
    }
    let mut spec = LocationSpec::new(Provider::Gcs);
    spec.bucket = Some("suite".to_owned());
    spec.prefix = Some("team".to_owned());
    let credentials = Credentials {
        gcs_service_account_json: Some(server.service_account_json()),
        ..Credentials::default()
    };
    let store = open_spec("gcs", &spec, &credentials, &quick()).expect("open");
    let os = store.object_store();

    // Reads, ranges and heads of what the JSON API stored.
    let got = read_all(&store, &store.path("backups/one/resources.tar.zst")).await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&payload));
    let range = os
        .get_range(&store.path("backups/one/backup.json"), 1..8)
        .await
        .expect("range");
    assert_eq!(&range[..], b"\"phase\"");
    let meta = os
        .head(&store.path("backups/one/resources.tar.zst"))
        .await
        .expect("head");
    assert_eq!(meta.size, payload.len() as u64);

    // Listing stays inside the prefix.
    let level = os
        .list_with_delimiter(Some(&store.path("backups")))
        .await
        .expect("list");
    let mut names: Vec<String> = level
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    names.sort();
    assert_eq!(names, ["team/backups/one", "team/backups/two"]);
    let all: Vec<_> = os
        .list(Some(&store.path("")))
        .try_collect()
        .await
        .expect("list all");
    assert_eq!(all.len(), 3, "{all:?}");

    // Delete works; a deleted object is NotFound.
    os.delete(&store.path("backups/two/backup.json"))
        .await
        .expect("delete");
    assert!(matches!(
        os.get(&store.path("backups/two/backup.json")).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // The documented limitation: object_store writes through the XML API,
    // which fake-gcs-server does not implement. If this starts passing, the
    // server gained it: run the writable suite here and update
    // docs/locations.md.
    let write = os.put(&store.path("new"), "x".into()).await;
    assert!(
        write.is_err(),
        "fake-gcs-server accepted an object_store write: enable the writable suite for GCS"
    );
}
