//! Kafka → client: live delivery (the [`router::Router`] fans tailed records out to per-client
//! [`mailbox::Mailbox`]es) and offline delivery ([`catchup`] reads a resumed session's topics
//! back from its cursors). Both decode the raw records `kafka/` hands them and make the same
//! per-subscriber decisions ([`decision`]).
//!
//! Imports go one way: `decision` ← `mailbox` ← `router`, and `decision` ← `catchup`; the
//! mailbox does not know the router, nor the router the catch-up.

pub(crate) mod catchup;
mod decision;
pub(crate) mod mailbox;
pub(crate) mod router;

pub(crate) use decision::{delivered_qos, Delivery, Origin};
