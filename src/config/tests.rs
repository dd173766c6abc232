//! Config parsing and checks: what a file may say, and the errors that name file, line and key.

use super::*;

#[test]
fn example_config_parses() {
    let text = include_str!("../../assets/turnwatch.example.toml");
    let c = Config::parse(text, Path::new("turnwatch.example.toml")).unwrap();
    assert_eq!(c.agents["echo"].stall_timeout, Duration::from_secs(60));
    // The example web client's gateway (README, "Browser clients") lists the page's origins.
    let text = include_str!("../../assets/web/turnwatch.toml");
    let c = Config::parse(text, Path::new("turnwatch.toml")).unwrap();
    assert!(
        c.gateway
            .cors_origins
            .contains(&"http://localhost:8000".to_owned())
    );
    assert_eq!(c.agents.len(), 2);
}

#[test]
fn errors_name_file_line_and_key() {
    let text = "[gateway]\nmax_workers = 4\n\n[agents.echo]\ncommand = [\"x\"]\nstall_timeout = \"soon\"\n";
    let e = Config::parse(text, Path::new("my.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("my.toml"), "{e}");
    assert!(e.contains("line 6"), "{e}");
    assert!(e.contains("stall_timeout"), "{e}");
}

#[test]
fn cors_origins_must_be_origins() {
    for bad in [
        "evil.example",
        "https://x.example/path",
        "ftp://x.example",
        "*",
    ] {
        for key in ["cors_origins", "admin_cors_origins"] {
            let text = format!("[gateway]\n{key} = [\"{bad}\"]\n");
            let e = Config::parse(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("gateway.{key}")), "{bad}: {e}");
        }
    }
    let text = "[gateway]\ncors_origins = [\"https://app.example\", \"http://localhost:3000\"]\n";
    assert!(Config::parse(text, Path::new("c.toml")).is_ok());
}

#[test]
fn a_stream_ticket_lives_at_most_a_minute() {
    for bad in ["0s", "61s", "1h"] {
        let text = format!("[gateway]\nstream_ticket_ttl = \"{bad}\"\n");
        let e = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stream_ticket_ttl") && e.contains("60s"),
            "{bad}: {e}"
        );
    }
    let text = "[gateway]\nstream_ticket_ttl = \"60s\"\n";
    let c = Config::parse(text, Path::new("c.toml")).unwrap();
    assert_eq!(c.gateway.stream_ticket_ttl, super::MAX_TICKET_TTL);
}

#[test]
fn an_agent_may_not_pass_a_token_secret_to_its_workers() {
    let token = "[[tokens]]\nname = \"oncall\"\nsecret_env = \"OPS_SECRET\"\nrole = \"operator\"\n";
    for agent in [
        "inherit_env = [\"HOME\", \"OPS_SECRET\"]",
        "env = { OPS_SECRET = \"x\" }",
    ] {
        let text = format!("[agents.echo]\ncommand = [\"x\"]\n{agent}\n{token}");
        let e = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("agents.echo"), "{e}");
        assert!(e.contains("OPS_SECRET") && e.contains("oncall"), "{e}");
    }
    let text = format!("[agents.echo]\ncommand = [\"x\"]\ninherit_env = [\"OTHER\"]\n{token}");
    let c = Config::parse(&text, Path::new("c.toml")).unwrap();
    assert_eq!(c.agents["echo"].inherit_env, ["OTHER"]);
}

#[test]
fn unknown_default_agent_is_refused() {
    let text = "[gateway]\ndefault_agent = \"nope\"\n";
    let e = Config::parse(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("default_agent"), "{e}");
}

#[test]
fn one_agent_needs_no_default_agent_and_checks_name_their_line() {
    let c = Config::parse("[agents.mine]\ncommand = [\"x\"]\n", Path::new("c.toml")).unwrap();
    assert_eq!(c.gateway.default_agent, "mine");
    let text = "[agents.a]\ncommand = [\"x\"]\n[agents.b]\ncommand = [\"y\"]\n";
    let e = Config::parse(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("one of: a, b"), "{e}");
    let text = "# the gateway\n[gateway]\nlisten = \"127.0.0.1:7420\"\ndefault_agent = \"nope\"\n";
    let e = Config::parse(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 4"), "{e}");
    let text = "[agents.echo]\ncommand = []\n";
    let e = Config::parse(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 2") && e.contains("agents.echo.command"),
        "{e}"
    );
}

#[test]
fn a_public_url_is_the_gateways_root() {
    for bad in [
        "chat.example",
        "ftp://x",
        "https://x.example/#a",
        "https://x.example/lobu",
        "https://x/?q=1",
    ] {
        let text = format!("[gateway]\npublic_url = \"{bad}\"\n");
        let e = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("public_url"), "{bad}: {e}");
    }
    for good in ["https://chat.example", "https://chat.example/gw/"] {
        let text = format!("[gateway]\npublic_url = \"{good}\"\n");
        assert!(Config::parse(&text, Path::new("c.toml")).is_ok(), "{good}");
    }
}
