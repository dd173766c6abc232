//! Runs spin on `model.pml`: the protocol holds for two and three replicas, every run of it
//! ends, and spin finds each seeded bug (so the check can fail). Without `spin` the test
//! prints a notice and passes, except under `CI=true`, where it fails.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The model, beside this file.
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/replica/model.pml");

/// What one run of spin must report.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `errors: 0` over the full state space.
    Holds,
    /// An assertion violation whose text contains this.
    Violates(&'static str),
}

/// One run of spin on the model.
struct Check {
    /// What it shows.
    name: &'static str,
    /// `-D` flags for the model.
    defines: &'static [&'static str],
    /// Search for cycles (`-DNP`, `pan -l`: every run ends) instead of safety.
    cycles: bool,
    expect: Expect,
}

/// The first is also checked for coverage ([`assert_covered`]).
const CHECKS: &[Check] = &[
    Check {
        name: "two replicas: (a)-(e) hold",
        defines: &[],
        cycles: false,
        expect: Expect::Holds,
    },
    Check {
        name: "two replicas: every run ends (no cycle)",
        defines: &[],
        cycles: true,
        expect: Expect::Holds,
    },
    Check {
        name: "three replicas: (a)-(e) hold",
        defines: &["-DNR=3"],
        cycles: false,
        expect: Expect::Holds,
    },
    Check {
        name: "with a watchdog, the literal single-process property holds",
        defines: &["-DLITERAL", "-DWATCHDOG"],
        cycles: false,
        expect: Expect::Holds,
    },
    Check {
        name: "without one it does not (a paused replica's worker lives on)",
        defines: &["-DLITERAL"],
        cycles: false,
        expect: Expect::Violates("(wproc[0]+wproc[1])"),
    },
    Check {
        name: "seeded bug: unfenced worker writes break (c1)",
        defines: &["-DBAD_UNFENCED"],
        cycles: false,
        expect: Expect::Violates("(owner==reg[r]))&&(epoch==held[r])"),
    },
    Check {
        name: "seeded bug: an unconditional end breaks (a)",
        defines: &["-DBAD_END_UNCONDITIONAL"],
        cycles: false,
        expect: Expect::Violates("(ends[0]<=1)&&(ends[1]<=1)"),
    },
    Check {
        name: "seeded bug: taking over only sessions with queued turns breaks (b)",
        defines: &["-DBAD_SWEEP_ONLY_QUEUED"],
        cycles: false,
        expect: Expect::Violates("(tstate[0]==3)&&(ends[0]==1)"),
    },
    Check {
        name: "seeded bug: a takeover that fails queued turns breaks (d)",
        defines: &["-DBAD_TAKEOVER_FAILS_QUEUED"],
        cycles: false,
        expect: Expect::Violates("(tstate[t]==2)"),
    },
];

/// Runs `cmd` in `dir`; its stdout, or a panic with everything it said.
fn run(dir: &Path, cmd: &mut Command) -> String {
    let out = cmd
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Generates, compiles and runs the verifier for one check; its report.
fn verify(check: &Check) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    run(
        dir.path(),
        Command::new("spin")
            .arg("-a")
            .args(check.defines)
            .arg(MODEL),
    );
    let mode = if check.cycles { "-DNP" } else { "-DSAFETY" };
    run(
        dir.path(),
        Command::new("cc").args(["-O2", "-w", mode, "-o", "pan", "pan.c"]),
    );
    let mut pan = Command::new(dir.path().join("pan"));
    pan.arg("-m10000");
    if check.cycles {
        pan.arg("-l");
    }
    // pan exits 0 whether or not it found an error; the report says which.
    run(dir.path(), &mut pan)
}

/// The number after `errors: ` in a pan report.
fn errors(report: &str) -> Option<u64> {
    let at = report.find("errors: ")? + "errors: ".len();
    let digits: String = report[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What is wrong with a report, if anything.
fn judge(check: &Check, report: &str) -> Option<String> {
    let Some(found) = errors(report) else {
        return Some("pan gave no verdict".to_owned());
    };
    if report.contains("too small") {
        return Some("the search was cut short".to_owned());
    }
    match check.expect {
        Expect::Holds if found == 0 && report.contains("Full statespace search") => None,
        Expect::Holds => Some(format!("expected no error, found {found}")),
        Expect::Violates(text) => {
            let violated = report
                .lines()
                .any(|l| l.contains("assertion violated") && l.contains(text));
            (!violated).then(|| format!("expected an assertion violation containing `{text}`"))
        }
    }
}

/// Every step of a replica is taken in some run of the two-replica model (only the loop's
/// unreachable end is left), and the final-state checks run: the model is not vacuous.
fn assert_covered(report: &str) {
    let replica: Vec<&str> = report
        .split("unreached in proctype replica")
        .nth(1)
        .and_then(|rest| rest.split("unreached in proctype").next())
        .expect("a coverage report for the replica")
        .lines()
        .filter(|l| l.contains("model.pml:"))
        .collect();
    assert!(
        replica.len() == 1 && replica[0].contains("\"-end-\""),
        "replica steps never taken: {replica:#?}"
    );
    let quiescence = report
        .split("unreached in proctype quiescence")
        .nth(1)
        .expect("a coverage report for the final-state checks");
    assert!(
        quiescence.trim_start().starts_with("(0 of"),
        "final-state checks never ran: {quiescence}"
    );
}

/// Whether spin can run here; panics under `CI=true` if it cannot.
fn spin_available() -> bool {
    if Command::new("spin").arg("-V").output().is_ok() {
        return true;
    }
    let message = "`spin` is not installed, so the replica protocol's model \
                   (src/replica/model.pml) was not checked; install it with `apt-get install spin`";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("notice: {message}");
    false
}

/// The checks run two at a time (the machine may have two cores; the three-replica search
/// holds ~350 MB). All of them take about ten seconds.
#[test]
fn the_replica_protocol_model_holds_and_its_seeded_bugs_are_found() {
    if !spin_available() {
        return;
    }
    let next = Mutex::new(CHECKS.iter().enumerate());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some((i, check)) = next.lock().unwrap().next() else {
                        break;
                    };
                    let report = verify(check);
                    if i == 0 {
                        assert_covered(&report);
                    }
                    if let Some(why) = judge(check, &report) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: {why}\n{report}", check.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
