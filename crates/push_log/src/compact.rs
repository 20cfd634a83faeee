//! Compaction: many segments into one, switched by one rename.

use super::*;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Journal records (pushes) folded into a segment first.
    pub folded: usize,
    /// Segments merged into one (0: fewer than two were there).
    pub segments: usize,
    pub rows: usize,
    /// Segments an interrupted compaction had replaced but not yet deleted.
    pub leftovers_removed: usize,
}

impl LogState {
    pub(crate) fn compact(&self) -> LogResult<Compacted> {
        let _lock = self.lock()?;
        let folded = self.fold_locked(&mut lock(&self.seen))?;
        let listed = listing(&self.dir)?;
        let mut removed = 0;
        // Leftovers of a compaction that stopped after its rename.
        for path in listed.all.iter().filter(|p| listed.replaced.contains(file_name(p))) {
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
            removed += 1;
        }
        let visible = listed.visible;
        let mut done = Compacted {
            folded,
            segments: 0,
            rows: 0,
            leftovers_removed: removed,
        };
        if visible.len() < 2 {
            return Ok(done);
        }
        let mut batches = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        let mut ids = Vec::new();
        let mut replaces: BTreeSet<String> = listed.replaced;
        let mut landed = UNIX_EPOCH;
        for path in &visible {
            landed = landed.max(modified(path)?);
            let file = File::open(path).map_err(|e| log_error(path, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| log_error(path, e))?;
            let this_schema = SchemaRef::clone(builder.schema());
            let reader = builder.build().map_err(|e| log_error(path, e))?;
            match &schema {
                None => schema = Some(this_schema),
                Some(s) if s.fields() != this_schema.fields() => {
                    return Err(log_error(
                        path,
                        "its columns differ from the other segments'; compact the log before changing the source's schema",
                    ));
                }
                Some(_) => {}
            }
            for batch in reader {
                batches.push(batch.map_err(|e| log_error(path, e))?);
            }
            ids.extend(footer_list(path, IDS_KEY)?);
            replaces.insert(file_name(path).to_string());
        }
        let Some(schema) = schema else {
            return Err(log_error(&self.dir, "no segment to compact"));
        };
        let replaces: Vec<String> = replaces.into_iter().collect();
        self.write_segment(
            "compact",
            &batches,
            &schema,
            &[(IDS_KEY, &ids), (REPLACES_KEY, &replaces)],
            landed,
        )?;
        for path in &visible {
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
        }
        sync_dir(&self.dir)?;
        done.segments = visible.len();
        done.rows = batches.iter().map(RecordBatch::num_rows).sum();
        Ok(done)
    }
}
