//! Stream tickets (issued, and redeemed once) and local tokens, as `SQLite`'s writes do them.

use super::{Result, Writes, text};
use crate::ids::SessionId;
use crate::store::rows::{ISSUE_TICKET, MINT_LOCAL_TOKEN, REDEEM_TICKET};
use crate::store::{Applied, Change, StreamTicket};

impl Writes<'_> {
    /// [`Change::IssueTicket`], [`Change::RedeemTicket`] and [`Change::MintLocalToken`].
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
            Change::MintLocalToken { token, client, at } => {
                self.execute(
                    sqlx::query(MINT_LOCAL_TOKEN)
                        .bind(text(token))
                        .bind(text(client))
                        .bind(*at),
                )
                .await?;
                Applied::Changed
            }
            _ => Applied::Unchanged,
        })
    }
}
