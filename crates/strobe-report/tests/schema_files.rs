//! The shipped JSON Schemas are generated from the report types, so they cannot drift from what
//! strobe writes. `STROBE_UPDATE_SCHEMA=1 cargo test -p strobe-report` rewrites them.

#[test]
fn schema_files_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    for (name, schema) in strobe_report::json::generated_schemas() {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("STROBE_UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == text,
            "{} is out of date: run STROBE_UPDATE_SCHEMA=1 cargo test -p strobe-report",
            path.display()
        );
    }
}
