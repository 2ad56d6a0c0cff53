//! Unit tests of `tls.rs`: the CA directory's files, their permissions, reuse, races, and what
//! is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sws-tls-{tag}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_directory_gets_a_ca_with_a_private_key_and_keeps_it() {
    let tmp = TempDir::new("new");
    let dir = tmp.0.join("nested/ca");
    let ca = LocalCa::open_or_create(&dir).unwrap();
    assert_eq!(ca.dir(), dir);
    for file in [CA_CERT_FILE, CA_KEY_FILE] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o644);
    }
    let pem = std::fs::read_to_string(ca.cert_path()).unwrap();
    assert_eq!(pem, ca.cert_pem(), "cert_pem() is the file");
    let key = std::fs::read(dir.join(CA_KEY_FILE)).unwrap();
    ca.server_config(&["ws.example.test".to_owned()]).unwrap();

    // A later run reuses both files unchanged, so a CA trusted once stays trusted.
    let again = LocalCa::open_or_create(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(again.cert_path()).unwrap(), pem);
    assert_eq!(std::fs::read(dir.join(CA_KEY_FILE)).unwrap(), key);
    again.server_config(&[]).unwrap();
    assert!(format!("{again:?}").contains("LocalCa"));
    assert!(
        !format!("{again:?}").contains("PRIVATE"),
        "Debug never shows the key"
    );
}

#[cfg(unix)]
#[test]
fn a_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = TempDir::new("mode");
    LocalCa::open_or_create(&tmp.0).unwrap();
    let key = tmp.0.join(CA_KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = LocalCa::open_or_create(&tmp.0).unwrap_err();
    assert!(
        matches!(&error, CaError::KeyReadableByOthers { path, mode: 0o644 } if *path == key),
        "{error:?}"
    );
    assert!(error.to_string().contains("chmod 600"), "{error}");
}

#[test]
fn unusable_files_are_named() {
    let tmp = TempDir::new("garbage");
    LocalCa::open_or_create(&tmp.0).unwrap();
    let cert = tmp.0.join(CA_CERT_FILE);
    std::fs::write(&cert, "not a certificate").unwrap();
    let error = LocalCa::open_or_create(&tmp.0).unwrap_err();
    assert!(
        matches!(&error, CaError::Invalid { path, .. } if *path == cert),
        "{error:?}"
    );

    let tmp = TempDir::new("garbage-key");
    LocalCa::open_or_create(&tmp.0).unwrap();
    let key = tmp.0.join(CA_KEY_FILE);
    std::fs::write(&key, "not a key").unwrap();
    let error = LocalCa::open_or_create(&tmp.0).unwrap_err();
    assert!(
        matches!(&error, CaError::Invalid { path, .. } if *path == key),
        "{error:?}"
    );
}

#[test]
fn a_certificate_of_another_key_is_caught_before_clients_see_it() {
    let (a, b) = (TempDir::new("a"), TempDir::new("b"));
    LocalCa::open_or_create(&a.0).unwrap();
    LocalCa::open_or_create(&b.0).unwrap();
    std::fs::copy(b.0.join(CA_CERT_FILE), a.0.join(CA_CERT_FILE)).unwrap();
    let ca = LocalCa::open_or_create(&a.0).unwrap();
    let error = ca.server_config(&[]).unwrap_err();
    assert!(
        matches!(&error, CaError::Invalid { path, message } if *path == a.0.join(CA_CERT_FILE) && message.contains("remove the directory")),
        "{error:?}"
    );
}

#[test]
fn a_missing_certificate_is_made_again_from_the_kept_key() {
    let tmp = TempDir::new("recert");
    LocalCa::open_or_create(&tmp.0).unwrap();
    let key = std::fs::read(tmp.0.join(CA_KEY_FILE)).unwrap();
    std::fs::remove_file(tmp.0.join(CA_CERT_FILE)).unwrap();
    let ca = LocalCa::open_or_create(&tmp.0).unwrap();
    assert_eq!(std::fs::read(tmp.0.join(CA_KEY_FILE)).unwrap(), key);
    ca.server_config(&[]).unwrap();
}

#[test]
fn gateways_starting_at_once_share_one_ca() {
    let tmp = TempDir::new("race");
    let dir = tmp.0.clone();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (dir, barrier) = (dir.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let ca = LocalCa::open_or_create(&dir).unwrap();
                // Whichever certificate ended up in ca.pem verifies what this one issues.
                ca.server_config(&[]).unwrap();
                ca.key.serialize_pem()
            })
        })
        .collect();
    let keys: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key for all");
    let ca = LocalCa::open_or_create(&dir).unwrap();
    ca.server_config(&[]).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_bundle_is_the_ca_then_the_system_roots_and_is_rewritten_only_on_change() {
    let tmp = TempDir::new("bundle");
    let ca = LocalCa::open_or_create(&tmp.0).unwrap();
    let (path, roots) = ca.write_bundle().unwrap();
    assert_eq!(path, tmp.0.join(CA_BUNDLE_FILE));
    let bundle = std::fs::read(&path).unwrap();
    assert!(bundle.starts_with(ca.cert_pem().as_bytes()));
    match &roots {
        Some(roots) => {
            let system = std::fs::read(roots).unwrap();
            assert!(bundle.ends_with(&system), "the roots follow the CA");
        }
        None => assert_eq!(bundle, ca.cert_pem().as_bytes()),
    }
    if Path::new(SYSTEM_ROOTS[0]).is_file() && std::env::var_os("SSL_CERT_FILE").is_none() {
        assert_eq!(roots.as_deref(), Some(Path::new(SYSTEM_ROOTS[0])));
    }
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ca.write_bundle().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified,
        "unchanged content is not rewritten"
    );
    // Every certificate of the bundle parses.
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bundle)
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!certs.is_empty());
}

#[test]
fn trust_variables_point_at_the_bundle_and_node_at_the_ca() {
    let env = trust_env(Path::new("/ca"));
    assert_eq!(env["AWS_CA_BUNDLE"], "/ca/ca-bundle.pem");
    assert_eq!(env["SSL_CERT_FILE"], "/ca/ca-bundle.pem");
    assert_eq!(env["REQUESTS_CA_BUNDLE"], "/ca/ca-bundle.pem");
    // Node adds NODE_EXTRA_CA_CERTS to its own roots: the CA alone.
    assert_eq!(env["NODE_EXTRA_CA_CERTS"], "/ca/ca.pem");
    assert_eq!(env.len(), 4);
}

#[test]
fn the_default_directory_follows_xdg() {
    let os = |s: &str| Some(std::ffi::OsString::from(s));
    assert_eq!(
        default_dir_in(os("/data"), os("/home/u")),
        Some(PathBuf::from("/data/stateless-ws-local"))
    );
    // Unset, empty or relative XDG_DATA_HOME: the XDG default under HOME.
    for xdg in [None, os(""), os("relative/dir")] {
        assert_eq!(
            default_dir_in(xdg, os("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/stateless-ws-local"))
        );
    }
    assert_eq!(default_dir_in(None, None), None);
    assert_eq!(default_dir_in(os(""), os("")), None);
}

#[test]
fn a_host_that_cannot_be_a_certificate_name_is_an_issue_error() {
    let tmp = TempDir::new("names");
    let ca = LocalCa::open_or_create(&tmp.0).unwrap();
    let error = ca
        .server_config(&["bad host\u{e9}".to_owned()])
        .unwrap_err();
    assert!(matches!(error, CaError::Issue(_)), "{error:?}");
}
