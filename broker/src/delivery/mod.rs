//! Kafka → client: live delivery (the [`router::Router`] fans tailed records out to per-client
//! [`mailbox::Mailbox`]es), offline delivery ([`catchup`] reads a resumed session's topics
//! back from its cursors) and shared subscriptions ([`share`] spreads a Kafka consumer group's
//! records over the group's members). All decode the raw records `kafka/` hands them and make
//! the same per-subscriber decisions ([`decision`]).
//!
//! Imports go one way: `decision` ← `mailbox` ← `router`, `decision` ← `catchup` and
//! `mailbox` ← `share`; the mailbox does not know the router, nor the router the catch-up or
//! the shares. A delivery carries a share's [`share::Ticket`] to the connection, which settles
//! it.

pub(crate) mod catchup;
mod decision;
pub(crate) mod mailbox;
pub(crate) mod router;
pub(crate) mod share;

pub(crate) use decision::{delivered_qos, Delivery, Origin};
