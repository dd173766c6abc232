//! `turnwatch chat` against a real `turnwatch gateway` process that is `SIGKILL`ed and
//! restarted on the same port (issue 11 items 9 and 10): the chat always ends.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use turnwatch::client::Client;

use crate::harness::{
    BIN, Backend, Data, GUARD, assert_gone, gateway_args, gateway_child, on_both, stop_child,
};

// A restart on the same data runs on both backends; restoring a backup copies SQLite's files.
on_both!(chat_killed_before_its_first_event_still_ends_with_the_outcome);

/// Starts `turnwatch gateway` on `listen`; returns the process and its URL once it listens.
async fn spawn_gateway(conf: &std::path::Path, db_url: &str, listen: &str) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(gateway_args(listen, db_url, conf));
    gateway_child(cmd).await
}

/// Waits (guarded) for `turnwatch chat` to end; returns its exit status and stderr.
async fn chat_ends(chat: &mut Child, after: &str) -> (std::process::ExitStatus, String) {
    let status = tokio::time::timeout(GUARD, chat.wait()).await;
    if status.is_err() {
        chat.kill().await.unwrap();
    }
    let mut stderr = String::new();
    chat.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let status = status
        .unwrap_or_else(|_| panic!("turnwatch chat hung {after}: {stderr}"))
        .unwrap();
    (status, stderr)
}

/// Item 9: the gateway is `SIGKILL`ed after `turnwatch chat` posted but before any event id
/// reached it; restarted on the same data and port, it fails the turn `gateway_restarted`, and
/// the chat, resuming from where its `connected` said it stood, hears of it and exits 1.
async fn chat_killed_before_its_first_event_still_ends_with_the_outcome(b: Backend) {
    let data = Data::new(b).await;
    let db_url = data.url.clone();
    let conf = data.dir.path().join("turnwatch.toml");
    let toml = format!(
        "[gateway]\ndefault_agent = \"hang\"\n[agents.hang]\ncommand = [\"{BIN}\", \"worker\", \"--mode\", \"hang\"]\n"
    );
    std::fs::write(&conf, toml).unwrap();
    let (mut gw, url) = spawn_gateway(&conf, &db_url, "127.0.0.1:0").await;
    let mut chat = Command::new(BIN)
        .args(["chat", "--url", &url, "wait for me"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The hang worker has the turn and will never say a word: no event id reached the chat.
    let deadline = tokio::time::Instant::now() + GUARD;
    let db = data.db().await;
    let pid = loop {
        let busy = "SELECT pid FROM workers WHERE state = 'busy'";
        if let Some(pid) = db.maybe_int(busy, &[]).await {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn never got a worker"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let events = db.int("SELECT COUNT(*) FROM events", &[]).await;
    assert_eq!(events, 0, "no event id can have reached the chat");
    gw.kill().await.unwrap(); // SIGKILL
    assert_gone(u32::try_from(pid).unwrap()).await; // the worker saw its stdin close and exited
    let listen = url.trim_start_matches("http://").to_owned();
    let (mut gw, _) = spawn_gateway(&conf, &db_url, &listen).await;

    let (status, stderr) = chat_ends(&mut chat, "after the gateway restarted").await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gateway_restarted"), "{stderr}");
    stop_child(&mut gw).await;
}

/// Copies the database files (`gw.db` and its WAL) of a stopped gateway from `from` to `to`,
/// replacing what `to` held: a backup taken, or restored.
fn copy_db(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["gw.db", "gw.db-wal", "gw.db-shm"] {
        let _ = std::fs::remove_file(to.join(name));
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name)).unwrap();
        }
    }
}

/// Item 10: `turnwatch chat` back on a gateway restored from a backup older than its cursor
/// says there is a gap, and ends (the restored gateway does not know its turn) instead of
/// waiting for events the gateway would drop as already seen.
#[tokio::test]
async fn chat_back_on_a_restored_gateway_says_gap_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db_url = format!("sqlite://{}", data.join("gw.db").display());
    let conf = dir.path().join("turnwatch.toml");
    let toml = format!(
        "[gateway]\ndefault_agent = \"slow\"\n[agents.slow]\ncommand = [\"{BIN}\", \"worker\", \"--mode\", \"slow\", \"--deltas\", \"200\", \"--delay-ms\", \"100\"]\n"
    );
    std::fs::write(&conf, toml).unwrap();
    // A session for thread `t`, then a backup of the store with it and no event yet.
    let (mut gw, url) = spawn_gateway(&conf, &db_url, "127.0.0.1:0").await;
    let listen = url.trim_start_matches("http://").to_owned();
    let req = turnwatch::api::CreateSession {
        thread: Some("t".into()),
        ..Default::default()
    };
    Client::new(&url, None).create_session(&req).await.unwrap();
    stop_child(&mut gw).await;
    copy_db(&data, &dir.path().join("backup"));

    let (mut gw, _) = spawn_gateway(&conf, &db_url, &listen).await;
    let mut chat = Command::new(BIN)
        .args(["chat", "--url", &url, "--thread", "t"])
        .arg("a long reply that streams one letter at a time, slowly enough")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    tokio::time::timeout(GUARD, chat.stdout.as_mut().unwrap().read_exact(&mut first))
        .await
        .expect("the reply never started")
        .unwrap();
    let pid = sqlx::query_scalar::<_, i64>("SELECT pid FROM workers WHERE state = 'busy'")
        .fetch_one(&sqlx::SqlitePool::connect(&db_url).await.unwrap())
        .await
        .unwrap();
    gw.kill().await.unwrap(); // SIGKILL, then the backup comes back
    assert_gone(u32::try_from(pid).unwrap()).await;
    copy_db(&dir.path().join("backup"), &data);
    let (mut gw, _) = spawn_gateway(&conf, &db_url, &listen).await;

    let (status, stderr) = chat_ends(&mut chat, "on the restored gateway").await;
    assert!(stderr.contains("gap"), "{stderr}");
    assert!(stderr.contains("no longer knows turn"), "{stderr}");
    assert_eq!(status.code(), Some(2), "{stderr}");
    stop_child(&mut gw).await;
}
