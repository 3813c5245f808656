use std::collections::HashSet;

use super::*;

fn se(name: &str, port: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  hosts: [{name}.example.com]\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n  resolution: DNS\n"
    )
}

fn names(source: &FileSource) -> Vec<String> {
    source
        .resources()
        .iter()
        .map(|r| r.meta.name.clone())
        .collect()
}

#[test]
fn bad_files_keep_their_last_good_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "a.yaml",
        &format!("{}---\n{}", se("a1", "80"), se("a2", "81")),
    );
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    write("sub/b.yml", &se("b", "80"));
    write("notes.txt", "not config");
    let mut source = FileSource::new(dir.path(), DecodeOptions::default());
    let none = HashSet::new();
    let report = source.scan(&none).expect("scan");
    assert!(report.changed && report.rejected.is_empty());
    assert_eq!(names(&source), ["a1", "a2", "b"]);

    // A syntax error: the whole file is rejected, its resources stay.
    write(
        "a.yaml",
        &format!("{}---\nkind: [unclosed\n", se("a1", "80")),
    );
    let touched: HashSet<PathBuf> = [dir.path().join("a.yaml")].into();
    let report = source.scan(&touched).expect("scan");
    assert!(!report.changed);
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].problems[0].contains("a.yaml:"),
        "{:?}",
        report.rejected
    );
    assert_eq!(names(&source), ["a1", "a2", "b"]);

    // A schema violation (port out of range) rejects the file too, with its line.
    write("a.yaml", &se("a1", "70000"));
    let report = source.scan(&touched).expect("scan");
    assert_eq!(report.rejected.len(), 1);
    let problem = &report.rejected[0].problems[0];
    assert!(problem.contains("a.yaml:6:"), "{problem}");
    assert_eq!(names(&source), ["a1", "a2", "b"]);

    // Fixed: the new version replaces the old one; other files are untouched.
    write("a.yaml", &se("a3", "80"));
    let report = source.scan(&touched).expect("scan");
    assert!(report.changed && report.rejected.is_empty());
    assert_eq!(names(&source), ["a3", "b"]);

    // A file that never loaded contributes nothing; a deleted file's
    // resources go.
    write("c.yaml", "apiVersion: v1\nkind: [oops");
    std::fs::remove_file(dir.path().join("sub/b.yml")).expect("rm");
    let report = source.scan(&none).expect("scan");
    assert!(report.changed);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(names(&source), ["a3"]);

    // Nothing changed: no rebuild.
    let report = source.scan(&none).expect("scan");
    assert!(!report.changed);
}

#[test]
fn one_shot_load_skips_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.json"), r#"{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"j","namespace":"x"},"spec":{"hosts":["j.example.com"],"ports":[{"number":80,"name":"http","protocol":"HTTP"}],"resolution":"DNS"}}"#).expect("write");
    std::fs::write(dir.path().join("bad.yaml"), "kind: : :").expect("write");
    let resources = load(dir.path(), &DecodeOptions::default()).expect("load");
    assert_eq!(resources.len(), 1);
    assert!(load(&dir.path().join("missing"), &DecodeOptions::default()).is_err());
}

#[test]
fn duplicates_in_later_files_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.yaml"), se("dup", "80")).expect("write");
    std::fs::write(dir.path().join("b.yaml"), se("dup", "81")).expect("write");
    let resources = load(dir.path(), &DecodeOptions::default()).expect("load");
    assert_eq!(resources.len(), 1);
    assert_eq!(
        &*resources[0].origin.file,
        dir.path().join("a.yaml").display().to_string()
    );
}
