//! Values substituted into a shell script stay literal data, whatever
//! quotes surround the replacement string.
//!
//! A value is shell-quoted (`'a; b'`). That alone is right only outside
//! quotes: in `sh -c "echo '{}'"` the user's quote and the value's cancel
//! out, and `a; rm -rf ~` would run (GNU parallel has that hole). So the
//! script's literal text is scanned first, and each replacement string is
//! quoted for where it stands: inside `'...'` the user's quote is closed,
//! the quoted value inserted and the quote reopened (`''\''a; b'\'''`
//! reads back as the value), likewise inside `"..."`; inside a comment the
//! value only loses its newlines, which would end the comment.
//!
//! What the scanner cannot follow with certainty (backticks, here-documents,
//! `$'...'`, `$((...))`, `case` inside `$(...)`, `"${...}"`) makes a
//! replacement string there an error when the template is read, never a
//! guess: a wrong guess between "quoted" and "unquoted" is exactly the hole.
//!
//! Numbers (`{#}`, `{%}`) are digits, safe anywhere, and not quoted.

use std::borrow::Cow;

/// How a value is written into the script at one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoting {
    /// Outside quotes: quoted as one word.
    Unquoted,
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
    /// Inside a `#` comment.
    Comment,
}

/// A place the scanner cannot quote for with certainty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsure(pub &'static str);

const HEREDOC: &str = "after a here-document (<<)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    Single,
    Double,
    /// `$(...)`: a script of its own; `depth` counts open `(`.
    Subst {
        depth: u32,
    },
    /// `$((...))`.
    Arith {
        depth: u32,
    },
    /// `${...}`, outside or inside double quotes.
    Brace {
        in_double: bool,
    },
    Comment,
}

/// Follows a script's quoting through its literal text.
#[derive(Clone, Debug, Default)]
pub struct Scanner {
    frames: Vec<Frame>,
    /// Once set, nothing after it can be quoted for.
    lost: Option<&'static str>,
    /// The previous byte, for two-byte tokens (`$(`, `<<`) and word starts.
    prev: Option<u8>,
    /// The current unquoted word so far (to spot `case`).
    word: Vec<u8>,
    /// An escape (`\`) is pending.
    escaped: bool,
    /// `$(` was just read: a `(` now makes it `$((`.
    opened: bool,
    /// `<<` was just read: a here-document unless a third `<` follows.
    heredoc: bool,
}

impl Scanner {
    /// Where a replacement string at this point stands.
    pub fn here(&self) -> Result<Quoting, Unsure> {
        if let Some(why) = self.lost {
            return Err(Unsure(why));
        }
        if self.heredoc {
            return Err(Unsure(HEREDOC));
        }
        let top = self.frames.last();
        let in_text = matches!(top, Some(Frame::Single | Frame::Comment));
        if !in_text && (self.escaped || self.prev == Some(b'$')) {
            return Err(Unsure("right after a backslash or a $"));
        }
        Ok(match top {
            None | Some(Frame::Subst { .. }) | Some(Frame::Brace { in_double: false }) => {
                Quoting::Unquoted
            }
            Some(Frame::Single) => Quoting::Single,
            Some(Frame::Double) => Quoting::Double,
            Some(Frame::Comment) => Quoting::Comment,
            Some(Frame::Arith { .. }) => return Err(Unsure("inside $((...))")),
            Some(Frame::Brace { in_double: true }) => return Err(Unsure("inside \"${...}\"")),
        })
    }

    /// Whether `other` stands where this one does (the same quotes open).
    pub fn same_place(&self, other: &Scanner) -> bool {
        self.frames == other.frames && self.lost == other.lost
    }

    /// A value was inserted here: it is one word, so the next byte does not
    /// continue a `$` or a keyword.
    pub fn value(&mut self) {
        self.prev = Some(b'x');
        self.word.clear();
        self.word.push(0);
    }

    /// Follows literal script text.
    pub fn feed(&mut self, text: &[u8]) {
        for &b in text {
            if self.lost.is_some() {
                return;
            }
            self.byte(b);
        }
    }

    fn lose(&mut self, why: &'static str) {
        self.lost = Some(why);
    }

    fn byte(&mut self, b: u8) {
        let prev = self.prev.replace(b);
        if std::mem::take(&mut self.heredoc) {
            if b != b'<' {
                return self.lose(HEREDOC);
            }
            // `<<<`: a here-string, whose word is a plain word. This `<`
            // pairs with no other.
            self.prev = Some(b' ');
            return;
        }
        if std::mem::take(&mut self.opened) && b == b'(' {
            // `$((`: arithmetic inside the `Subst` frame, whose `)` then
            // eats the second `)` of `))`.
            self.frames.push(Frame::Arith { depth: 0 });
            return;
        }
        if self.escaped {
            self.escaped = false;
            // An escaped byte is plain text; it ends no keyword.
            self.word.push(0);
            return;
        }
        match self.frames.last().copied() {
            Some(Frame::Single) => {
                if b == b'\'' {
                    self.frames.pop();
                }
            }
            Some(Frame::Comment) => {
                if b == b'\n' {
                    self.frames.pop();
                    self.word.clear();
                }
            }
            Some(Frame::Double) => match b {
                b'"' => {
                    self.frames.pop();
                }
                b'\\' => self.escaped = true,
                b'`' => self.lose("after a `...` command substitution (use $(...))"),
                b'(' if prev == Some(b'$') => self.open_paren(),
                b'{' if prev == Some(b'$') => self.frames.push(Frame::Brace { in_double: true }),
                _ => {}
            },
            Some(Frame::Arith { depth }) => match b {
                b'(' => self.set_top(Frame::Arith { depth: depth + 1 }),
                b')' if depth > 0 => self.set_top(Frame::Arith { depth: depth - 1 }),
                b')' => {
                    self.frames.pop();
                }
                _ => {}
            },
            Some(Frame::Brace { .. }) if b == b'}' => {
                self.frames.pop();
            }
            _ => self.unquoted(b, prev),
        }
    }

    /// A byte outside quotes: at the top, in `$(...)` or in `${...}`.
    fn unquoted(&mut self, b: u8, prev: Option<u8>) {
        let word_start = prev.is_none_or(|p| b" \t\n;&|()".contains(&p));
        match b {
            b'\'' if prev == Some(b'$') => self.lose("after $'...' (bash's C-style quotes)"),
            b'"' if prev == Some(b'$') => self.lose("after $\"...\" (a translated string)"),
            b'\'' => self.frames.push(Frame::Single),
            b'"' => self.frames.push(Frame::Double),
            b'\\' => self.escaped = true,
            b'`' => self.lose("after a `...` command substitution (use $(...))"),
            b'<' if prev == Some(b'<') => self.heredoc = true,
            b'#' if word_start => self.frames.push(Frame::Comment),
            b'(' if prev == Some(b'$') => self.open_paren(),
            b'{' if prev == Some(b'$') => self.frames.push(Frame::Brace { in_double: false }),
            b'(' => {
                if let Some(Frame::Subst { depth }) = self.frames.last().copied() {
                    self.set_top(Frame::Subst { depth: depth + 1 });
                }
            }
            b')' => match self.frames.last().copied() {
                Some(Frame::Subst { depth: 0 }) => {
                    self.frames.pop();
                }
                Some(Frame::Subst { depth }) => self.set_top(Frame::Subst { depth: depth - 1 }),
                _ => {}
            },
            _ => {}
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            self.word.push(b);
        } else {
            if self.word == b"case" && self.in_subst() {
                // Its patterns end in `)`, which would close `$(` here.
                self.lose("after a case statement inside $(...)");
            }
            self.word.clear();
        }
    }

    fn in_subst(&self) -> bool {
        self.frames.iter().any(|f| matches!(f, Frame::Subst { .. }))
    }

    /// `$(` was seen: a command substitution, or arithmetic if `((`.
    fn open_paren(&mut self) {
        self.frames.push(Frame::Subst { depth: 0 });
        self.word.clear();
        self.opened = true;
    }

    fn set_top(&mut self, frame: Frame) {
        if let Some(top) = self.frames.last_mut() {
            *top = frame;
        }
    }
}

/// Quotes `text` for a POSIX shell as one word.
pub fn quote(text: &[u8]) -> Cow<'_, [u8]> {
    // An argv word cannot hold NUL, so quoting cannot fail on a real one;
    // fall back to dropping NULs rather than panicking on odd input.
    match shlex::bytes::try_quote(text) {
        Ok(q) => q,
        Err(_) => {
            let clean: Vec<u8> = text.iter().copied().filter(|&b| b != 0).collect();
            Cow::Owned(
                shlex::bytes::try_quote(&clean)
                    .expect("no NUL left")
                    .into_owned(),
            )
        }
    }
}

/// `value` written for a place quoted as `how`.
pub fn quote_as(how: Quoting, value: &[u8]) -> Vec<u8> {
    let q = quote(value);
    match how {
        Quoting::Unquoted => q.into_owned(),
        Quoting::Single => [b"'".as_slice(), &q, b"'"].concat(),
        Quoting::Double => [b"\"".as_slice(), &q, b"\""].concat(),
        Quoting::Comment => value
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// The shells the scanner's output is checked against (CI installs
    /// them).
    const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh"];

    /// Values that would run `touch PWNED`, or mangle, if quoted wrong.
    const HOSTILE: &[&str] = &[
        "plain",
        "a b",
        "a; touch PWNED",
        "$(touch PWNED)",
        "`touch PWNED`",
        "'; touch PWNED; '",
        "\"; touch PWNED; \"",
        "it's $HOME",
        "a\ntouch PWNED",
        "\ntouch PWNED #",
        "\\",
        "*",
        "~",
        "",
        "'",
        "\"",
        ") ; touch PWNED ; (",
        "} ; touch PWNED ; {",
    ];

    /// Builds a script from `parts`: literal text, with `None` where a
    /// value goes.
    fn build(parts: &[Option<&str>], value: &str) -> Result<Vec<u8>, Unsure> {
        let mut scanner = Scanner::default();
        let mut out = Vec::new();
        for part in parts {
            match part {
                Some(text) => {
                    scanner.feed(text.as_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
                None => {
                    out.extend(quote_as(scanner.here()?, value.as_bytes()));
                    scanner.value();
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn values_stay_literal_in_every_shell() {
        // (template, what it prints for value v)
        type Expect = fn(&str) -> String;
        let cases: &[(&[Option<&str>], Expect)] = &[
            (&[Some("printf '[%s]' "), None], |v| format!("[{v}]")),
            (&[Some("printf '[%s]' '"), None, Some("'")], |v| {
                format!("[{v}]")
            }),
            (&[Some("printf '[%s]' \""), None, Some("\"")], |v| {
                format!("[{v}]")
            }),
            (&[Some("printf '[%s]' \"x"), None, Some("y\"")], |v| {
                format!("[x{v}y]")
            }),
            (&[Some("printf '[%s]' 'a "), None, Some(" b'")], |v| {
                format!("[a {v} b]")
            }),
            (&[Some("printf '[%s]' x"), None, Some("'y'")], |v| {
                format!("[x{v}y]")
            }),
            (
                &[Some("printf '[%s]' \"$(printf %s "), None, Some(")\"")],
                |v| format!("[{}]", v.trim_end_matches('\n')),
            ),
            (
                &[Some("printf '[%s]' \"$(printf %s '"), None, Some("')\"")],
                |v| format!("[{}]", v.trim_end_matches('\n')),
            ),
            (&[Some("x=; printf '[%s]' ${x:-"), None, Some("}")], |v| {
                format!("[{v}]")
            }),
            (&[Some("printf '[%s]' $((1+2)) "), None], |v| {
                format!("[3][{v}]")
            }),
            (
                &[Some("printf '[%s]' x # "), None, Some("\nprintf '[%s]' y")],
                |_| "[x][y]".to_string(),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for shell in SHELLS {
            let mut script = Vec::new();
            let mut want = String::new();
            for (parts, expect) in cases {
                for value in HOSTILE {
                    script.extend(build(parts, value).unwrap());
                    script.extend_from_slice(b"\nprintf '\\n'\n");
                    want.push_str(&expect(value));
                    want.push('\n');
                }
            }
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(std::ffi::OsStr::from_bytes(&script))
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| {
                    panic!("{shell} is needed to check quoting (apt-get install zsh ksh mksh): {e}")
                });
            let got = String::from_utf8_lossy(&out.stdout);
            for (g, w) in got.split('\n').zip(want.split('\n')) {
                assert_eq!(g, w, "{shell}");
            }
            assert_eq!(
                got,
                want,
                "{shell}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!dir.path().join("PWNED").exists(), "{shell} ran a value");
        }
    }

    #[test]
    fn unsure_places_are_refused() {
        for (parts, why) in [
            (&[Some("echo `date` "), None][..], "`...`"),
            (&[Some("cat <<EOF\n"), None, Some("\nEOF")], "here-document"),
            (&[Some("echo $'a' "), None], "$'"),
            (&[Some("echo $(( "), None, Some(" ))")], "$(("),
            (&[Some("echo \"${x:-"), None, Some("}\"")], "${"),
            (
                &[Some("echo $(case a in a) "), None, Some(";; esac)")],
                "case",
            ),
            (&[Some("echo \\"), None], "backslash"),
            (&[Some("echo $"), None], "$"),
        ] {
            let err = build(parts, "v").unwrap_err();
            assert!(err.0.contains(why), "{parts:?}: {err:?}");
        }
        // Not unsure: a `$` or backslash that quotes make plain text, and
        // `<<<` (a here-string is a plain word).
        for parts in [
            &[Some("echo '$"), None, Some("'")][..],
            &[Some("echo '\\"), None, Some("'")],
            &[Some("cat <<< "), None],
        ] {
            build(parts, "v").unwrap();
        }
    }

    #[test]
    fn places_are_told_apart() {
        let at = |text: &str| {
            let mut s = Scanner::default();
            s.feed(text.as_bytes());
            s.here()
        };
        assert_eq!(at("echo "), Ok(Quoting::Unquoted));
        assert_eq!(at("echo 'x"), Ok(Quoting::Single));
        assert_eq!(at("echo 'x' \"y"), Ok(Quoting::Double));
        assert_eq!(at("echo \"a\\\" "), Ok(Quoting::Double));
        assert_eq!(at("echo \"$(ls '"), Ok(Quoting::Single));
        assert_eq!(at("echo \"$(ls) "), Ok(Quoting::Double));
        assert_eq!(at("echo $( (a) ) "), Ok(Quoting::Unquoted));
        assert_eq!(at("echo a#b "), Ok(Quoting::Unquoted));
        assert_eq!(at("echo # it's"), Ok(Quoting::Comment));
        assert_eq!(at("echo # it's\necho "), Ok(Quoting::Unquoted));
        assert_eq!(at("echo $((1)) "), Ok(Quoting::Unquoted));
        assert_eq!(at("echo ${x} "), Ok(Quoting::Unquoted));
    }
}
