//! Command templates: `{}` becomes the input, `{#}` the job number.
//!
//! Without `--shell`, each word of the template becomes one argument of the
//! job, substituted independently, and the argv goes straight to exec: an
//! input can never become more than the arguments it was substituted into.
//! With `--shell`, the words are joined with spaces into one `sh -c` script
//! and the input is substituted single-quoted, so the shell sees it as one
//! literal word whatever it contains.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const INPUT: &[u8] = b"{}";
const SEQ: &[u8] = b"{#}";

/// A command line with placeholders.
#[derive(Clone, Debug)]
pub struct Template {
    words: Vec<Vec<u8>>,
    shell: bool,
    /// Whether some word holds `{}`; if not, the input is appended.
    has_input: bool,
}

impl Template {
    /// A template from the command words. `words` must not be empty.
    pub fn new(words: &[OsString], shell: bool) -> Template {
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let has_input = words.iter().any(|w| contains(w, INPUT));
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
            let quoted = shell_quote(input);
            let mut script = Vec::new();
            for (i, word) in self.words.iter().enumerate() {
                if i > 0 {
                    script.push(b' ');
                }
                substitute(word, &quoted, seq.as_bytes(), &mut script);
            }
            if !self.has_input {
                script.push(b' ');
                script.extend_from_slice(&quoted);
            }
            vec!["sh".into(), "-c".into(), OsString::from_vec(script)]
        } else {
            let mut argv: Vec<OsString> = self
                .words
                .iter()
                .map(|word| {
                    let mut out = Vec::with_capacity(word.len());
                    substitute(word, input, seq.as_bytes(), &mut out);
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

/// Appends `word` to `out` with `{}` replaced by `input` and `{#}` by `seq`,
/// scanning left to right; substituted text is never scanned again.
fn substitute(word: &[u8], input: &[u8], seq: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < word.len() {
        if word[i..].starts_with(INPUT) {
            out.extend_from_slice(input);
            i += INPUT.len();
        } else if word[i..].starts_with(SEQ) {
            out.extend_from_slice(seq);
            i += SEQ.len();
        } else {
            out.push(word[i]);
            i += 1;
        }
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
