//! etcd test server (see the module docs of `servers`).
