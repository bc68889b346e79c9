//! s3 test server (see the module docs of `servers`).
