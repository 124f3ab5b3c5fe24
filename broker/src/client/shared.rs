//! The connection's side of shared subscriptions (`$share/{group}/{filter}`, see
//! [`crate::delivery::share`]): joining and leaving the group, and the filters that are not
//! the session's own stream (offline delivery and rewinds leave them out: a shared
//! subscription's position is its group's).

use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Client;
use crate::codec::{reason, SubscriptionOptions};
use crate::delivery::share::{Member, ShareError};
use crate::topic::{parse_shared, SharedFilter};

/// Whether `filter` is a shared subscription (`$share/{group}/{filter}`).
pub(super) fn is_shared(filter: &str) -> bool {
    matches!(parse_shared(filter), Ok(Some(_)))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Subscribes `full` (`$share/{group}/{filter}`, parsed as `shared`, already checked
    /// against the limits and rules); returns its SUBACK reason code (`refuse` maps a refusal
    /// to the client's protocol version). No retained messages are sent for it (MQTT 5 §4.8.2:
    /// retained messages are not sent for a shared subscription).
    pub(super) async fn subscribe_shared(
        &mut self,
        full: &str,
        shared: SharedFilter<'_>,
        options: SubscriptionOptions,
        id: Option<u32>,
        refuse: impl Fn(u8) -> u8,
    ) -> u8 {
        match self.join_share(shared, options, id).await {
            Ok(()) => {
                self.subscriptions.insert(full.into(), (options, id));
                options.qos as u8
            }
            Err(ShareError::Full(_)) => {
                self.broker.metrics.limits_exceeded.inc();
                refuse(reason::QUOTA_EXCEEDED)
            }
            Err(e) => {
                tracing::warn!(client = %self.client_id, filter = %full, error = %e, "cannot join the shared subscription");
                reason::UNSPECIFIED_ERROR
            }
        }
    }

    /// Makes this connection a member of `shared`, reading the Kafka topics the mapping in
    /// force gives its filter. The returned future holds no reference to the connection (it
    /// is not `Sync`).
    pub(super) fn join_share(
        &self,
        shared: SharedFilter<'_>,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> impl Future<Output = Result<(), ShareError>> + Send + 'static {
        let topics = self.broker.publisher.mapping().kafka_topics_for_filter_cached(shared.filter).to_vec();
        let member = Member {
            session: self.session,
            mailbox: self.mailbox.clone(),
            options,
            id,
            window: usize::from(self.outbound.window()),
        };
        let (shares, group, filter) = (self.broker.shares.clone(), shared.group.to_owned(), shared.filter.to_owned());
        async move { shares.join(&group, &filter, &topics, member).await }
    }

    /// Leaves every shared subscription of the connection (it is closed) and gives back the
    /// shared messages it holds unacknowledged: each goes to another member, or not at all for
    /// a QoS 2 message already sent (see [`crate::delivery::share::Ticket`]).
    pub(super) fn leave_shares(&mut self) {
        for filter in self.subscriptions.keys() {
            self.leave_share(filter);
        }
        self.outbound.drop_tickets();
    }

    /// Leaves the shared subscription `full` if it is one: `Some(whether it was a member)`;
    /// `None` for a filter that is not shared.
    pub(super) fn leave_share(&self, full: &str) -> Option<bool> {
        let shared = parse_shared(full).ok().flatten()?;
        Some(self.broker.shares.leave(shared.group, shared.filter, self.session))
    }
}
