//! Crashes, tears, replays and races against the log, through its public surface and its parts.

use super::*;
use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

impl PushLog {
    /// [`PushLog::append`], waited for on this thread.
    fn append_now(&self, batch: &RecordBatch, id: Option<&str>) -> LogResult<Appended> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(self.append(batch, id))
    }
}

fn batch(values: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let strings: Vec<String> = values.iter().map(|v| format!("v{v}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(values.to_vec())),
            Arc::new(StringArray::from(strings)),
        ],
    )
    .unwrap()
}

fn rows(root: &Path) -> Vec<i64> {
    let mut out = Vec::new();
    for path in segments(root, "s").unwrap() {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend(k.values().iter().copied());
        }
    }
    out.sort_unstable();
    out
}

/// One log per directory in a process, while anyone holds it; another source or root
/// gets its own.
#[test]
fn a_process_shares_one_log_per_source() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = PushLog::shared(a.path(), "s");
    assert!(Arc::ptr_eq(&first, &PushLog::shared(a.path(), "s")));
    assert!(!Arc::ptr_eq(&first, &PushLog::shared(a.path(), "t")));
    assert!(!Arc::ptr_eq(&first, &PushLog::shared(b.path(), "s")));
    let weak = Arc::downgrade(&first);
    drop(first);
    assert!(weak.upgrade().is_none(), "the process keeps no log alive itself");
    assert_eq!(PushLog::shared(a.path(), "s").dir(), log_dir(a.path(), "s"));
}

/// A kept id carries a tag starting with the digest of its rows: a replay with the same
/// digest is the same push (and learns the first one's tag), one with another digest a
/// conflict, in the journal, after a fold, and in another process; an id kept without a
/// tag (an older log) cannot be checked.
/// `last_change` is `None` for a log that never took rows, moves with each append, and
/// stays where it is when rows are only rewritten.
#[test]
fn the_last_change_follows_appends() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(last_change(dir.path(), "s").unwrap(), None);
    let before = i64::try_from(micros()).unwrap();
    let log = PushLog::open(dir.path(), "s");
    log.append_now(&batch(&[1]), None).unwrap();
    let first = last_change(dir.path(), "s").unwrap().expect("a change after an append");
    // File times may be coarser than the clock: allow their granularity.
    assert!(first >= before - 10_000, "{first} < {before}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    log.append_now(&batch(&[2]), None).unwrap();
    let second = last_change(dir.path(), "s").unwrap().unwrap();
    assert!(second > first, "{second} <= {first}");
    // Rewriting rows is no change: a fold, a third append, a fold, a compaction.
    std::thread::sleep(std::time::Duration::from_millis(20));
    segments(dir.path(), "s").unwrap();
    assert_eq!(last_change(dir.path(), "s").unwrap(), Some(second), "a fold");
    log.append_now(&batch(&[3]), None).unwrap();
    let third = last_change(dir.path(), "s").unwrap().unwrap();
    segments(dir.path(), "s").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(log.compact().unwrap().segments, 2);
    assert_eq!(last_change(dir.path(), "s").unwrap(), Some(third), "a compaction");
    assert_eq!(rows(dir.path()), [1, 2, 3]);
}

#[test]
fn tagged_ids_tell_replays_from_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let log = PushLog::open(dir.path(), "s");
    let kept = |id: &str, tag: &str| format!("{id}{TAG_SEPARATOR}{tag}");
    let first_tag = format!("d1{TAG_SEPARATOR}100");
    assert!(matches!(
        log.append_now(&batch(&[1]), Some(&kept("a", &first_tag))).unwrap(),
        Appended::Logged { .. }
    ));
    log.append_now(&batch(&[2]), Some("old")).unwrap();
    let same = Appended::Replayed {
        first: Some(first_tag.clone()),
    };
    let unchecked = Appended::Replayed { first: None };
    let retry = kept("a", &format!("d1{TAG_SEPARATOR}200"));
    for round in 0..2 {
        let other = PushLog::open(dir.path(), "s");
        for appender in [&log, &other] {
            assert_eq!(
                appender.append_now(&batch(&[1]), Some(&retry)).unwrap(),
                same,
                "{round}"
            );
            assert_eq!(
                appender.append_now(&batch(&[9]), Some(&kept("a", "d2"))).unwrap(),
                Appended::Conflict
            );
            assert_eq!(
                appender.append_now(&batch(&[9]), Some(&kept("old", "d3"))).unwrap(),
                unchecked
            );
        }
        // The second round reads the ids from the segment's footer.
        assert_eq!(rows(dir.path()), [1, 2]);
    }
    assert_eq!(
        ids_by_segment(dir.path(), "s")
            .unwrap()
            .into_values()
            .flatten()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["a".to_string(), "old".to_string()])
    );
    // Within one group or several: the first of an id is logged, another with other rows
    // conflicts, one with the same rows is a replay.
    let group = PushLog::open(dir.path(), "s");
    let pending = [
        group.queue(&batch(&[5]), Some(&kept("g", "x"))).unwrap(),
        group.queue(&batch(&[6]), Some(&kept("g", "y"))).unwrap(),
        group.queue(&batch(&[5]), Some(&kept("g", "x"))).unwrap(),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let answers: Vec<Appended> = pending
        .into_iter()
        .map(|answer| runtime.block_on(answer).unwrap().unwrap())
        .collect();
    assert!(matches!(answers[0], Appended::Logged { .. }), "{answers:?}");
    assert_eq!(
        answers[1..],
        [
            Appended::Conflict,
            Appended::Replayed {
                first: Some("x".into())
            }
        ]
    );
}

#[test]
fn appends_are_whole_records_and_replayed_ids_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = PushLog::open(dir.path(), "s");
    let first = log.append_now(&batch(&[1, 2]), Some("a")).unwrap();
    let Appended::Logged { journal, offset: 0 } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(
        log.append_now(&batch(&[1, 2]), Some("a")).unwrap(),
        Appended::Replayed { first: None }
    );
    let Appended::Logged { offset, .. } = log.append_now(&batch(&[3]), None).unwrap() else {
        panic!("logged")
    };
    assert!(offset > 0);
    assert!(matches!(
        log.append_now(&batch(&[3]), None).unwrap(),
        Appended::Logged { .. }
    ));
    // Another appender (another process) finds the id in the journal's records.
    let other = PushLog::open(dir.path(), "s");
    assert_eq!(
        other.append_now(&batch(&[9]), Some("a")).unwrap(),
        Appended::Replayed { first: None }
    );
    assert_eq!(rows(dir.path()), [1, 2, 3, 3]);
    // The reader folded the journal: it is gone, and both appenders start a new one, which
    // the next reader folds too; the id is found in the segment's footer now.
    assert!(!log.dir().join(journal).exists());
    assert_eq!(
        other.append_now(&batch(&[9]), Some("a")).unwrap(),
        Appended::Replayed { first: None }
    );
    assert!(
        files(log.dir(), is_journal).unwrap().is_empty(),
        "a replay started a journal"
    );
    log.append_now(&batch(&[4]), None).unwrap();
    other.append_now(&batch(&[5]), Some("b")).unwrap();
    assert_eq!(
        log.append_now(&batch(&[5]), Some("b")).unwrap(),
        Appended::Replayed { first: None }
    );
    assert_eq!(rows(dir.path()), [1, 2, 3, 3, 4, 5]);
    assert_eq!(segments(dir.path(), "s").unwrap().len(), 2);
    // A temp file left by a crash is never read, and the next fold deletes it.
    let tmp = log.dir().join(".tmp-00000000deadbeef");
    std::fs::write(&tmp, b"PAR1 torn").unwrap();
    assert_eq!(rows(dir.path()), [1, 2, 3, 3, 4, 5]);
    assert!(!tmp.exists());
}

#[test]
fn concurrent_appends_share_segments_and_each_id_is_appended_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PushLog::open(dir.path(), "s"));
    // 8 threads × 25 appends; ids repeat across threads (each id is used by two threads).
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        let id = format!("id{}-{i}", t / 2);
                        let value = (t / 2) * 1000 + i;
                        (id.clone(), log.append_now(&batch(&[value]), Some(&id)).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(String, Appended)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut appended: Vec<&String> = results
        .iter()
        .filter(|(_, a)| matches!(a, Appended::Logged { .. }))
        .map(|(id, _)| id)
        .collect();
    appended.sort();
    let before = appended.len();
    appended.dedup();
    assert_eq!(before, appended.len(), "an id was appended twice");
    assert_eq!(appended.len(), 100, "every id once");
    let expected: Vec<i64> = (0..4).flat_map(|p| (0..25).map(move |i| p * 1000 + i)).collect();
    assert_eq!(rows(dir.path()), expected);
    // One journal, folded into one segment by the first read.
    assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
}

#[test]
fn compaction_keeps_rows_and_ids_and_switches_in_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let log = PushLog::open(dir.path(), "s");
    // Three segments (each read folds the journal into one), and one push left in the journal.
    for (i, values) in [[1, 2], [3, 4], [5, 6]].iter().enumerate() {
        log.append_now(&batch(values), Some(&format!("id{i}"))).unwrap();
        segments(dir.path(), "s").unwrap();
    }
    log.append_now(&batch(&[7]), Some("id3")).unwrap();
    let compacted = log.compact().unwrap();
    assert_eq!((compacted.folded, compacted.segments, compacted.rows), (1, 4, 7));
    assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
    assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7]);
    // The ids live on in the compacted segment, for this appender and a fresh one.
    assert_eq!(
        log.append_now(&batch(&[7]), Some("id1")).unwrap(),
        Appended::Replayed { first: None }
    );
    assert_eq!(
        PushLog::open(dir.path(), "s")
            .append_now(&batch(&[7]), Some("id2"))
            .unwrap(),
        Appended::Replayed { first: None }
    );
    // A compaction that stopped after its rename, before deleting what it replaced:
    // the old segments are back on disk, yet no row shows twice, and the next run deletes them.
    let replaced = footer_list(&segments(dir.path(), "s").unwrap()[0], REPLACES_KEY).unwrap();
    assert_eq!(replaced.len(), 4);
    for (name, values) in replaced.iter().zip([&[1, 2][..], &[3, 4], &[5, 6], &[7]]) {
        std::fs::write(log.dir().join(name), parquet_of(&batch(values))).unwrap();
    }
    assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(log.compact().unwrap().leftovers_removed, 4);
    assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7]);
    // Compacting again, with new segments, keeps replacing transitively.
    log.append_now(&batch(&[8]), None).unwrap();
    log.compact().unwrap();
    assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
}

fn parquet_of(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}

fn journal_of(log: &PushLog) -> PathBuf {
    files(log.dir(), is_journal).unwrap().remove(0)
}

/// Records written before and after any change of CRC code read alike: the checksum is
/// zlib's CRC-32, checked against its definition bit by bit at every length and alignment
/// and every split between the length bytes and the payload.
#[test]
fn record_crc_is_zlibs_crc32() {
    assert_eq!(record_crc(b"1234", b"56789"), 0xCBF4_3926);
    assert_eq!(record_crc(b"", b""), 0);
    let bitwise = |bytes: &[u8]| {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..300)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (state >> 56) as u8
        })
        .collect();
    for start in 0..9 {
        for len in 0..(bytes.len() - start) {
            let part = &bytes[start..start + len];
            let split = len / 3;
            assert_eq!(
                record_crc(&part[..split], &part[split..]),
                bitwise(part),
                "start {start}, length {len}"
            );
        }
    }
}

/// A crash mid-append leaves a torn record at the journal's end: readers stop before it,
/// and the next appender (in another process) cuts it off and appends after the whole ones.
#[test]
fn a_torn_tail_is_never_read_and_the_next_append_cuts_it_off() {
    // Cut inside the header, at its end, inside the payload; a damaged payload; a header
    // whose length and checksum are zeros (an empty payload is no record).
    for cut in [1, RECORD_HEADER - 1, RECORD_HEADER, RECORD_HEADER + 5, usize::MAX, 0] {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        log.append_now(&batch(&[1]), Some("a")).unwrap();
        let path = journal_of(&log);
        let mut torn = encode_record(&batch(&[2]), Some("b")).unwrap();
        if cut == 0 {
            torn = b"SKJ1\0\0\0\0\0\0\0\0".to_vec();
        } else if cut == usize::MAX {
            // Whole length, damaged payload: the checksum catches it.
            let last = torn.len() - 1;
            torn[last] ^= 0xff;
        } else {
            torn.truncate(cut);
        }
        let whole = std::fs::metadata(&path).unwrap().len();
        let file = File::options().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &file, &torn).unwrap();
        let other = PushLog::open(dir.path(), "s");
        // The torn push was never acknowledged: its id is free.
        assert!(
            matches!(other.append_now(&batch(&[3]), Some("b")).unwrap(), Appended::Logged { offset, .. } if offset == whole)
        );
        assert_eq!(
            other.append_now(&batch(&[1]), Some("a")).unwrap(),
            Appended::Replayed { first: None }
        );
        assert_eq!(rows(dir.path()), [1, 3], "cut at {cut}");
    }
    // A reader alone stops at the tear too.
    let dir = tempfile::tempdir().unwrap();
    let log = PushLog::open(dir.path(), "s");
    log.append_now(&batch(&[1]), None).unwrap();
    let file = File::options().append(true).open(journal_of(&log)).unwrap();
    std::io::Write::write_all(&mut &file, b"SKJ1\xff\xff").unwrap();
    assert_eq!(rows(dir.path()), [1]);
}

/// A fold that stopped part way, at each step: the journal's rows (here of two schemas,
/// so two parts) end up in segments exactly once.
#[test]
fn a_stopped_fold_is_finished_once() {
    let other_schema = || {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![10, 11])),
                Arc::new(arrow::array::Float64Array::from(vec![0.5, 1.5])),
            ],
        )
        .unwrap()
    };
    // 0: renamed, no segment yet; 1: the first part's segment written; 2: both written.
    for parts_written in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        log.append_now(&batch(&[1, 2]), Some("a")).unwrap();
        log.append_now(&other_schema(), Some("b")).unwrap();
        log.append_now(&batch(&[3]), None).unwrap();
        let journal = journal_of(&log);
        let bytes = std::fs::read(&journal).unwrap();
        let folded = segments(dir.path(), "s").unwrap();
        assert_eq!(folded.len(), 2, "one segment per schema");
        assert_eq!(rows(dir.path()), [1, 2, 3, 10, 11]);
        // Put the log back as a fold that stopped after `parts_written` segments.
        let mut parts: Vec<(String, PathBuf)> = folded
            .iter()
            .map(|p| (footer_list(p, FOLDS_KEY).unwrap().remove(0), p.clone()))
            .collect();
        parts.sort();
        assert!(parts[0].0.ends_with(":0") && parts[1].0.ends_with(":1"));
        for (_, path) in &parts[parts_written..] {
            std::fs::remove_file(path).unwrap();
        }
        let leftover = folding_path(&journal);
        std::fs::write(&leftover, &bytes).unwrap();
        // A fresh appender (a restarted server) retrying an id of a part not written yet:
        // it finishes the fold first, and finds the id.
        assert_eq!(
            PushLog::open(dir.path(), "s")
                .append_now(&batch(&[9]), Some("b"))
                .unwrap(),
            Appended::Replayed { first: None }
        );
        assert_eq!(rows(dir.path()), [1, 2, 3, 10, 11], "{parts_written} parts written");
        assert!(!leftover.exists());
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 2);
        // The ids are where the rows are.
        for id in ["a", "b"] {
            assert_eq!(
                PushLog::open(dir.path(), "s")
                    .append_now(&batch(&[9]), Some(id))
                    .unwrap(),
                Appended::Replayed { first: None }
            );
        }
    }
}

/// A journal past the fold size is folded by the writer thread once the group that filled
/// it is answered, without a reader; dropping the log waits for that fold.
#[test]
fn a_full_journal_is_folded_by_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let log = PushLog::open_folding_at(dir.path(), "s", 1);
    for i in 0..3 {
        log.append_now(&batch(&[i]), Some(&format!("id{i}"))).unwrap();
        // The writer folded each earlier journal before it took the next group (and may
        // have folded this one already).
        let folded = files(log.dir(), is_segment).unwrap().len();
        assert!((i as usize..=i as usize + 1).contains(&folded), "{folded} after {i}");
    }
    // The last fold follows the last answer; dropping the log waits for it.
    let log_dir = log.dir().to_path_buf();
    drop(log);
    assert!(files(&log_dir, is_journal).unwrap().is_empty());
    assert!(files(&log_dir, is_folding).unwrap().is_empty());
    assert_eq!(files(&log_dir, is_segment).unwrap().len(), 3);
    assert_eq!(
        PushLog::open(dir.path(), "s")
            .append_now(&batch(&[0]), Some("id1"))
            .unwrap(),
        Appended::Replayed { first: None }
    );
    assert_eq!(rows(dir.path()), [0, 1, 2]);
}
