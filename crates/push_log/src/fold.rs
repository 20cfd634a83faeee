//! Folding: a journal's records into Parquet segments in the source's schema.

use super::*;

/// The rows of one schema in a journal being folded: they become one segment.
pub(crate) struct FoldPart {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) ids: Vec<String>,
    /// How many records (pushes) they came from.
    pub(crate) records: usize,
}

/// Where a fold moves `journal` first: `folding-<its stem>.log`.
pub(crate) fn folding_path(journal: &Path) -> PathBuf {
    journal.with_file_name(file_name(journal).replacen("journal-", "folding-", 1))
}

impl LogState {
    /// Folds the journal if it is still past the fold size (another append may have folded it).
    pub(crate) fn fold_if_full(&self) -> LogResult<()> {
        let _lock = self.lock()?;
        let mut size = 0;
        for path in files(&self.dir, is_journal)? {
            size += std::fs::metadata(&path).map_err(|e| log_error(&path, e))?.len();
        }
        if size >= self.fold_at {
            self.fold_locked(&mut lock(&self.seen))?;
        }
        Ok(())
    }

    /// Folds every journal into segments (held lock; see the module docs), finishing any fold
    /// that stopped part way first. Returns how many records were folded.
    pub(crate) fn fold_locked(&self, seen: &mut Seen) -> LogResult<usize> {
        seen.journal = None;
        // Temp files are written only under the lock: any found now is a stopped write's.
        for tmp in files(&self.dir, is_temp)? {
            std::fs::remove_file(&tmp).map_err(|e| log_error(&tmp, e))?;
        }
        let leftovers = files(&self.dir, is_folding)?;
        // Parts of stopped folds that already have their segment.
        let mut done_parts: HashSet<String> = HashSet::new();
        if !leftovers.is_empty() {
            for path in listing(&self.dir)?.visible {
                done_parts.extend(footer_list(&path, FOLDS_KEY)?);
            }
        }
        let mut folding = leftovers;
        for journal in files(&self.dir, is_journal)? {
            let renamed = folding_path(&journal);
            std::fs::rename(&journal, &renamed).map_err(|e| log_error(&journal, e))?;
            folding.push(renamed);
        }
        let mut folded = 0;
        for path in &folding {
            let landed = modified(path)?;
            let bytes = std::fs::read(path).map_err(|e| log_error(path, e))?;
            let (payloads, _) = whole_records(&bytes);
            // The parts: one per schema, in order of first appearance (the same on every retry).
            let mut parts: Vec<FoldPart> = Vec::new();
            for payload in payloads {
                let (id, stream) = split_payload(payload).ok_or_else(|| log_error(path, "a record's id is damaged"))?;
                let reader = StreamReader::try_new(Cursor::new(stream), None).map_err(|e| log_error(path, e))?;
                let schema = reader.schema();
                let at = match parts.iter().position(|p| p.schema == schema) {
                    Some(at) => at,
                    None => {
                        parts.push(FoldPart {
                            schema,
                            batches: Vec::new(),
                            ids: Vec::new(),
                            records: 0,
                        });
                        parts.len() - 1
                    }
                };
                let part = &mut parts[at];
                for batch in reader {
                    part.batches.push(batch.map_err(|e| log_error(path, e))?);
                }
                part.records += 1;
                part.ids.extend(id.map(str::to_string));
            }
            let stem = file_name(path).trim_start_matches("folding-").trim_end_matches(".log");
            for (
                k,
                FoldPart {
                    schema,
                    batches,
                    ids,
                    records,
                },
            ) in parts.into_iter().enumerate()
            {
                let tag = format!("{stem}:{k}");
                if done_parts.contains(&tag) {
                    continue;
                }
                folded += records;
                let footer = [(IDS_KEY, &ids[..]), (FOLDS_KEY, &[tag][..])];
                let segment = self.write_segment("seg", &batches, &schema, &footer, landed)?;
                seen.files.insert(file_name(&segment).to_string());
                for kept in &ids {
                    remember(seen, kept);
                }
            }
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
        }
        if !folding.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(folded)
    }

    /// Writes `batches` to a hidden temp file with `footer`'s non-empty lists, syncs it,
    /// renames it to `<prefix>-<µs>-<nonce>.parquet` and syncs the directory: the segment is
    /// whole and durable when this returns. Its modification time is `landed`, when its rows
    /// last reached the log, not when they were rewritten ([`crate::last_change`]).
    pub(crate) fn write_segment(
        &self,
        prefix: &str,
        batches: &[RecordBatch],
        schema: &SchemaRef,
        footer: &[(&str, &[String])],
        landed: SystemTime,
    ) -> LogResult<PathBuf> {
        let (micros, nonce) = (micros(), nonce());
        let tmp = self.dir.join(format!(".tmp-{nonce:016x}"));
        let done = self.dir.join(format!("{prefix}-{micros:016}-{nonce:016x}.parquet"));
        let mut key_values = Vec::new();
        for &(key, list) in footer {
            if !list.is_empty() {
                let text = serde_json::to_string(list).map_err(|e| log_error(&tmp, e))?;
                key_values.push(KeyValue::new(key.to_string(), text));
            }
        }
        let props = WriterProperties::builder()
            .set_key_value_metadata((!key_values.is_empty()).then_some(key_values))
            .build();
        let result = (|| {
            let file = File::create(&tmp).map_err(|e| log_error(&tmp, e))?;
            let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| log_error(&tmp, e))?;
            for batch in batches {
                writer.write(batch).map_err(|e| log_error(&tmp, e))?;
            }
            let file = writer.into_inner().map_err(|e| log_error(&tmp, e))?;
            file.set_modified(landed).map_err(|e| log_error(&tmp, e))?;
            file.sync_all().map_err(|e| log_error(&tmp, e))?;
            std::fs::rename(&tmp, &done).map_err(|e| log_error(&done, e))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| done)
    }
}
