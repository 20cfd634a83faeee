//! A damaged embedded store file gives an error naming the file, never a panic or an abort,
//! whichever bytes are damaged and whichever call meets them first.

use skewless_online::{EmbeddedStore, OnlineStore};
use skewless_testkit::fuzz::Fuzz;

fn entries(n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("key{i:06}").into_bytes(), vec![1u8; 40 + (i % 7) as usize]))
        .collect()
}

#[tokio::test]
async fn damaged_store_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    {
        let store = EmbeddedStore::open(&good).unwrap();
        store.write(entries(3000), None).await.unwrap();
    }
    let bytes = std::fs::read(&good).unwrap();
    let keys: Vec<Vec<u8>> = entries(3000).into_iter().map(|(k, _)| k).collect();
    // Damage at reproducible places.
    let mut rng = Fuzz::new(7);
    let mut errors = 0;
    for case in 0..40 {
        let mut damaged = bytes.clone();
        match case % 4 {
            // Garbage over a page-sized run somewhere.
            0 => {
                let at = (rng.next_u64() as usize) % damaged.len().saturating_sub(4096).max(1);
                for b in &mut damaged[at..at + 4096] {
                    *b = rng.next_u64() as u8;
                }
            }
            // Scattered single bytes.
            1 => {
                for _ in 0..64 {
                    let at = (rng.next_u64() as usize) % damaged.len();
                    damaged[at] = rng.next_u64() as u8;
                }
            }
            // Truncated.
            2 => damaged.truncate((rng.next_u64() as usize) % damaged.len()),
            // Zeroed from some point on.
            _ => {
                let at = (rng.next_u64() as usize) % damaged.len();
                damaged[at..].fill(0);
            }
        }
        let path = dir.path().join(format!("damaged{case}.redb"));
        std::fs::write(&path, &damaged).unwrap();
        let name = path.display().to_string();
        let outcome = std::panic::AssertUnwindSafe(async {
            let store = EmbeddedStore::open(&path)?;
            store.read(&keys).await?;
            store.write(entries(100), None).await?;
            store.instance_id().await?;
            store.purge_expired().await
        });
        let result = futures::FutureExt::catch_unwind(outcome)
            .await
            .unwrap_or_else(|_| panic!("case {case}: a damaged file panicked through the store"));
        if let Err(e) = result {
            errors += 1;
            let e = e.to_string();
            assert!(e.contains(&name), "case {case}: the error does not name the file: {e}");
        }
    }
    // Most damage is noticed; the point is that none of it escapes as a panic.
    assert!(errors > 10, "only {errors} of 40 damaged files gave errors");
}
