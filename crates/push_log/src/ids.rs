//! Push ids as the log keeps them (`<id>␟<tag>`), and what a replayed id is.

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The rows are in the journal, durably, as the record at `offset`.
    Logged { journal: String, offset: u64 },
    /// A push with this id was appended before: nothing was written. `first` is the tag the
    /// first push was kept with, when both carry one and their digests agree (the same rows);
    /// `None` when that cannot be checked (an id logged before tags were kept).
    Replayed { first: Option<String> },
    /// A push with this id but other rows (another digest) was appended before: nothing was
    /// written.
    Conflict,
}

/// The separator in an id as the log keeps it: `<id>␟<tag>`, the tag being the digest of the
/// push's rows, then (after another separator) whatever else the pusher keeps with it. Ids
/// hold no control characters, so it cannot be part of one.
pub const TAG_SEPARATOR: char = '\u{1f}';

/// An id as the log keeps it: the push's own id and, when it has one, its tag.
pub(crate) fn split_id(kept: &str) -> (&str, Option<&str>) {
    match kept.split_once(TAG_SEPARATOR) {
        Some((id, tag)) => (id, Some(tag)),
        None => (kept, None),
    }
}

/// The digest of the rows a tag names.
pub(crate) fn digest_of(tag: &str) -> &str {
    tag.split(TAG_SEPARATOR).next().unwrap_or(tag)
}

/// What a push tagged `tag` is when its id was seen tagged `known`.
pub(crate) fn replay(known: Option<&str>, tag: Option<&str>) -> Appended {
    match (known, tag) {
        (Some(known), Some(tag)) if digest_of(known) != digest_of(tag) => Appended::Conflict,
        (Some(known), Some(_)) => Appended::Replayed {
            first: Some(known.to_string()),
        },
        _ => Appended::Replayed { first: None },
    }
}
