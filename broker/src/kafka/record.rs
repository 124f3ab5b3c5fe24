//! Kafka records as the readers hand them on and as the producer takes them: where a record sits
//! and what it holds, nothing decoded. What a key, value or header means (an MQTT message, a
//! session record) is for the users of `kafka/` to decide.

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Headers, Message as _, OwnedHeaders};
use std::sync::Arc;

/// A record borrowed from the consumer that read it: what a tailer hands its sink, without a
/// copy.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    /// Kafka topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key (`None`: no key).
    pub key: Option<&'a [u8]>,
    /// Value (`None`: a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: Option<&'a BorrowedHeaders>,
}

impl<'a> RecordRef<'a> {
    /// The record `m` as read.
    pub(crate) fn of(m: &'a BorrowedMessage<'_>) -> Self {
        RecordRef {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            value: m.payload(),
            headers: m.headers(),
        }
    }

    /// The values of the headers named `name`, in order (a header may repeat).
    pub fn header(&self, name: &'a str) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        self.headers.into_iter().flat_map(|h| h.iter()).filter(move |h| h.key == name).map(|h| h.value)
    }
}

/// A record copied out of the consumer, so that it can cross a channel (range reads).
#[derive(Debug)]
pub struct Record {
    /// Kafka topic, shared by the records of one read.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    key: Option<Box<[u8]>>,
    value: Option<Box<[u8]>>,
    headers: Option<OwnedHeaders>,
}

impl Record {
    /// A copy of `record`, naming its topic by the shared `topic`.
    pub(crate) fn copy(topic: Arc<str>, record: RecordRef<'_>) -> Self {
        Record {
            topic,
            partition: record.partition,
            offset: record.offset,
            key: record.key.map(Into::into),
            value: record.value.map(Into::into),
            headers: record.headers.map(BorrowedHeaders::detach),
        }
    }

    /// The record, borrowed: what decoders read.
    pub fn view(&self) -> RecordRef<'_> {
        RecordRef {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self.headers.as_ref().map(OwnedHeaders::as_borrowed),
        }
    }
}

/// What the producer writes of a value: key, value and headers. The type that knows what they
/// mean implements it (an MQTT message: `crate::message`), so the producer does not.
pub trait ToRecord {
    /// The record key.
    fn record_key(&self) -> &[u8];
    /// The record value (unless the write is a tombstone).
    fn record_value(&self) -> &[u8];
    /// The record headers.
    fn record_headers(&self) -> OwnedHeaders;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Header;

    #[test]
    fn a_copy_reads_as_the_original_and_headers_repeat() {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "a", value: Some(&b"1"[..]) })
            .insert(Header { key: "b", value: None::<&[u8]> })
            .insert(Header { key: "a", value: Some(&b"2"[..]) });
        let original = RecordRef {
            topic: "t",
            partition: 3,
            offset: 7,
            key: Some(b"k"),
            value: None,
            headers: Some(headers.as_borrowed()),
        };
        let copy = Record::copy("t".into(), original);
        let view = copy.view();
        assert_eq!((view.topic, view.partition, view.offset), ("t", 3, 7));
        assert_eq!((view.key, view.value), (Some(&b"k"[..]), None), "a tombstone stays one");
        assert_eq!(view.header("a").collect::<Vec<_>>(), [Some(&b"1"[..]), Some(&b"2"[..])]);
        assert_eq!(view.header("b").collect::<Vec<_>>(), [None]);
        assert_eq!(view.header("c").count(), 0);
    }
}
