//! Foundation: init, enrollment, mutual TLS, pinning, limits on hostile
//! streams, key files, restart. Real binaries, real QUIC on loopback.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use matterdrop_tests::{Server, User, World, age_v13, bin};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes a server.json pointing at `server` into a home that never enrolled.
fn point_at(user: &User, server: &Server, principal: &str, log_key: &str) {
    let v = serde_json::json!({
        "server": server.addr,
        "fingerprint": server.fingerprint,
        "ca_file": null,
        "principal": principal,
        "log_key": log_key,
    });
    std::fs::write(user.home.join("server.json"), v.to_string()).unwrap();
}

#[test]
fn init_enroll_whoami_round_trip() {
    let w = World::new();
    let me = w.admin.json(&["whoami"]);
    assert_eq!(me["id"], "admin@operator");
    assert_eq!(me["org"], serde_json::Value::Null);
    assert_eq!(me["admin"], true);
    assert!(me["log_key"].as_str().unwrap().starts_with("mdropd-"));

    w.org("firm-a", "firm");
    let alice = User::new(w.tmp.path(), "alice");
    let keys = alice.json(&["keygen"]);
    let invite = w.invite("firm-a");
    let enrolled = alice.json(&[
        "enroll",
        &w.server.addr,
        "--fingerprint",
        &w.server.fingerprint,
        "--invite",
        &invite,
        "--id",
        "alice@firm-a",
        "--name",
        "Alice Attorney",
    ]);
    assert_eq!(enrolled["id"], "alice@firm-a");
    let me = alice.json(&["whoami"]);
    assert_eq!(me["id"], "alice@firm-a");
    assert_eq!(me["org"], "firm-a");
    assert_eq!(me["org_kind"], "firm");
    assert_eq!(me["admin"], false);
    assert_eq!(me["name"], "Alice Attorney");
    assert_eq!(
        me["signing_key_fingerprint"],
        keys["signing_key_fingerprint"]
    );
    assert_eq!(me["age_recipient"], keys["age_recipient"]);

    // Human output names the principal too.
    let text = alice.run(&["whoami"]).ok();
    assert!(text.stdout.contains("alice@firm-a"), "{text:?}");
}

#[test]
fn enroll_with_ca_file_pin() {
    let w = World::new();
    w.org("firm-a", "firm");
    let bob = User::new(w.tmp.path(), "bob");
    bob.json(&["keygen"]);
    let ca = w.server.data.join("tls/ca.pem");
    bob.json(&[
        "enroll",
        &w.server.addr,
        "--ca",
        ca.to_str().unwrap(),
        "--invite",
        &w.invite("firm-a"),
        "--id",
        "bob@firm-a",
        "--name",
        "Bob",
    ]);
    assert_eq!(bob.json(&["whoami"])["id"], "bob@firm-a");
    // A CA that did not sign the server is refused with exit 5.
    let other = tempfile::tempdir().unwrap();
    let other_server = Server::start(&other.path().join("data"));
    let carol = User::new(w.tmp.path(), "carol");
    carol.json(&["keygen"]);
    let wrong_ca = other_server.data.join("tls/ca.pem");
    carol
        .run(&[
            "enroll",
            &w.server.addr,
            "--ca",
            wrong_ca.to_str().unwrap(),
            "--invite",
            &w.invite("firm-a"),
            "--id",
            "carol@firm-a",
            "--name",
            "Carol",
        ])
        .code(5);
}

#[test]
fn bad_invites_are_refused_and_change_nothing() {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");

    // Reused invite.
    let invite = w.invite("firm-a");
    User::new(w.tmp.path(), "a1").enroll(&w.server, &invite, "a1@firm-a");
    let reuser = User::new(w.tmp.path(), "a2");
    reuser.json(&["keygen"]);
    let enroll = |u: &User, invite: &str, id: &str| {
        u.run(&[
            "enroll",
            &w.server.addr,
            "--fingerprint",
            &w.server.fingerprint,
            "--invite",
            invite,
            "--id",
            id,
            "--name",
            "X",
        ])
    };
    let r = enroll(&reuser, &invite, "a2@firm-a").code(3);
    assert!(r.stderr.contains("already been used"), "{r:?}");
    assert!(!reuser.home.join("server.json").exists());
    // The refused key is not enrolled: with a server.json it can do nothing.
    let log_key = w.admin.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    point_at(&reuser, &w.server, "a2@firm-a", &log_key);
    reuser.run(&["whoami"]).code(3);
    std::fs::remove_file(reuser.home.join("server.json")).unwrap();

    // Invite for another organization.
    let lpo_invite = w.invite("lpo-1");
    let r = enroll(&reuser, &lpo_invite, "a2@firm-a").code(3);
    assert!(r.stderr.contains("lpo-1"), "{r:?}");
    // …which stays usable for its own organization.
    enroll(&reuser, &lpo_invite, "a2@lpo-1").ok();
    assert_eq!(reuser.json(&["whoami"])["org"], "lpo-1");

    // Expired invite.
    let short = w
        .admin
        .json(&["admin", "invite", "--org", "firm-a", "--ttl", "1s"])["invite"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(2100));
    let late = User::new(w.tmp.path(), "late");
    late.json(&["keygen"]);
    let r = enroll(&late, &short, "late@firm-a").code(3);
    assert!(r.stderr.contains("expired"), "{r:?}");

    // Unknown invite, and an id already taken.
    let r = enroll(&late, "mdi1_not-a-real-token", "late@firm-a").code(3);
    assert!(r.stderr.contains("not recognised"), "{r:?}");
    let r = enroll(&late, &w.invite("firm-a"), "a1@firm-a").code(1);
    assert!(r.stderr.contains("already taken"), "{r:?}");
    assert!(!late.home.join("server.json").exists());
}

#[test]
fn wrong_fingerprint_exits_5_and_sends_nothing() {
    let w = World::new();
    w.org("firm-a", "firm");
    let invite = w.invite("firm-a");
    let eve = User::new(w.tmp.path(), "eve");
    eve.json(&["keygen"]);
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = eve.run(&[
        "enroll",
        &w.server.addr,
        "--fingerprint",
        wrong,
        "--invite",
        &invite,
        "--id",
        "eve@firm-a",
        "--name",
        "Eve",
    ]);
    let r = r.code(5);
    assert!(
        r.stderr.contains(&w.server.fingerprint),
        "names the fingerprint it saw: {r:?}"
    );
    assert!(
        r.stderr.contains("mdropd init"),
        "says what to check: {r:?}"
    );
    assert!(!eve.home.join("server.json").exists());
    // Nothing reached the server: the invite is still unused.
    eve.run(&[
        "enroll",
        &w.server.addr,
        "--fingerprint",
        &w.server.fingerprint,
        "--invite",
        &invite,
        "--id",
        "eve@firm-a",
        "--name",
        "Eve",
    ])
    .ok();
    // An unreachable server is exit 5 too.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let nobody = User::new(w.tmp.path(), "nobody");
    nobody.json(&["keygen"]);
    nobody
        .run(&[
            "enroll",
            &dead,
            "--fingerprint",
            &w.server.fingerprint,
            "--invite",
            "x",
            "--id",
            "n@firm-a",
            "--name",
            "N",
        ])
        .code(5);
}

#[test]
fn unregistered_key_may_only_enroll() {
    let w = World::new();
    w.org("firm-a", "firm");
    let stranger = User::new(w.tmp.path(), "stranger");
    stranger.json(&["keygen"]);
    let log_key = w.admin.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    point_at(&stranger, &w.server, "stranger@firm-a", &log_key);
    for args in [
        &["whoami"][..],
        &["admin", "org", "create", "x", "--kind", "firm"],
        &["admin", "invite", "--org", "firm-a"],
    ] {
        let r = stranger.run(args).code(3);
        assert!(r.stderr.contains("not enrolled"), "{args:?}: {r:?}");
    }
    // Non-admins cannot administer either.
    let alice = w.user("alice@firm-a");
    let r = alice
        .run(&["admin", "org", "create", "x", "--kind", "firm"])
        .code(3);
    assert!(r.stderr.contains("admin"), "{r:?}");
    alice.run(&["admin", "invite", "--org", "firm-a"]).code(3);
    // The org was not created.
    let r = w.admin.run(&["admin", "invite", "--org", "x"]).code(1);
    assert!(r.stderr.contains("does not exist"), "{r:?}");
}

#[test]
fn keygen_files_and_stock_age() {
    let tmp = tempfile::tempdir().unwrap();
    let u = User::new(tmp.path(), "k");
    let out = u.json(&["keygen"]);
    for f in ["identity.txt", "signing-key.pem"] {
        assert_eq!(mode(&u.home.join(f)), 0o600, "{f}");
    }
    let before = std::fs::read(u.home.join("identity.txt")).unwrap();
    let r = u.run(&["keygen"]).code(1);
    assert!(r.stderr.contains("refusing to overwrite"), "{r:?}");
    assert_eq!(std::fs::read(u.home.join("identity.txt")).unwrap(), before);

    // The default key is hybrid (post-quantum), in the format `age-keygen
    // -pq` writes; an age v1.3 implementation this project did not write
    // encrypts to it and decrypts with the identity file.
    let recipient = out["age_recipient"].as_str().unwrap();
    assert!(recipient.starts_with("age1pq1"), "{recipient}");
    assert_eq!(out["age_key_type"], "mlkem768x25519");
    let identity = std::fs::read_to_string(u.home.join("identity.txt")).unwrap();
    assert!(
        identity
            .lines()
            .any(|l| l.starts_with("AGE-SECRET-KEY-PQ-1")),
        "no hybrid identity line"
    );
    let plain = tmp.path().join("plain.txt");
    std::fs::write(&plain, b"privileged and confidential\n").unwrap();
    let stock = |cmd: &mut Command, recipient: &str, tag: &str| {
        let enc = tmp.path().join(format!("plain.{tag}.age"));
        let status = cmd
            .args(["-r", recipient, "-o"])
            .arg(&enc)
            .arg(&plain)
            .status()
            .expect("age (tests/run installs it)");
        assert!(status.success(), "{tag}: encrypt");
        enc
    };
    let enc = stock(&mut age_v13(), recipient, "pq");
    let dec = age_v13()
        .arg("-d")
        .arg("-i")
        .arg(u.home.join("identity.txt"))
        .arg(&enc)
        .output()
        .unwrap();
    assert!(dec.status.success(), "{dec:?}");
    assert_eq!(dec.stdout, b"privileged and confidential\n");
    // Debian's age 1.1.1 cannot read hybrid keys: `--classic` makes a key
    // it can.
    let c = User::new(tmp.path(), "classic");
    let out = c.json(&["keygen", "--classic"]);
    let classic = out["age_recipient"].as_str().unwrap();
    assert!(
        classic.starts_with("age1") && !classic.starts_with("age1pq1"),
        "{classic}"
    );
    assert_eq!(out["age_key_type"], "x25519");
    let enc = stock(&mut Command::new("age"), classic, "classic");
    let dec = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(c.home.join("identity.txt"))
        .arg(&enc)
        .output()
        .unwrap();
    assert!(dec.status.success(), "{dec:?}");
    assert_eq!(dec.stdout, b"privileged and confidential\n");

    // The signing key is standard PKCS#8 that openssl reads.
    let pubout = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(u.home.join("signing-key.pem"))
        .output()
        .unwrap();
    assert!(pubout.status.success(), "{pubout:?}");
    assert_eq!(
        String::from_utf8_lossy(&pubout.stdout),
        std::fs::read_to_string(u.home.join("signing-key.pub.pem")).unwrap()
    );
}

#[test]
fn passphrase_protected_keys() {
    let w = World::new();
    w.org("firm-a", "firm");
    let u = User::new(w.tmp.path(), "p");
    let pass = [("MDROP_PASSPHRASE", "correct horse battery staple")];
    u.run_env(&["--json", "keygen", "--passphrase"], &pass).ok();
    for f in ["identity.txt", "signing-key.pem"] {
        assert_eq!(mode(&u.home.join(f)), 0o600, "{f}");
        let text = std::fs::read_to_string(u.home.join(f)).unwrap();
        assert!(
            !text.contains("AGE-SECRET-KEY") && !text.contains("BEGIN PRIVATE KEY"),
            "{f} in clear"
        );
    }
    // openssl opens the encrypted signing key with the passphrase.
    let pubout = Command::new("openssl")
        .args(["pkey", "-pubout", "-passin", "env:MDROP_PASSPHRASE", "-in"])
        .arg(u.home.join("signing-key.pem"))
        .env("MDROP_PASSPHRASE", pass[0].1)
        .output()
        .unwrap();
    assert!(pubout.status.success(), "{pubout:?}");
    let enroll = [
        "enroll",
        &w.server.addr,
        "--fingerprint",
        &w.server.fingerprint,
        "--invite",
        &w.invite("firm-a"),
        "--id",
        "p@firm-a",
        "--name",
        "P",
    ];
    // Without the passphrase (and no terminal) it cannot load its key.
    u.run(&enroll).code(2);
    u.run_env(&enroll, &[("MDROP_PASSPHRASE", "wrong")]).code(1);
    u.run_env(&enroll, &pass).ok();
    let me = u.run_env(&["--json", "whoami"], &pass).ok().json();
    assert_eq!(me["id"], "p@firm-a");
}

#[test]
fn hostile_streams_do_not_hurt_others() {
    use matterdrop_common::proto::{self, ErrorCode};
    use matterdrop_tests::{RawClient, error_code};
    let w = World::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // An unenrolled key: every answer below comes before authentication.
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let c = RawClient::connect_with(&w.server, key).await;
        // Random bytes.
        let garbage: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        let r = c.exchange(&garbage).await;
        assert!(
            matches!(error_code(&r), ErrorCode::TooLarge | ErrorCode::BadRequest),
            "{r:?}"
        );
        // An oversized length prefix: refused before the body is read.
        let r = c.exchange(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
        assert_eq!(error_code(&r), ErrorCode::TooLarge);
        // A well-formed frame of an unknown kind.
        let r = c.exchange(&[0, 0, 0, 2, 0xe7, 0x07]).await;
        assert_eq!(error_code(&r), ErrorCode::UnknownKind, "{r:?}");
        // Trailing bytes after a valid message.
        let r = c.exchange(&[0, 0, 0, 2, 1, 0]).await;
        assert_eq!(error_code(&r), ErrorCode::BadRequest, "{r:?}");
        // A truncated frame.
        let r = c.exchange(&[0, 0, 0, 9, 1]).await;
        assert_eq!(error_code(&r), ErrorCode::BadRequest, "{r:?}");
        // The same connection still gets answers (unknown key: whoami is refused).
        let r = c.request(&proto::ClientRequest::WhoAmI).await;
        assert_eq!(error_code(&r), ErrorCode::Unauthenticated);
        c.close().await;
    });
    // Meanwhile a normal client on another connection is served.
    assert_eq!(w.admin.json(&["whoami"])["id"], "admin@operator");
}

#[test]
fn state_survives_restart_and_shutdown_is_graceful() {
    let mut w = World::new();
    w.org("firm-a", "firm");
    let alice = w.user("alice@firm-a");
    assert!(
        w.server.stop(),
        "SIGTERM should end the server cleanly; log:\n{}",
        w.server.log()
    );
    assert!(
        w.server.log().contains("shutdown complete"),
        "{}",
        w.server.log()
    );
    // The server is down: exit 5.
    alice.run(&["whoami"]).code(5);
    let data = w.server.data.clone();
    let old_fp = w.server.fingerprint.clone();
    let mut restarted = Server::start(&data);
    assert!(
        restarted.invite.is_none(),
        "a restart must not re-initialize"
    );
    assert_eq!(restarted.fingerprint, old_fp);
    // The port changed (port 0); point alice's home at the new address.
    let server_json = alice.home.join("server.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server_json).unwrap()).unwrap();
    v["server"] = restarted.addr.clone().into();
    std::fs::write(&server_json, v.to_string()).unwrap();
    assert_eq!(alice.json(&["whoami"])["id"], "alice@firm-a");
    assert!(restarted.is_running());
    assert!(restarted.stop());
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let u = User::new(tmp.path(), "u");
    u.run(&["no-such-command"]).code(2);
    u.run(&["enroll", "127.0.0.1:1"]).code(2);
    let out = Command::new(bin("mdropd")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn revoked_keys_stop_at_once_and_the_id_can_enroll_a_new_key() {
    use matterdrop_common::proto::{ClientRequest, ErrorCode, ServerResponse};
    use matterdrop_tests::{RawClient, error_code};
    let w = World::new();
    w.org("firm-a", "firm");
    let alice = w.user("alice@firm-a");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open = rt.block_on(RawClient::connect(&w.server, &alice));
    assert!(matches!(
        rt.block_on(open.request(&ClientRequest::WhoAmI)),
        ServerResponse::WhoAmI(_)
    ));
    // Only admins revoke.
    let bob = w.user("bob@firm-a");
    bob.run(&["admin", "revoke", "alice@firm-a"]).code(3);
    assert_eq!(
        w.admin.json(&["admin", "revoke", "alice@firm-a"])["revoked"],
        "alice@firm-a"
    );
    // The open connection's next request is refused, and so is a new one.
    let r = rt.block_on(open.request(&ClientRequest::WhoAmI));
    assert_eq!(error_code(&r), ErrorCode::Unauthenticated);
    rt.block_on(open.close());
    alice.run(&["whoami"]).code(3);
    w.admin.run(&["admin", "revoke", "alice@firm-a"]).code(1);
    // Alice enrolls a new key under the same id with a new invite.
    let fresh = User::new(w.tmp.path(), "alice-new");
    fresh.enroll(&w.server, &w.invite("firm-a"), "alice@firm-a");
    assert_eq!(fresh.json(&["whoami"])["id"], "alice@firm-a");
    alice.run(&["whoami"]).code(3);
    // Bob's id is still taken: only revoked ids can be reused.
    let other = User::new(w.tmp.path(), "bob-2");
    other.json(&["keygen"]);
    other
        .run(&[
            "enroll",
            &w.server.addr,
            "--fingerprint",
            &w.server.fingerprint,
            "--invite",
            &w.invite("firm-a"),
            "--id",
            "bob@firm-a",
            "--name",
            "B",
        ])
        .code(1);
}

#[test]
fn one_key_cannot_take_every_connection() {
    use matterdrop_common::proto::{ClientRequest, ServerResponse};
    use matterdrop_tests::RawClient;
    let w = World::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let mut held = Vec::new();
        for _ in 0..8 {
            let c = RawClient::connect_with(&w.server, key.clone()).await;
            // Each of the first eight is served (unenrolled: refused, but answered).
            assert!(matches!(
                c.request(&ClientRequest::WhoAmI).await,
                ServerResponse::Error(_)
            ));
            held.push(c);
        }
        let ninth = RawClient::connect_with(&w.server, key.clone()).await;
        let refused = match ninth.conn.open_bi().await {
            Err(_) => true,
            Ok((mut send, mut recv)) => {
                let frame = matterdrop_common::proto::encode(&ClientRequest::WhoAmI).unwrap();
                let _ = send.write_all(&frame).await;
                let _ = send.finish();
                recv.read_to_end(1 << 20).await.is_err()
            }
        };
        assert!(refused, "a ninth connection with the same key was served");
        let reason = ninth
            .conn
            .close_reason()
            .map(|r| r.to_string())
            .unwrap_or_default();
        assert!(reason.contains("too many connections"), "{reason}");
        // Closing one frees a slot, once the server has seen the close
        // (a loaded machine may take a while: retry up to 30 s).
        held.pop().unwrap().close().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let again = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let again = RawClient::connect_with(&w.server, key.clone()).await;
            if again.conn.close_reason().is_none() {
                if let Ok((mut send, mut recv)) = again.conn.open_bi().await {
                    let frame = matterdrop_common::proto::encode(&ClientRequest::WhoAmI).unwrap();
                    let _ = send.write_all(&frame).await;
                    let _ = send.finish();
                    if recv.read_to_end(1 << 20).await.is_ok_and(|b| !b.is_empty()) {
                        break again;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the freed slot was never given to a new connection"
            );
        };
        assert!(matches!(
            again.request(&ClientRequest::WhoAmI).await,
            ServerResponse::Error(_)
        ));
    });
    // Other keys are unaffected.
    assert_eq!(w.admin.json(&["whoami"])["id"], "admin@operator");
}

#[test]
fn invites_bound_to_one_id_listed_and_revoked() {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let enroll = |u: &User, invite: &str, id: &str| {
        u.run(&[
            "enroll",
            &w.server.addr,
            "--fingerprint",
            &w.server.fingerprint,
            "--invite",
            invite,
            "--id",
            id,
            "--name",
            "Bob \u{202e}deR",
        ])
    };
    // An invite for bob@lpo-1 enrolls nobody else of lpo-1.
    let minted = w
        .admin
        .json(&["admin", "invite", "--org", "lpo-1", "--for", "bob@lpo-1"]);
    let (token, token_id) = (
        minted["invite"].as_str().unwrap().to_owned(),
        minted["token_id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(minted["for"], "bob@lpo-1");
    assert_eq!(token_id.len(), 12);
    let mallory = User::new(w.tmp.path(), "mallory");
    mallory.json(&["keygen"]);
    let r = enroll(&mallory, &token, "mallory@lpo-1").code(3);
    assert!(
        r.stderr
            .contains("invite is for bob@lpo-1, not mallory@lpo-1"),
        "{r:?}"
    );
    assert!(!mallory.home.join("server.json").exists());
    // --for must name the invite's organization.
    let r = w
        .admin
        .run(&["admin", "invite", "--org", "firm-a", "--for", "bob@lpo-1"])
        .code(2);
    assert!(r.stderr.contains("names organization lpo-1"), "{r:?}");
    let bob = User::new(w.tmp.path(), "bob");
    bob.json(&["keygen"]);
    enroll(&bob, &token, "bob@lpo-1").ok();
    // Bob is enrolled: no second invite for him.
    let r = w
        .admin
        .run(&["admin", "invite", "--org", "lpo-1", "--for", "bob@lpo-1"])
        .code(1);
    assert!(r.stderr.contains("already enrolled"), "{r:?}");

    // An open invite, revoked: refused as revoked, and listed as such.
    let open = w.admin.json(&["admin", "invite", "--org", "lpo-1"]);
    let open_id = open["token_id"].as_str().unwrap().to_owned();
    let revoked = w.admin.json(&["admin", "invite", "revoke", &open_id[..8]]);
    assert_eq!(revoked["token_id"], open_id.as_str());
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let r = enroll(&mallory, open["invite"].as_str().unwrap(), "mallory@lpo-1").code(3);
    assert!(r.stderr.contains("revoked"), "{r:?}");
    // A used invite cannot be revoked; an unknown id is named.
    let r = w
        .admin
        .run(&["admin", "invite", "revoke", &token_id])
        .code(1);
    assert!(r.stderr.contains("already been used"), "{r:?}");
    let r = w
        .admin
        .run(&["admin", "invite", "revoke", "abcdef"])
        .code(1);
    assert!(r.stderr.contains("no invite has id abcdef"), "{r:?}");

    // The admin's lists; the invites never show their tokens.
    let invites = w.admin.json(&["admin", "list", "invites"]);
    let find = |id: &str| {
        invites["invites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["token_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {invites}"))
    };
    assert_eq!(find(&token_id)["used_by"], "bob@lpo-1");
    assert_eq!(find(&token_id)["for"], "bob@lpo-1");
    assert!(find(&open_id)["revoked_at"].is_string());
    let text = w.admin.run(&["admin", "list", "invites"]).ok().stdout;
    assert!(!text.contains(&token) && !text.contains("mdi1_"), "{text}");
    assert!(
        text.contains("used by bob@lpo-1") && text.contains("revoked"),
        "{text}"
    );
    let principals = w.admin.json(&["admin", "list", "principals"]);
    let ids: Vec<&str> = principals["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"bob@lpo-1") && !ids.contains(&"mallory@lpo-1"),
        "{ids:?}"
    );
    // A display name is its user's word: escaped on the terminal.
    let text = w.admin.run(&["admin", "list", "principals"]).ok().stdout;
    assert!(
        text.contains("Bob \\u{202e}deR") && !text.contains('\u{202e}'),
        "{text}"
    );
    let orgs = w.admin.json(&["admin", "list", "orgs"]);
    assert_eq!(orgs["orgs"].as_array().unwrap().len(), 2, "{orgs}");
    // Only admins list or revoke.
    bob.run(&["admin", "list", "principals"]).code(3);
    bob.run(&["admin", "invite", "revoke", &open_id]).code(3);

    // The log names each invite made and revoked by its whole id.
    let bundle = w.tmp.path().join("all.bundle");
    w.admin
        .json(&["audit", "export", "--out", bundle.to_str().unwrap()]);
    let shown = |action: &str| -> Vec<serde_json::Value> {
        w.admin.json(&[
            "audit",
            "show",
            bundle.to_str().unwrap(),
            "--action",
            action,
        ])["entries"]
            .as_array()
            .unwrap()
            .clone()
    };
    let made = shown("invite-create");
    assert!(
        made.iter()
            .any(|e| e["details"]["invite"] == token_id.as_str()
                && e["details"]["for"] == "bob@lpo-1"),
        "{made:?}"
    );
    let revokes = shown("invite-revoke");
    assert!(
        revokes
            .iter()
            .any(|e| e["allowed"] == true && e["details"]["invite"] == open_id.as_str()),
        "{revokes:?}"
    );
    assert!(
        revokes
            .iter()
            .any(|e| e["allowed"] == false && e["principal"] == "bob@lpo-1"),
        "{revokes:?}"
    );
}
