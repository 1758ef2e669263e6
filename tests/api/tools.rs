//! Finding the programs some tests need (Chromium and chromedriver, `redis-server`),
//! and the rule when one is missing: the test says loudly that it was skipped and how
//! to install what it needs, and passes, so `cargo test` passes with Rust alone
//! (SPEC §2); with its `SSEHUB_REQUIRE_…` variable set, as `.ci/run` sets them all, the
//! absence fails the test instead.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A program a test needs: an explicit path in `variable`, or else the first of
/// `names` found on `PATH`.
pub(crate) struct Tool {
    pub(crate) what: &'static str,
    pub(crate) variable: &'static str,
    pub(crate) names: &'static [&'static str],
}

impl Tool {
    /// The executable's path, or what is missing and where it was looked for.
    pub(crate) fn find(&self) -> Result<PathBuf, String> {
        let variable = self.variable;
        match std::env::var_os(variable).filter(|v| !v.is_empty()) {
            // An explicit path is used as given: no falling back to another program.
            Some(path) => {
                let path = PathBuf::from(path);
                if is_executable(&path) {
                    Ok(path)
                } else {
                    Err(format!(
                        "{}: {variable}={} is not an executable file",
                        self.what,
                        path.display()
                    ))
                }
            }
            None => {
                let dirs: Vec<PathBuf> = std::env::var_os("PATH")
                    .map(|path| std::env::split_paths(&path).collect())
                    .unwrap_or_default();
                self.names
                    .iter()
                    .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
                    .find(|path| is_executable(path))
                    .ok_or_else(|| {
                        format!(
                            "{}: no {} on PATH, and {variable} is not set",
                            self.what,
                            self.names.join(" or ")
                        )
                    })
            }
        }
    }
}

/// What a test does when programs it needs are `missing`: fails, naming them, when
/// `require` is set (to anything but `0` or empty); otherwise prints a `SKIPPED:`
/// notice saying that it `needs` them and `how_to_install` them, and returns, so the
/// caller can end the test.
pub(crate) fn skip_or_fail(require: &str, needs: &str, missing: &[String], how_to_install: &str) {
    let required = std::env::var(require).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "this test needs {needs}, and {require} is set: {}; install: {how_to_install}",
        missing.join("; ")
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let mut notice = format!("\nSKIPPED: {test} did not run: it needs {needs}.\n");
    for what in missing {
        notice += &format!("SKIPPED:   {what}\n");
    }
    notice += &format!(
        "SKIPPED:   To run it: {how_to_install}.\n\
         SKIPPED:   With {require}=1 (as .ci/run sets it) this fails instead.\n\n"
    );
    // Straight to stderr, in one write: the test harness captures `eprintln!` and
    // shows it only for failing tests, and this one passes.
    let _ = std::io::stderr().lock().write_all(notice.as_bytes());
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
