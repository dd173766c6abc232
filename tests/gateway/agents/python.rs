//! The Python worker library (`assets/workers/turnwatch_worker.py`) through the gateway, and
//! its OpenAI-compatible example against the fake endpoint of [`super::openai`].

use serde_json::Value;
use turnwatch::config::AgentConfig;

use super::{cancel, next_output, openai, pieces, wait_lines};
use crate::harness::{TestGateway, assert_completed, assert_failed, config, worker};

/// An agent running this Python program (the worker library is importable as
/// `turnwatch_worker`).
fn python(script: &str) -> AgentConfig {
    let lib = workers_dir();
    let program =
        format!("import sys; sys.path.insert(0, {lib:?})\nimport turnwatch_worker as tw\n{script}");
    let mut a = worker(&[]);
    a.command = vec!["python3".into(), "-c".into(), program];
    no_bytecode(&mut a);
    a
}

/// Keeps Python from writing `__pycache__/` into the repository's `assets/workers`.
fn no_bytecode(agent: &mut AgentConfig) {
    agent
        .env
        .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
}

fn workers_dir() -> String {
    format!("{}/assets/workers", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn python_library_streams_replies_and_fails_on_an_exception() {
    let script = r#"
def handle(turn):
    if turn.message == "boom":
        raise ValueError("the model is not loaded")
    if turn.message == "whole":
        return "all at once"
    turn.status("thinking")
    for word in turn.message.split():
        yield word + " "
tw.run(handle)
"#;
    let gw = TestGateway::start(config(vec![("py", python(script))])).await;
    let (s, _, events) = gw.turn("py", "hello from python").await;
    assert_eq!(assert_completed(&events), "hello from python ");
    assert_eq!(pieces(&events), ["hello ", "from ", "python "]);
    assert!(events.iter().any(|e| e.event == "status"), "{events:?}");

    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "boom").await;
    let err = assert_failed(&r.until_complete(&turn).await, "agent_error");
    let sentence = err["error"].as_str().unwrap();
    assert!(
        sentence.contains("ValueError: the model is not loaded"),
        "{err}"
    );
    let turn = gw.post(&s, "whole").await;
    assert_eq!(
        assert_completed(&r.until_complete(&turn).await),
        "all at once"
    );
    assert_eq!(
        gw.worker_rows(&s).await.len(),
        1,
        "one worker served all three"
    );
    gw.stop().await;
}

#[tokio::test]
async fn python_handler_sees_the_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("cancelled");
    let script = format!(
        r#"
def handle(turn):
    if turn.message == "quick":
        return "quick reply"
    yield "working"
    while not turn.wait(0.05):
        pass
    open({marker:?}, "w").write("seen " + turn.id + "\n")
tw.run(handle)
"#,
        marker = marker.to_str().unwrap()
    );
    let gw = TestGateway::start(config(vec![("py", python(&script))])).await;
    let s = gw.session("py").await;
    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "work until told").await;
    assert_eq!(next_output(&mut r).await, "working");
    cancel(&gw, &turn).await;
    assert_failed(&r.until_complete(&turn).await, "cancelled_by_operator");
    let seen = wait_lines(&marker, 1).await;
    assert_eq!(seen, [format!("seen {turn}")]);
    let turn = gw.post(&s, "quick").await;
    assert_eq!(
        assert_completed(&r.until_complete(&turn).await),
        "quick reply"
    );
    gw.stop().await;
}

#[tokio::test]
async fn openai_example_streams_from_a_compatible_endpoint() {
    let server = openai::FakeServer::start(&["Hel", "lo", " there"]).await;
    let mut agent = worker(&[]);
    agent.command = vec![
        "python3".into(),
        format!("{}/openai_agent.py", workers_dir()),
    ];
    no_bytecode(&mut agent);
    agent
        .env
        .insert("OPENAI_BASE_URL".into(), format!("{}/v1", server.url));
    agent.env.insert("OPENAI_API_KEY".into(), "sk-test".into());
    agent.env.insert("OPENAI_MODEL".into(), "tiny-model".into());
    let gw = TestGateway::start(config(vec![("openai", agent)])).await;
    let (s, _, events) = gw.turn("openai", "say hello").await;
    assert_eq!(assert_completed(&events), "Hello there");
    assert_eq!(pieces(&events), ["Hel", "lo", " there"]);

    let mut r = gw.open(&s, None).await;
    let turn = gw.post(&s, "and again").await;
    assert_eq!(
        assert_completed(&r.until_complete(&turn).await),
        "Hello there"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer sk-test"));
    let body: &Value = &requests[1].body;
    assert_eq!(body["model"], "tiny-model");
    assert_eq!(body["stream"], true);
    // The second request carries the conversation so far.
    let said: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("user", "say hello"),
            ("assistant", "Hello there"),
            ("user", "and again")
        ]
    );
    gw.stop().await;
}
