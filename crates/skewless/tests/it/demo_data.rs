use std::path::PathBuf;

use skewless::Project;

fn bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            (
                f.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_data() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let written = skewless::demo_data::generate(a.path(), 42).unwrap();
    skewless::demo_data::generate(b.path(), 42).unwrap();
    skewless::demo_data::generate(c.path(), 7).unwrap();
    assert_eq!(written.len(), 4);
    assert!(written.iter().all(|w| w.rows > 1000), "{written:?}");
    assert_eq!(bytes(a.path()), bytes(b.path()));
    assert_ne!(bytes(a.path()), bytes(c.path()));
}

#[test]
fn demo_definitions_validate_against_demo_data() {
    let project_dir = tempfile::tempdir().unwrap();
    let copy = crate::copy_demo_defs(project_dir.path());
    let project = Project::new(&copy, project_dir.path().join(".skewless"));
    // Without data, every source with a path is reported at its `path` line.
    let missing = project.load().unwrap_err().to_string();
    assert_eq!(missing.matches("matches no files").count(), 3, "{missing}");
    skewless::demo_data::generate(&project_dir.path().join("data/demo"), 42).unwrap();
    let loaded = project.load().unwrap();
    assert_eq!(loaded.project, "rides");
}
