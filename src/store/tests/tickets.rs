//! Stream tickets on each backend: redeemed once (returned whatever their expiry, for the
//! gateway to judge), then gone; expired ones forgotten by pruning (by the time it runs, not
//! its retention cutoff).

use super::*;
use crate::store::StreamTicket;

conformance!(a_ticket_is_redeemed_once_and_pruned_when_expired);

fn ticket(name: &str, session: Option<&str>, expires_at: i64) -> StreamTicket {
    StreamTicket {
        ticket: name.into(),
        session_id: session.map(sid),
        holder: "holder\0with a NUL".into(),
        expires_at,
    }
}

async fn redeem(store: &Arc<dyn Store>, name: &str) -> Option<StreamTicket> {
    let redeem = Change::RedeemTicket {
        ticket: name.into(),
    };
    match store.apply(Arc::from(vec![redeem])).await.unwrap().results[0].clone() {
        Applied::Ticket(t) => t,
        other => panic!("a redemption applied as {other:?}"),
    }
}

async fn a_ticket_is_redeemed_once_and_pruned_when_expired(fx: Fixture) {
    let store = fx.store;
    let later = crate::clock::now_ms() + 60_000;
    store
        .apply(Arc::from(vec![
            Change::IssueTicket(ticket("t-session", Some("s1"), later)),
            Change::IssueTicket(ticket("t-admin", None, later)),
            Change::IssueTicket(ticket("t-old", None, 1_000)),
        ]))
        .await
        .unwrap();
    assert!(store.is_ticket("t-session").await.unwrap());
    let got = redeem(&store, "t-session").await.unwrap();
    assert!(!store.is_ticket("t-session").await.unwrap());
    assert_eq!(got.session_id, Some(sid("s1")));
    assert_eq!(got.expires_at, later);
    assert!(got.holder.starts_with("holder"), "{got:?}");
    assert_eq!(
        redeem(&store, "t-session").await,
        None,
        "a second redemption"
    );
    assert_eq!(redeem(&store, "nope").await, None);
    // Pruning forgets what expired before its cutoff, and only that.
    store
        .apply(Arc::from(vec![Change::Prune { before: 2_000 }]))
        .await
        .unwrap();
    assert_eq!(redeem(&store, "t-old").await, None);
    let admin = redeem(&store, "t-admin").await.unwrap();
    assert_eq!(admin.session_id, None);
}
