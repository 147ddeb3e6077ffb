//! The built host binary, spoken to over pipes the way a browser does.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::{json, Value};

mod common;
use common::{frame, HostProcess, CAP, CHROME_ORIGIN, HOST};

#[test]
fn version_then_end_of_input_exits_zero() {
    let mut host = HostProcess::spawn(&[]);
    host.assert_version_works("v1");
    host.close_stdin();
    assert_eq!(host.recv(), None);
    assert_eq!(host.wait().code(), Some(0));
}

#[test]
fn pipelined_requests_are_answered_with_their_ids() {
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let mut batch = Vec::new();
    let ids: Vec<Value> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                json!(i)
            } else {
                json!(format!("req-{i}"))
            }
        })
        .collect();
    for id in &ids {
        batch.extend(frame(
            json!({"id": id, "command": "version"})
                .to_string()
                .as_bytes(),
        ));
    }
    host.write_raw(&batch);
    host.close_stdin();
    let mut answered = Vec::new();
    while let Some(reply) = host.recv() {
        assert_eq!(reply["result"]["protocol"], 1);
        answered.push(reply["id"].clone());
    }
    let mut expected = ids.iter().map(Value::to_string).collect::<Vec<_>>();
    let mut got = answered.iter().map(Value::to_string).collect::<Vec<_>>();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(host.wait().code(), Some(0));
}

#[test]
fn every_recoverable_bad_input_gets_its_code_and_the_host_keeps_serving() {
    let cases: Vec<(&str, Vec<u8>, &str, Value)> = vec![
        (
            "invalid utf-8",
            b"{\"id\":1,\"command\":\"\xc3\x28\"}".to_vec(),
            "invalid-json",
            Value::Null,
        ),
        (
            "invalid json",
            b"{\"id\":1,\"command\":".to_vec(),
            "invalid-json",
            Value::Null,
        ),
        ("zero length", Vec::new(), "invalid-json", Value::Null),
        (
            "not an object",
            b"[\"version\"]".to_vec(),
            "invalid-request",
            Value::Null,
        ),
        (
            "a bare string",
            b"\"version\"".to_vec(),
            "invalid-request",
            Value::Null,
        ),
        (
            "missing id",
            br#"{"command":"version"}"#.to_vec(),
            "invalid-request",
            Value::Null,
        ),
        (
            "null id",
            br#"{"id":null,"command":"version"}"#.to_vec(),
            "invalid-request",
            Value::Null,
        ),
        (
            "object id",
            br#"{"id":{},"command":"version"}"#.to_vec(),
            "invalid-request",
            Value::Null,
        ),
        (
            "missing command",
            br#"{"id":"m"}"#.to_vec(),
            "invalid-request",
            json!("m"),
        ),
        (
            "numeric command",
            br#"{"id":9,"command":9}"#.to_vec(),
            "invalid-request",
            json!(9),
        ),
        (
            "array arguments",
            br#"{"id":"a","command":"version","arguments":[]}"#.to_vec(),
            "invalid-request",
            json!("a"),
        ),
        (
            "unknown command",
            br#"{"id":"u","command":"format-card"}"#.to_vec(),
            "unknown-command",
            json!("u"),
        ),
    ];
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    for (i, (name, body, code, id)) in cases.into_iter().enumerate() {
        host.write_raw(&frame(&body));
        let reply = host.recv().unwrap_or_else(|| panic!("{name}: no reply"));
        assert_eq!(reply["error"]["code"], code, "{name}: {reply}");
        assert_eq!(reply["id"], id, "{name}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert!(reply.get("result").is_none(), "{name}");
        host.assert_version_works(&format!("after-{i}"));
    }
    host.close_stdin();
    assert_eq!(host.wait().code(), Some(0));
}

#[test]
fn a_frame_of_exactly_the_cap_is_served() {
    let mut host = HostProcess::spawn(&[]);
    let mut body = br#"{"id":"cap","command":"version"}"#.to_vec();
    body.resize(CAP, b' ');
    host.write_raw(&frame(&body));
    let reply = host.recv().unwrap();
    assert_eq!(reply["id"], "cap");
    assert_eq!(reply["result"]["protocol"], 1);
    host.assert_version_works("after-cap");
}

#[test]
fn a_length_over_the_cap_is_answered_then_the_host_exits_without_reading_further() {
    let mut host = HostProcess::spawn(&[]);
    host.assert_version_works("before");
    // Announce cap+1 bytes, then (as if resynchronising) a perfectly good request.
    let mut bytes = ((CAP + 1) as u32).to_ne_bytes().to_vec();
    bytes.extend(frame(br#"{"id":"smuggled","command":"version"}"#));
    host.write_raw(&bytes);
    let reply = host.recv().unwrap();
    assert_eq!(reply["error"]["code"], "message-too-large", "{reply}");
    assert_eq!(reply["id"], Value::Null);
    assert_eq!(reply["error"]["limit"], CAP);
    assert_eq!(
        host.recv(),
        None,
        "nothing after the oversized frame is read"
    );
    let status = host.wait();
    assert!(!status.success(), "{status:?}");
}

#[test]
fn a_truncated_frame_ends_the_host_with_a_failure() {
    let mut host = HostProcess::spawn(&[]);
    host.assert_version_works("before");
    let whole = frame(br#"{"id":"cut","command":"version"}"#);
    host.write_raw(&whole[..whole.len() - 5]);
    host.close_stdin();
    assert_eq!(host.recv(), None);
    let status = host.wait();
    assert!(!status.success(), "{status:?}");
    assert!(
        host.log_text().contains("inside a frame"),
        "the truncation is logged"
    );
}

#[test]
fn quit_replies_then_exits_zero_while_stdin_stays_open() {
    let mut host = HostProcess::spawn(&[]);
    host.send(&json!({"id": 5, "command": "quit"}));
    let reply = host.recv().unwrap();
    assert_eq!(reply, json!({"id": 5, "result": {}}));
    assert_eq!(host.wait().code(), Some(0));
}

#[test]
fn chrome_style_arguments_are_accepted_and_the_caller_remembered() {
    for args in [
        vec![CHROME_ORIGIN],
        vec![CHROME_ORIGIN, "--parent-window=0"],
    ] {
        let mut host = HostProcess::spawn(&args);
        host.assert_version_works("chrome");
        host.close_stdin();
        assert_eq!(host.wait().code(), Some(0));
        assert!(host.log_text().contains("hbgoeppihilglplcjaehcplpmmndoigi"));
    }
}

#[test]
fn firefox_style_arguments_are_accepted_and_the_caller_remembered() {
    let mut host = HostProcess::spawn(&[
        "/usr/lib/mozilla/native-messaging-hosts/mil.cacbridge.host.json",
        "cacbridge@cacbridge.mil",
    ]);
    host.assert_version_works("firefox");
    host.close_stdin();
    assert_eq!(host.wait().code(), Some(0));
    assert!(host
        .log_text()
        .contains("firefox extension cacbridge@cacbridge.mil"));
}

#[test]
fn request_bodies_never_reach_the_log() {
    const SECRET: &str = "97531864";
    let mut host = HostProcess::spawn_with_log_level(&[CHROME_ORIGIN], "trace");
    host.send(&json!({"id": 1, "command": "authenticate", "arguments": {"pin": SECRET}}));
    assert_eq!(host.recv().unwrap()["error"]["code"], "invalid-argument");
    host.send(&json!({"id": 4, "command": "frobnicate", "arguments": {"pin": SECRET}}));
    assert_eq!(host.recv().unwrap()["error"]["code"], "unknown-command");
    host.send(&json!({"id": 2, "command": "version", "arguments": {"pin": SECRET}}));
    assert_eq!(host.recv().unwrap()["id"], 2);
    host.write_raw(&frame(
        format!(r#"{{"id":3,"command":"sign","arguments":{{"pin":"{SECRET}""#).as_bytes(),
    ));
    assert_eq!(host.recv().unwrap()["error"]["code"], "invalid-json");
    host.close_stdin();
    assert_eq!(host.wait().code(), Some(0));
    let log = host.log_text();
    assert!(log.contains("authenticate"), "the log is written: {log}");
    assert!(!log.contains(SECRET), "PIN leaked into the log:\n{log}");
}

#[test]
fn version_subcommand_prints_for_people() {
    let out = Command::new(HOST).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("cacbridge-host {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );

    let out = Command::new(HOST)
        .args(["version", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["protocol"], 1);
}

#[test]
fn help_shows_the_person_facing_subcommands() {
    let out = Command::new(HOST).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["version", "list", "doctor", "install", "uninstall"] {
        assert!(text.contains(sub), "--help lacks {sub}:\n{text}");
    }
}

#[test]
fn install_writes_manifests_that_point_at_this_host_and_uninstall_removes_them() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(HOST)
        .arg("install")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = std::fs::canonicalize(HOST).unwrap();
    for (file, key, id) in [
        (
            ".config/chromium/NativeMessagingHosts/org.cacbridge.host.json",
            "allowed_origins",
            "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/",
        ),
        (
            ".mozilla/native-messaging-hosts/org.cacbridge.host.json",
            "allowed_extensions",
            "cacbridge@cacbridge.app",
        ),
    ] {
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(home.path().join(file)).unwrap())
                .unwrap();
        assert_eq!(manifest["path"], host.to_str().unwrap(), "{file}");
        assert_eq!(manifest[key], json!([id]), "{file}");
    }
    let doctor = Command::new(HOST)
        .arg("doctor")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("ok    Firefox"));
    let out = Command::new(HOST)
        .arg("uninstall")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!home
        .path()
        .join(".mozilla/native-messaging-hosts/org.cacbridge.host.json")
        .exists());
}

#[test]
fn a_foreign_extension_may_ask_the_version_and_nothing_else() {
    let mut host = HostProcess::spawn(&["chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba/"]);
    host.assert_version_works("v");
    for command in [
        "status",
        "list-certificates",
        "subscribe",
        "authenticate",
        "sign",
    ] {
        host.send(&json!({"id": command, "command": command, "arguments": {}}));
        let reply = host.recv().unwrap();
        assert_eq!(
            reply["error"]["code"], "caller-not-allowed",
            "{command}: {reply}"
        );
    }
    let mut firefox = HostProcess::spawn(&["/x/org.cacbridge.host.json", "evil@example.com"]);
    firefox.send(&json!({"id": 1, "command": "status"}));
    assert_eq!(
        firefox.recv().unwrap()["error"]["code"],
        "caller-not-allowed"
    );
}

#[test]
fn a_browser_shaped_launch_with_an_unreadable_id_fails_closed() {
    // Before, these fell back to "a person's own process" and were trusted with everything.
    for args in [
        &["chrome-extension://evil/"][..],
        &["chrome-extension://HBGOEPPIHILGLPLCJAEHCPLPMMNDOIGI/"],
        &["--parent-window=1234"],
        &["/x/org.cacbridge.host.json", "no-at-sign"],
        &[
            "/x/org.cacbridge.host.json",
            "cacbridge@cacbridge.app extra",
        ],
    ] {
        let mut host = HostProcess::spawn(args);
        host.assert_version_works("v");
        host.send(&json!({"id": 1, "command": "status"}));
        let reply = host.recv().unwrap();
        assert_eq!(
            reply["error"]["code"], "caller-not-allowed",
            "{args:?}: {reply}"
        );
    }
}
