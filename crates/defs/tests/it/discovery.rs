//! Definition discovery survives any directory a user can make: link cycles, files linked
//! twice, dangling links, trees too deep or too large. Each is taken once or refused with an
//! error naming the path, never hundreds of duplicate-definition errors or a walk without end.

use std::os::unix::fs::symlink;

use skewless_defs::{Error, load_dir};

use crate::BASE;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("defs.yaml"), BASE).unwrap();
    dir
}

#[test]
fn a_link_cycle_and_a_file_linked_twice_are_read_once() {
    let dir = project();
    let defs = dir.path();
    std::fs::create_dir(defs.join("shared")).unwrap();
    // A cycle: shared/back → the definitions directory itself.
    symlink(defs, defs.join("shared/back")).unwrap();
    // The same file under two more names.
    symlink(defs.join("defs.yaml"), defs.join("again.yaml")).unwrap();
    symlink(defs.join("defs.yaml"), defs.join("shared/third.yml")).unwrap();
    let loaded = load_dir(defs).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.feature_views.contains_key("driver_stats"));
}

#[test]
fn a_dangling_link_named_as_definitions_is_an_error_naming_it() {
    let dir = project();
    symlink(dir.path().join("gone.yaml"), dir.path().join("link.yaml")).unwrap();
    // A dangling link with another name is not a definitions file: ignored.
    symlink(dir.path().join("gone.txt"), dir.path().join("notes")).unwrap();
    match load_dir(dir.path()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("link.yaml"), "{}", path.display()),
        other => panic!("expected an error naming link.yaml, got {other:?}"),
    }
    std::fs::remove_file(dir.path().join("link.yaml")).unwrap();
    assert!(load_dir(dir.path()).is_ok());
}

#[test]
fn a_tree_too_deep_is_refused_naming_where() {
    let dir = project();
    let mut deep = dir.path().to_path_buf();
    for i in 0..70 {
        deep.push(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    match load_dir(dir.path()) {
        Err(e @ Error::Discovery { .. }) => {
            assert!(e.to_string().contains("directory levels"), "{e}");
            assert!(e.to_string().contains("d64"), "{e}");
        }
        other => panic!("expected a discovery error, got {other:?}"),
    }
}

#[test]
fn too_many_files_are_refused() {
    let dir = project();
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..10_001 {
        std::fs::write(many.join(format!("f{i:05}.yaml")), "").unwrap();
    }
    match load_dir(dir.path()) {
        Err(e @ Error::Discovery { .. }) => assert!(e.to_string().contains("10000 definition files"), "{e}"),
        other => panic!("expected a discovery error, got {other:?}"),
    }
}
