//! Command templates and GNU parallel's replacement strings.
//!
//! | string | becomes |
//! | --- | --- |
//! | `{}` | the job's arguments (one, or several with `-N`, `-X`, more sources) |
//! | `{.}` | without the extension: from the last `.` of the last path component |
//! | `{/}` | the last path component (after the last `/`) |
//! | `{//}` | the directory, as Perl's `dirname` |
//! | `{/.}` | the last component without extension |
//! | `{#}` | the job's sequence number |
//! | `{%}` | the job's slot, 1 ..= `-j` |
//! | `{n}`, `{n.}`, `{n/}`, `{n//}`, `{n/.}` | the n'th argument (negative: from the end) |
//!
//! These match GNU parallel on its edge cases: `{.}` and `{/.}` of
//! `.bashrc` are empty, `{/}` of `a/b/` is empty and `{//}` of it is `a`.
//!
//! Without `--shell`, each word of the template becomes argv words of the
//! job and the argv goes straight to exec: an argument can never become
//! more than the words it was substituted into. With `--shell`, the words
//! are joined with spaces into one `sh -c` script and every substituted
//! value is shell-quoted for where it stands in the script, inside quotes
//! or not ([`crate::script`]). The same applies to the `-c` script of a
//! template whose program is itself a POSIX shell (`sh -c 'echo {}'`), so
//! that an input such as `a; rm -rf ~` stays literal data there too.
//!
//! Without any replacement string (`{#}` and `{%}` included), the
//! arguments are appended, as in GNU parallel.

use crate::script::{self, quote, Quoting, Scanner, Unsure};
use std::borrow::Cow;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// What part of a value a replacement string takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Modifier {
    Whole,
    NoExt,
    Base,
    Dir,
    BaseNoExt,
}

/// Which value a replacement string stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// `{}`: every argument.
    All,
    /// `{n}`: one argument, from 1, or from the end if negative.
    Pos(i64),
    /// `{#}`.
    Seq,
    /// `{%}`.
    Slot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(Vec<u8>),
    /// A replacement string; in a shell script, with how its value is
    /// quoted there (see [`crate::script`]).
    Place(Which, Modifier, Option<Quoting>),
}

/// A word of the template, split into literal text and replacement strings.
type Word = Vec<Token>;

/// How several arguments fill one `{}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Multi {
    /// Side by side, as separate words (default, and `-m`).
    #[default]
    Split,
    /// The whole word repeated once per argument (`-X`, `-n`).
    Context,
}

/// How the template becomes an argv.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Layout {
    /// Each word is argv words; exec'd directly.
    Exec,
    /// `--shell`: one `sh -c` script of all the words.
    Shell,
    /// The program is a POSIX shell and word `.0` is its `-c` script.
    ShellScript(usize),
    /// No command: the arguments are the script.
    InputsAreCommands,
}

/// The POSIX shells whose `-c` script gets quoted substitutions.
pub const POSIX_SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"];

/// Words that only a shell understands, rejected as plain arguments.
const SHELL_OPERATORS: &[&str] = &[
    "|", "||", "&&", ";", ";;", ">", ">>", "<", "<<", "2>", "2>>", "&>", "|&", "2>&1", ">&2",
    "1>&2",
];

/// A command line with replacement strings.
#[derive(Clone, Debug)]
pub struct Template {
    /// The words (for `Shell` and `ShellScript`, the script's words are
    /// split at spaces so that `-X` can repeat one of them).
    words: Vec<Word>,
    /// For `ShellScript(i)`: how many sub-words of `words` make word i.
    script_span: (usize, usize),
    layout: Layout,
    multi: Multi,
    has_replacement: bool,
    uses_slot: bool,
    uses_seq: bool,
    /// How arguments appended to a shell script are quoted.
    append_quoting: Quoting,
}

/// A template that cannot be run as written.
#[derive(Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl Template {
    /// A template from the command words; none means the inputs are the
    /// commands. With `check`, words that need a shell are rejected
    /// unless `shell` is set.
    pub fn new(
        words: &[OsString],
        shell: bool,
        multi: Multi,
        check: bool,
    ) -> Result<Template, TemplateError> {
        if words.is_empty() {
            return Ok(Template {
                words: Vec::new(),
                script_span: (0, 0),
                layout: Layout::InputsAreCommands,
                multi,
                has_replacement: false,
                uses_slot: false,
                uses_seq: false,
                append_quoting: Quoting::Unquoted,
            });
        }
        if words[0].is_empty() {
            return Err(TemplateError(
                "empty command: the program name is an empty string".into(),
            ));
        }
        let parsed: Vec<Word> = words
            .iter()
            .map(|w| parse_word(w.as_bytes()))
            .collect::<Result<_, _>>()?;
        let has_replacement = parsed
            .iter()
            .flatten()
            .any(|t| matches!(t, Token::Place(..)));
        let uses_slot = parsed
            .iter()
            .flatten()
            .any(|t| matches!(t, Token::Place(Which::Slot, ..)));
        let uses_seq = parsed
            .iter()
            .flatten()
            .any(|t| matches!(t, Token::Place(Which::Seq, ..)));
        let (layout, mut words, script_span) = if shell {
            let split: Vec<Word> = parsed.into_iter().flat_map(split_at_spaces).collect();
            let n = split.len();
            (Layout::Shell, split, (0, n))
        } else if let Some(i) = shell_script_index(words) {
            let mut out = Vec::new();
            let mut span = (0, 0);
            for (n, w) in parsed.into_iter().enumerate() {
                if n == i {
                    let sub = split_at_spaces(w);
                    span = (out.len(), out.len() + sub.len());
                    out.extend(sub);
                } else {
                    out.push(w);
                }
            }
            (Layout::ShellScript(i), out, span)
        } else {
            if check {
                check_needs_shell(words)?;
            }
            (Layout::Exec, parsed, (0, 0))
        };
        let mut append_quoting = Quoting::Unquoted;
        if layout != Layout::Exec {
            let script = &mut words[script_span.0..script_span.1];
            let at_end = annotate(script, multi == Multi::Context)?;
            if layout == Layout::Shell && !has_replacement {
                append_quoting = at_end.map_err(|e| {
                    TemplateError(format!(
                        "cannot append the arguments safely {} at the end of the shell script",
                        e.0
                    ))
                })?;
            }
        }
        Ok(Template {
            words,
            script_span,
            layout,
            multi,
            has_replacement,
            uses_slot,
            uses_seq,
            append_quoting,
        })
    }

    /// Whether some word holds `{%}`: the argv is then known only when the
    /// job gets its slot.
    pub fn uses_slot(&self) -> bool {
        self.uses_slot
    }

    /// Whether some word holds `{#}`: a job's argv, and so its key, then
    /// depends on its position.
    pub fn uses_seq(&self) -> bool {
        self.uses_seq
    }

    /// The argv of a job. `slot` is `None` before the job has one; `{%}`
    /// is then left as written (the job key is computed that way, since a
    /// job is the same job whichever slot runs it).
    pub fn expand(&self, args: &[Vec<u8>], seq: u64, slot: Option<u64>) -> Vec<OsString> {
        let ctx = Ctx { args, seq, slot };
        let append = !self.has_replacement && !args.is_empty();
        match self.layout {
            Layout::InputsAreCommands => {
                let script = args.join(&b' ');
                vec!["sh".into(), "-c".into(), OsString::from_vec(script)]
            }
            Layout::Exec => {
                let mut argv = Vec::new();
                for word in &self.words {
                    self.expand_exec(word, &ctx, &mut argv);
                }
                if append {
                    argv.extend(args.iter().cloned());
                }
                argv.into_iter().map(OsString::from_vec).collect()
            }
            Layout::Shell => {
                let mut script = self.expand_script(&self.words, &ctx);
                if append {
                    for a in args {
                        script.push(b' ');
                        script.extend(script::quote_as(self.append_quoting, a));
                    }
                }
                vec!["sh".into(), "-c".into(), OsString::from_vec(script)]
            }
            Layout::ShellScript(_) => {
                let (from, to) = self.script_span;
                let mut argv: Vec<Vec<u8>> = Vec::new();
                for word in &self.words[..from] {
                    self.expand_exec(word, &ctx, &mut argv);
                }
                argv.push(self.expand_script(&self.words[from..to], &ctx));
                for word in &self.words[to..] {
                    self.expand_exec(word, &ctx, &mut argv);
                }
                if append {
                    argv.extend(args.iter().cloned());
                }
                argv.into_iter().map(OsString::from_vec).collect()
            }
        }
    }

    /// Expands one word for exec: one or more argv words.
    fn expand_exec(&self, word: &Word, ctx: &Ctx<'_>, out: &mut Vec<Vec<u8>>) {
        if self.multi == Multi::Context && has_all(word) && ctx.args.len() > 1 {
            for one in ctx.args {
                let single = Ctx {
                    args: std::slice::from_ref(one),
                    ..*ctx
                };
                out.push(expand_joined(word, &single, ctx));
            }
            return;
        }
        // Several arguments in one `{}` split the word between them, as
        // the shell splits GNU parallel's space-joined, quoted values.
        let mut current = Vec::new();
        for token in word {
            match token {
                Token::Lit(text) => current.extend_from_slice(text),
                Token::Place(Which::All, m, _) => {
                    for (i, a) in ctx.args.iter().enumerate() {
                        if i > 0 {
                            out.push(std::mem::take(&mut current));
                        }
                        current.extend_from_slice(&modify(*m, a));
                    }
                }
                Token::Place(which, m, _) => current.extend_from_slice(&ctx.single(*which, *m)),
            }
        }
        out.push(current);
    }

    /// Expands script words for a shell, quoting every substituted value.
    fn expand_script(&self, words: &[Word], ctx: &Ctx<'_>) -> Vec<u8> {
        let mut script = Vec::new();
        for (i, word) in words.iter().enumerate() {
            if i > 0 {
                script.push(b' ');
            }
            if self.multi == Multi::Context && has_all(word) && ctx.args.len() > 1 {
                for (n, one) in ctx.args.iter().enumerate() {
                    if n > 0 {
                        script.push(b' ');
                    }
                    let single = Ctx {
                        args: std::slice::from_ref(one),
                        ..*ctx
                    };
                    script.extend(expand_joined(word, &single, ctx));
                }
            } else {
                script.extend(expand_joined(word, ctx, ctx));
            }
        }
        script
    }
}

/// Expands a word as one string: `{}` with several arguments joins them
/// with spaces. `all` supplies `{}`, `pos` the positional strings. Values
/// of a script's replacement strings are quoted as annotated.
fn expand_joined(word: &Word, all: &Ctx<'_>, pos: &Ctx<'_>) -> Vec<u8> {
    let put = |out: &mut Vec<u8>, v: &[u8], quoting: &Option<Quoting>| match quoting {
        Some(q) => out.extend(script::quote_as(*q, v)),
        None => out.extend_from_slice(v),
    };
    let mut out = Vec::new();
    for token in word {
        match token {
            Token::Lit(text) => out.extend_from_slice(text),
            Token::Place(Which::All, m, quoting) => {
                for (i, a) in all.args.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    put(&mut out, &modify(*m, a), quoting);
                }
            }
            // Numbers need no quoting; `{%}` before a slot is assigned
            // stays as written.
            Token::Place(which @ (Which::Seq | Which::Slot), m, _) => {
                out.extend_from_slice(&pos.single(*which, *m))
            }
            Token::Place(which, m, quoting) => put(&mut out, &pos.single(*which, *m), quoting),
        }
    }
    out
}

/// Annotates a shell script's replacement strings with how their values
/// are quoted where they stand, and returns how arguments appended after
/// the script are quoted. `repeated` is whether `{}` words are repeated
/// (`-X`): such a word must then end in the quoting it started in.
fn annotate(script: &mut [Word], repeated: bool) -> Result<Result<Quoting, Unsure>, TemplateError> {
    let unsure = |why: &str| {
        TemplateError(format!(
            "cannot quote a replacement string safely {why} in the shell script: move it \
             elsewhere, or pass the value as an argument (sh -c '... \"$1\"' sh {{}})"
        ))
    };
    let mut scanner = Scanner::default();
    for (i, word) in script.iter_mut().enumerate() {
        if i > 0 {
            scanner.feed(b" ");
        }
        let before = scanner.clone();
        let repeats = repeated && has_all(word);
        for token in word.iter_mut() {
            match token {
                Token::Lit(text) => scanner.feed(text),
                Token::Place(Which::Seq | Which::Slot, ..) => scanner.value(),
                Token::Place(_, _, quoting) => {
                    *quoting = Some(scanner.here().map_err(|e| unsure(e.0))?);
                    scanner.value();
                }
            }
        }
        if repeats && !scanner.same_place(&before) {
            return Err(unsure(
                "in a word that -X repeats and that opens or closes quotes",
            ));
        }
    }
    Ok(scanner.here())
}

/// Expands a one-word template (`--tagstring`) to text, arguments joined
/// with spaces.
pub fn expand_text(text: &str, args: &[Vec<u8>], seq: u64, slot: Option<u64>) -> Vec<u8> {
    match parse_word(text.as_bytes()) {
        Ok(word) => {
            let ctx = Ctx { args, seq, slot };
            expand_joined(&word, &ctx, &ctx)
        }
        Err(_) => text.as_bytes().to_vec(),
    }
}

/// Whether a one-word template (`--results NAME`) holds a replacement
/// string; unsupported strings are an error.
pub fn has_replacement(text: &str) -> Result<bool, TemplateError> {
    Ok(parse_word(text.as_bytes())?
        .iter()
        .any(|t| matches!(t, Token::Place(..))))
}

/// Checks a one-word template (`--tagstring`) for unsupported strings.
pub fn check_text(text: &str) -> Result<(), TemplateError> {
    parse_word(text.as_bytes()).map(|_| ())
}

struct Ctx<'a> {
    args: &'a [Vec<u8>],
    seq: u64,
    slot: Option<u64>,
}

impl Ctx<'_> {
    /// The value of a single-valued replacement string.
    fn single(&self, which: Which, m: Modifier) -> Cow<'_, [u8]> {
        match which {
            Which::Seq => Cow::Owned(self.seq.to_string().into_bytes()),
            Which::Slot => match self.slot {
                Some(s) => Cow::Owned(s.to_string().into_bytes()),
                None => Cow::Borrowed(b"{%}"),
            },
            Which::Pos(n) => {
                let len = self.args.len() as i64;
                let index = if n > 0 { n - 1 } else { len + n };
                match usize::try_from(index).ok().and_then(|i| self.args.get(i)) {
                    Some(a) => modify(m, a),
                    // Too few arguments: empty, as in GNU parallel.
                    None => Cow::Borrowed(b""),
                }
            }
            Which::All => unreachable!("{{}} is multi-valued"),
        }
    }
}

fn has_all(word: &Word) -> bool {
    word.iter()
        .any(|t| matches!(t, Token::Place(Which::All, ..)))
}

/// Parses one word into literal text and replacement strings.
fn parse_word(word: &[u8]) -> Result<Word, TemplateError> {
    let mut tokens = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < word.len() {
        if word[i] == b'{' {
            if word[i + 1..].starts_with(b"=") {
                return Err(TemplateError(format!(
                    "{{= perl expression =}} replacement strings are not supported (in {:?})",
                    String::from_utf8_lossy(word)
                )));
            }
            if let Some(len) = word[i + 1..].iter().position(|&b| b == b'}') {
                if let Some((which, m)) = placeholder(&word[i + 1..i + 1 + len]) {
                    if !lit.is_empty() {
                        tokens.push(Token::Lit(std::mem::take(&mut lit)));
                    }
                    tokens.push(Token::Place(which, m, None));
                    i += len + 2;
                    continue;
                }
            }
        }
        lit.push(word[i]);
        i += 1;
    }
    if !lit.is_empty() || tokens.is_empty() {
        tokens.push(Token::Lit(lit));
    }
    Ok(tokens)
}

/// The replacement string with this inside (between the braces), if any.
fn placeholder(inside: &[u8]) -> Option<(Which, Modifier)> {
    let inside = std::str::from_utf8(inside).ok()?;
    match inside {
        "#" => return Some((Which::Seq, Modifier::Whole)),
        "%" => return Some((Which::Slot, Modifier::Whole)),
        _ => {}
    }
    let digits_end = inside
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(inside.len(), |(i, _)| i);
    let (number, suffix) = inside.split_at(digits_end);
    let modifier = match suffix {
        "" => Modifier::Whole,
        "." => Modifier::NoExt,
        "/" => Modifier::Base,
        "//" => Modifier::Dir,
        "/." => Modifier::BaseNoExt,
        _ => return None,
    };
    if number.is_empty() {
        return Some((Which::All, modifier));
    }
    match number.parse::<i64>() {
        Ok(0) | Err(_) => None,
        Ok(n) => Some((Which::Pos(n), modifier)),
    }
}

/// Splits a word at literal spaces into sub-words (joined back with single
/// spaces, this is the word again, since runs of spaces give empty
/// sub-words).
fn split_at_spaces(word: Word) -> Vec<Word> {
    let mut out = vec![Vec::new()];
    for token in word {
        match token {
            Token::Lit(text) => {
                for (i, piece) in text.split(|&b| b == b' ').enumerate() {
                    if i > 0 {
                        out.push(Vec::new());
                    }
                    if !piece.is_empty() {
                        out.last_mut()
                            .expect("never empty")
                            .push(Token::Lit(piece.to_vec()));
                    }
                }
            }
            place => out.last_mut().expect("never empty").push(place),
        }
    }
    out
}

/// If the program is a POSIX shell run with `-c`, the index of its script.
///
/// The script is the first word after the shell's options, provided one
/// option cluster holds `c` (`-c`, `-ec`, `-xc`); `-o NAME` and `+o NAME`
/// take a value, and `--` ends the options.
fn shell_script_index(words: &[OsString]) -> Option<usize> {
    let program = words[0].as_bytes();
    let name = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
    if !POSIX_SHELLS.iter().any(|s| s.as_bytes() == name) {
        return None;
    }
    let mut has_c = false;
    let mut i = 1;
    while i < words.len() {
        let w = words[i].as_bytes();
        if w == b"--" {
            i += 1;
            break;
        }
        if w == b"-o" || w == b"+o" {
            i += 2;
            continue;
        }
        if w.len() > 1 && (w[0] == b'-' || w[0] == b'+') {
            if w[0] == b'-' && !w.starts_with(b"--") && w.contains(&b'c') {
                has_c = true;
            }
            i += 1;
            continue;
        }
        break;
    }
    (has_c && i < words.len()).then_some(i)
}

/// Rejects a command that needs a shell but would run without one.
fn check_needs_shell(words: &[OsString]) -> Result<(), TemplateError> {
    let program = words[0].to_string_lossy();
    if program.contains(char::is_whitespace) {
        return Err(TemplateError(format!(
            "the program name {program:?} holds spaces: it looks like a shell command line; \
             add --shell to run it with sh -c"
        )));
    }
    for word in &words[1..] {
        let w = word.to_string_lossy();
        if SHELL_OPERATORS.contains(&w.as_ref()) {
            return Err(TemplateError(format!(
                "the command holds the shell operator {w:?}, which only a shell understands: \
                 add --shell to run it with sh -c (or --no-shell-check to pass it as a plain \
                 argument)"
            )));
        }
    }
    Ok(())
}

/// Applies a modifier to one value.
fn modify(m: Modifier, v: &[u8]) -> Cow<'_, [u8]> {
    match m {
        Modifier::Whole => Cow::Borrowed(v),
        Modifier::NoExt => Cow::Borrowed(without_extension(v)),
        Modifier::Base => Cow::Borrowed(base(v)),
        Modifier::Dir => dirname(v),
        Modifier::BaseNoExt => Cow::Borrowed(without_extension(base(v))),
    }
}

/// Everything after the last `/`.
fn base(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `path` without its extension: up to its last `.`, unless a `/` follows
/// that dot. A leading dot counts, so `.bashrc` becomes empty (GNU
/// parallel's `s:\.[^/.]*$::`).
fn without_extension(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'.') {
        Some(i) if !path[i..].contains(&b'/') => &path[..i],
        _ => path,
    }
}

/// Perl's `File::Basename::dirname`, which GNU parallel's `{//}` uses:
/// trailing slashes are ignored (`a/b/` gives `a`), no slash gives `.`.
fn dirname(path: &[u8]) -> Cow<'_, [u8]> {
    fn fileparse(p: &[u8]) -> (&[u8], &[u8]) {
        match p.iter().rposition(|&b| b == b'/') {
            Some(i) => (&p[..=i], &p[i + 1..]),
            None => (b"./", p),
        }
    }
    // Drops trailing slashes, keeping the first character.
    fn strip(d: &[u8]) -> &[u8] {
        let mut end = d.len();
        while end > 1 && d[end - 1] == b'/' {
            end -= 1;
        }
        &d[..end]
    }
    let (dir, name) = fileparse(path);
    let dir = strip(dir);
    if name.is_empty() {
        Cow::Owned(strip(fileparse(dir).0).to_vec())
    } else {
        Cow::Owned(dir.to_vec())
    }
}

/// An argv as one line a shell splits back into the same words.
pub fn display_argv(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|w| String::from_utf8_lossy(&quote(w.as_bytes())).into_owned())
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn expand_with(ws: &[&str], shell: bool, multi: Multi, a: &[&str], seq: u64) -> Vec<String> {
        Template::new(&words(ws), shell, multi, true)
            .unwrap()
            .expand(&args(a), seq, Some(2))
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect()
    }

    fn expand(ws: &[&str], a: &[&str]) -> Vec<String> {
        expand_with(ws, false, Multi::Split, a, 7)
    }

    #[test]
    fn appends_without_replacement_strings() {
        assert_eq!(expand(&["echo", "hi"], &["x y"]), ["echo", "hi", "x y"]);
        assert_eq!(expand(&["echo"], &["a", "b"]), ["echo", "a", "b"]);
        // {#} and {%} are replacement strings: nothing is appended.
        assert_eq!(expand(&["echo", "{#}"], &["in"]), ["echo", "7"]);
        assert_eq!(expand(&["echo", "{%}"], &["in"]), ["echo", "2"]);
    }

    #[test]
    fn positional_and_modifiers() {
        let a = &["dir/a.tar.gz", "x/y/"];
        assert_eq!(
            expand(
                &["{1}", "{2}", "{1.}", "{1/}", "{2//}", "{1/.}", "{-1}", "{3}|"],
                a
            ),
            [
                "dir/a.tar.gz",
                "x/y/",
                "dir/a.tar",
                "a.tar.gz",
                "x",
                "a.tar",
                "x/y/",
                "|"
            ]
        );
        // Not replacement strings: left as written.
        assert_eq!(
            expand(&["{0}", "{x}", "{1x}", "{"], &["a"]),
            ["{0}", "{x}", "{1x}", "{", "a"]
        );
    }

    #[test]
    fn perl_expressions_are_refused() {
        let e = Template::new(&words(&["echo", "{= $_ =}"]), false, Multi::Split, true);
        assert!(e.unwrap_err().0.contains("perl"));
    }

    #[test]
    fn several_arguments_split_the_word() {
        assert_eq!(expand(&["echo", "x{}y"], &["a", "1"]), ["echo", "xa", "1y"]);
        assert_eq!(
            expand_with(
                &["echo", "pic{}.jpg"],
                false,
                Multi::Context,
                &["1", "2"],
                1
            ),
            ["echo", "pic1.jpg", "pic2.jpg"]
        );
        assert_eq!(
            expand_with(&["echo pic{}.jpg"], true, Multi::Context, &["1", "2"], 1)[2],
            "echo pic1.jpg pic2.jpg"
        );
    }

    #[test]
    fn edge_cases_match_gnu_parallel() {
        // As printed by parallel 20221122 for
        // parallel echo "[{.}]" "[{/.}]" "[{//}]" "[{/}]" ::: ...
        let cases = [
            (".bashrc", "", "", ".", ".bashrc"),
            ("d/.bashrc", "d/", "", "d", ".bashrc"),
            ("a/b/", "a/b/", "", "a", ""),
            ("a/b", "a/b", "b", "a", "b"),
            ("/f", "/f", "f", "/", "f"),
            ("f", "f", "f", ".", "f"),
            ("a.b/c", "a.b/c", "c", "a.b", "c"),
            ("x.tar.gz", "x.tar", "x.tar", ".", "x.tar.gz"),
            ("d/.x.y", "d/.x", ".x", "d", ".x.y"),
            ("a//", "a//", "", ".", ""),
            ("/", "/", "", "/", ""),
            ("", "", "", ".", ""),
        ];
        for (input, noext, basenoext, dir, base) in cases {
            assert_eq!(
                expand(&["{.}", "{/.}", "{//}", "{/}"], &[input]),
                [noext, basenoext, dir, base],
                "{input:?}"
            );
        }
    }

    #[test]
    fn shell_mode_quotes_every_value() {
        let argv = expand_with(
            &["printf '%s|' {} {.}.bak {/} {//} {1}"],
            true,
            Multi::Split,
            &["d $x/it's.txt"],
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
            "d $x/it's.txt|d $x/it's.bak|it's.txt|d $x|d $x/it's.txt|"
        );
        // Appended, quoted; {#} is a replacement string, so not with it.
        let argv = expand_with(&["echo :"], true, Multi::Split, &["a b"], 4);
        assert_eq!(argv[2], "echo : 'a b'");
        let argv = expand_with(&["echo {#}:"], true, Multi::Split, &["a b"], 4);
        assert_eq!(argv[2], "echo 4:");
    }

    #[test]
    fn a_shells_script_is_quoted() {
        for ws in [
            &["sh", "-c", "echo {}"][..],
            &["/bin/bash", "-ec", "echo {}"],
            &["dash", "-o", "errexit", "-c", "echo {}"],
        ] {
            let argv = expand_with(ws, false, Multi::Split, &["a; echo INJECTED"], 1);
            let script = &argv[argv.len() - 1];
            assert_eq!(script, "echo 'a; echo INJECTED'", "{ws:?}");
        }
        // Words after the script are the script's $0, $1: plain argv.
        let argv = expand_with(
            &["sh", "-c", "echo $0", "{}"],
            false,
            Multi::Split,
            &["a b"],
            1,
        );
        assert_eq!(argv, ["sh", "-c", "echo $0", "a b"]);
        // Not a -c script: nothing to quote.
        let argv = expand_with(
            &["bash", "script.sh", "{}"],
            false,
            Multi::Split,
            &["a;b"],
            1,
        );
        assert_eq!(argv, ["bash", "script.sh", "a;b"]);
    }

    #[test]
    fn quotes_around_a_replacement_string_are_kept() {
        let argv = expand_with(
            &["sh", "-c", "echo '{}' \"x{1}\""],
            false,
            Multi::Split,
            &["a'b"],
            1,
        );
        // Each value closes the user's quote, is quoted, and reopens it.
        assert_eq!(argv[2], r#"echo ''"a'b"'' "x""a'b""""#);
        // -X repeats a word: it must not leave a quote open.
        let e = Template::new(
            &words(&["sh", "-c", "echo 'x {}'"]),
            false,
            Multi::Context,
            true,
        )
        .unwrap_err();
        assert!(e.0.contains("-X repeats"), "{}", e.0);
        // --shell appends after the script, quoted for where it ends.
        let argv = expand_with(&["echo '"], true, Multi::Split, &["a b"], 1);
        assert_eq!(argv[2], "echo ' ''a b''");
    }

    #[test]
    fn shell_operators_need_shell() {
        for ws in [
            &["echo", "{}", "|", "wc"][..],
            &["gzip {} | wc -c"],
            &["echo", "x", "&&", "true"],
            &["echo", ">", "f"],
        ] {
            let e = Template::new(&words(ws), false, Multi::Split, true).unwrap_err();
            assert!(e.0.contains("--shell"), "{ws:?}: {}", e.0);
            Template::new(&words(ws), true, Multi::Split, true).unwrap();
        }
        Template::new(&words(&["tr", ";", ","]), false, Multi::Split, false).unwrap();
        Template::new(&words(&["sh", "-c", "a | b"]), false, Multi::Split, true).unwrap();
    }

    #[test]
    fn inputs_are_commands() {
        let t = Template::new(&[], false, Multi::Split, true).unwrap();
        let argv = t.expand(&args(&["echo a", "b"]), 1, Some(1));
        assert_eq!(argv, ["sh", "-c", "echo a b"]);
    }

    #[test]
    fn slot_is_left_for_the_key() {
        let t = Template::new(&words(&["echo", "{%}", "{}"]), false, Multi::Split, true).unwrap();
        assert!(t.uses_slot());
        assert!(!t.uses_seq());
        assert_eq!(t.expand(&args(&["a"]), 1, None), ["echo", "{%}", "a"]);
        let t = Template::new(&words(&["sh", "-c", "echo {#}"]), false, Multi::Split, true);
        assert!(t.unwrap().uses_seq());
    }

    #[test]
    fn substituted_text_is_not_rescanned() {
        assert_eq!(expand(&["echo", "{}"], &["{#}"]), ["echo", "{#}"]);
        assert_eq!(expand(&["echo", "{{}}"], &["x"]), ["echo", "{x}"]);
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
            "~",
        ] {
            let script = [b"printf %s ".as_slice(), &quote(text.as_bytes())].concat();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(std::ffi::OsStr::from_bytes(&script))
                .output()
                .unwrap();
            assert_eq!(out.stdout, text.as_bytes(), "{text:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        let argv = words(&["echo", "a b", "", "x=1", "it's"]);
        let line = display_argv(&argv);
        let back = shlex::split(&line).unwrap();
        assert_eq!(back, ["echo", "a b", "", "x=1", "it's"]);
    }
}
