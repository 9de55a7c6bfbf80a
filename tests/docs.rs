//! The documents the code cites are in the repository, and say what the code does.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn every_cited_section_of_math_md_exists() {
    let math = read(&root().join("docs/math.md"));
    let mut sources = Vec::new();
    files(&root().join("src"), "rs", &mut sources);
    let mut cited = 0;
    for p in &sources {
        let text = read(p);
        for part in text.split("docs/math.md §").skip(1) {
            // "§3", "§2–3": every section number in the citation.
            let cite: String = part
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '–')
                .collect();
            for n in cite.split('–').filter(|n| !n.is_empty()) {
                assert!(
                    math.contains(&format!("\n## §{n} ")),
                    "{} cites docs/math.md §{n}, which has no such section",
                    p.display()
                );
                cited += 1;
            }
        }
        assert!(
            !text.contains("(math.md") && !text.contains(" math.md §"),
            "{} cites math.md without its path",
            p.display()
        );
    }
    assert!(cited >= 7, "only {cited} citations found");
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut docs = vec![root().join("README.md")];
    files(&root().join("docs"), "md", &mut docs);
    assert!(docs.len() >= 5, "{docs:?}");
    for d in &docs {
        let text = read(d);
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap();
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let path = target.split('#').next().unwrap();
            let full = d.parent().unwrap().join(path);
            assert!(full.exists(), "{} links to missing {target}", d.display());
        }
    }
}

#[test]
fn the_readme_names_the_test_command_ci_runs() {
    let readme = read(&root().join("README.md"));
    let ci = read(&root().join(".ci/run"));
    let command = "scripts/test.sh";
    assert!(
        readme.contains(&format!("\n{command} ")),
        "README lost the test command"
    );
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not call {command}"
    );
    assert!(readme.contains("cargo run --release -- demo"));
}

#[test]
fn the_solver_count_in_the_readme_is_the_registry_s() {
    let readme = read(&root().join("README.md"));
    let n = pfode::solver::SOLVERS.len();
    assert!(
        readme.contains(&format!("implements {n} samplers")),
        "README does not say {n} samplers"
    );
}

#[test]
fn the_spec_reference_parses_its_example_and_documents_every_solver_option() {
    let text = read(&root().join("docs/spec.md"));
    let example = text
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("docs/spec.md has a TOML example");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, example).unwrap();
    let (spec, _) = pfode::experiment::Spec::from_file(&path).unwrap();
    // Three entries, then lists of two and three values: 3 + 2 + 3.
    assert_eq!(spec.solvers.len(), 8);
    for opt in pfode::solver::options::all() {
        let row = text
            .split(&format!("\n| `{}` |", opt.name))
            .nth(1)
            .unwrap_or_else(|| panic!("docs/spec.md does not document option `{}`", opt.name));
        // The row's third cell is the default, as the schema has it.
        let default = row
            .split('|')
            .nth(1)
            .unwrap()
            .trim()
            .trim_matches(|c| c == '`' || c == '"');
        let documented = opt
            .parse(default)
            .unwrap_or_else(|e| panic!("docs/spec.md: default '{default}' of `{}`: {e}", opt.name));
        assert_eq!(
            documented, opt.default,
            "docs/spec.md: default of `{}`",
            opt.name
        );
    }
}
