// Rebuild when embedded inputs change: `sqlx::migrate!` embeds the migrations, askama the
// templates, and the policy list below embeds the Cerbos policies for the built-in evaluator.
use std::io::Write;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=sql");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=static");
    println!("cargo:rerun-if-changed=policies");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("policies/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            p.is_file() && name.ends_with(".yaml") && !name.contains("_test.")
        })
        .collect();
    files.sort();
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("policies.rs");
    let mut f = std::fs::File::create(out).expect("create policies.rs");
    writeln!(f, "&[").unwrap();
    for p in files {
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        writeln!(f, "    ({name:?}, include_str!({:?})),", p.display().to_string()).unwrap();
    }
    writeln!(f, "]").unwrap();
}
