//! Worker processes the gateway must survive or outlive: workers die with a `SIGKILL`ed
//! gateway (even after its runtime sat idle), a restart kills the workers it finds still
//! running and never a reused pid, no token secret reaches a worker, and bytes that are not
//! UTF-8 (or far too many) on a worker's stdout or stderr do not break the gateway.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tokio::process::{Child, Command};
use turnwatch::api::WorkerState;
use turnwatch::api::admin::WorkerDetail;
use turnwatch::client::Client;
use turnwatch::supervisor::procinfo;

use crate::harness::{
    BIN, Backend, Data, GUARD, TestGateway, assert_completed, config, gateway_args, gateway_child,
    on_both, worker,
};

// What the store records and recovers runs on both backends; how processes die with their
// gateway, and what reaches a worker's environment, is the same whatever the store.
on_both!(
    a_gone_workers_leftover_children_are_killed_at_restart,
    restart_kills_surviving_workers_and_spares_reused_pids,
    invalid_utf8_from_a_worker_is_rejected_not_fatal,
    a_huge_stderr_line_keeps_the_tail_bounded,
    an_idle_worker_yields_its_slot,
);

/// `SIGKILL`s these process groups when dropped, so a failing test leaves nothing behind.
pub struct Reaper(pub Vec<u32>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|p| procinfo::is_running(**p)) {
            let pid = nix::unistd::Pid::from_raw(*pid as i32);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Waits (guarded) until `pid` is gone or a zombie (dead, waiting for its new parent).
async fn wait_dead(pid: u32) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while procinfo::is_running(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} is still running"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts `turnwatch gateway` as a real process on this data with this config text and extra
/// environment; returns it and its URL once it says it listens.
async fn gateway_process(data: &Data, toml: &str, env: &[(&str, &str)]) -> (Child, String) {
    let conf = data.dir.path().join("turnwatch.toml");
    std::fs::write(&conf, toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(gateway_args("127.0.0.1:0", &data.url, &conf))
        .envs(env.iter().copied());
    gateway_child(cmd).await
}

/// One completed turn on a new session of `agent`; returns the reply's final text.
async fn one_turn(client: &Client, agent: &str, content: &str) -> String {
    let req = turnwatch::api::CreateSession {
        agent_id: Some(agent.into()),
        ..Default::default()
    };
    let s = client.create_session(&req).await.unwrap();
    let mut stream = client.events(&s.agent_id, &s.token, None).await.unwrap();
    let turn = client
        .post_message(&s.agent_id, &s.token, content, None)
        .await
        .unwrap()
        .turn_id;
    let mut events = Vec::new();
    loop {
        let ev = tokio::time::timeout(GUARD, futures::StreamExt::next(&mut stream))
            .await
            .expect("stream went silent")
            .expect("stream ended")
            .unwrap();
        let done = ev.event == "complete" && ev.data["turnId"] == turn.as_str();
        if ev.event != "ping" && ev.data["turnId"] == turn.as_str() {
            events.push(ev);
        }
        if done {
            assert_eq!(
                events.last().map(|e| &e.data["status"]),
                Some(&serde_json::json!("completed")),
                "{events:?}"
            );
            return assert_completed(&events);
        }
    }
}

/// Item 1: a worker that ignores stdin EOF and `SIGTERM` (one of them `SIGSTOP`ped) dies with
/// its `SIGKILL`ed gateway, including one spawned after the gateway's runtime sat idle for longer than tokio keeps an
/// idle blocking thread (10 s): the kernel's parent-death signal follows the forking thread.
#[tokio::test]
async fn workers_die_with_a_sigkilled_gateway_even_after_idle() {
    let data = Data::new(Backend::Sqlite).await;
    let stubborn = format!("trap '' TERM; exec {BIN} worker --mode echo --ignore-eof");
    let toml = format!(
        "[gateway]\ndefault_agent = \"stubborn\"\n[agents.stubborn]\ncommand = [\"sh\", \"-c\", {stubborn:?}]\n"
    );
    let (mut gateway, url) = gateway_process(&data, &toml, &[]).await;
    let client = Client::new(&url, None);
    assert_eq!(one_turn(&client, "stubborn", "first").await, "first");
    tokio::time::sleep(Duration::from_secs(11)).await; // every idle blocking thread has exited
    assert_eq!(one_turn(&client, "stubborn", "second").await, "second");
    let db = data.db().await;
    let pids = db
        .ints("SELECT pid FROM workers WHERE exited_at IS NULL")
        .await;
    assert_eq!(pids.len(), 2, "two live workers");
    let _reaper = Reaper(pids.iter().map(|p| *p as u32).collect());
    for pid in &pids {
        assert!(procinfo::is_running(*pid as u32));
    }
    // A stopped worker cannot act on anything; only the kernel's SIGKILL still ends it.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    gateway.kill().await.unwrap(); // SIGKILL: no graceful stop, no stdin-close courtesy
    for pid in pids {
        wait_dead(pid as u32).await;
    }
}

/// Item 1: the kernel's kill-with-parent reaches only the worker, not the processes it started;
/// at the restart, what is left of a gone worker's process group is killed.
async fn a_gone_workers_leftover_children_are_killed_at_restart(b: Backend) {
    let data = Data::new(b).await;
    let child_file = data.dir.path().join("child.pid");
    let script = format!(
        "sleep 300 & echo $! > {}; exec {BIN} worker --mode echo",
        child_file.display()
    );
    let toml = format!(
        "[gateway]\ndefault_agent = \"parent\"\n[agents.parent]\ncommand = [\"sh\", \"-c\", {script:?}]\n"
    );
    let (mut gateway, url) = gateway_process(&data, &toml, &[]).await;
    assert_eq!(
        one_turn(&Client::new(&url, None), "parent", "hi").await,
        "hi"
    );
    let child: u32 = std::fs::read_to_string(&child_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let db = data.db().await;
    let worker = db
        .int("SELECT pid FROM workers WHERE exited_at IS NULL", &[])
        .await;
    let _reaper = Reaper(vec![worker as u32, child]);
    gateway.kill().await.unwrap();
    wait_dead(worker as u32).await;
    assert!(
        procinfo::is_running(child),
        "the worker's child outlived it"
    );
    let (_restarted, _) = gateway_process(&data, &toml, &[]).await;
    wait_dead(child).await;
    let sql = format!("SELECT exit_reason FROM workers WHERE pid = {worker}");
    let reason = db.text(&sql, &[]).await;
    assert_eq!(reason.as_deref(), Some("gone_at_recovery"));
}

/// Spawns `sleep 60` in its own process group.
fn sleeper() -> Child {
    Command::new("sleep")
        .arg("60")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Item 1: at start-up the gateway kills the group of a worker the store records as live when
/// that pid is still the same process (a `SIGSTOP`ped one too), and spares a pid that now
/// belongs to another process; each exit says which it was.
async fn restart_kills_surviving_workers_and_spares_reused_pids(b: Backend) {
    let data = Data::new(b).await;
    drop(turnwatch::store::open(&data.url).await.unwrap()); // the schema
    let mut survivor = sleeper();
    let mut stranger = sleeper();
    let (survivor_pid, stranger_pid) = (survivor.id().unwrap(), stranger.id().unwrap());
    let _reaper = Reaper(vec![survivor_pid, stranger_pid]);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(survivor_pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let (host, boot) = procinfo::host();
    let db = data.db().await;
    for (worker, pid, ticks) in [
        (
            "w-survivor",
            survivor_pid,
            procinfo::start_ticks(survivor_pid).unwrap(),
        ),
        // The recorded worker is long gone; its pid now belongs to another process.
        (
            "w-reused",
            stranger_pid,
            procinfo::start_ticks(stranger_pid).unwrap() + 1,
        ),
    ] {
        let sql = format!(
            "INSERT INTO workers (worker_id, generation, pid, agent_id, session_id, state, \
             started_at, host, boot_id, start_ticks) \
             VALUES ($1, 1, {pid}, 'echo', 's-gone', 'busy', 0, $2, $3, {ticks})"
        );
        db.execute(&sql, &[worker, host.as_str(), boot.as_str()])
            .await;
    }

    let gw = TestGateway::start_on(config(vec![("echo", worker(&[]))]), data).await;
    let status = tokio::time::timeout(GUARD, survivor.wait())
        .await
        .expect("the surviving worker was killed")
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        procinfo::is_running(stranger_pid),
        "a reused pid is never killed"
    );
    for (id, reason, intentional, signal) in [
        ("w-survivor", "killed_at_recovery", true, Some("SIGKILL")),
        ("w-reused", "gone_at_recovery", false, None),
    ] {
        let d: WorkerDetail = gw
            .client
            .get_json(&format!("/api/v1/admin/workers/{id}"))
            .await
            .unwrap();
        assert_eq!(d.worker.state, WorkerState::Exited);
        assert_eq!(d.worker.exit_reason.as_deref(), Some(reason), "{id}");
        assert_eq!(d.worker.intentional, Some(intentional), "{id}");
        assert_eq!(d.worker.signal.as_deref(), signal, "{id}");
    }
    stranger.kill().await.unwrap();
    gw.stop().await;
}

/// Item 5: a worker's environment holds no token secret (nor anything else of the gateway's
/// beyond the allowlist), but does hold what its agent's `inherit_env` names.
#[tokio::test]
async fn no_token_secret_reaches_a_worker() {
    let data = Data::new(Backend::Sqlite).await;
    let secret_var = format!("TW_SECRET_{}", std::process::id());
    let toml = format!(
        "[gateway]\ndefault_agent = \"peek\"\n\
         [agents.peek]\ncommand = [\"{BIN}\", \"worker\", \"--echo-env\", \"{secret_var}\"]\n\
         [agents.stray]\ncommand = [\"{BIN}\", \"worker\", \"--echo-env\", \"TW_STRAY\"]\n\
         [agents.named]\ncommand = [\"{BIN}\", \"worker\", \"--echo-env\", \"TW_NAMED\"]\n\
         inherit_env = [\"TW_NAMED\"]\n\
         [agents.home]\ncommand = [\"{BIN}\", \"worker\", \"--echo-env\", \"HOME\"]\n\
         [[tokens]]\nname = \"oncall\"\nsecret_env = \"{secret_var}\"\nrole = \"operator\"\n"
    );
    let env = [
        (secret_var.as_str(), "s3cret-operator-token"),
        ("TW_STRAY", "stray"),
        ("TW_NAMED", "named"),
        ("HOME", "/home/tw"),
    ];
    let (_gateway, url) = gateway_process(&data, &toml, &env).await;
    let client = Client::new(&url, Some("s3cret-operator-token".into()));
    assert_eq!(
        one_turn(&client, "peek", "x").await,
        format!("{secret_var} unset")
    );
    assert_eq!(one_turn(&client, "stray", "x").await, "TW_STRAY unset");
    assert_eq!(one_turn(&client, "named", "x").await, "TW_NAMED=named");
    assert_eq!(one_turn(&client, "home", "x").await, "HOME=/home/tw");
}

/// Item 5: a worker runs as the gateway's user, so it could read the gateway's own
/// environment (token secrets included) from `/proc/$PPID/environ`, unless the gateway is
/// non-dumpable. Run as `nobody` (root may read anything): needs root to switch users.
#[tokio::test]
async fn a_worker_cannot_read_its_gateways_environment() {
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if uid != 0 {
        eprintln!("skipped: running the gateway as `nobody` needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let var = format!("TW_PEEK_SECRET_{}", std::process::id());
    let script = format!(
        "PEEK=$(tr '\\0' '\\n' < /proc/$PPID/environ 2>/dev/null | grep -c {var}); \
         export PEEK; exec {BIN} worker --echo-env PEEK"
    );
    let toml = format!(
        "[gateway]\ndefault_agent = \"peek\"\n[agents.peek]\ncommand = [\"sh\", \"-c\", {script:?}]\n\
         [[tokens]]\nname = \"oncall\"\nsecret_env = \"{var}\"\nrole = \"operator\"\n"
    );
    let conf = dir.path().join("turnwatch.toml");
    std::fs::write(&conf, toml).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(gateway_args("127.0.0.1:0", &db_url, &conf))
        .env(&var, "s3cret-operator-token");
    let (mut child, url) = gateway_child(cmd).await;
    let client = Client::new(&url, Some("s3cret-operator-token".into()));
    assert_eq!(
        one_turn(&client, "peek", "x").await,
        "PEEK=0",
        "the worker found the secret in its gateway's environment"
    );
    child.kill().await.unwrap();
}

/// Item 3: a stdout line that is not UTF-8 is a recorded rejection and reading goes on; stderr
/// that is not UTF-8 is kept lossily and the worker is not broken by it.
async fn invalid_utf8_from_a_worker_is_rejected_not_fatal(b: Backend) {
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "bytes",
            worker(&["--mode", "echo", "--invalid-utf8"]),
        )]),
    )
    .await;
    let (s, _, events) = gw.turn("bytes", "still here").await;
    assert_eq!(assert_completed(&events), "still here");
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "and again").await;
    assert_eq!(
        assert_completed(&r.until_complete(&turn).await),
        "and again"
    );
    let rejected = gw.output_rows("rejected").await;
    assert_eq!(
        rejected
            .iter()
            .filter(|(_, reason)| reason == "not valid UTF-8")
            .count(),
        2,
        "{rejected:?}"
    );
    let rows = gw.worker_rows(&s).await;
    assert_eq!(rows.len(), 1, "one worker served both turns: {rows:?}");
    assert_ne!(rows[0].state, WorkerState::Exited, "{rows:?}");
    let d: WorkerDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/workers/{}", rows[0].worker_id))
        .await
        .unwrap();
    assert!(
        d.stderr_tail
            .iter()
            .any(|l| l == "stderr \u{fffd}\u{fffd} not UTF-8")
            && d.stderr_tail
                .iter()
                .any(|l| l.contains("wrote invalid UTF-8")),
        "{:?}",
        d.stderr_tail
    );
    gw.stop().await;
}

/// Item 3: an 8 MB stderr line costs the gateway a bounded tail (live and as recorded).
async fn a_huge_stderr_line_keeps_the_tail_bounded(b: Backend) {
    const BOUND: usize = 64 * 1024 + 200; // the tail's bytes, plus its newlines
    let gw = TestGateway::start_with(
        b,
        config(vec![(
            "loud",
            worker(&["--mode", "echo", "--stderr-bytes", "8000000"]),
        )]),
    )
    .await;
    let (s, _, events) = gw.turn("loud", "hi").await;
    assert_eq!(assert_completed(&events), "hi");
    let rows = gw.worker_rows(&s).await;
    let d: WorkerDetail = gw
        .client
        .get_json(&format!("/api/v1/admin/workers/{}", rows[0].worker_id))
        .await
        .unwrap();
    let live: usize = d.stderr_tail.iter().map(|l| l.len() + 1).sum();
    assert!(live <= BOUND, "live stderr tail of {live} bytes");
    assert!(
        d.stderr_tail.iter().any(|l| l.ends_with("more bytes)")),
        "the cut is said"
    );
    let w = &rows[0];
    gw.client
        .post_json(
            &format!("/api/v1/admin/workers/{}/kill", w.worker_id),
            &serde_json::json!({ "generation": w.generation, "pid": w.pid, "reason": "test" }),
        )
        .await
        .unwrap();
    gw.wait_workers(&s, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    let db = gw.db().await;
    let recorded = db
        .text("SELECT stderr_tail FROM workers", &[])
        .await
        .unwrap();
    assert!(recorded.len() <= BOUND, "recorded {} bytes", recorded.len());
    assert!(recorded.contains("more bytes)"), "the cut is said");
    gw.stop().await;
}

/// Item 12: with one slot and its worker idle, another session's turn evicts that worker
/// (intentionally, reason `evicted`) instead of failing `queue_timeout`, and back again.
async fn an_idle_worker_yields_its_slot(b: Backend) {
    let mut c = config(vec![("echo", worker(&["--mode", "echo"]))]);
    c.gateway.max_workers = 1;
    let gw = TestGateway::start_with(b, c).await;
    let (a, _, events) = gw.turn("echo", "first").await;
    assert_eq!(assert_completed(&events), "first");
    let (b, _, events) = gw.turn("echo", "second").await;
    assert_eq!(assert_completed(&events), "second");
    let rows = gw
        .wait_workers(&a, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(
        (rows[0].reason.as_deref(), rows[0].intentional),
        (Some("evicted"), Some(true))
    );
    let mut r = gw.open(&a, None).await;
    let turn = gw.post(&a, "third").await;
    assert_eq!(assert_completed(&r.until_complete(&turn).await), "third");
    let rows = gw
        .wait_workers(&b, |r| r.iter().all(|w| w.state == WorkerState::Exited))
        .await;
    assert_eq!(rows[0].reason.as_deref(), Some("evicted"));
    gw.stop().await;
}
