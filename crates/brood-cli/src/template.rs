//! Command templates: `{}` becomes the input, `{#}` the job number, and, as
//! in GNU parallel, `{.}` the input without its extension, `{/}` its last
//! path component, `{//}` the directory part and `{/.}` the last component
//! without its extension.
//!
//! Without `--shell`, each word of the template becomes one argument of the
//! job, substituted independently, and the argv goes straight to exec: an
//! input can never become more than the arguments it was substituted into.
//! With `--shell`, the words are joined with spaces into one `sh -c` script
//! and the input is substituted single-quoted, so the shell sees it as one
//! literal word whatever it contains.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// What a placeholder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Input,
    Seq,
    NoExt,
    Base,
    Dir,
    BaseNoExt,
}

/// Every placeholder, longest first where one is a prefix of another's
/// spelling (`{/.}` and `{//}` before `{/}`).
const PLACEHOLDERS: &[(&[u8], Part)] = &[
    (b"{//}", Part::Dir),
    (b"{/.}", Part::BaseNoExt),
    (b"{/}", Part::Base),
    (b"{.}", Part::NoExt),
    (b"{#}", Part::Seq),
    (b"{}", Part::Input),
];

impl Part {
    /// The text this placeholder stands for.
    fn value<'a>(self, input: &'a [u8], seq: &'a [u8]) -> &'a [u8] {
        match self {
            Part::Input => input,
            Part::Seq => seq,
            Part::NoExt => without_extension(input),
            Part::Base => base(input),
            Part::Dir => dir(input),
            Part::BaseNoExt => without_extension(base(input)),
        }
    }
}

/// The last path component: everything after the last `/`.
fn base(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Everything before the last `/` (`/` for a file in the root, `.` when
/// there is no `/`), as GNU parallel's `{//}`.
fn dir(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}

/// `path` without the extension of its last component: up to the last `.`
/// of that component, unless the dot starts it (`.bashrc` has none).
fn without_extension(path: &[u8]) -> &[u8] {
    let start = path.len() - base(path).len();
    match path[start..].iter().rposition(|&b| b == b'.') {
        Some(0) | None => path,
        Some(i) => &path[..start + i],
    }
}

/// A command line with placeholders.
#[derive(Clone, Debug)]
pub struct Template {
    words: Vec<Vec<u8>>,
    shell: bool,
    /// Whether some word holds a placeholder derived from the input; if
    /// not, the input is appended.
    has_input: bool,
}

impl Template {
    /// A template from the command words. `words` must not be empty.
    pub fn new(words: &[OsString], shell: bool) -> Template {
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let has_input = words.iter().any(|w| {
            PLACEHOLDERS
                .iter()
                .any(|&(text, part)| part != Part::Seq && contains(w, text))
        });
        Template {
            words,
            shell,
            has_input,
        }
    }

    /// The argv of job number `seq` for `input`.
    pub fn expand(&self, input: &[u8], seq: u64) -> Vec<OsString> {
        let seq = seq.to_string();
        if self.shell {
            let mut script = Vec::new();
            for (i, word) in self.words.iter().enumerate() {
                if i > 0 {
                    script.push(b' ');
                }
                substitute(word, input, seq.as_bytes(), true, &mut script);
            }
            if !self.has_input {
                script.push(b' ');
                script.extend_from_slice(&shell_quote(input));
            }
            vec!["sh".into(), "-c".into(), OsString::from_vec(script)]
        } else {
            let mut argv: Vec<OsString> = self
                .words
                .iter()
                .map(|word| {
                    let mut out = Vec::with_capacity(word.len());
                    substitute(word, input, seq.as_bytes(), false, &mut out);
                    OsString::from_vec(out)
                })
                .collect();
            if !self.has_input {
                argv.push(OsString::from_vec(input.to_vec()));
            }
            argv
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Appends `word` to `out` with every placeholder replaced, scanning left to
/// right; substituted text is never scanned again. With `quote`, text derived
/// from the input is shell-quoted (the job number needs no quoting).
fn substitute(word: &[u8], input: &[u8], seq: &[u8], quote: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    'scan: while i < word.len() {
        for &(text, part) in PLACEHOLDERS {
            if word[i..].starts_with(text) {
                let value = part.value(input, seq);
                if quote && part != Part::Seq {
                    out.extend_from_slice(&shell_quote(value));
                } else {
                    out.extend_from_slice(value);
                }
                i += text.len();
                continue 'scan;
            }
        }
        out.push(word[i]);
        i += 1;
    }
}

/// Quotes `text` for `sh` as one word: wrapped in single quotes, each `'`
/// written as `'\''`. Inside single quotes the shell interprets nothing.
pub fn shell_quote(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'\'');
    for &b in text {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// An argv as one line a shell would split back into the same words: words
/// made only of safe characters stay bare, others are single-quoted.
pub fn display_argv(argv: &[OsString]) -> String {
    let words: Vec<String> = argv.iter().map(|w| display_word(w)).collect();
    words.join(" ")
}

fn display_word(word: &OsStr) -> String {
    let bytes = word.as_bytes();
    let safe = !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"_-./=:,+@%^".contains(&b));
    if safe {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        String::from_utf8_lossy(&shell_quote(bytes)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    fn expand(ws: &[&str], shell: bool, input: &str, seq: u64) -> Vec<String> {
        Template::new(&words(ws), shell)
            .expand(input.as_bytes(), seq)
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect()
    }

    #[test]
    fn appends_input_without_placeholder() {
        assert_eq!(
            expand(&["echo", "hi"], false, "x y", 1),
            ["echo", "hi", "x y"]
        );
    }

    #[test]
    fn substitutes_input_and_seq_anywhere() {
        assert_eq!(
            expand(&["cp", "{}", "out/{#}-{}.bak"], false, "a.txt", 7),
            ["cp", "a.txt", "out/7-a.txt.bak"]
        );
        // {#} alone does not count as the input placeholder.
        assert_eq!(
            expand(&["echo", "{#}"], false, "in", 3),
            ["echo", "3", "in"]
        );
        // The command word itself is a template too.
        assert_eq!(expand(&["{}", "-v"], false, "ls", 1), ["ls", "-v"]);
    }

    #[test]
    fn path_placeholders() {
        let e = |w: &str, input: &str| expand(&[w], false, input, 1)[0].clone();
        assert_eq!(e("{.}", "dir/a.tar.gz"), "dir/a.tar");
        assert_eq!(e("{.}", "a.b/c"), "a.b/c");
        assert_eq!(e("{.}", ".bashrc"), ".bashrc");
        assert_eq!(e("{.}", "d/.bashrc"), "d/.bashrc");
        assert_eq!(e("{/}", "dir/sub/f.txt"), "f.txt");
        assert_eq!(e("{/}", "f.txt"), "f.txt");
        assert_eq!(e("{//}", "dir/sub/f.txt"), "dir/sub");
        assert_eq!(e("{//}", "f.txt"), ".");
        assert_eq!(e("{//}", "/f.txt"), "/");
        assert_eq!(e("{/.}", "dir/sub/f.tar.gz"), "f.tar");
        assert_eq!(e("{/.}", "x.y/f"), "f");
        assert_eq!(
            expand(
                &["convert", "{}", "{//}/thumbs/{/.}.png"],
                false,
                "img/cat.jpg",
                1
            ),
            ["convert", "img/cat.jpg", "img/thumbs/cat.png"]
        );
        // Any input-derived placeholder stops the input being appended.
        assert_eq!(expand(&["echo", "{/}"], false, "a/b", 1), ["echo", "b"]);
    }

    #[test]
    fn shell_mode_quotes_every_input_derived_value() {
        let argv = expand(
            &["printf '%s|' {} {.}.bak {/} {//}"],
            true,
            "d $x/it's.txt",
            1,
        );
        assert_eq!(argv[..2], ["sh", "-c"]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&argv[2])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "d $x/it's.txt|d $x/it's.bak|it's.txt|d $x|"
        );
    }

    #[test]
    fn substituted_text_is_not_rescanned() {
        assert_eq!(expand(&["echo", "{}"], false, "{#}", 9), ["echo", "{#}"]);
        assert_eq!(expand(&["echo", "{{}}"], false, "x", 1), ["echo", "{x}"]);
    }

    #[test]
    fn no_shell_means_no_injection() {
        let argv = expand(&["echo", "{}"], false, "; rm -rf / #", 1);
        assert_eq!(argv, ["echo", "; rm -rf / #"]);
    }

    #[test]
    fn shell_mode_quotes_the_input() {
        assert_eq!(
            expand(&["echo", "{}", "|", "wc", "-c"], true, "it's $(x)", 2),
            ["sh", "-c", r#"echo 'it'\''s $(x)' | wc -c"#]
        );
        assert_eq!(
            expand(&["echo {#}:"], true, "a b", 4),
            ["sh", "-c", "echo 4: 'a b'"]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(b""), b"''");
        assert_eq!(shell_quote(b"abc"), b"'abc'");
        assert_eq!(shell_quote(b"a'b"), b"'a'\\''b'");
        assert_eq!(shell_quote(b"''"), b"''\\'''\\'''");
        assert_eq!(shell_quote(b"$HOME `x` \\ \n"), b"'$HOME `x` \\ \n'");
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        for text in [
            "",
            "plain",
            "a'b",
            "''",
            "$(echo pwned)",
            "`id`",
            "a\nb",
            "\\'\"",
            "*",
        ] {
            let script = [b"printf %s ".as_slice(), &shell_quote(text.as_bytes())].concat();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(OsStr::from_bytes(&script))
                .output()
                .unwrap();
            assert_eq!(out.stdout, text.as_bytes(), "{text:?}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(
            display_argv(&words(&["echo", "a b", "", "x=1", "it's"])),
            r#"echo 'a b' '' x=1 'it'\''s'"#
        );
    }

    #[test]
    fn non_utf8_input_passes_through() {
        let t = Template::new(&words(&["cat"]), false);
        let argv = t.expand(b"\xff\xfe", 1);
        assert_eq!(argv[1].as_bytes(), b"\xff\xfe");
    }
}
