//! Synapse → TURN: a real Synapse (tests/.venv) configured with `turn_shared_secret` mints
//! the credential a Matrix client gets from `GET /_matrix/client/v3/voip/turnServer`, and
//! coturn's `turnutils_uclient` relays with exactly that username/password through the server
//! under test. See tests/py/synapse_turn.py.

use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use switchyard_tests::creds::{rest_password, unix_now};
use switchyard_tests::process::{run_bounded, tail};
use switchyard_tests::server::{ServerOptions, TestServer};
use switchyard_tests::skip::{Need, Skip};
use switchyard_tests::uclient::{Auth, ClientTransport, EchoPeer, Run, parse_totals};
use switchyard_tests::{need, package_dir};

fn synapse_python() -> Need<std::path::PathBuf> {
    let py = package_dir().join(".venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import synapse"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(py)
    } else {
        Err(Skip::new(format!(
            "Synapse not installed in {} (run tests/install-peers.sh)",
            py.display()
        )))
    }
}

#[test]
fn synapse_minted_credentials_relay() {
    let python = need!(synapse_python());
    let mut server = need!(TestServer::start(ServerOptions::default()));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));

    let mut cmd = Command::new(python);
    cmd.arg(package_dir().join("py/synapse_turn.py"))
        .args(["--turn-port", &server.ports.listen.to_string()])
        .args(["--secret", server.secret()])
        .args(["--user", "alice", "--timeout", "90"]);
    let minted = run_bounded(
        &mut cmd,
        Duration::from_secs(100),
        &server.dir.join("synapse.log"),
    );
    let json_line = minted
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "synapse_turn.py printed no JSON:\n{}",
                tail(&minted.output, 40)
            )
        });
    let turn: Value = serde_json::from_str(json_line).expect("JSON from synapse_turn.py");
    assert!(
        minted.success() && turn["error"].is_null(),
        "synapse_turn.py failed ({:?}):\n{}",
        minted.status,
        tail(&minted.output, 40)
    );

    // Synapse's shape: "<unix expiry>:<mxid>", with turn_user_lifetime 1h.
    let username = turn["username"].as_str().expect("username").to_string();
    let password = turn["password"].as_str().expect("password").to_string();
    let (expiry, mxid) = username
        .split_once(':')
        .unwrap_or_else(|| panic!("username {username:?} has no ':'"));
    let expiry: u64 = expiry
        .parse()
        .unwrap_or_else(|_| panic!("username {username:?} does not start with a timestamp"));
    let now = unix_now();
    assert!(
        (now + 3500..=now + 3700).contains(&expiry),
        "expiry {expiry} is not now ({now}) + 1h"
    );
    assert_eq!(mxid, "@alice:localhost");
    assert_eq!(turn["user_id"], "@alice:localhost");
    assert_eq!(turn["ttl"], 3600);
    let udp_uri = format!("turn:127.0.0.1:{}?transport=udp", server.ports.listen);
    assert!(
        turn["uris"]
            .as_array()
            .is_some_and(|u| u.iter().any(|x| x == udp_uri.as_str())),
        "uris {} lack {udp_uri}",
        turn["uris"]
    );
    // The scheme both sides must agree on (Synapse's voip.py, coturn's userdb.c).
    assert_eq!(password, rest_password(server.secret(), &username));

    for transport in [ClientTransport::Udp, ClientTransport::Tcp] {
        let mut run = Run::new(
            server.ports.listen,
            peer.port,
            Auth::Password {
                username: username.clone(),
                password: password.clone(),
            },
        );
        run.transport = transport;
        run.clients = 2;
        let done = need!(run.run(&server.dir, &format!("synapse-{transport:?}")));
        server.assert_alive();
        let context = format!(
            "{} via {transport:?} with Synapse's {username}: uclient exit {:?}\n---- uclient ----\n{}\n---- server ----\n{}",
            server.describe(),
            done.status,
            tail(&done.output, 25),
            server.log_tail(25)
        );
        let totals =
            parse_totals(&done.output).unwrap_or_else(|| panic!("no totals printed: {context}"));
        assert_eq!(
            totals.sent,
            u64::from(run.clients * run.messages),
            "{context}"
        );
        assert_eq!(totals.received, totals.sent, "{context}");
        assert_eq!(totals.lost, 0, "{context}");
        assert!(done.success(), "{context}");
    }
}
