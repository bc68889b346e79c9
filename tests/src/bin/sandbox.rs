//! `sandbox`: a Kubernetes API emulator seeded with realistic workloads, for
//! trying `kubectl` and `kubectl backup` without a cluster.
//!
//! ```text
//! cargo run -p e2e --bin sandbox -- [--kubeconfig PATH] [--port PORT]
//! ```
//!
//! Writes the kubeconfig (default `.sandbox/kubeconfig`), prints
//! `sandbox ready: kubeconfig at <path>` once everything is created, and runs
//! until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use e2e::cluster::{client_for, create_yaml, install_crypto_provider};
use e2e::emulator::{Emulator, Options};

/// Start a seeded Kubernetes API emulator and keep it running.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version)]
struct Args {
    /// Where to write the kubeconfig.
    #[arg(long, default_value = ".sandbox/kubeconfig")]
    kubeconfig: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Start empty (only what a fresh cluster has).
    #[arg(long)]
    no_seed: bool,
}

const SNAPSHOT_CRDS: [&str; 3] = [
    include_str!("../../fixtures/crds/snapshot.storage.k8s.io_volumesnapshotclasses.yaml"),
    include_str!("../../fixtures/crds/snapshot.storage.k8s.io_volumesnapshotcontents.yaml"),
    include_str!("../../fixtures/crds/snapshot.storage.k8s.io_volumesnapshots.yaml"),
];

const SEED: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: hostpath.csi.k8s.io
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, green, blue]}
          status:
            type: object
            properties:
              ready: {type: boolean}
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    team: commerce
---
apiVersion: v1
kind: Namespace
metadata:
  name: blog
  labels:
    team: content
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
  namespace: shop
  labels: {app: shop}
data:
  CURRENCY: EUR
  FEATURE_FLAGS: "checkout-v2,wishlist"
---
apiVersion: v1
kind: Secret
metadata:
  name: shop-db
  namespace: shop
  labels: {app: shop}
type: Opaque
stringData:
  username: shop
  password: s3cr3t-sandbox
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: shop-data
  namespace: shop
  labels: {app: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-web
  namespace: shop
  labels: {app: shop, tier: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop, tier: web}
  template:
    metadata:
      labels: {app: shop, tier: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
        envFrom:
        - configMapRef: {name: shop-config}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-db
  namespace: shop
  labels: {app: shop, tier: db}
spec:
  replicas: 1
  selector:
    matchLabels: {app: shop, tier: db}
  template:
    metadata:
      labels: {app: shop, tier: db}
    spec:
      containers:
      - name: postgres
        image: postgres:16
        env:
        - name: POSTGRES_PASSWORD
          valueFrom:
            secretKeyRef: {name: shop-db, key: password}
        volumeMounts:
        - name: data
          mountPath: /var/lib/postgresql/data
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: shop-data}
---
apiVersion: v1
kind: Service
metadata:
  name: shop-web
  namespace: shop
  labels: {app: shop}
spec:
  selector: {app: shop, tier: web}
  ports:
  - name: http
    port: 80
    targetPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: shop-db
  namespace: shop
  labels: {app: shop}
spec:
  selector: {app: shop, tier: db}
  ports:
  - port: 5432
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gizmo
  namespace: shop
spec:
  size: 3
  color: blue
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: blog-settings
  namespace: blog
  labels: {app: blog}
data:
  title: The Sandbox Blog
  posts-per-page: "10"
---
apiVersion: v1
kind: Secret
metadata:
  name: blog-api-key
  namespace: blog
  labels: {app: blog}
type: Opaque
data:
  key: c2FuZGJveC1hcGkta2V5
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: blog
  namespace: blog
  labels: {app: blog}
spec:
  replicas: 1
  selector:
    matchLabels: {app: blog}
  template:
    metadata:
      labels: {app: blog}
    spec:
      containers:
      - name: ghost
        image: ghost:5
        ports:
        - containerPort: 2368
---
apiVersion: v1
kind: Service
metadata:
  name: blog
  namespace: blog
  labels: {app: blog}
spec:
  type: NodePort
  selector: {app: blog}
  ports:
  - port: 80
    targetPort: 2368
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: banner
  namespace: blog
spec:
  size: 1
  color: green
"#;

fn main() -> anyhow::Result<()> {
    install_crypto_provider();
    let args = Args::parse();
    let emulator = Emulator::start_with(Options {
        port: args.port,
        kubeconfig_path: Some(args.kubeconfig.clone()),
    })
    .context("starting the emulator")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    runtime.block_on(async {
        if !args.no_seed {
            let client = client_for(emulator.kubeconfig()).await?;
            for crd in SNAPSHOT_CRDS {
                create_yaml(&client, crd)
                    .await
                    .context("installing the CSI snapshot CRDs")?;
            }
            create_yaml(&client, SEED)
                .await
                .context("seeding the sandbox")?;
        }
        let path = std::fs::canonicalize(emulator.kubeconfig())
            .unwrap_or_else(|_| emulator.kubeconfig().to_path_buf());
        println!("{}", emulator.kubeconfig_yaml());
        println!("sandbox ready: kubeconfig at {}", path.display());
        println!("try: kubectl --kubeconfig {} get all -A", path.display());
        wait_for_signal().await;
        eprintln!("sandbox: stopping");
        anyhow::Ok(())
    })?;
    drop(emulator);
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
