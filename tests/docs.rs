//! The documentation cannot rot: every example in README.md and docs/*.md is checked against
//! the library's own parsers, without root and without touching the kernel.
//!
//! - Every code line (fenced, or indented by four spaces) that is a pipework command —
//!   `pipework …`, possibly after a prompt (`$`, `#`, `a#`, `host#`) or `sudo` — is split into
//!   argv by a small shell-word splitter (quotes, escapes; `$VAR` and `$(…)` become a guest
//!   name; the line is cut at an unquoted pipe, redirection, `&&`, `;` or `#` comment) and must
//!   parse with `pipework::cli::parse_argv`. A usage line (`<guest>`, `[OPTIONS]`, `a|b`, `…`)
//!   is a synopsis: allowed in docs/cli.md only, counted, not parsed.
//! - Every fenced block that starts with `lab:` must parse, check and convert to the engine's
//!   request (`topology::file::parse`, `file::check`, `topology::to_request`). When the prose
//!   just before it names a file under `examples/`, the block must mean exactly what that file
//!   means (the same request).
//! - Every fenced block with `"cniVersion"` must be JSON and pass the CNI plugin's own decode
//!   and checks (each pipework plugin of a conflist, as a runtime hands it over).
//! - Every watch rules file (`{"rules": …}`) and every `pipework.N="…"` container label must
//!   parse with watch's parser and the attach-spec grammar.
//! - Every relative link must name a file that exists, and an anchor a heading that exists.
//!
//! Counts are printed per file; a file with code but no checked example fails (unless listed in
//! `NO_EXAMPLES`), so the checker cannot silently check nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Commands documented before they exist (lines starting with one of these may fail to parse).
/// An entry whose lines all parse is an error: remove it.
const NOT_YET_IMPLEMENTED: &[&str] = &[];

/// Pages whose code blocks hold no pipework example by design (diagrams, other tools' config).
const NO_EXAMPLES: &[&str] = &["docs/architecture.md", "docs/netavark.md"];

/// The only page where usage synopses (`<guest>`, `[OPTIONS]`) may stand in code.
const SYNOPSIS_PAGES: &[&str] = &["docs/cli.md"];

/// What `$VAR` and `$(…)` stand for when a line is split: a guest name.
const EXPANSION: &str = "web1";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as paths relative to the repository's root.
fn pages() -> Vec<String> {
    let mut v = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

fn read(page: &str) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Markdown: code lines and fenced blocks.

/// One line of code, with its 1-based line number.
#[derive(Debug, Clone)]
struct CodeLine {
    line: usize,
    text: String,
}

/// A fenced block: the line number of its first content line, and its content.
#[derive(Debug, Clone)]
struct Fence {
    line: usize,
    body: String,
}

#[derive(Debug, Default)]
struct Code {
    /// Lines inside fences and indented code, in order.
    lines: Vec<CodeLine>,
    fences: Vec<Fence>,
    /// Prose lines (outside code), with their numbers: where links and the context of a
    /// fence are read.
    prose: Vec<CodeLine>,
}

fn scan(text: &str) -> Code {
    let mut code = Code::default();
    let mut open: Option<(String, usize, String)> = None; // (marker, line, body)
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim_start();
        if let Some((marker, line, mut body)) = open.take() {
            if trimmed.starts_with(marker.as_str()) && trimmed.trim() == marker {
                code.fences.push(Fence { line, body });
            } else {
                body.push_str(raw);
                body.push('\n');
                code.lines.push(CodeLine {
                    line: n,
                    text: raw.to_string(),
                });
                open = Some((marker, line, body));
            }
            continue;
        }
        let fence = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        if let Some(m) = fence {
            let marker: String = trimmed
                .chars()
                .take_while(|c| *c == m.as_bytes()[0] as char)
                .collect();
            open = Some((marker, n + 1, String::new()));
            continue;
        }
        if raw.starts_with("    ") || raw.starts_with('\t') {
            code.lines.push(CodeLine {
                line: n,
                text: raw.to_string(),
            });
        } else {
            code.prose.push(CodeLine {
                line: n,
                text: raw.to_string(),
            });
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    code
}

/// Joins lines ending in `\` with the next one (a command over several lines).
fn join_continued(lines: &[CodeLine]) -> Vec<CodeLine> {
    let mut out: Vec<CodeLine> = Vec::new();
    let mut pending: Option<CodeLine> = None;
    for l in lines {
        let cur = match pending.take() {
            Some(mut p) => {
                p.text.push(' ');
                p.text.push_str(l.text.trim());
                p
            }
            None => l.clone(),
        };
        if cur.text.trim_end().ends_with('\\') {
            let mut c = cur;
            let t = c.text.trim_end();
            c.text = t[..t.len() - 1].to_string();
            pending = Some(c);
        } else {
            out.push(cur);
        }
    }
    out.extend(pending);
    out
}

/// The command after an optional prompt (`$`, `#`, `a#`, `host#`) and `sudo`, when it is a
/// pipework command; `None` otherwise.
fn pipework_command(line: &str) -> Option<&str> {
    let mut s = line.trim();
    if let Some(pos) = s.find(['#', '$']) {
        let prompt = &s[..pos];
        if prompt
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '@')
            && s[pos + 1..].starts_with(' ')
        {
            s = s[pos + 1..].trim_start();
        }
    }
    if let Some(rest) = s.strip_prefix("sudo ") {
        s = rest.trim_start();
    }
    // Environment assignments before the command (`PIPEWORK_LOG=debug pipework …`).
    while let Some((word, rest)) = s.split_once(' ') {
        let is_assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        if !is_assignment || word.contains(['\'', '"']) {
            break;
        }
        s = rest.trim_start();
    }
    let rest = s.strip_prefix("pipework")?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(s)
}

/// A usage synopsis rather than an example: placeholders, optional parts, alternatives.
fn is_synopsis(cmd: &str) -> bool {
    let before_comment = cmd.split(" # ").next().unwrap_or(cmd);
    let b = before_comment.as_bytes();
    let placeholder = b.windows(2).any(|w| {
        (w[0] == b'<' && w[1].is_ascii_alphabetic())
            || (w[0] == b'[' && (w[1].is_ascii_alphabetic() || w[1] == b'-'))
    });
    let alternative = b
        .windows(3)
        .any(|w| w[1] == b'|' && w[0] != b' ' && w[2] != b' ');
    placeholder || alternative || before_comment.contains('…') || before_comment.contains("OPTIONS")
}

// ---------------------------------------------------------------------------------------------
// A tiny shell-word splitter.

/// Splits a command line into words as a POSIX shell would (for what docs use): single and
/// double quotes, backslash escapes, `$VAR`, `${VAR}` and `$(…)` replaced by [`EXPANSION`];
/// it stops at an unquoted `|`, `&`, `;`, `<`, `>` (a bare file-descriptor number before a
/// redirection is dropped) and at a `#` that starts a word.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let expansion = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<(), String> {
        match chars.peek() {
            Some('(') => {
                let mut depth = 0;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                }
                Err("unclosed $(".into())
            }
            Some('{') => {
                for c in chars.by_ref() {
                    if c == '}' {
                        return Ok(());
                    }
                }
                Err("unclosed ${".into())
            }
            _ => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    chars.next();
                }
                Ok(())
            }
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '|' | '&' | ';' | '<' | '>' => {
                if (c == '>' || c == '<') && in_word && cur.chars().all(|d| d.is_ascii_digit()) {
                    cur.clear();
                    in_word = false;
                }
                break;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(d) => cur.push(d),
                        None => return Err("unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(d @ ('"' | '\\' | '$' | '`')) => cur.push(d),
                            Some(d) => {
                                cur.push('\\');
                                cur.push(d);
                            }
                            None => return Err("unclosed double quote".into()),
                        },
                        Some('$') => {
                            expansion(&mut chars)?;
                            cur.push_str(EXPANSION);
                        }
                        Some(d) => cur.push(d),
                        None => return Err("unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(d) = chars.next() {
                    cur.push(d);
                }
            }
            '$' => {
                in_word = true;
                expansion(&mut chars)?;
                cur.push_str(EXPANSION);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    commands: usize,
    synopses: usize,
    labs: usize,
    cni: usize,
    specs: usize,
    scripts: usize,
    allowed: usize,
}

impl Counts {
    fn checked(&self) -> usize {
        self.commands + self.labs + self.cni + self.specs + self.scripts
    }
}

fn parse_command(words: &[String]) -> Result<(), String> {
    let argv: Vec<OsString> = words.iter().map(OsString::from).collect();
    pipework::cli::parse_argv(&argv)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_commands(
    page: &str,
    code: &Code,
    counts: &mut Counts,
    failures: &mut Vec<String>,
    used_allow: &mut BTreeMap<&'static str, (usize, usize)>,
) {
    for l in join_continued(&code.lines) {
        let Some(cmd) = pipework_command(&l.text) else {
            continue;
        };
        if is_synopsis(cmd) {
            if SYNOPSIS_PAGES.contains(&page) {
                counts.synopses += 1;
            } else {
                failures.push(format!(
                    "{page}:{}: a usage synopsis outside {SYNOPSIS_PAGES:?} (give a real example): {cmd}",
                    l.line
                ));
            }
            continue;
        }
        let words = match shell_words(cmd) {
            Ok(w) => w,
            Err(e) => {
                failures.push(format!("{page}:{}: cannot split `{cmd}`: {e}", l.line));
                continue;
            }
        };
        let allow = NOT_YET_IMPLEMENTED
            .iter()
            .find(|a| words.get(1).is_some_and(|w| w == *a));
        match (parse_command(&words), allow) {
            (Ok(()), Some(a)) => {
                used_allow.entry(a).or_default().1 += 1;
                counts.commands += 1;
            }
            (Ok(()), None) => counts.commands += 1,
            (Err(_), Some(a)) => {
                used_allow.entry(a).or_default().0 += 1;
                counts.allowed += 1;
            }
            (Err(e), None) => failures.push(format!(
                "{page}:{}: `{cmd}` does not parse: {}",
                l.line,
                e.lines().next().unwrap_or_default()
            )),
        }
    }
}

/// The `examples/…` file the prose just before a fence names, if any.
fn named_example(code: &Code, fence_line: usize) -> Option<String> {
    let before: Vec<&CodeLine> = code
        .prose
        .iter()
        .filter(|p| p.line < fence_line && p.line + 6 >= fence_line)
        .collect();
    before.iter().rev().find_map(|p| {
        let i = p.text.find("`examples/")?;
        let rest = &p.text[i + 1..];
        let end = rest.find('`')?;
        Some(rest[..end].to_string())
    })
}

fn check_labs(page: &str, code: &Code, counts: &mut Counts, failures: &mut Vec<String>) {
    for f in &code.fences {
        let first = f.body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("lab:") {
            continue;
        }
        let at = format!("{page}:{}", f.line);
        let req = pipework::topology::file::parse(f.body.as_bytes())
            .and_then(pipework::topology::file::check)
            .and_then(|lab| pipework::topology::to_request(&lab));
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{at}: the lab example does not load: {e}"));
                continue;
            }
        };
        if let Some(example) = named_example(code, f.line) {
            match pipework::topology::load(&root().join(&example))
                .and_then(|lab| pipework::topology::to_request(&lab))
            {
                Ok(file_req) if file_req == req => {}
                Ok(_) => failures.push(format!(
                    "{at}: the lab example differs from {example}, which the text names"
                )),
                Err(e) => failures.push(format!("{at}: {example} does not load: {e}")),
            }
        }
        counts.labs += 1;
    }
}

fn check_cni_conf(at: &str, conf: &serde_json::Value, failures: &mut Vec<String>) {
    use pipework::cni::{config, version};
    let res = config::decode(conf.to_string().as_bytes()).and_then(|n| {
        let v = version::negotiate(n.cni_version.as_deref())?;
        config::check(n, v, None)
    });
    if let Err(e) = res {
        failures.push(format!(
            "{at}: the CNI configuration is refused: {}",
            e.to_json()
        ));
    }
}

fn check_cni(page: &str, code: &Code, counts: &mut Counts, failures: &mut Vec<String>) {
    for f in &code.fences {
        if !f.body.contains("\"cniVersion\"") {
            continue;
        }
        let at = format!("{page}:{}", f.line);
        let v: serde_json::Value = match serde_json::from_str(&f.body) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{at}: the CNI example is not JSON: {e}"));
                continue;
            }
        };
        let is_ours =
            |p: &serde_json::Value| p.get("type").and_then(|t| t.as_str()) == Some("pipework");
        match v.get("plugins").and_then(|p| p.as_array()) {
            // A conflist: the runtime hands each plugin its network's name and version.
            Some(plugins) => {
                let ours: Vec<_> = plugins.iter().filter(|p| is_ours(p)).collect();
                if ours.is_empty() {
                    failures.push(format!("{at}: a conflist without a pipework plugin"));
                }
                for p in ours {
                    let mut p = p.clone();
                    p["cniVersion"] = v["cniVersion"].clone();
                    p["name"] = v["name"].clone();
                    check_cni_conf(&at, &p, failures);
                }
            }
            None if is_ours(&v) => check_cni_conf(&at, &v, failures),
            None => failures.push(format!("{at}: a CNI configuration of another plugin")),
        }
        counts.cni += 1;
    }
}

fn example_guest() -> pipework::guest::GuestSpec {
    pipework::guest::GuestSpec::parse("web1").expect("a guest name")
}

/// One rules file: it parses, and every attach spec in it.
fn check_rules(text: &str, at: &str, failures: &mut Vec<String>, counts: &mut Counts) {
    match pipework::watch::parse_rules(text, at) {
        Ok(rules) => {
            for spec in rules.rules.iter().flat_map(|r| &r.attach) {
                if let Err(e) = pipework::grammar::parse_attach_spec(spec, example_guest()) {
                    failures.push(format!("{at}: rule spec '{spec}': {e}"));
                }
            }
            counts.specs += 1;
        }
        Err(e) => failures.push(format!("{at}: {e}")),
    }
}

/// Watch's specs: rules files, and `pipework.N="…"` labels on `docker run` lines.
fn check_watch_specs(page: &str, code: &Code, counts: &mut Counts, failures: &mut Vec<String>) {
    for f in &code.fences {
        if !f.body.trim_start().starts_with("{\"rules\"") {
            continue;
        }
        let at = format!("{page}:{}", f.line);
        check_rules(&f.body, &at, failures, counts);
    }
    // Indented rules files: the lines from `{"rules"` to the closing `]}`.
    let mut block: Option<(usize, String)> = None;
    for l in &code.lines {
        let t = l.text.trim();
        if block.is_none() && t.starts_with("{\"rules\"") && l.text.starts_with("    ") {
            block = Some((l.line, String::new()));
        }
        if let Some((start, mut text)) = block.take() {
            text.push_str(t);
            text.push('\n');
            if t == "]}" {
                let at = format!("{page}:{start}");
                check_rules(&text, &at, failures, counts);
            } else {
                block = Some((start, text));
            }
        }
    }
    for l in join_continued(&code.lines) {
        let Ok(words) = shell_words(l.text.trim()) else {
            continue;
        };
        if words.first().map(String::as_str) != Some("docker") {
            continue;
        }
        for w in &words {
            let Some((key, spec)) = w.split_once('=') else {
                continue;
            };
            let label = key == "pipework"
                || key
                    .strip_prefix("pipework.")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !label {
                continue;
            }
            match pipework::grammar::parse_attach_spec(spec, example_guest()) {
                Ok(_) => counts.specs += 1,
                Err(e) => failures.push(format!("{page}:{}: label {key}='{spec}': {e}", l.line)),
            }
        }
    }
}

/// The repository's scripts that code lines run (`scripts/NAME`, also inside `$(…)`) must
/// exist and be executable; `scripts/fuzz.sh run|repro|minimise TARGET` must name a target.
fn check_scripts(page: &str, code: &Code, counts: &mut Counts, failures: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    for l in &code.lines {
        let text = l.text.split(" # ").next().unwrap_or_default();
        let mut rest = text;
        while let Some(i) = rest.find("scripts/") {
            let starts_word = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .unwrap_or(tail.len());
            let script = &tail[..end];
            rest = &tail[end..];
            if !starts_word || !script.ends_with(".sh") {
                continue;
            }
            let meta = std::fs::metadata(root().join(script));
            if !meta.is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
                failures.push(format!(
                    "{page}:{}: {script} is not an executable script here",
                    l.line
                ));
                continue;
            }
            counts.scripts += 1;
            if script == "scripts/fuzz.sh" {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let ["run" | "repro" | "minimise", target, ..] = words.as_slice() {
                    let f = root()
                        .join("fuzz/fuzz_targets")
                        .join(format!("{target}.rs"));
                    if !f.is_file() {
                        failures.push(format!("{page}:{}: no fuzz target {target}", l.line));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Links.

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let code = scan(text);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for p in &code.prose {
        let t = p.text.trim_start();
        if !t.starts_with('#') {
            continue;
        }
        let h = t.trim_start_matches('#');
        if !h.starts_with(' ') {
            continue;
        }
        let s = slug(h);
        let n = seen.entry(s.clone()).or_default();
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// Every `[text](target)` of the prose (inline code spans removed first).
fn links(line: &str) -> Vec<String> {
    let mut clean = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            clean.push(c);
        }
    }
    let mut out = Vec::new();
    let mut rest = clean.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                out.push(after[..j].trim().to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut failures = Vec::new();
    let mut count = 0;
    for page in pages() {
        let text = read(&page);
        let dir = Path::new(&page)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for p in scan(&text).prose {
            for target in links(&p.text) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                count += 1;
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let path = if file.is_empty() {
                    PathBuf::from(&page)
                } else {
                    dir.join(file)
                };
                let full = root().join(&path);
                if !full.exists() {
                    failures.push(format!(
                        "{page}:{}: link to {target}: {} does not exist",
                        p.line,
                        path.display()
                    ));
                    continue;
                }
                if let Some(a) = anchor {
                    if full.extension().is_some_and(|e| e == "md") {
                        let text = std::fs::read_to_string(&full).expect("readable page");
                        if !anchors(&text).contains(a) {
                            failures.push(format!(
                                "{page}:{}: link to {target}: no heading #{a} in {}",
                                p.line,
                                path.display()
                            ));
                        }
                    }
                }
            }
        }
    }
    println!("{count} relative links checked");
    assert!(
        count > 0,
        "no relative link found: the link checker is broken"
    );
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_example_checks() {
    let mut failures = Vec::new();
    let mut used_allow = BTreeMap::new();
    let mut total = Counts::default();
    println!(
        "{:<24} {:>8} {:>8} {:>5} {:>4} {:>6} {:>7} {:>8}",
        "page", "commands", "synopsis", "labs", "cni", "specs", "scripts", "allowed"
    );
    for page in pages() {
        let code = scan(&read(&page));
        let mut c = Counts::default();
        check_commands(&page, &code, &mut c, &mut failures, &mut used_allow);
        check_labs(&page, &code, &mut c, &mut failures);
        check_cni(&page, &code, &mut c, &mut failures);
        check_watch_specs(&page, &code, &mut c, &mut failures);
        check_scripts(&page, &code, &mut c, &mut failures);
        println!(
            "{page:<24} {:>8} {:>8} {:>5} {:>4} {:>6} {:>7} {:>8}",
            c.commands, c.synopses, c.labs, c.cni, c.specs, c.scripts, c.allowed
        );
        let has_code = !code.lines.is_empty();
        let exempt = NO_EXAMPLES.contains(&page.as_str());
        if has_code && c.checked() == 0 && !exempt {
            failures.push(format!(
                "{page}: has code but no checked example (is the checker broken?)"
            ));
        }
        if exempt && c.checked() > 0 {
            failures.push(format!(
                "{page}: in NO_EXAMPLES but has {} checked examples: remove it",
                c.checked()
            ));
        }
        total.commands += c.commands;
        total.synopses += c.synopses;
        total.labs += c.labs;
        total.cni += c.cni;
        total.specs += c.specs;
        total.scripts += c.scripts;
        total.allowed += c.allowed;
    }
    println!(
        "{:<24} {:>8} {:>8} {:>5} {:>4} {:>6} {:>7} {:>8}",
        "total",
        total.commands,
        total.synopses,
        total.labs,
        total.cni,
        total.specs,
        total.scripts,
        total.allowed
    );
    for a in NOT_YET_IMPLEMENTED {
        match used_allow.get(a) {
            None => failures.push(format!(
                "NOT_YET_IMPLEMENTED lists '{a}', which no example uses: remove it"
            )),
            Some((0, _)) => failures.push(format!(
                "NOT_YET_IMPLEMENTED lists '{a}', whose examples all parse now: remove it"
            )),
            Some(_) => {}
        }
    }
    assert!(
        total.commands > 0 && total.labs > 0 && total.cni > 0,
        "the checker found nothing"
    );
    assert!(
        failures.is_empty(),
        "{} broken examples:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own pieces.

#[test]
fn shell_words_splits_like_a_shell() {
    let w = |s: &str| shell_words(s).unwrap();
    assert_eq!(
        w("pipework br1 web1 10.0.0.2/24"),
        ["pipework", "br1", "web1", "10.0.0.2/24"]
    );
    assert_eq!(
        w("pipework ls --format '{{.Guest}} {{.Address}}'"),
        ["pipework", "ls", "--format", "{{.Guest}} {{.Address}}"]
    );
    assert_eq!(w(r#"a "b c" d\ e"#), ["a", "b c", "d e"]);
    assert_eq!(
        w("pipework eth2 $(docker run -d --net=none hipache) 1.2.3.4/24"),
        ["pipework", "eth2", EXPANSION, "1.2.3.4/24"]
    );
    assert_eq!(
        w("pipework ib0 $CONTAINERID 10.0.0.1/24 @8001"),
        ["pipework", "ib0", EXPANSION, "10.0.0.1/24", "@8001"]
    );
    assert_eq!(
        w("pipework ls --json | jq . > out"),
        ["pipework", "ls", "--json"]
    );
    assert_eq!(w("pipework doctor 2>/dev/null"), ["pipework", "doctor"]);
    assert_eq!(w("pipework gc && echo done"), ["pipework", "gc"]);
    assert_eq!(w("pipework check   # exit 1 when"), ["pipework", "check"]);
    assert_eq!(
        w("pipework br1 web1 U:a#b"),
        ["pipework", "br1", "web1", "U:a#b"]
    );
    assert!(shell_words("pipework 'open").is_err());
}

#[test]
fn commands_are_found_after_prompts_only() {
    assert_eq!(pipework_command("    $ pipework ls"), Some("pipework ls"));
    assert_eq!(
        pipework_command("a# pipework apply x.yaml"),
        Some("pipework apply x.yaml")
    );
    assert_eq!(pipework_command("# pipework gc"), Some("pipework gc"));
    assert_eq!(
        pipework_command("host# pipework doctor"),
        Some("pipework doctor")
    );
    assert_eq!(
        pipework_command("sudo pipework doctor"),
        Some("pipework doctor")
    );
    assert_eq!(
        pipework_command("PIPEWORK_LOG=pipework=debug pipework gc"),
        Some("pipework gc")
    );
    assert_eq!(pipework_command("FOO=bar make"), None);
    assert_eq!(pipework_command("pipework: warning: x"), None);
    assert_eq!(pipework_command("pipework-netavark info"), None);
    assert_eq!(
        pipework_command("install -m 0755 pipework /opt/cni/bin/pipework"),
        None
    );
    assert!(is_synopsis("pipework ls [--json]"));
    assert!(is_synopsis("pipework plan|apply FILE"));
    assert!(is_synopsis(
        "pipework [OPTIONS] <hostinterface> <guest> 0/0"
    ));
    assert!(!is_synopsis("pipework br1 web1 dhcp:-f   # … and keep it"));
    assert!(!is_synopsis(
        "pipework ls --format '{{.Guest}} {{.Address}}'"
    ));
}

#[test]
fn a_broken_example_is_caught() {
    let text = "x\n\n    pipework br1 web1 192.168.1.5\n    pipework br1 web1 192.168.1.5/24\n";
    let code = scan(text);
    let (mut c, mut f, mut a) = (Counts::default(), Vec::new(), BTreeMap::new());
    check_commands("t.md", &code, &mut c, &mut f, &mut a);
    assert_eq!(c.commands, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("t.md:3:"), "{f:?}");
    let lab = "```yaml\nlab: x\nguests:\n  a: {netns: x-a}\nattach:\n  - br1 b 10.0.0.1/24\n```\n";
    let mut f = Vec::new();
    check_labs("t.md", &scan(lab), &mut c, &mut f);
    assert_eq!(f.len(), 1, "an undefined guest must fail: {f:?}");
    let named = "This one (`examples/lab.yaml`):\n\n```yaml\nlab: demo\nguests:\n  h1: {netns: demo-h1}\n```\n";
    let mut f = Vec::new();
    check_labs("t.md", &scan(named), &mut c, &mut f);
    assert!(
        f.len() == 1 && f[0].contains("differs from examples/lab.yaml"),
        "a block unlike the file it names must fail: {f:?}"
    );
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug(" Compatibility with the original"),
        "compatibility-with-the-original"
    );
    assert_eq!(
        slug(" Keep containers plumbed across restarts: `pipework watch`"),
        "keep-containers-plumbed-across-restarts-pipework-watch"
    );
    assert_eq!(
        slug(" Multi-host: one lab (VXLAN, no controller)"),
        "multi-host-one-lab-vxlan-no-controller"
    );
}
