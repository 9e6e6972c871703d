//! A small evaluator for the subset of Go's `text/template` that scripts pass to
//! `weave report -f` (`GET /report?format=…`), run over the report as a [`serde_json::Value`].
//!
//! Supported: literal text; `{{.}}`, `{{.A.B}}`, `$`, `$x.A`, `(pipeline).A`; pipelines with
//! `|`; variables (`$x := …`, `$x = …`); `{{if}}`/`{{else if}}`/`{{else}}`, `{{with}}`,
//! `{{range}}` (with `$i, $e :=`, `{{else}}`, `{{break}}`, `{{continue}}`); `{{- ` / ` -}}`
//! trimming; comments; string, raw-string, char, number, bool and nil literals; and the
//! functions `len`, `index`, `json` (Weave's own: compact JSON), `printf`, `print`,
//! `println`, `not`, `and`, `or` (short-circuit), `eq`, `ne`, `lt`, `le`, `gt`, `ge`.
//! Not supported (parse error): `define`, `template`, `block`, and the functions `html`,
//! `js`, `urlquery`, `call`, `slice`.
//!
//! Values print as Go prints them where the JSON keeps enough information: strings raw,
//! integers in decimal, floats like `%v`, `true`/`false`, arrays as `[a b]`, objects as
//! `map[k:v]` (keys sorted), a missing key as `<no value>`. A JSON `null` prints as `[]`,
//! as Go prints the nil slices that are the report's nulls.
//!
//! Evaluation is total: any template gives output or an error, never a panic. Nesting,
//! steps, output size and work are bounded. Values are shared, never copied: data is
//! borrowed, computed values and literals sit behind an `Rc`, so reading or binding a
//! variable costs nothing whatever its size. Everything that does cost in proportion to a
//! value's size (strings functions produce, bytes `eq`/`lt` compare, keys hashed by field
//! and `index` lookups, format strings scanned, elements a `range` collects) is charged
//! to one work budget ([`MAX_WORK`]), every node, argument and iteration to the step
//! budget ([`MAX_STEPS`]), and a caller's clock can stop a run ([`Template::execute_until`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use serde_json::{Number, Value};

/// The most bytes a template may write.
pub const MAX_OUTPUT: usize = 1 << 20;
/// The most nodes and range iterations one execution may run.
pub const MAX_STEPS: u64 = 1_000_000;
/// The most bytes one execution may produce in strings, copy, compare or hash (eight times
/// the output cap: room for any template that prints within it).
pub const MAX_WORK: usize = 8 << 20;
/// The deepest nesting of control structures and parentheses.
pub const MAX_DEPTH: usize = 40;
/// Go's limit on printf widths and precisions.
const MAX_WIDTH: usize = 1_000_000;
/// How many steps (or 256-byte units of work) run between two questions to the clock.
pub const CHECK_EVERY: u64 = 1024;
/// What collecting one element of a `range` costs against the work budget.
const ITEM_COST: usize = 16;

/// The template does not parse (Weave answers 400 with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: format:{line}: {msg}")]
pub struct ParseError {
    /// 1-based line of the offending action.
    pub line: usize,
    /// What is wrong, worded like Go's parser where it matters.
    pub msg: String,
}

/// The template parsed but failed while running (Weave answers 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: format:{line}: executing \"format\": {msg}")]
pub struct ExecError {
    /// 1-based line of the action that failed.
    pub line: usize,
    /// What went wrong.
    pub msg: String,
}

/// Either failure of [`render`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// See [`ParseError`].
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// See [`ExecError`].
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// Parse `src` and run it over `data` (budgets, no time limit).
pub fn render(src: &str, data: &Value) -> Result<String, TemplateError> {
    Ok(Template::parse(src)?.execute(data)?)
}

/// Parse `src` and run it over `data`, stopping once `expired` answers true (see
/// [`Template::execute_until`]).
pub fn render_until(
    src: &str,
    data: &Value,
    expired: &mut dyn FnMut() -> bool,
) -> Result<String, TemplateError> {
    Ok(Template::parse(src)?.execute_until(data, expired)?)
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// How many distinct variable names the template uses (ids `0..vars`, `$` is 0).
    vars: usize,
}

impl Template {
    /// Parse a template.
    pub fn parse(src: &str) -> Result<Template, ParseError> {
        let items = lex(src)?;
        let mut p = Parser {
            items,
            idx: 0,
            names: HashMap::new(),
            scope: Vec::new(),
            in_scope: Vec::new(),
            depth: 0,
            range_depth: 0,
        };
        p.intern("$");
        let (nodes, stop) = p.parse_list()?;
        match stop {
            Stop::Eof => Ok(Template {
                nodes,
                vars: p.in_scope.len(),
            }),
            Stop::End(line) => Err(perr(line, "unexpected {{end}}")),
            Stop::Else(_, line) => Err(perr(line, "unexpected {{else}}")),
        }
    }

    /// Run the template with `data` as dot (and `$`), within the step, work and output
    /// budgets but without a time limit.
    pub fn execute(&self, data: &Value) -> Result<String, ExecError> {
        self.execute_until(data, &mut || false)
    }

    /// As [`Template::execute`], and fail with "template exceeded its time budget" once
    /// `expired` answers true. It is asked at least every [`CHECK_EVERY`] steps and every
    /// `CHECK_EVERY * 256` bytes of work, so the caller's clock (or a counter in tests)
    /// bounds how long one execution runs.
    pub fn execute_until(
        &self,
        data: &Value,
        expired: &mut dyn FnMut() -> bool,
    ) -> Result<String, ExecError> {
        let mut ex = Exec {
            root: data,
            slots: vec![Vec::new(); self.vars],
            bound: Vec::new(),
            out: String::new(),
            steps: 0,
            work: 0,
            ticks: 0,
            line: 1,
            expired,
        };
        ex.run_list(&self.nodes, &Val::Ref(data))?;
        Ok(ex.out)
    }
}

// ----------------------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Pipe,
    Comma,
    Declare,
    Assign,
    Dot,
    Field(String),
    Var(String),
    Str(String),
    Num(Number),
    Ident(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::Pipe => "\"|\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Declare => "\":=\"".into(),
            Tok::Assign => "\"=\"".into(),
            Tok::Dot => "\".\"".into(),
            Tok::Field(f) => format!("<.{f}>"),
            Tok::Var(v) => format!("<{v}>"),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Num(n) => format!("<{n}>"),
            Tok::Ident(i) => format!("<{i}>"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Whitespace (or the start of the action) comes before it; `.A` right after a
    /// variable or `)` without space continues a field chain.
    spaced: bool,
}

#[derive(Debug)]
enum Item {
    Text(String),
    Action { line: usize, toks: Vec<Token> },
}

fn perr(line: usize, msg: impl Into<String>) -> ParseError {
    ParseError {
        line,
        msg: msg.into(),
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A cursor over the template text; `p` is always on a char boundary.
struct Cursor<'s> {
    s: &'s str,
    p: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.p..).unwrap_or("")
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.p += c.len_utf8();
        Some(c)
    }
    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.p += prefix.len();
            true
        } else {
            false
        }
    }
}

fn lex(src: &str) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    let mut c = Cursor { s: src, p: 0 };
    let mut trim_next = false;
    let mut line = 1;
    loop {
        let start = c.rest().find("{{").map(|i| c.p + i);
        let text_end = start.unwrap_or(src.len());
        let mut text = src.get(c.p..text_end).unwrap_or("");
        line += text.matches('\n').count();
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let Some(start) = start else {
            if !text.is_empty() {
                items.push(Item::Text(text.to_owned()));
            }
            return Ok(items);
        };
        c.p = start + 2;
        if c.peek() == Some('-') && c.peek2().is_some_and(is_space) {
            text = text.trim_end_matches(is_space);
            c.bump();
            c.bump();
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        let action_line = line;
        if c.eat("/*") {
            let Some(end) = c.rest().find("*/") else {
                return Err(perr(action_line, "unclosed comment"));
            };
            line += c.rest()[..end].matches('\n').count();
            c.p += end + 2;
            if c.eat("}}") {
                trim_next = false;
            } else if c.peek().is_some_and(is_space)
                && c.rest().get(1..).is_some_and(|r| r.starts_with("-}}"))
            {
                c.p += 4;
                trim_next = true;
            } else {
                return Err(perr(action_line, "comment ends before closing delimiter"));
            }
            continue;
        }
        let (toks, trim) = lex_action(&mut c, action_line, &mut line)?;
        items.push(Item::Action {
            line: action_line,
            toks,
        });
        trim_next = trim;
    }
}

/// Lex one action up to and including its closing delimiter; returns the tokens and
/// whether the delimiter trims the text after it.
fn lex_action(
    c: &mut Cursor<'_>,
    action_line: usize,
    line: &mut usize,
) -> Result<(Vec<Token>, bool), ParseError> {
    let mut toks = Vec::new();
    let mut spaced = true;
    loop {
        let Some(ch) = c.peek() else {
            return Err(perr(action_line, "unclosed action"));
        };
        if is_space(ch) {
            if c.rest().get(1..).is_some_and(|r| r.starts_with("-}}")) {
                c.p += 4;
                return Ok((toks, true));
            }
            if ch == '\n' {
                *line += 1;
            }
            c.bump();
            spaced = true;
            continue;
        }
        if c.eat("}}") {
            return Ok((toks, false));
        }
        let tok = match ch {
            '(' => {
                c.bump();
                Tok::LParen
            }
            ')' => {
                c.bump();
                Tok::RParen
            }
            '|' => {
                c.bump();
                Tok::Pipe
            }
            ',' => {
                c.bump();
                Tok::Comma
            }
            ':' => {
                if c.eat(":=") {
                    Tok::Declare
                } else {
                    return Err(perr(action_line, "expected :="));
                }
            }
            '=' => {
                c.bump();
                Tok::Assign
            }
            '"' => {
                c.bump();
                Tok::Str(lex_quoted(c, action_line)?)
            }
            '`' => {
                c.bump();
                let Some(end) = c.rest().find('`') else {
                    return Err(perr(action_line, "unterminated raw quoted string"));
                };
                let s = c.rest()[..end].to_owned();
                *line += s.matches('\n').count();
                c.p += end + 1;
                Tok::Str(s)
            }
            '\'' => {
                c.bump();
                let v = match c.bump() {
                    Some('\\') => lex_escape(c, '\'', action_line)?,
                    Some(ch) if ch != '\'' && ch != '\n' => ch,
                    _ => return Err(perr(action_line, "malformed character constant")),
                };
                if c.bump() != Some('\'') {
                    return Err(perr(action_line, "unterminated character constant"));
                }
                Tok::Num(Number::from(u32::from(v)))
            }
            '$' => {
                c.bump();
                let mut name = String::from("$");
                while let Some(ch) = c
                    .peek()
                    .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                {
                    name.push(ch);
                    c.bump();
                }
                Tok::Var(name)
            }
            '.' if c.peek2().is_some_and(|d| d.is_ascii_digit()) => lex_number(c, action_line)?,
            '.' => {
                c.bump();
                let mut name = String::new();
                while let Some(ch) = c
                    .peek()
                    .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                {
                    name.push(ch);
                    c.bump();
                }
                if name.is_empty() {
                    Tok::Dot
                } else {
                    Tok::Field(name)
                }
            }
            '+' | '-' if c.peek2().is_some_and(|d| d.is_ascii_digit() || d == '.') => {
                lex_number(c, action_line)?
            }
            d if d.is_ascii_digit() => lex_number(c, action_line)?,
            a if a.is_ascii_alphabetic() || a == '_' => {
                let mut name = String::new();
                while let Some(ch) = c
                    .peek()
                    .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                {
                    name.push(ch);
                    c.bump();
                }
                Tok::Ident(name)
            }
            other => {
                return Err(perr(
                    action_line,
                    format!("unexpected {other:?} in command"),
                ))
            }
        };
        toks.push(Token { tok, spaced });
        spaced = false;
    }
}

fn lex_quoted(c: &mut Cursor<'_>, line: usize) -> Result<String, ParseError> {
    let mut s = String::new();
    loop {
        match c.bump() {
            None | Some('\n') => return Err(perr(line, "unterminated quoted string")),
            Some('"') => return Ok(s),
            Some('\\') => s.push(lex_escape(c, '"', line)?),
            Some(ch) => s.push(ch),
        }
    }
}

/// The character of an escape sequence (after its backslash), as Go's `strconv.Unquote`.
fn lex_escape(c: &mut Cursor<'_>, quote: char, line: usize) -> Result<char, ParseError> {
    let bad = || perr(line, "invalid syntax in quoted string");
    let hex = |c: &mut Cursor<'_>, n: usize| -> Result<char, ParseError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            let d = c.bump().and_then(|ch| ch.to_digit(16)).ok_or_else(bad)?;
            v = v * 16 + d;
        }
        char::from_u32(v).ok_or_else(bad)
    };
    Ok(match c.bump().ok_or_else(bad)? {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        'x' => hex(c, 2)?,
        'u' => hex(c, 4)?,
        'U' => hex(c, 8)?,
        q if q == quote => q,
        o @ '0'..='7' => {
            let mut v = o.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                v = v * 8 + c.bump().and_then(|ch| ch.to_digit(8)).ok_or_else(bad)?;
            }
            char::from_u32(v).filter(|_| v < 256).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    })
}

fn lex_number(c: &mut Cursor<'_>, line: usize) -> Result<Tok, ParseError> {
    let start = c.p;
    if matches!(c.peek(), Some('+' | '-')) {
        c.bump();
    }
    let mut prev = ' ';
    while let Some(ch) = c.peek() {
        let exp_sign = matches!(ch, '+' | '-') && matches!(prev, 'e' | 'E' | 'p' | 'P');
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || exp_sign {
            prev = ch;
            c.bump();
        } else {
            break;
        }
    }
    let text = c.s.get(start..c.p).unwrap_or("");
    parse_number(text)
        .map(Tok::Num)
        .ok_or_else(|| perr(line, format!("bad number syntax: {text:?}")))
}

fn parse_number(text: &str) -> Option<Number> {
    let clean: String = text.chars().filter(|&ch| ch != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = |b: &str| -> Option<(u32, String)> {
        let lower = b.to_ascii_lowercase();
        for (p, r) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(d) = lower.strip_prefix(p) {
                return Some((r, d.to_owned()));
            }
        }
        if b.len() > 1 && b.starts_with('0') && b.bytes().all(|x| x.is_ascii_digit()) {
            return Some((8, b[1..].to_owned()));
        }
        None
    };
    let magnitude: Option<u64> = match radix(body) {
        Some((r, digits)) => u64::from_str_radix(&digits, r).ok(),
        None if body.bytes().all(|x| x.is_ascii_digit()) && !body.is_empty() => body.parse().ok(),
        None => {
            if !body
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit() || b == b'.')
            {
                return None;
            }
            let f: f64 = body.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            return Number::from_f64(if neg { -f } else { f });
        }
    };
    let m = magnitude?;
    if neg {
        i64::try_from(m)
            .ok()
            .map(|v| Number::from(-v))
            .or_else(|| (m == 1u64 << 63).then(|| Number::from(i64::MIN)))
    } else {
        Some(Number::from(m))
    }
}

// ----------------------------------------------------------------------------- parsing

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action {
        line: usize,
        pipe: Pipe,
    },
    If {
        line: usize,
        pipe: Pipe,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    With {
        line: usize,
        pipe: Pipe,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    Range {
        line: usize,
        pipe: Pipe,
        body: Vec<Node>,
        els: Vec<Node>,
    },
    Break,
    Continue,
}

/// A variable: its id (the same for every use of one name) and its name, for messages.
#[derive(Debug, Clone)]
struct VarRef {
    id: usize,
    name: Rc<str>,
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<VarRef>,
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Term>,
}

#[derive(Debug, Clone)]
enum Term {
    Dot,
    Field(Vec<String>),
    Var(VarRef, Vec<String>),
    Sub(Box<Pipe>, Vec<String>),
    Lit(Rc<Value>),
    Nil,
    Func(String),
}

impl Term {
    fn describe(&self) -> String {
        match self {
            Term::Dot => ".".into(),
            Term::Field(f) => format!(".{}", f.join(".")),
            Term::Var(v, f) if f.is_empty() => v.name.to_string(),
            Term::Var(v, f) => format!("{}.{}", v.name, f.join(".")),
            Term::Sub(_, _) => "(…)".into(),
            Term::Lit(v) => v.to_string(),
            Term::Nil => "nil".into(),
            Term::Func(f) => f.clone(),
        }
    }
}

const FUNCS: [&str; 15] = [
    "len", "index", "json", "printf", "print", "println", "not", "and", "or", "eq", "ne", "lt",
    "le", "gt", "ge",
];

const KEYWORDS: [&str; 9] = [
    "if", "else", "end", "range", "with", "break", "continue", "define", "template",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    If,
    With,
    Range,
}

enum Stop {
    Eof,
    End(usize),
    Else(Vec<Token>, usize),
}

struct Parser {
    items: Vec<Item>,
    idx: usize,
    /// Variable names to their ids.
    names: HashMap<String, VarRef>,
    /// The variables declared so far in the enclosing scopes, innermost last.
    scope: Vec<usize>,
    /// Per variable id, how many times it is in `scope`.
    in_scope: Vec<u32>,
    depth: usize,
    range_depth: usize,
}

impl Parser {
    fn intern(&mut self, name: &str) -> VarRef {
        if let Some(v) = self.names.get(name) {
            return v.clone();
        }
        let v = VarRef {
            id: self.in_scope.len(),
            name: Rc::from(name),
        };
        self.in_scope.push(0);
        self.names.insert(name.to_owned(), v.clone());
        v
    }

    fn declared(&self, v: &VarRef) -> bool {
        v.id == 0 || self.in_scope.get(v.id).is_some_and(|&n| n > 0)
    }

    fn declare(&mut self, v: &VarRef) {
        self.scope.push(v.id);
        if let Some(n) = self.in_scope.get_mut(v.id) {
            *n += 1;
        }
    }

    fn pop_scope(&mut self, mark: usize) {
        while self.scope.len() > mark {
            if let Some(id) = self.scope.pop() {
                if let Some(n) = self.in_scope.get_mut(id) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }

    fn parse_list(&mut self) -> Result<(Vec<Node>, Stop), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let Some(item) = self.items.get_mut(self.idx) else {
                return Ok((nodes, Stop::Eof));
            };
            self.idx += 1;
            let (line, toks) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(std::mem::take(t)));
                    continue;
                }
                Item::Action { line, toks } => (*line, std::mem::take(toks)),
            };
            let Some(first) = toks.first() else {
                return Err(perr(line, "missing value for command"));
            };
            let keyword = match &first.tok {
                Tok::Ident(k) => k.as_str(),
                _ => "",
            };
            match keyword {
                "end" => {
                    if let Some(t) = toks.get(1) {
                        return Err(perr(
                            line,
                            format!("unexpected {} in end", t.tok.describe()),
                        ));
                    }
                    return Ok((nodes, Stop::End(line)));
                }
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec(), line))),
                "if" => nodes.push(self.parse_control(Kind::If, &toks[1..], line)?),
                "with" => nodes.push(self.parse_control(Kind::With, &toks[1..], line)?),
                "range" => nodes.push(self.parse_control(Kind::Range, &toks[1..], line)?),
                "break" | "continue" => {
                    if self.range_depth == 0 {
                        return Err(perr(
                            line,
                            format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                        ));
                    }
                    if let Some(t) = toks.get(1) {
                        return Err(perr(
                            line,
                            format!("unexpected {} in {keyword}", t.tok.describe()),
                        ));
                    }
                    nodes.push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" => {
                    return Err(perr(line, format!("{{{{{keyword}}}}} is not supported")))
                }
                _ => {
                    let mut i = 0;
                    let pipe = self.parse_pipe(&toks, &mut i, line, 1, false)?;
                    nodes.push(Node::Action { line, pipe });
                }
            }
        }
    }

    fn parse_control(
        &mut self,
        kind: Kind,
        toks: &[Token],
        line: usize,
    ) -> Result<Node, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(perr(line, "template nested too deeply"));
        }
        let mark = self.scope.len();
        let mut i = 0;
        let max_decl = if kind == Kind::Range { 2 } else { 1 };
        let pipe = self.parse_pipe(toks, &mut i, line, max_decl, false)?;
        if kind == Kind::Range {
            self.range_depth += 1;
        }
        let (body, stop) = self.parse_list()?;
        if kind == Kind::Range {
            self.range_depth -= 1;
        }
        let els = match stop {
            Stop::Eof => return Err(perr(line, "unexpected EOF")),
            Stop::End(_) => Vec::new(),
            Stop::Else(rest, l) => match rest.first().map(|t| &t.tok) {
                None => match self.parse_list()? {
                    (e, Stop::End(_)) => e,
                    (_, Stop::Else(_, l2)) => return Err(perr(l2, "expected end; found {{else}}")),
                    (_, Stop::Eof) => return Err(perr(l, "unexpected EOF")),
                },
                Some(Tok::Ident(k)) if k == "if" && kind == Kind::If => {
                    vec![self.parse_control(Kind::If, &rest[1..], l)?]
                }
                Some(Tok::Ident(k)) if k == "with" && kind == Kind::With => {
                    vec![self.parse_control(Kind::With, &rest[1..], l)?]
                }
                Some(t) => return Err(perr(l, format!("unexpected {} in else", t.describe()))),
            },
        };
        self.pop_scope(mark);
        self.depth -= 1;
        Ok(match kind {
            Kind::If => Node::If {
                line,
                pipe,
                then: body,
                els,
            },
            Kind::With => Node::With {
                line,
                pipe,
                then: body,
                els,
            },
            Kind::Range => Node::Range {
                line,
                pipe,
                body,
                els,
            },
        })
    }

    /// A pipeline, optionally starting with a declaration; stops at the end of `toks`, or
    /// at a `)` when `in_paren`.
    fn parse_pipe(
        &mut self,
        toks: &[Token],
        i: &mut usize,
        line: usize,
        max_decl: usize,
        in_paren: bool,
    ) -> Result<Pipe, ParseError> {
        let mut decl = Vec::new();
        let mut assign = false;
        let var_at = |k: usize| match toks.get(k).map(|t| &t.tok) {
            Some(Tok::Var(v)) => Some(v.as_str()),
            _ => None,
        };
        let is_bind = |k: usize| {
            matches!(
                toks.get(k).map(|t| &t.tok),
                Some(Tok::Declare | Tok::Assign)
            )
        };
        if let Some(v1) = var_at(*i) {
            if is_bind(*i + 1) {
                decl.push(self.intern(v1));
                assign = toks[*i + 1].tok == Tok::Assign;
                *i += 2;
            } else if matches!(toks.get(*i + 1).map(|t| &t.tok), Some(Tok::Comma)) {
                if let Some(v2) = var_at(*i + 2).filter(|_| is_bind(*i + 3)) {
                    if max_decl < 2 {
                        return Err(perr(line, "too many declarations in command"));
                    }
                    decl.push(self.intern(v1));
                    decl.push(self.intern(v2));
                    assign = toks[*i + 3].tok == Tok::Assign;
                    *i += 4;
                }
            }
        }
        if assign {
            for v in &decl {
                if !self.declared(v) {
                    let name = &v.name;
                    return Err(perr(line, format!("undefined variable {name:?}")));
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.parse_cmd(toks, i, line, in_paren)?;
            cmds.push(cmd);
            match toks.get(*i).map(|t| &t.tok) {
                Some(Tok::Pipe) => *i += 1,
                _ => break,
            }
        }
        if in_paren {
            match toks.get(*i).map(|t| &t.tok) {
                Some(Tok::RParen) => *i += 1,
                _ => return Err(perr(line, "unclosed left paren")),
            }
        } else if let Some(t) = toks.get(*i) {
            return Err(perr(
                line,
                format!("unexpected {} in operand", t.tok.describe()),
            ));
        }
        if !assign {
            for v in &decl {
                self.declare(v);
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn parse_cmd(
        &mut self,
        toks: &[Token],
        i: &mut usize,
        line: usize,
        in_paren: bool,
    ) -> Result<Cmd, ParseError> {
        let mut args = Vec::new();
        while let Some(t) = toks.get(*i) {
            match t.tok {
                Tok::Pipe => break,
                Tok::RParen if in_paren => break,
                _ => {}
            }
            if !args.is_empty() && !t.spaced && !matches!(t.tok, Tok::LParen) {
                return Err(perr(
                    line,
                    format!("missing space before {}", t.tok.describe()),
                ));
            }
            args.push(self.parse_term(toks, i, line)?);
        }
        match args.first() {
            None => Err(perr(line, "missing value for command")),
            Some(Term::Nil) => Err(perr(line, "nil is not a command")),
            Some(_) => Ok(Cmd { args }),
        }
    }

    /// Field names directly following (no space) a variable or `)`.
    fn chain(toks: &[Token], i: &mut usize) -> Vec<String> {
        let mut fields = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f),
            spaced: false,
        }) = toks.get(*i)
        {
            fields.push(f.clone());
            *i += 1;
        }
        fields
    }

    fn parse_term(
        &mut self,
        toks: &[Token],
        i: &mut usize,
        line: usize,
    ) -> Result<Term, ParseError> {
        let Some(t) = toks.get(*i) else {
            return Err(perr(line, "missing value for command"));
        };
        *i += 1;
        Ok(match &t.tok {
            Tok::Dot => {
                if let Some(Token {
                    tok: Tok::Field(_),
                    spaced: false,
                }) = toks.get(*i)
                {
                    return Err(perr(line, "unexpected . after term \".\""));
                }
                Term::Dot
            }
            Tok::Field(f) => {
                let mut chain = vec![f.clone()];
                chain.extend(Self::chain(toks, i));
                Term::Field(chain)
            }
            Tok::Var(v) => {
                let var = self.intern(v);
                if !self.declared(&var) {
                    return Err(perr(line, format!("undefined variable {v:?}")));
                }
                Term::Var(var, Self::chain(toks, i))
            }
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(perr(line, "template nested too deeply"));
                }
                let pipe = self.parse_pipe(toks, i, line, 1, true)?;
                self.depth -= 1;
                Term::Sub(Box::new(pipe), Self::chain(toks, i))
            }
            Tok::Str(s) => Term::Lit(Rc::new(Value::String(s.clone()))),
            Tok::Num(n) => Term::Lit(Rc::new(Value::Number(n.clone()))),
            Tok::Ident(id) => match id.as_str() {
                "true" => Term::Lit(Rc::new(Value::Bool(true))),
                "false" => Term::Lit(Rc::new(Value::Bool(false))),
                "nil" => Term::Nil,
                f if FUNCS.contains(&f) => Term::Func(f.to_owned()),
                k if KEYWORDS.contains(&k) || k == "block" => {
                    return Err(perr(line, format!("unexpected <{k}> in operand")))
                }
                f => return Err(perr(line, format!("function {f:?} not defined"))),
            },
            other => {
                return Err(perr(
                    line,
                    format!("unexpected {} in operand", other.describe()),
                ))
            }
        })
    }
}

// ----------------------------------------------------------------------------- values

/// A value during execution: absent (a missing key), borrowed from the data, or computed
/// (and literals). Computed values are shared, so cloning a `Val` never copies a string.
#[derive(Debug, Clone)]
enum Val<'a> {
    Missing,
    Ref(&'a Value),
    Own(Rc<Value>),
}

fn own<'a>(v: Value) -> Val<'a> {
    Val::Own(Rc::new(v))
}

impl Val<'_> {
    fn get(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::Ref(v) => Some(v),
            Val::Own(v) => Some(v.as_ref()),
        }
    }

    fn truthy(&self) -> bool {
        match self.get() {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
        }
    }
}

/// About how many bytes copying `v` moves (for charging the copies of computed containers).
fn copy_cost(v: &Value) -> usize {
    match v {
        Value::String(s) => ITEM_COST + s.len(),
        Value::Array(a) => a
            .iter()
            .fold(ITEM_COST, |n, e| n.saturating_add(copy_cost(e))),
        Value::Object(o) => o.iter().fold(ITEM_COST, |n, (k, e)| {
            n.saturating_add(k.len()).saturating_add(copy_cost(e))
        }),
        _ => ITEM_COST,
    }
}

/// Go's name for the type a JSON value stands for, in error messages.
fn go_type(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Null) => "<nil>",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if n.is_i64() => "int",
        Some(Value::Number(n)) if n.is_u64() => "uint64",
        Some(Value::Number(_)) => "float64",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "[]interface {}",
        Some(Value::Object(_)) => "map[string]interface {}",
    }
}

/// A printed value did not fit in the room it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Overflow;

/// Append `s` unless that takes `out` past `limit` bytes.
fn push_within(out: &mut String, s: &str, limit: usize) -> Result<(), Overflow> {
    if out.len().saturating_add(s.len()) > limit {
        return Err(Overflow);
    }
    out.push_str(s);
    Ok(())
}

/// A value as Go's `fmt` prints it with `%v`, appended to `out`; stops with [`Overflow`]
/// (having appended a prefix) before `out` grows past `limit` bytes, so printing a large
/// value into a small room costs no more than the room.
fn go_v(v: Option<&Value>, out: &mut String, limit: usize) -> Result<(), Overflow> {
    match v {
        None => push_within(out, "<nil>", limit),
        Some(Value::Null) => push_within(out, "[]", limit),
        Some(Value::Bool(b)) => push_within(out, if *b { "true" } else { "false" }, limit),
        Some(Value::Number(n)) => push_within(out, &go_number(n), limit),
        Some(Value::String(s)) => push_within(out, s, limit),
        Some(Value::Array(a)) => {
            push_within(out, "[", limit)?;
            for (k, e) in a.iter().enumerate() {
                if k > 0 {
                    push_within(out, " ", limit)?;
                }
                go_v(Some(e), out, limit)?;
            }
            push_within(out, "]", limit)
        }
        Some(Value::Object(o)) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            push_within(out, "map[", limit)?;
            for (k, key) in keys.into_iter().enumerate() {
                if k > 0 {
                    push_within(out, " ", limit)?;
                }
                push_within(out, key, limit)?;
                push_within(out, ":", limit)?;
                go_v(o.get(key), out, limit)?;
            }
            push_within(out, "]", limit)
        }
    }
}

/// [`go_v`] into a new string of at most `limit` bytes.
fn go_v_string(v: Option<&Value>, limit: usize) -> Result<String, Overflow> {
    let mut s = String::new();
    go_v(v, &mut s, limit)?;
    Ok(s)
}

/// A value for an error message: its first [`SHOWN`] bytes or so, `…` when cut.
fn shown(v: Option<&Value>) -> String {
    let mut s = String::new();
    if go_v(v, &mut s, SHOWN).is_err() {
        s.push('…');
    }
    s
}

/// How much of a value error messages show.
const SHOWN: usize = 200;

fn go_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(0.0))
    }
}

/// A float as Go's `%v` (`%g` with the shortest representation).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{dot}e{esign}{:02}", exp.abs())
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    }
}

fn as_int(v: Option<&Value>) -> Option<i128> {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

// ----------------------------------------------------------------------------- printf

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if spec.zero {
        if numeric && (s.starts_with('-') || s.starts_with('+') || s.starts_with(' ')) {
            format!("{}{}{}", &s[..1], "0".repeat(fill), &s[1..])
        } else {
            format!("{}{s}", "0".repeat(fill))
        }
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn fmt_int(n: i128, verb: char, spec: &Spec) -> String {
    let mag = n.unsigned_abs();
    let mut digits = match verb {
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'o' | 'O' => format!("{mag:o}"),
        'b' => format!("{mag:b}"),
        _ => mag.to_string(),
    };
    if let Some(p) = spec.prec {
        if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    let prefix = match verb {
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        'o' if spec.sharp => "0",
        'O' => "0o",
        _ => "",
    };
    let sign = if n < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    // Go ignores the 0 flag when a precision is given.
    let mut s = *spec;
    s.zero = spec.zero && spec.prec.is_none();
    pad(format!("{sign}{prefix}{digits}"), &s, true)
}

fn fmt_float(f: f64, verb: char, spec: &Spec) -> String {
    let prec = spec.prec.unwrap_or(6);
    let mut s = match verb {
        'f' | 'F' => format!("{f:.prec$}"),
        'e' | 'E' => {
            let r = format!("{f:.prec$e}");
            let (m, e) = r.split_once('e').unwrap_or((&r, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let es = if e < 0 { '-' } else { '+' };
            let t = format!("{m}e{es}{:02}", e.abs());
            if verb == 'E' {
                t.to_uppercase()
            } else {
                t
            }
        }
        _ => match spec.prec {
            None => go_float(f),
            Some(_) => {
                let v = format!("{f:.prec$e}");
                v.parse::<f64>().map(go_float).unwrap_or(v)
            }
        },
    };
    if spec.plus && !s.starts_with('-') {
        s.insert(0, '+');
    } else if spec.space && !s.starts_with('-') {
        s.insert(0, ' ');
    }
    pad(s, spec, true)
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn bad_verb(verb: char, v: Option<&Value>, room: usize) -> Result<String, Overflow> {
    Ok(match v {
        None => format!("%!{verb}(<nil>)"),
        Some(x) => {
            let mut s = format!("%!{verb}({}=", go_type(Some(x)));
            go_v(Some(x), &mut s, room)?;
            s.push(')');
            s
        }
    })
}

/// One verb of [`sprintf`], or [`Overflow`] when its result would not fit in `room` bytes
/// (checked before building it where the result is as long as a string argument, a width
/// or a precision).
fn fmt_one(verb: char, v: Option<&Value>, spec: &Spec, room: usize) -> Result<String, Overflow> {
    if spec.width.unwrap_or(0) > room
        || (matches!(v, Some(Value::Number(_))) && spec.prec.unwrap_or(0) > room)
    {
        return Err(Overflow);
    }
    let too_long =
        |s: &str, factor: usize| spec.prec.is_none() && s.len().saturating_mul(factor) > room;
    Ok(match (verb, v) {
        ('v', Some(Value::Number(n))) if n.is_f64() => {
            fmt_float(n.as_f64().unwrap_or(0.0), 'g', spec)
        }
        ('v', Some(Value::Number(_))) => fmt_int(as_int(v).unwrap_or(0), 'd', spec),
        ('s' | 'v', Some(Value::String(s))) => {
            if too_long(s, 1) {
                return Err(Overflow);
            }
            let s = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            };
            pad(s, spec, false)
        }
        ('v', _) => pad(go_v_string(v, room)?, spec, false),
        ('s', Some(x @ (Value::Array(_) | Value::Object(_) | Value::Null))) => {
            pad(go_v_string(Some(x), room)?, spec, false)
        }
        ('q', Some(Value::String(s))) => {
            if s.len() > room {
                return Err(Overflow);
            }
            pad(go_quote(s), spec, false)
        }
        ('q', Some(Value::Number(_))) => match as_int(v)
            .and_then(|i| u32::try_from(i).ok())
            .and_then(char::from_u32)
        {
            Some(c) => pad(format!("'{c}'"), spec, false),
            None => bad_verb(verb, v, room)?,
        },
        ('t', Some(Value::Bool(b))) => pad(b.to_string(), spec, false),
        ('d' | 'x' | 'X' | 'o' | 'O' | 'b', Some(Value::Number(_))) if as_int(v).is_some() => {
            fmt_int(as_int(v).unwrap_or(0), verb, spec)
        }
        ('c', Some(Value::Number(_))) => match as_int(v)
            .and_then(|i| u32::try_from(i).ok())
            .and_then(char::from_u32)
        {
            Some(c) => pad(c.to_string(), spec, false),
            None => bad_verb(verb, v, room)?,
        },
        ('x' | 'X', Some(Value::String(s))) => {
            if s.len().saturating_mul(2) > room {
                return Err(Overflow);
            }
            let mut h = String::with_capacity(s.len() * 2);
            for b in s.bytes() {
                let _ = if verb == 'x' {
                    write!(h, "{b:02x}")
                } else {
                    write!(h, "{b:02X}")
                };
            }
            pad(h, spec, false)
        }
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Some(Value::Number(n))) if n.is_f64() => {
            fmt_float(n.as_f64().unwrap_or(0.0), verb, spec)
        }
        _ => bad_verb(verb, v, room)?,
    })
}

/// Go's `fmt.Sprintf` for JSON values: flags `-+# 0`, width and precision (also `*`), the
/// verbs `v s q d x X o O b c t e E f F g G %`, and Go's `%!verb(…)` notes for missing,
/// extra and mismatched arguments. Fails with [`Overflow`] instead of producing more
/// than `limit` bytes.
fn sprintf(format: &str, args: &[Val<'_>], limit: usize) -> Result<String, Overflow> {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() > limit {
            return Err(Overflow);
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut bad_width = false;
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                          next: &mut usize|
         -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = args.get(*next).and_then(|a| as_int(a.get()));
                *next += 1;
                return match v {
                    Some(n) if n.unsigned_abs() <= MAX_WIDTH as u128 => {
                        Some(n.unsigned_abs() as usize)
                    }
                    _ => {
                        bad_width = true;
                        None
                    }
                };
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                chars.next();
                let v = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
                n = Some(v);
            }
            if n.is_some_and(|n| n > MAX_WIDTH) {
                bad_width = true;
                return None;
            }
            n
        };
        spec.width = number(&mut chars, &mut next);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number(&mut chars, &mut next).unwrap_or(0));
        }
        if bad_width {
            out.push_str("%!(BADWIDTH)");
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            Some(a) => {
                let room = limit.saturating_sub(out.len());
                let s = fmt_one(verb, a.get(), &spec, room)?;
                push_within(&mut out, &s, limit)?;
            }
        }
        next += 1;
    }
    if next < args.len() {
        push_within(&mut out, "%!(EXTRA ", limit)?;
        for (k, a) in args[next..].iter().enumerate() {
            if k > 0 {
                push_within(&mut out, ", ", limit)?;
            }
            match a.get() {
                None => push_within(&mut out, "<nil>", limit)?,
                Some(v) => {
                    push_within(&mut out, go_type(Some(v)), limit)?;
                    push_within(&mut out, "=", limit)?;
                    go_v(Some(v), &mut out, limit)?;
                }
            }
        }
        push_within(&mut out, ")", limit)?;
    }
    if out.len() > limit {
        return Err(Overflow);
    }
    Ok(out)
}

// ----------------------------------------------------------------------------- execution

/// What a `range` runs over.
enum RangeOver<'a> {
    Items(Vec<(Val<'a>, Val<'a>)>),
    Count(usize),
}

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a, 'c> {
    root: &'a Value,
    /// Per variable id, its bindings in the enclosing scopes, innermost last.
    slots: Vec<Vec<Val<'a>>>,
    /// The ids bound, in binding order, so the end of a scope can unbind them.
    bound: Vec<usize>,
    out: String,
    steps: u64,
    work: usize,
    /// Steps and 256-byte units of work since the clock was last asked.
    ticks: u64,
    line: usize,
    expired: &'c mut dyn FnMut() -> bool,
}

impl<'a> Exec<'a, '_> {
    fn err(&self, msg: impl Into<String>) -> ExecError {
        ExecError {
            line: self.line,
            msg: msg.into(),
        }
    }

    fn work_exceeded(&self) -> ExecError {
        self.err(format!(
            "template exceeded its work budget: more than {MAX_WORK} bytes produced, copied \
             or compared; simplify the template"
        ))
    }

    fn time_exceeded(&self) -> ExecError {
        self.err("template exceeded its time budget; simplify the template")
    }

    fn output_exceeded(&self) -> ExecError {
        self.err(format!(
            "template exceeded its output budget: more than {MAX_OUTPUT} bytes; simplify the \
             template"
        ))
    }

    /// Count `n` ticks and ask the clock when enough have gone by.
    fn tick(&mut self, n: u64) -> Result<(), ExecError> {
        self.ticks = self.ticks.saturating_add(n);
        if self.ticks >= CHECK_EVERY {
            self.ticks = 0;
            if (self.expired)() {
                return Err(self.time_exceeded());
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), ExecError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.err(format!(
                "template exceeded its work budget: more than {MAX_STEPS} steps; simplify the \
                 template"
            )));
        }
        self.tick(1)
    }

    /// Count `bytes` produced, copied, compared or hashed against the work budget.
    fn charge(&mut self, bytes: usize) -> Result<(), ExecError> {
        self.work = self.work.saturating_add(bytes);
        if self.work > MAX_WORK {
            return Err(self.work_exceeded());
        }
        self.tick((bytes / 256) as u64)
    }

    /// How many bytes a function may still produce.
    fn room(&self) -> usize {
        MAX_WORK.saturating_sub(self.work)
    }

    fn write(&mut self, s: &str) -> Result<(), ExecError> {
        push_within(&mut self.out, s, MAX_OUTPUT).map_err(|Overflow| self.output_exceeded())
    }

    /// Print the value of an action, straight into the output.
    fn print(&mut self, v: &Val<'a>) -> Result<(), ExecError> {
        match v.get() {
            None => self.write("<no value>"),
            some => {
                go_v(some, &mut self.out, MAX_OUTPUT).map_err(|Overflow| self.output_exceeded())
            }
        }
    }

    fn produced(&mut self, s: String) -> Result<Val<'a>, ExecError> {
        self.charge(s.len())?;
        Ok(own(Value::String(s)))
    }

    /// A copy of part of a computed value (computed values are scalars in practice; a
    /// container would be copied, so the copy is charged).
    fn copied(&mut self, v: &Value) -> Result<Val<'a>, ExecError> {
        self.charge(copy_cost(v))?;
        Ok(own(v.clone()))
    }

    fn run_list(&mut self, nodes: &[Node], dot: &Val<'a>) -> Result<Flow, ExecError> {
        for node in nodes {
            self.step()?;
            let flow = match node {
                Node::Text(t) => {
                    self.write(t)?;
                    Flow::Normal
                }
                Node::Action { line, pipe } => {
                    self.line = *line;
                    let v = self.eval_pipe(pipe, dot, true)?;
                    if pipe.decl.is_empty() {
                        self.print(&v)?;
                    }
                    Flow::Normal
                }
                Node::If {
                    line,
                    pipe,
                    then,
                    els,
                }
                | Node::With {
                    line,
                    pipe,
                    then,
                    els,
                } => {
                    self.line = *line;
                    let mark = self.bound.len();
                    let v = self.eval_pipe(pipe, dot, true)?;
                    let flow = if v.truthy() {
                        let new_dot = if matches!(node, Node::With { .. }) {
                            v
                        } else {
                            dot.clone()
                        };
                        self.run_list(then, &new_dot)?
                    } else {
                        self.run_list(els, dot)?
                    };
                    self.unbind(mark);
                    flow
                }
                Node::Range {
                    line,
                    pipe,
                    body,
                    els,
                } => {
                    self.line = *line;
                    let mark = self.bound.len();
                    let v = self.eval_pipe(pipe, dot, false)?;
                    let flow = match self.range_items(v)? {
                        RangeOver::Items(items) if !items.is_empty() => {
                            for (key, elem) in items {
                                if self.range_body(pipe, body, key, elem)? {
                                    break;
                                }
                            }
                            Flow::Normal
                        }
                        RangeOver::Count(n) if n > 0 => {
                            for k in 0..n {
                                let i = own(Value::from(k));
                                if self.range_body(pipe, body, i.clone(), i)? {
                                    break;
                                }
                            }
                            Flow::Normal
                        }
                        _ => self.run_list(els, dot)?,
                    };
                    self.unbind(mark);
                    flow
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    /// One iteration of a range body; true when it hit `{{break}}`.
    fn range_body(
        &mut self,
        pipe: &Pipe,
        body: &[Node],
        key: Val<'a>,
        elem: Val<'a>,
    ) -> Result<bool, ExecError> {
        self.step()?;
        let inner = self.bound.len();
        match pipe.decl.as_slice() {
            [e] => self.bind(e, elem.clone(), pipe.assign),
            [k, e] => {
                self.bind(k, key, pipe.assign);
                self.bind(e, elem.clone(), pipe.assign);
            }
            _ => {}
        }
        let flow = self.run_list(body, &elem)?;
        self.unbind(inner);
        Ok(matches!(flow, Flow::Break))
    }

    /// The elements a `range` visits, each charged [`ITEM_COST`] as it is collected.
    fn range_items(&mut self, v: Val<'a>) -> Result<RangeOver<'a>, ExecError> {
        let idx = |k: usize| own(Value::from(k));
        let n = match v.get() {
            Some(Value::Array(a)) => a.len(),
            Some(Value::Object(o)) => o.len(),
            _ => 0,
        };
        self.charge(n.saturating_mul(ITEM_COST))?;
        Ok(RangeOver::Items(match v {
            Val::Missing => Vec::new(),
            Val::Ref(Value::Null) => Vec::new(),
            Val::Ref(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(k, e)| (idx(k), Val::Ref(e)))
                .collect(),
            Val::Ref(Value::Object(o)) => {
                let mut keys: Vec<&'a String> = o.keys().collect();
                keys.sort();
                let mut items = Vec::with_capacity(keys.len());
                for k in keys {
                    self.charge(k.len())?;
                    if let Some(e) = o.get(k) {
                        items.push((own(Value::String(k.clone())), Val::Ref(e)));
                    }
                }
                items
            }
            Val::Own(rc) => match rc.as_ref() {
                Value::Null => Vec::new(),
                Value::Array(a) => {
                    let mut items = Vec::with_capacity(a.len());
                    for (k, e) in a.iter().enumerate() {
                        items.push((idx(k), self.copied(e)?));
                    }
                    items
                }
                Value::Object(o) => {
                    let mut pairs: Vec<(&String, &Value)> = o.iter().collect();
                    pairs.sort_by(|a, b| a.0.cmp(b.0));
                    let mut items = Vec::with_capacity(pairs.len());
                    for (k, e) in pairs {
                        self.charge(k.len())?;
                        items.push((own(Value::String(k.clone())), self.copied(e)?));
                    }
                    items
                }
                other => return self.range_scalar(Some(other)),
            },
            Val::Ref(other) => return self.range_scalar(Some(other)),
        }))
    }

    /// `range` over an integer n runs 0..n (Go 1.22); the step budget bounds it.
    fn range_scalar(&self, v: Option<&Value>) -> Result<RangeOver<'a>, ExecError> {
        if let Some(n) = as_int(v) {
            return Ok(RangeOver::Count(
                n.clamp(0, i128::from(MAX_STEPS) + 1) as usize
            ));
        }
        Err(self.err(format!("range can't iterate over {}", shown(v))))
    }

    fn bind(&mut self, var: &VarRef, v: Val<'a>, assign: bool) {
        let Some(slot) = self.slots.get_mut(var.id) else {
            // Ids come from the parser, which sized `slots`; nothing to bind otherwise.
            return;
        };
        if assign {
            if let Some(top) = slot.last_mut() {
                *top = v;
                return;
            }
        }
        slot.push(v);
        self.bound.push(var.id);
    }

    /// Drop the bindings made since `bound` had `mark` entries.
    fn unbind(&mut self, mark: usize) {
        while self.bound.len() > mark {
            if let Some(slot) = self.bound.pop().and_then(|id| self.slots.get_mut(id)) {
                slot.pop();
            }
        }
    }

    /// Evaluate a pipeline; with `bind_decl` its variables get its value (for `range` the
    /// caller binds them per element instead).
    fn eval_pipe(
        &mut self,
        pipe: &Pipe,
        dot: &Val<'a>,
        bind_decl: bool,
    ) -> Result<Val<'a>, ExecError> {
        let mut v: Option<Val<'a>> = None;
        for cmd in &pipe.cmds {
            v = Some(self.eval_cmd(cmd, dot, v)?);
        }
        let v = v.unwrap_or(Val::Missing);
        if bind_decl {
            for var in &pipe.decl {
                self.bind(var, v.clone(), pipe.assign);
            }
        }
        Ok(v)
    }

    fn eval_cmd(
        &mut self,
        cmd: &Cmd,
        dot: &Val<'a>,
        piped: Option<Val<'a>>,
    ) -> Result<Val<'a>, ExecError> {
        let Some(first) = cmd.args.first() else {
            return Err(self.err("empty command"));
        };
        let Term::Func(name) = first else {
            if cmd.args.len() > 1 || piped.is_some() {
                return Err(self.err(format!(
                    "can't give argument to non-function {}",
                    first.describe()
                )));
            }
            return self.eval_term(first, dot);
        };
        self.step()?;
        let rest = &cmd.args[1..];
        if name == "and" || name == "or" {
            let n = rest.len() + usize::from(piped.is_some());
            if n == 0 {
                return Err(self.err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                )));
            }
            let mut last = Val::Missing;
            for t in rest {
                last = self.eval_term(t, dot)?;
                if last.truthy() != (name == "and") {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut args = Vec::with_capacity(rest.len() + 1);
        for t in rest {
            args.push(self.eval_term(t, dot)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        self.call(name, args)
    }

    fn eval_term(&mut self, term: &Term, dot: &Val<'a>) -> Result<Val<'a>, ExecError> {
        self.step()?;
        match term {
            Term::Dot => Ok(dot.clone()),
            Term::Field(chain) => self.walk(dot.clone(), chain),
            Term::Var(var, chain) => {
                let v = if var.id == 0 {
                    Val::Ref(self.root)
                } else {
                    match self.slots.get(var.id).and_then(|s| s.last()) {
                        Some(v) => v.clone(),
                        None => return Err(self.err(format!("undefined variable: {}", var.name))),
                    }
                };
                self.walk(v, chain)
            }
            Term::Sub(pipe, chain) => {
                let v = self.eval_pipe(pipe, dot, true)?;
                self.walk(v, chain)
            }
            Term::Lit(v) => Ok(Val::Own(Rc::clone(v))),
            Term::Nil => Ok(own(Value::Null)),
            Term::Func(name) => self.call(name, Vec::new()),
        }
    }

    /// Follow field names; each lookup is charged the length of the name it hashes.
    fn walk(&mut self, mut v: Val<'a>, chain: &[String]) -> Result<Val<'a>, ExecError> {
        for name in chain {
            self.charge(name.len())?;
            v = match v {
                Val::Ref(Value::Object(o)) => o.get(name).map_or(Val::Missing, Val::Ref),
                Val::Own(rc) if rc.is_object() => match rc.as_object().and_then(|o| o.get(name)) {
                    Some(e) => self.copied(e)?,
                    None => Val::Missing,
                },
                Val::Missing | Val::Ref(Value::Null) => {
                    return Err(self.err(format!("nil pointer evaluating interface {{}}.{name}")))
                }
                Val::Own(rc) if rc.is_null() => {
                    return Err(self.err(format!("nil pointer evaluating interface {{}}.{name}")))
                }
                other => {
                    let t = go_type(other.get());
                    return Err(self.err(format!("can't evaluate field {name} in type {t}")));
                }
            };
        }
        Ok(v)
    }

    fn want(&self, name: &str, args: &[Val<'a>], n: usize) -> Result<(), ExecError> {
        if args.len() != n {
            return Err(self.err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    }

    fn call(&mut self, name: &str, args: Vec<Val<'a>>) -> Result<Val<'a>, ExecError> {
        match name {
            "len" => {
                self.want(name, &args, 1)?;
                let n = match args[0].get() {
                    Some(Value::Array(a)) => a.len(),
                    Some(Value::Object(o)) => o.len(),
                    Some(Value::String(s)) => s.len(),
                    Some(Value::Null) => 0,
                    None => return Err(self.err("error calling len: len of nil pointer")),
                    Some(other) => {
                        let t = go_type(Some(other));
                        return Err(self.err(format!("error calling len: len of type {t}")));
                    }
                };
                Ok(own(Value::from(n)))
            }
            "json" => {
                self.want(name, &args, 1)?;
                let mut w = BoundedWriter {
                    buf: Vec::new(),
                    limit: self.room(),
                    stopped: None,
                    expired: &mut *self.expired,
                };
                let written = serde_json::to_writer(&mut w, args[0].get().unwrap_or(&Value::Null));
                let BoundedWriter { buf, stopped, .. } = w;
                match stopped {
                    Some(Stopped::Work) => return Err(self.work_exceeded()),
                    Some(Stopped::Time) => return Err(self.time_exceeded()),
                    None => {}
                }
                written.map_err(|e| self.err(format!("error calling json: {e}")))?;
                let s = String::from_utf8(buf)
                    .map_err(|e| self.err(format!("error calling json: {e}")))?;
                self.produced(s)
            }
            "printf" => {
                let Some(Value::String(f)) = args.first().and_then(Val::get) else {
                    let t = go_type(args.first().and_then(Val::get));
                    return Err(self.err(format!("wrong type for value; expected string; got {t}")));
                };
                // Scanning the format costs its length, whatever it produces.
                self.charge(f.len())?;
                let s =
                    sprintf(f, &args[1..], self.room()).map_err(|Overflow| self.work_exceeded())?;
                self.produced(s)
            }
            "print" | "println" => {
                let limit = self.room();
                let mut s = String::new();
                let is_str = |v: &Val<'_>| matches!(v.get(), Some(Value::String(_)));
                for (k, a) in args.iter().enumerate() {
                    if k > 0 && (name == "println" || !(is_str(a) || is_str(&args[k - 1]))) {
                        push_within(&mut s, " ", limit).map_err(|Overflow| self.work_exceeded())?;
                    }
                    go_v(a.get(), &mut s, limit).map_err(|Overflow| self.work_exceeded())?;
                }
                if name == "println" {
                    push_within(&mut s, "\n", limit).map_err(|Overflow| self.work_exceeded())?;
                }
                self.produced(s)
            }
            "not" => {
                self.want(name, &args, 1)?;
                Ok(own(Value::Bool(!args[0].truthy())))
            }
            "index" => {
                if args.is_empty() {
                    return Err(self.err("wrong number of args for index: want at least 1 got 0"));
                }
                let mut it = args.into_iter();
                let mut item = it.next().unwrap_or(Val::Missing);
                for key in it {
                    item = self.index(item, &key)?;
                }
                Ok(item)
            }
            "eq" => {
                if args.len() < 2 {
                    return Err(self.err("missing argument for comparison"));
                }
                let mut any = false;
                for b in &args[1..] {
                    any |= self.compare(&args[0], b)? == Some(std::cmp::Ordering::Equal);
                }
                Ok(own(Value::Bool(any)))
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                self.want(name, &args, 2)?;
                let ord = self.compare(&args[0], &args[1])?;
                if name != "ne"
                    && !matches!(args[0].get(), Some(Value::Number(_) | Value::String(_)))
                {
                    return Err(
                        self.err(format!("error calling {name}: invalid type for comparison"))
                    );
                }
                use std::cmp::Ordering::*;
                let r = match name {
                    "ne" => ord != Some(Equal),
                    "lt" => ord == Some(Less),
                    "le" => matches!(ord, Some(Less | Equal)),
                    "gt" => ord == Some(Greater),
                    _ => matches!(ord, Some(Greater | Equal)),
                };
                Ok(own(Value::Bool(r)))
            }
            other => Err(self.err(format!("function {other:?} not defined"))),
        }
    }

    fn index(&mut self, item: Val<'a>, key: &Val<'a>) -> Result<Val<'a>, ExecError> {
        let not_string =
            || "error calling index: value has type non-string; should be string".to_owned();
        match item {
            Val::Ref(Value::Array(a)) => {
                let i = self.array_index(key, a.len())?;
                Ok(a.get(i).map_or(Val::Missing, Val::Ref))
            }
            Val::Ref(Value::Object(o)) => match key.get() {
                Some(Value::String(k)) => {
                    self.charge(k.len())?;
                    Ok(o.get(k).map_or(Val::Missing, Val::Ref))
                }
                _ => Err(self.err(not_string())),
            },
            Val::Ref(Value::String(s)) => {
                let i = self.array_index(key, s.len())?;
                Ok(s.as_bytes()
                    .get(i)
                    .map_or(Val::Missing, |b| own(Value::from(*b))))
            }
            Val::Own(rc) => match rc.as_ref() {
                Value::Array(a) => {
                    let i = self.array_index(key, a.len())?;
                    match a.get(i) {
                        Some(e) => self.copied(e),
                        None => Ok(Val::Missing),
                    }
                }
                Value::Object(o) => match key.get() {
                    Some(Value::String(k)) => {
                        self.charge(k.len())?;
                        match o.get(k) {
                            Some(e) => self.copied(e),
                            None => Ok(Val::Missing),
                        }
                    }
                    _ => Err(self.err(not_string())),
                },
                Value::String(s) => {
                    let i = self.array_index(key, s.len())?;
                    Ok(s.as_bytes()
                        .get(i)
                        .map_or(Val::Missing, |b| own(Value::from(*b))))
                }
                Value::Null => Err(self.err("error calling index: index of untyped nil")),
                other => {
                    let t = go_type(Some(other));
                    Err(self.err(format!("error calling index: can't index item of type {t}")))
                }
            },
            Val::Missing | Val::Ref(Value::Null) => {
                Err(self.err("error calling index: index of untyped nil"))
            }
            Val::Ref(other) => {
                let t = go_type(Some(other));
                Err(self.err(format!("error calling index: can't index item of type {t}")))
            }
        }
    }

    fn array_index(&self, key: &Val<'a>, len: usize) -> Result<usize, ExecError> {
        match as_int(key.get()) {
            Some(i) if i >= 0 && (i as u128) < len as u128 => Ok(i as usize),
            Some(i) => Err(self.err(format!("error calling index: index out of range: {i}"))),
            None => Err(self.err("error calling index: cannot index slice/array with non-integer")),
        }
    }

    /// Go's basic comparison: numbers with numbers, strings with strings, bools with bools.
    /// Comparing strings is charged the bytes it may read.
    fn compare(
        &mut self,
        a: &Val<'a>,
        b: &Val<'a>,
    ) -> Result<Option<std::cmp::Ordering>, ExecError> {
        Ok(match (a.get(), b.get()) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => {
                match (as_int(a.get()), as_int(b.get())) {
                    (Some(i), Some(j)) => Some(i.cmp(&j)),
                    _ => x
                        .as_f64()
                        .zip(y.as_f64())
                        .and_then(|(x, y)| x.partial_cmp(&y)),
                }
            }
            (Some(Value::String(x)), Some(Value::String(y))) => {
                self.charge(x.len().min(y.len()))?;
                Some(x.cmp(y))
            }
            (Some(Value::Bool(x)), Some(Value::Bool(y))) => Some(x.cmp(y)),
            (None | Some(Value::Null), None | Some(Value::Null)) => Some(std::cmp::Ordering::Equal),
            (Some(Value::Array(_) | Value::Object(_)), _)
            | (_, Some(Value::Array(_) | Value::Object(_))) => {
                return Err(self.err("error calling eq: non-comparable type"))
            }
            _ => return Err(self.err("error calling eq: incompatible types for comparison")),
        })
    }
}

/// Why a [`BoundedWriter`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    Work,
    Time,
}

/// A `Write` for `json` of large values: refuses to grow past `limit` bytes, and asks the
/// clock every `CHECK_EVERY * 256` bytes, as the evaluator does for its own work.
struct BoundedWriter<'c> {
    buf: Vec<u8>,
    limit: usize,
    stopped: Option<Stopped>,
    expired: &'c mut dyn FnMut() -> bool,
}

impl std::io::Write for BoundedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let before = self.buf.len();
        let after = before.saturating_add(data.len());
        if after > self.limit {
            self.stopped = Some(Stopped::Work);
            return Err(std::io::Error::other("json output exceeds the work budget"));
        }
        let every = (CHECK_EVERY as usize) * 256;
        if after / every != before / every && (self.expired)() {
            self.stopped = Some(Stopped::Time);
            return Err(std::io::Error::other("json ran out of time"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
