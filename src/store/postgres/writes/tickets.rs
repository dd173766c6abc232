//! Stream tickets: issued, and redeemed once (as `SQLite`'s writes do them).

use super::{Result, Writes, text};
use crate::ids::SessionId;
use crate::store::rows::{ISSUE_TICKET, REDEEM_TICKET};
use crate::store::{Applied, Change, StreamTicket};

impl Writes<'_> {
    /// [`Change::IssueTicket`] and [`Change::RedeemTicket`].
    pub(super) async fn apply_ticket_write(&mut self, w: &Change) -> Result<Applied> {
        Ok(match w {
            Change::IssueTicket(t) => {
                self.execute(
                    sqlx::query(ISSUE_TICKET)
                        .bind(&t.ticket)
                        .bind(t.session_id.as_ref().map(SessionId::as_str))
                        .bind(text(&t.holder))
                        .bind(t.expires_at),
                )
                .await?;
                Applied::Changed
            }
            Change::RedeemTicket { ticket } => {
                let row: Option<(Option<String>, String, i64)> = sqlx::query_as(REDEEM_TICKET)
                    .bind(text(ticket))
                    .fetch_optional(&mut *self.conn)
                    .await?;
                Applied::Ticket(row.map(|(session_id, holder, expires_at)| StreamTicket {
                    ticket: ticket.clone(),
                    session_id: session_id.map(SessionId),
                    holder,
                    expires_at,
                }))
            }
            _ => Applied::Unchanged,
        })
    }
}
