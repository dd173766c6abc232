//! Stream tickets: issued, and redeemed once.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::ids::SessionId;
use crate::store::rows::{ISSUE_TICKET, REDEEM_TICKET};
use crate::store::{Applied, Change, StreamTicket};

/// [`Change::IssueTicket`] and [`Change::RedeemTicket`].
pub(super) fn apply(conn: &Connection, w: &Change) -> Result<Applied> {
    Ok(match w {
        Change::IssueTicket(t) => {
            conn.prepare_cached(ISSUE_TICKET)?.execute(params![
                &t.ticket,
                t.session_id.as_ref().map(SessionId::as_str),
                &t.holder,
                t.expires_at
            ])?;
            Applied::Changed
        }
        Change::RedeemTicket { ticket } => Applied::Ticket(
            conn.prepare_cached(REDEEM_TICKET)?
                .query_row([ticket], |r| {
                    Ok(StreamTicket {
                        ticket: ticket.clone(),
                        session_id: r.get::<_, Option<String>>(0)?.map(SessionId),
                        holder: r.get(1)?,
                        expires_at: r.get(2)?,
                    })
                })
                .optional()?,
        ),
        _ => Applied::Unchanged,
    })
}
