//! Shell completions (`pipework completions bash|zsh|fish`) and man pages (`pipework man`,
//! `pipework man DIR`), exercised by the real programs that will read them: bash runs the
//! generated completion function with COMP_WORDS/COMP_CWORD set, as readline would on <TAB>;
//! zsh loads it through compinit; fish parses it and answers `complete -C`; man-db renders
//! every page. zsh and fish are optional (scripts/testenv.sh installs them): without them their
//! tests are counted skips. Needs no root; nothing outside a private temporary directory is
//! written (HOME and the XDG directories of zsh and fish point into it).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every subcommand the completion scripts and the man pages must know: the grammar's own
/// list, which its unit tests keep equal to the words the parser takes.
fn subcommands() -> Vec<&'static str> {
    pipework::grammar::SUBCOMMANDS
        .iter()
        .map(|s| s.name)
        .collect()
}

/// The guest kinds offered as values of a guest argument.
const GUEST_KINDS: [&str; 6] = pipework::grammar::GUEST_KINDS;

fn must(cmd: &mut Command) -> Output {
    must_run(cmd)
}

/// `pipework completions SHELL`, written to DIR/NAME; its path.
fn completion_file(shell: &str, dir: &Path, name: &str) -> PathBuf {
    let out = must(Command::new(BIN).args(["completions", shell]));
    assert!(!out.stdout.is_empty(), "empty {shell} completion script");
    let p = dir.join(name);
    std::fs::write(&p, &out.stdout).expect("write completion script");
    p
}

fn have(program: &str) -> bool {
    have_program(program)
}

fn have_or_skip(program: &str, why: &str) -> bool {
    if have(program) {
        return true;
    }
    skip(format!(
        "SKIP {}: {program} is not installed ({why}; scripts/testenv.sh install adds it)",
        test_name()
    ));
    false
}

/// An environment that keeps a shell's history, caches and config out of the real HOME.
fn private_env(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", home)
        .env("LC_ALL", "C.UTF-8")
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .env_remove("ZDOTDIR");
}

// ---------------------------------------------------------------------------------------------
// bash
// ---------------------------------------------------------------------------------------------

/// Sources the completion script ($1), prints the `complete -p pipework` line, then calls the
/// registered function as readline would for the command line made of the other arguments (the
/// last one being the word under the cursor) and prints COMPREPLY, one word a line.
const BASH_HARNESS: &str = r#"
source "$1" || { echo "SOURCE-FAILED $?"; exit 3; }
shift
spec=$(complete -p pipework) || { echo "NOT-REGISTERED"; exit 4; }
printf 'SPEC %s\n' "$spec"
case "$spec" in
  *' -F '*) fn=${spec#* -F }; fn=${fn%% *} ;;
  *) echo "NO-FUNCTION"; exit 5 ;;
esac
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
COMP_KEY=9
COMPREPLY=()
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
for w in "${COMPREPLY[@]}"; do printf 'REPLY %s\n' "$w"; done
"#;

struct BashCompletion {
    spec: String,
    replies: Vec<String>,
}

/// Completes the command line WORDS (the last is the word being completed) with bash.
fn bash_complete(script: &Path, home: &Path, words: &[&str]) -> BashCompletion {
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", BASH_HARNESS, "bash"])
        .arg(script)
        .args(words);
    private_env(&mut cmd, home);
    let out = must(&mut cmd);
    let stdout = text(&out.stdout);
    let mut spec = String::new();
    let mut replies = Vec::new();
    for line in stdout.lines() {
        if let Some(s) = line.strip_prefix("SPEC ") {
            spec = s.to_string();
        } else if let Some(r) = line.strip_prefix("REPLY ") {
            replies.push(r.trim_end().to_string());
        }
    }
    BashCompletion { spec, replies }
}

fn assert_offers(what: &str, replies: &[String], expected: &[&str]) {
    for e in expected {
        assert!(
            replies.iter().any(|r| r == e),
            "{what}: {e:?} is not offered; bash offered {replies:?}"
        );
    }
}

#[test]
fn bash_completion_registers_and_completes() {
    if !have_or_skip("bash", "the bash completion test runs it") {
        return;
    }
    let dir = TempDir::new("comp-bash");
    let script = completion_file("bash", dir.path.as_path(), "pipework.bash");

    let c = bash_complete(&script, dir.path.as_path(), &["pipework", "d"]);
    assert!(
        c.spec.starts_with("complete ") && c.spec.ends_with(" pipework"),
        "complete -p pipework: {:?}",
        c.spec
    );
    assert_offers(
        "pipework d<TAB>",
        &c.replies,
        &["detach", "destroy", "doctor"],
    );
    for r in &c.replies {
        assert!(r.starts_with('d'), "pipework d<TAB> offered {r:?}");
    }

    let c = bash_complete(&script, dir.path.as_path(), &["pipework", ""]);
    assert_offers("pipework <TAB>", &c.replies, &subcommands());

    let c = bash_complete(
        &script,
        dir.path.as_path(),
        &["pipework", "completions", ""],
    );
    assert_offers(
        "pipework completions <TAB>",
        &c.replies,
        &["bash", "zsh", "fish"],
    );

    let c = bash_complete(&script, dir.path.as_path(), &["pipework", "detach", ""]);
    assert_offers("pipework detach <TAB>", &c.replies, &GUEST_KINDS);

    let c = bash_complete(&script, dir.path.as_path(), &["pipework", "detach", "po"]);
    assert_offers("pipework detach po<TAB>", &c.replies, &["podman:"]);
    assert!(
        !c.replies.iter().any(|r| r == "docker:"),
        "pipework detach po<TAB> offered docker: {:?}",
        c.replies
    );
}

// ---------------------------------------------------------------------------------------------
// zsh
// ---------------------------------------------------------------------------------------------

/// $1: a directory holding _pipework; $2: the script itself. compinit finds `#compdef pipework`
/// on fpath, `autoload +X` parses the function (a syntax error fails here), and sourcing the
/// file after compinit registers it with compdef.
const ZSH_HARNESS: &str = r#"
fpath=("$1" $fpath)
autoload -U compinit
compinit -u -D || exit 3
print -r -- "FPATH ${_comps[pipework]}"
autoload +X _pipework || exit 4
(( $+functions[_pipework] )) && print -r -- "LOADED"
unset '_comps[pipework]'
source "$2" || exit 5
print -r -- "SOURCED ${_comps[pipework]}"
"#;

#[test]
fn zsh_completion_loads() {
    if !have_or_skip("zsh", "its completion is loaded by the real zsh") {
        return;
    }
    let dir = TempDir::new("comp-zsh");
    let fdir = dir.path.as_path().join("functions");
    std::fs::create_dir_all(&fdir).unwrap();
    let script = completion_file("zsh", &fdir, "_pipework");
    let body = std::fs::read_to_string(&script).unwrap();
    assert!(
        body.starts_with("#compdef pipework"),
        "zsh script lacks its #compdef line: {:?}",
        body.lines().next()
    );
    for s in subcommands() {
        assert!(body.contains(s), "zsh script does not know {s}");
    }
    let mut cmd = Command::new("zsh");
    cmd.args(["-f", "-c", ZSH_HARNESS, "zsh"])
        .arg(&fdir)
        .arg(&script);
    private_env(&mut cmd, dir.path.as_path());
    let out = must(&mut cmd);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FPATH _pipework\n"),
        "compinit did not register _pipework from fpath: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("LOADED\n"),
        "autoload +X _pipework: {stdout}"
    );
    assert!(
        stdout.contains("SOURCED _pipework\n"),
        "sourcing the script did not compdef it: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// fish
// ---------------------------------------------------------------------------------------------

/// `complete -C LINE` in a fish that sourced the script: the candidate words (before the tab
/// and description).
fn fish_complete(script: &Path, home: &Path, line: &str) -> Vec<String> {
    let mut cmd = Command::new("fish");
    cmd.args([
        "--no-config",
        "-c",
        "source $argv[1]; or exit 3; complete -C $argv[2]",
    ])
    .arg(script)
    .arg(line);
    private_env(&mut cmd, home);
    let out = must(&mut cmd);
    text(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn fish_completion_parses_and_completes() {
    if !have_or_skip("fish", "its completion is run by the real fish") {
        return;
    }
    let dir = TempDir::new("comp-fish");
    let script = completion_file("fish", dir.path.as_path(), "pipework.fish");
    let mut cmd = Command::new("fish");
    cmd.arg("--no-execute").arg(&script);
    private_env(&mut cmd, dir.path.as_path());
    must(&mut cmd);

    let words = fish_complete(&script, dir.path.as_path(), "pipework d");
    assert_offers("fish: pipework d", &words, &["detach", "destroy", "doctor"]);
    let words = fish_complete(&script, dir.path.as_path(), "pipework ");
    assert_offers("fish: pipework ", &words, &subcommands());
    let words = fish_complete(&script, dir.path.as_path(), "pipework detach ");
    assert_offers("fish: pipework detach ", &words, &GUEST_KINDS);
    let words = fish_complete(&script, dir.path.as_path(), "pipework completions ");
    assert_offers(
        "fish: pipework completions ",
        &words,
        &["bash", "zsh", "fish"],
    );
}

// ---------------------------------------------------------------------------------------------
// man pages
// ---------------------------------------------------------------------------------------------

/// Renders a man page file with man-db (`man -l`), groff warnings on; (text, stderr).
fn render_man(page: &Path, home: &Path) -> (String, String) {
    let mut cmd = Command::new("man");
    cmd.args(["--warnings", "-P", "cat", "-l"])
        .arg(page)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .env_remove("MAN_KEEP_FORMATTING");
    private_env(&mut cmd, home);
    let out = must(&mut cmd);
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn man_pages_render() {
    if !have_or_skip("man", "man-db renders the pages") {
        return;
    }
    let dir = TempDir::new("man");
    let mdir = dir.path.as_path().join("man1");
    std::fs::create_dir_all(&mdir).unwrap();
    must(Command::new(BIN).arg("man").arg(&mdir));

    // `pipework man` with no directory prints the main page itself.
    let out = must(Command::new(BIN).arg("man"));
    let roff = text(&out.stdout);
    assert!(
        roff.contains(".TH"),
        "pipework man printed no roff: {roff:.200}"
    );
    let main = mdir.join("pipework.1");
    assert_eq!(
        std::fs::read_to_string(&main).expect("pipework man DIR wrote no pipework.1"),
        roff,
        "pipework man and DIR/pipework.1 differ"
    );

    let (page, warnings) = render_man(&main, dir.path.as_path());
    for section in ["NAME", "SYNOPSIS", "EXAMPLES"] {
        assert!(
            page.lines().any(|l| l.trim_end() == section),
            "pipework(1) has no {section} section:\n{page}"
        );
    }
    assert!(page.contains("pipework"), "pipework(1):\n{page}");
    assert!(
        warnings.trim().is_empty(),
        "groff warnings in pipework(1): {warnings}"
    );

    for sub in subcommands() {
        let p = mdir.join(format!("pipework-{sub}.1"));
        assert!(p.is_file(), "pipework man DIR wrote no {}", p.display());
    }
    let mut pages = 0;
    for entry in std::fs::read_dir(&mdir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("pipework") && name.ends_with(".1"),
            "unexpected file {name} from pipework man DIR"
        );
        let (page, warnings) = render_man(&p, dir.path.as_path());
        assert!(
            page.lines().any(|l| l.trim_end() == "NAME"),
            "{name} has no NAME section:\n{page}"
        );
        let stem = name.trim_end_matches(".1");
        assert!(
            page.contains(stem),
            "{name} does not name {stem} in its text:\n{page}"
        );
        assert!(
            warnings.trim().is_empty(),
            "groff warnings in {name}: {warnings}"
        );
        pages += 1;
    }
    assert!(
        pages > subcommands().len(),
        "{pages} pages in {}",
        mdir.display()
    );
}
