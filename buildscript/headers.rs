//! Where the InspIRCd headers are and which InspIRCd they are: installed headers
//! (`INSPIRCD_INCLUDE_DIR`, default Debian's /usr/include/inspircd) or a source tree
//! (`INSPIRCD_SOURCE`), configured or not.
//!
//! An unconfigured tree has no `include/config.h`, which every InspIRCd header includes.
//! Its configure writes that file from `make/template/config.h`: the version (from
//! `src/version.sh`), the install paths and feature macros (`%define`) found by
//! probing the system. The headers read only the version macros; so a config.h with the
//! version filled in and the rest left empty compiles a module exactly as the configured
//! one would. That holds as long as no header reads the rest, which [`generate_config`]
//! checks in the tree itself before writing the file: if a future InspIRCd's headers read
//! a configure-time macro, the build stops and asks for `./configure`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::fail;

const DEFAULT_INCLUDE_DIR: &str = "/usr/include/inspircd";

/// The headers a module is compiled against.
pub struct Headers {
    /// The directory holding `inspircd.h`.
    pub include: PathBuf,
    /// Where `config.h` is: the include directory, or where [`generate_config`] wrote it.
    pub config: PathBuf,
    /// The directory holding `fmt/format.h` (InspIRCd 4), if known.
    pub fmt: Option<PathBuf>,
}

impl Headers {
    /// From the environment: `INSPIRCD_SOURCE` (a source tree) gives the include
    /// directory (`include/`) and {fmt} (`vendor/`); `INSPIRCD_INCLUDE_DIR` and
    /// `INSPIRCD_FMT_DIR` override either. `out_dir` receives a generated config.h.
    pub fn from_env(out_dir: &Path) -> Headers {
        let source = std::env::var_os("INSPIRCD_SOURCE")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(tree) = &source {
            if !tree.join("src/version.sh").is_file() {
                fail(&format!(
                    "INSPIRCD_SOURCE={} is not an InspIRCd source tree (no src/version.sh); \
                     give the directory an InspIRCd release unpacks into",
                    tree.display()
                ));
            }
        }
        let include_dir = std::env::var_os("INSPIRCD_INCLUDE_DIR")
            .map(PathBuf::from)
            .or_else(|| source.as_ref().map(|t| t.join("include")))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_INCLUDE_DIR));
        if !include_dir.join("inspircd.h").is_file() {
            fail(&format!(
                "InspIRCd headers not found in {} (no inspircd.h).\n\
                 Install Debian's inspircd-dev package (apt-get install inspircd-dev), set \
                 INSPIRCD_SOURCE to an InspIRCd source tree, or set INSPIRCD_INCLUDE_DIR to \
                 the directory holding inspircd.h.",
                include_dir.display()
            ));
        }
        // A source tree's own {fmt}: the include directory's sibling vendor/.
        let tree = include_dir.parent().map(Path::to_path_buf);
        let fmt_dir = std::env::var_os("INSPIRCD_FMT_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                tree.as_ref()
                    .map(|t| t.join("vendor"))
                    .filter(|v| v.join("fmt/format.h").is_file())
            });
        let config_dir = if include_dir.join("config.h").is_file() {
            include_dir.clone()
        } else {
            match tree.filter(|t| t.join("make/template/config.h").is_file()) {
                Some(tree) => generate_config(&tree, &out_dir.join("inspircd-config")),
                None => fail(&format!(
                    "{} has no config.h, and is not the include/ of an InspIRCd source tree \
                     (no ../make/template/config.h) from which one could be made",
                    include_dir.display()
                )),
            }
        };
        Headers {
            include: include_dir,
            config: config_dir,
            fmt: fmt_dir,
        }
    }

    /// What must rebuild the shim when it changes: the include directory (cargo looks
    /// at every file in it, so a config.h that configure adds later counts), and what
    /// a generated config.h was made from (not that file itself, which this build
    /// writes, so that cargo would always find it newer than the build).
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut inputs = vec![self.include.clone()];
        if self.config != self.include {
            if let Some(tree) = self.include.parent() {
                inputs.push(tree.join("make/template/config.h"));
                inputs.push(tree.join("src/version.sh"));
            }
        }
        inputs.extend(self.fmt.iter().map(|d| d.join("fmt")));
        inputs
    }

    /// The major version config.h names (`#define INSPIRCD_VERSION "InspIRCd-4.7.0..."`).
    pub fn major_version(&self) -> u32 {
        let path = self.config.join("config.h");
        let config = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
        config
            .lines()
            .filter_map(|l| l.strip_prefix("#define INSPIRCD_VERSION \"InspIRCd-"))
            .find_map(|v| v.split('.').next()?.parse().ok())
            .unwrap_or_else(|| {
                fail(&format!(
                    "{} does not define INSPIRCD_VERSION \"InspIRCd-X.Y.Z\"",
                    path.display()
                ))
            })
    }
}

/// The version `src/version.sh` prints (`InspIRCd-4.11.0`, maybe with `-label`), as
/// configure reads it: (major, minor, full).
fn tree_version(tree: &Path) -> (String, String, String) {
    let script = tree.join("src/version.sh");
    let out = Command::new("sh")
        .arg(&script)
        .current_dir(tree)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", script.display())));
    let printed = String::from_utf8_lossy(&out.stdout);
    let full = printed.trim().strip_prefix("InspIRCd-").unwrap_or("");
    let mut numbers = full.split(['.', '-']);
    let mut number = || {
        numbers
            .next()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match (number(), number(), number()) {
        (Some(major), Some(minor), Some(_patch)) if out.status.success() => {
            (major.to_owned(), minor.to_owned(), full.to_owned())
        }
        _ => fail(&format!(
            "{} printed {:?}, not InspIRCd-X.Y.Z",
            script.display(),
            printed.trim()
        )),
    }
}

/// Writes `dir/config.h` from the tree's template, as configure would with the version
/// filled in and every other value empty, after checking that no header reads any of
/// those other values. Returns `dir`.
fn generate_config(tree: &Path, dir: &Path) -> PathBuf {
    let template_path = tree.join("make/template/config.h");
    let template = std::fs::read_to_string(&template_path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", template_path.display())));
    let (major, minor, full) = tree_version(tree);
    let version_value = |name: &str| match name {
        "VERSION_MAJOR" => Some(major.as_str()),
        "VERSION_MINOR" => Some(minor.as_str()),
        "VERSION_FULL" => Some(full.as_str()),
        _ => None,
    };

    let mut config = String::new();
    // Macros whose value only configure knows: the headers must not read them.
    let mut configure_only = Vec::new();
    for line in template.lines() {
        let trimmed = line.trim_start();
        if let Some(command) = trimmed.strip_prefix('%') {
            // %target, %mode, %platform say where configure writes the file; %define
            // NAME is a feature configure probes for: left undefined here.
            if let Some(name) = command.strip_prefix("define ") {
                configure_only.push(name.trim().to_owned());
            }
            continue;
        }
        let (text, placeholders) = substitute(line, version_value);
        if placeholders {
            if let Some(name) = trimmed
                .strip_prefix("#define ")
                .and_then(|d| d.split([' ', '(']).next())
            {
                configure_only.push(name.to_owned());
            }
        }
        config.push_str(&text);
        config.push('\n');
    }

    for name in &configure_only {
        if let Some(header) = header_using(tree, name) {
            fail(&format!(
                "{} reads {name}, which only InspIRCd's configure can set: run ./configure in {} \
                 first (this build makes config.h itself only for trees whose headers read \
                 nothing but the version from it)",
                header.display(),
                tree.display()
            ));
        }
    }

    std::fs::create_dir_all(dir)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dir.display())));
    let path = dir.join("config.h");
    let header = format!(
        "/* Made by inspircd-websocket's build.rs from {} for InspIRCd {full}, which is not\n \
         * configured: the version as configure would write it, every other value empty. */\n",
        template_path.display()
    );
    std::fs::write(&path, header + &config)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
    dir.to_path_buf()
}

/// `line` with each `@NAME@` (or `@NAME|default@`) replaced by `value(NAME)`, or by
/// nothing when that is `None`; and whether any such other placeholder was there.
fn substitute<'a>(line: &str, value: impl Fn(&str) -> Option<&'a str>) -> (String, bool) {
    let mut out = String::new();
    let mut other = false;
    let mut rest = line;
    while let Some((before, after)) = rest.split_once('@') {
        let Some((inner, tail)) = after.split_once('@') else {
            break;
        };
        let name = inner.split('|').next().unwrap_or(inner);
        out.push_str(before);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            // Not a placeholder: keep the '@' and look further on.
            out.push('@');
            rest = after;
            continue;
        }
        match value(name) {
            Some(v) => out.push_str(v),
            None => other = true,
        }
        rest = tail;
    }
    out.push_str(rest);
    (out, other)
}

/// The first header of the tree (`include/`, `vendor/`; config.h aside) that names `macro`.
fn header_using(tree: &Path, macro_name: &str) -> Option<PathBuf> {
    let mut pending = vec![tree.join("include"), tree.join("vendor")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n != "config.h")
                && std::fs::read_to_string(&path).is_ok_and(|text| mentions(&text, macro_name))
            {
                return Some(path);
            }
        }
    }
    None
}

/// Whether `text` has `name` as a whole identifier.
fn mentions(text: &str, name: &str) -> bool {
    let is_ident = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = text.as_bytes();
    text.match_indices(name).any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i));
        let after = bytes.get(at + name.len());
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}
