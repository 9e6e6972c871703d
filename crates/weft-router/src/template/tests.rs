use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::status::fixtures::{self, HOSTS};
use crate::status::report_json;

fn run(t: &str, data: &Value) -> String {
    render(t, data).unwrap_or_else(|e| panic!("{t:?}: {e}"))
}

fn data() -> Value {
    json!({
        "Name": "a",
        "Count": 3,
        "Big": 10762426359381933810u64,
        "Neg": -2,
        "Half": 0.5,
        "Million": 1_000_000.0,
        "Yes": true,
        "No": false,
        "Empty": "",
        "Nil": null,
        "List": ["x", "y", "z"],
        "None": [],
        "Map": {"b": 2, "a": 1},
        "Nested": {"Inner": {"Leaf": "deep"}},
        "Peers": [
            {"Name": "p1", "Conns": [{"Addr": "1.1.1.1", "Up": true}]},
            {"Name": "p2", "Conns": null}
        ]
    })
}

/// The template behind `report-format.txt` in the captures (its output has the shape
/// `<name> peers=<n> <addr>:<state> …`, one trailing space).
const CAPTURE_FORMAT: &str =
    "{{.Router.Name}} peers={{len .Router.Peers}} {{range .Router.Connections}}{{.Address}}:{{.State}} {{end}}";

#[test]
fn capture_format_template_reproduces_report_format() {
    for (scenario, host) in HOSTS {
        let want = fixtures::body(scenario, host, "report-format");
        let got = run(
            CAPTURE_FORMAT,
            &report_json(&fixtures::status(scenario, host)),
        );
        // Connections come in Go map order; compare the words, and the ends exactly.
        let words = |s: &str| {
            let mut w: Vec<String> = s.split(' ').map(str::to_owned).collect();
            w.sort();
            w
        };
        assert_eq!(words(&got), words(&want), "{scenario} {host}");
        assert!(got.ends_with(' ') && got.starts_with(&want[..want.find(' ').unwrap_or(0)]));
    }
    let one = run(
        CAPTURE_FORMAT,
        &report_json(&fixtures::status("a-2peer-plain", "h1")),
    );
    assert_eq!(
        one,
        "00:00:00:00:00:01 peers=2 198.18.0.2:35107:established "
    );
}

#[test]
fn weave_test_suite_templates() {
    let r = report_json(&fixtures::status("c-3peer-line", "h1"));
    assert_eq!(run("{{.Router.Name}}", &r), "00:00:00:00:00:01");
    assert_eq!(run("{{len .Router.Peers}}", &r), "3");
    assert_eq!(
        run("{{range .Router.Targets}}{{.}}\n{{end}}", &r),
        "198.18.0.2\n"
    );
    assert_eq!(run("{{.VersionCheck.Enabled}}", &r), "false");
    assert_eq!(run("{{.VersionCheck.NewVersion}}", &r), "");
    assert_eq!(run("{{.Version}}", &r), "2.8.1+rw-nodummy");
    assert_eq!(
        run("{{.Router.Connections}}", &r).matches("map[").count(),
        2
    );
    assert_eq!(
        run("{{range .Router.Connections}}{{.Attrs.mtu}}{{end}}", &r),
        "1438"
    );
    // IPAM is absent: `if` is false, and reaching into it fails like Weave's nil pointer.
    assert_eq!(run("{{if .IPAM}}ipam{{else}}no ipam{{end}}", &r), "no ipam");
    assert!(matches!(
        render("{{.IPAM.Range}}", &r),
        Err(TemplateError::Exec(_))
    ));
}

#[test]
fn json_function_is_compact_and_keeps_field_order() {
    let r = report_json(&fixtures::status("a-2peer-plain", "h1"));
    assert_eq!(
        run("{{json .Router.Connections}}", &r),
        r#"[{"Address":"198.18.0.2:35107","Outbound":false,"State":"established","Info":"sleeve 00:00:00:00:00:02(rw-h2)","Attrs":{"mtu":1438,"name":"sleeve"}}]"#
    );
    assert_eq!(run("{{json .Router.Targets}}", &r), "null");
    assert_eq!(run("{{json .Missing}}", &r), "null");
    assert_eq!(run("{{json .Router.TrustedSubnets}}", &r), "[]");
}

#[test]
fn text_and_fields() {
    let d = data();
    assert_eq!(run("", &d), "");
    assert_eq!(run("plain text } {", &d), "plain text } {");
    assert_eq!(
        run("{{.Name}}-{{.Count}}-{{.Big}}-{{.Neg}}", &d),
        "a-3-10762426359381933810--2"
    );
    assert_eq!(
        run("{{.Half}} {{.Million}} {{.Yes}} {{.No}}", &d),
        "0.5 1e+06 true false"
    );
    assert_eq!(run("{{.Nested.Inner.Leaf}}", &d), "deep");
    assert_eq!(
        run("{{.List}} {{.Map}} {{.None}}", &d),
        "[x y z] map[a:1 b:2] []"
    );
    assert_eq!(run("{{.Absent}}", &d), "<no value>");
    assert_eq!(run("{{.Nil}}", &d), "[]");
    assert_eq!(run("{{$.Name}}", &d), "a");
    assert_eq!(run("{{$}}", &json!("s")), "s");
    assert_eq!(run("{{.}}", &json!("dot")), "dot");
    assert_eq!(run("{{(.Nested).Inner.Leaf}}", &d), "deep");
}

#[test]
fn len_of_arrays_objects_strings() {
    let d = data();
    assert_eq!(
        run(
            "{{len .List}} {{len .Map}} {{len .Name}} {{len .None}} {{len .Nil}}",
            &d
        ),
        "3 2 1 0 0"
    );
    assert_eq!(run("{{.List | len}}", &d), "3");
    assert!(matches!(
        render("{{len .Count}}", &d),
        Err(TemplateError::Exec(_))
    ));
    assert!(matches!(
        render("{{len .Absent}}", &d),
        Err(TemplateError::Exec(_))
    ));
}

#[test]
fn range_forms() {
    let d = data();
    assert_eq!(run("{{range .List}}<{{.}}>{{end}}", &d), "<x><y><z>");
    assert_eq!(
        run("{{range $i, $e := .List}}{{$i}}={{$e}},{{end}}", &d),
        "0=x,1=y,2=z,"
    );
    assert_eq!(run("{{range $e := .List}}{{$e}}{{end}}", &d), "xyz");
    assert_eq!(
        run("{{range $k, $v := .Map}}{{$k}}{{$v}}{{end}}", &d),
        "a1b2"
    );
    assert_eq!(run("{{range .None}}x{{else}}empty{{end}}", &d), "empty");
    assert_eq!(run("{{range .Nil}}x{{else}}nil{{end}}", &d), "nil");
    assert_eq!(run("{{range .Absent}}x{{end}}", &d), "");
    assert_eq!(
        run(
            "{{range .Peers}}{{.Name}}:{{range .Conns}}{{.Addr}}{{end}};{{end}}",
            &d
        ),
        "p1:1.1.1.1;p2:;"
    );
    assert_eq!(
        run(
            "{{range .List}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}",
            &d
        ),
        "x"
    );
    assert_eq!(
        run(
            "{{range .List}}{{if eq . \"y\"}}{{continue}}{{end}}{{.}}{{end}}",
            &d
        ),
        "xz"
    );
    assert_eq!(run("{{range 3}}{{.}}{{end}}", &d), "012");
    assert_eq!(run("{{range .Peers}}{{$.Name}}{{end}}", &d), "aa");
    assert!(matches!(
        render("{{range .Name}}{{end}}", &d),
        Err(TemplateError::Exec(_))
    ));
}

#[test]
fn if_else_and_truthiness() {
    let d = data();
    let t = |f: &str| run(&format!("{{{{if {f}}}}}T{{{{else}}}}F{{{{end}}}}"), &d);
    for (f, want) in [
        (".Yes", "T"),
        (".No", "F"),
        (".Count", "T"),
        (".Empty", "F"),
        (".Name", "T"),
        (".None", "F"),
        (".List", "T"),
        (".Nil", "F"),
        (".Absent", "F"),
        (".Map", "T"),
        ("0", "F"),
        ("not .Yes", "F"),
        ("and .Yes .Count", "T"),
        ("and .Yes .No", "F"),
        ("or .No .Empty", "F"),
        ("or .No .Name", "T"),
        ("and .Absent .Absent.Deeper", "F"),
    ] {
        assert_eq!(t(f), want, "{f}");
    }
    assert_eq!(run("{{if .No}}a{{else if .Yes}}b{{else}}c{{end}}", &d), "b");
    assert_eq!(run("{{if .No}}a{{else if .No}}b{{else}}c{{end}}", &d), "c");
    assert_eq!(run("{{with .Nested.Inner}}{{.Leaf}}{{end}}", &d), "deep");
    assert_eq!(run("{{with .Empty}}x{{else}}none{{end}}", &d), "none");
    assert_eq!(run("{{with $x := .Name}}{{$x}}{{.}}{{end}}", &d), "aa");
    assert_eq!(run("{{or .Empty \"default\"}}", &d), "default");
    assert_eq!(run("{{and .Name .Count}}", &d), "3");
}

#[test]
fn comparisons() {
    let d = data();
    assert_eq!(
        run(
            "{{eq .Count 3}} {{eq .Name \"a\" \"b\"}} {{ne .Name \"a\"}}",
            &d
        ),
        "true true false"
    );
    assert_eq!(
        run(
            "{{lt 1 2}} {{le 2 2}} {{gt .Count 5}} {{ge \"b\" \"a\"}}",
            &d
        ),
        "true true false true"
    );
    assert_eq!(run("{{eq .Big 10762426359381933810}}", &d), "true");
    assert!(matches!(
        render("{{eq .Name 1}}", &d),
        Err(TemplateError::Exec(_))
    ));
    assert!(matches!(
        render("{{lt .Yes .No}}", &d),
        Err(TemplateError::Exec(_))
    ));
}

#[test]
fn variables() {
    let d = data();
    assert_eq!(run("{{$x := .Name}}{{$x}}{{$x = \"b\"}}{{$x}}", &d), "ab");
    assert_eq!(
        run("{{$n := 0}}{{range .List}}{{$n = .}}{{end}}{{$n}}", &d),
        "z"
    );
    assert_eq!(run("{{$p := index .Peers 0}}{{$p.Name}}", &d), "p1");
    assert!(matches!(render("{{$y}}", &d), Err(TemplateError::Parse(_))));
    assert!(matches!(
        render("{{if .Yes}}{{$v := 1}}{{end}}{{$v}}", &d),
        Err(TemplateError::Parse(_))
    ));
}

#[test]
fn index_function() {
    let d = data();
    assert_eq!(
        run(
            "{{index .List 1}} {{index .Map \"b\"}} {{index .Peers 0 \"Name\"}}",
            &d
        ),
        "y 2 p1"
    );
    assert_eq!(run("{{index .Map \"zz\"}}", &d), "<no value>");
    assert!(matches!(
        render("{{index .List 5}}", &d),
        Err(TemplateError::Exec(_))
    ));
}

#[test]
fn printf_verbs() {
    let d = data();
    let p = |f: &str| run(&format!("{{{{printf {f}}}}}"), &d);
    assert_eq!(p(r#""%s %d %v" .Name .Count .List"#), "a 3 [x y z]");
    assert_eq!(
        p(r#""%-5s|%5s|%05d|%x|%X|%q" .Name .Name .Count 255 255 .Name"#),
        "a    |    a|00003|ff|FF|\"a\""
    );
    assert_eq!(p(r#""%-21v|" "1.2.3.4:6783""#), "1.2.3.4:6783         |");
    assert_eq!(
        p(r#""%12.12v|%.2s" "abcdefghijklmnop" .Nested.Inner.Leaf"#),
        "abcdefghijkl|de"
    );
    assert_eq!(
        p(r#""%t %v %.2f %e" .Yes .Half .Half .Half"#),
        "true 0.5 0.50 5.000000e-01"
    );
    assert_eq!(p(r#""%d%%" 50"#), "50%");
    assert_eq!(p(r#""%d""#), "%!d(MISSING)");
    assert_eq!(p(r#""%d" .Name"#), "%!d(string=a)");
    assert_eq!(p(r#""x" 1"#), "x%!(EXTRA int=1)");
    assert_eq!(p(r#""%+d %c" 5 65"#), "+5 A");
    assert_eq!(p(r#""%*d" 4 7"#), "   7");
    assert_eq!(p(r#""%""#), "%!(NOVERB)");
    assert_eq!(
        run("{{print .Name .Count 1 2}} {{println .Name}}", &d),
        "a3 1 2 a\n"
    );
    assert_eq!(run("{{.Count | printf \"%03d\"}}", &d), "003");
}

#[test]
fn whitespace_trimming_and_comments() {
    let d = data();
    assert_eq!(run("a  {{- .Name -}}  \n b", &d), "aab");
    assert_eq!(run("{{range .List -}}\n  {{.}}\n{{- end}}", &d), "xyz");
    assert_eq!(run("a {{/* note */}} b", &d), "a  b");
    assert_eq!(run("a {{- /* note */ -}} b", &d), "ab");
    assert_eq!(run("{{-3}}", &d), "-3");
    assert_eq!(run("{{ .Name }}", &d), "a");
    assert_eq!(run("{{\n.Name\n}}", &d), "a");
}

#[test]
fn literals() {
    let d = data();
    assert_eq!(run(r#"{{"a\tb\u00e9\x41"}}"#, &d), "a\tbéA");
    assert_eq!(run("{{`raw\\n`}}", &d), "raw\\n");
    assert_eq!(
        run("{{'a'}} {{0x10}} {{1_000}} {{1.5}} {{true}}", &d),
        "97 16 1000 1.5 true"
    );
}

fn parse_err(t: &str) -> ParseError {
    match Template::parse(t) {
        Err(e) => e,
        Ok(_) => panic!("{t:?} parsed"),
    }
}

#[test]
fn parse_errors_are_typed_with_go_like_messages() {
    assert_eq!(
        parse_err("{{.Name").to_string(),
        "template: format:1: unclosed action"
    );
    assert_eq!(
        parse_err("{{if .X}}").to_string(),
        "template: format:1: unexpected EOF"
    );
    assert_eq!(
        parse_err("{{end}}").to_string(),
        "template: format:1: unexpected {{end}}"
    );
    assert_eq!(parse_err("a\n{{else}}").line, 2);
    assert_eq!(parse_err("{{foo .X}}").msg, "function \"foo\" not defined");
    assert_eq!(parse_err("{{}}").msg, "missing value for command");
    assert_eq!(parse_err("{{nil}}").msg, "nil is not a command");
    assert_eq!(parse_err("{{break}}").msg, "{{break}} outside {{range}}");
    assert_eq!(parse_err("{{\"abc}}").msg, "unterminated quoted string");
    assert_eq!(
        parse_err("{{define \"x\"}}{{end}}").msg,
        "{{define}} is not supported"
    );
    assert_eq!(parse_err("{{(.A}}").msg, "unclosed left paren");
    assert_eq!(parse_err("{{/* x }}").msg, "unclosed comment");
    assert_eq!(parse_err("{{1.2.3}}").msg, "bad number syntax: \"1.2.3\"");
    let deep = "{{if 1}}".repeat(MAX_DEPTH + 1) + &"{{end}}".repeat(MAX_DEPTH + 1);
    assert_eq!(parse_err(&deep).msg, "template nested too deeply");
    let parens =
        "{{".to_owned() + &"(".repeat(MAX_DEPTH + 1) + "1" + &")".repeat(MAX_DEPTH + 1) + "}}";
    assert_eq!(parse_err(&parens).msg, "template nested too deeply");
}

#[test]
fn exec_errors_are_typed() {
    let d = data();
    let e = |t: &str| match render(t, &d) {
        Err(TemplateError::Exec(e)) => e,
        other => panic!("{t:?}: {other:?}"),
    };
    assert_eq!(
        e("{{.Absent.X}}").msg,
        "nil pointer evaluating interface {}.X"
    );
    assert_eq!(
        e("{{.Name.X}}").msg,
        "can't evaluate field X in type string"
    );
    assert_eq!(
        e("{{.Name 1}}").msg,
        "can't give argument to non-function .Name"
    );
    assert_eq!(e("x\n{{len}}").line, 2);
    assert_eq!(
        e("{{len}}").to_string(),
        "template: format:1: executing \"format\": wrong number of args for len: want 1 got 0"
    );
}

#[test]
fn budgets_bound_output_and_work() {
    let d = data();
    assert!(render("{{range 2000000}}{{end}}", &d).is_err());
    assert!(render("{{range 100000}}{{printf \"%20s\" \"x\"}}{{end}}", &d).is_err());
    assert!(render("{{range 100}}{{printf \"%1000000d\" 1}}{{end}}", &d).is_err());
    assert_eq!(run("{{printf \"%2000000d\" 1}}", &d), "%!(BADWIDTH)1");
    let s = run("{{range 1000}}{{range 100}}{{end}}{{end}}", &d);
    assert!(s.is_empty());
}

/// The heap one thread allocates, for asserting that a render stays small: the peak of
/// live bytes this thread allocated while `f` ran, above what was live before.
mod meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + n;
            live.set(now);
            let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        });
    }

    struct Counting;

    // SAFETY: every call is forwarded to the system allocator unchanged; the thread-local
    // counters are `const`-initialised `Cell`s, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(l.size() as isize);
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-(l.size() as isize));
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(new as isize - l.size() as isize);
            unsafe { System.realloc(p, l, new) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// `f`'s result and the most bytes it had allocated at once on this thread.
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let start = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(start));
        let r = f();
        let peak = PEAK.with(Cell::get);
        (r, usize::try_from(peak - start).unwrap_or(0))
    }
}

/// Render with no time limit, measuring time and peak heap.
fn measured(t: &str, d: &Value) -> (Result<String, TemplateError>, Duration, usize) {
    let start = Instant::now();
    let (r, peak) = meter::peak(|| render(t, d));
    (r, start.elapsed(), peak)
}

fn budget_error(r: &Result<String, TemplateError>) -> &str {
    match r {
        Err(TemplateError::Exec(e)) => &e.msg,
        other => panic!("expected an execution error, got {other:?}"),
    }
}

/// Fast: the attacks took 54 s (and 2.9 GB). Loose, because these tests run in a debug
/// build, in parallel, on shared cores (the worst case here, 8 MB of `json` escaping,
/// takes about 2 s in debug and 30 ms in release); the heap bound is the tight one.
const FAST: Duration = Duration::from_secs(10);
/// Well above the 1 MB string the attacks start from and the caps' worst case.
const SMALL_HEAP: usize = 48 << 20;

/// Issue 13's first attack, 167 characters: a 1 MB string, then re-bound inside five
/// nested ranges over `$.Router` (16 fields: 16^5 iterations). Each re-binding copied
/// the megabyte; the router answered `/status` after 52 s.
const REBIND_ATTACK: &str = "{{$s := printf \"%1000000d\" 0}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{$s := $s}}{{end}}{{end}}{{end}}{{end}}{{end}}";

#[test]
fn rebinding_attack_fails_fast_in_bounded_memory() {
    assert_eq!(REBIND_ATTACK.len(), 167);
    let r = report_json(&fixtures::status("c-3peer-line", "h1"));
    assert_eq!(r["Router"].as_object().map(|o| o.len()), Some(16));
    let (res, took, peak) = measured(REBIND_ATTACK, &r);
    let msg = budget_error(&res);
    eprintln!("rebinding attack: {took:?}, peak heap {peak} bytes: {msg}");
    assert!(
        msg.starts_with("template exceeded its work budget"),
        "{msg}"
    );
    assert!(took < FAST, "took {took:?}");
    assert!(peak < SMALL_HEAP, "peak heap {peak} bytes");
}

#[test]
fn rebinding_shares_the_value_instead_of_copying_it() {
    // 4,096 re-bindings of a 1 MB string: shared, so the heap holds one megabyte.
    let r = report_json(&fixtures::status("c-3peer-line", "h1"));
    let t = "{{$s := printf \"%1000000d\" 0}}{{range $.Router}}{{range $.Router}}{{range $.Router}}{{$t := $s}}{{$s = $t}}{{end}}{{end}}{{end}}{{len $s}}";
    let (res, took, peak) = measured(t, &r);
    assert_eq!(res.ok().as_deref(), Some("1000000"));
    assert!(took < FAST, "took {took:?}");
    assert!(peak < 4 << 20, "peak heap {peak} bytes");
}

/// Issue 13's second attack: a 1 MB variable referenced 3,000 times in one call (a
/// 21 KB URL once encoded). Each argument was a copy: 2.9 GB.
fn reference_attack(call: &str) -> String {
    format!(
        "{{{{$s := printf \"%1000000d\" 0}}}}{{{{{call}{}}}}}",
        " $s".repeat(3000)
    )
}

#[test]
fn many_references_attack_fails_fast_in_bounded_memory() {
    let d = data();
    for call in [
        "eq $s",
        "print",
        "println",
        "printf \"%s\"",
        "and",
        "or",
        "ne $s",
    ] {
        let t = reference_attack(call);
        let (res, took, peak) = measured(&t, &d);
        eprintln!(
            "{} bytes, {call}: {took:?}, peak heap {peak} bytes",
            t.len()
        );
        match call {
            // `and`/`or` return one argument: nothing is copied, and the output is the
            // 1 MB string (within the output cap).
            "and" | "or" => assert_eq!(res.map(|s| s.len()), Ok(1_000_000), "{call}"),
            // `ne` takes two arguments.
            "ne $s" => assert!(budget_error(&res).contains("wrong number of args")),
            _ => {
                let msg = budget_error(&res);
                assert!(
                    msg.starts_with("template exceeded its work budget"),
                    "{call}: {msg}"
                );
            }
        }
        assert!(took < FAST, "{call}: took {took:?}");
        assert!(peak < SMALL_HEAP, "{call}: peak heap {peak} bytes");
    }
}

#[test]
fn every_path_charges_large_values() {
    let d = data();
    let big = "{{$s := printf \"%1000000d\" 0}}";
    for (body, what) in [
        ("{{range 20}}{{if eq $s $s}}{{end}}{{end}}", "eq"),
        ("{{range 20}}{{if lt $s $s}}{{end}}{{end}}", "lt"),
        ("{{range 20}}{{if ge $s $s}}{{end}}{{end}}", "ge"),
        ("{{range 20}}{{$t := json $s}}{{end}}", "json"),
        ("{{range 20}}{{$t := print $s}}{{end}}", "print"),
        ("{{range 20}}{{$t := printf \"%s\" $s}}{{end}}", "printf %s"),
        ("{{range 20}}{{$t := printf \"%q\" $s}}{{end}}", "printf %q"),
        ("{{range 20}}{{$t := printf \"%x\" $s}}{{end}}", "printf %x"),
        ("{{range 20}}{{$t := printf $s}}{{end}}", "printf format"),
        (
            "{{range 20}}{{$t := printf \"%v\" 1 $s}}{{end}}",
            "printf extra",
        ),
        ("{{range 20}}{{$t := index $ $s}}{{end}}", "index key"),
        (
            "{{range 20}}{{with $s}}{{$t := printf \"%s\" .}}{{end}}{{end}}",
            "with",
        ),
        (
            "{{range 20}}{{$t := (printf \"%s\" $s)}}{{end}}",
            "subpipeline",
        ),
        (
            "{{range 20}}{{$s | printf \"%s\" | len}}{{end}}",
            "pipeline",
        ),
    ] {
        let t = format!("{big}{body}");
        let (res, took, peak) = measured(&t, &d);
        let msg = budget_error(&res);
        assert!(
            msg.starts_with("template exceeded its work budget"),
            "{what}: {msg}"
        );
        assert!(took < FAST, "{what}: took {took:?}");
        assert!(peak < SMALL_HEAP, "{what}: peak heap {peak} bytes");
    }
    // Printing goes to the output, which has its own cap.
    let (res, _, peak) = measured(&format!("{big}{{{{$s}}}}{{{{$s}}}}"), &d);
    assert!(budget_error(&res).starts_with("template exceeded its output budget"));
    assert!(peak < SMALL_HEAP, "peak heap {peak} bytes");
    // A long field name is hashed at every lookup.
    let field = format!(
        "{{{{range 100000}}}}{{{{$.{}}}}}{{{{end}}}}",
        "A".repeat(1000)
    );
    let msg = budget_error(&render(&field, &d)).to_owned();
    assert!(
        msg.starts_with("template exceeded its work budget"),
        "{msg}"
    );
    // Many arguments are many steps.
    let args = format!(
        "{{{{range 1000}}}}{{{{eq 1{}}}}}{{{{end}}}}",
        " 1".repeat(2000)
    );
    let msg = budget_error(&render(&args, &d)).to_owned();
    assert!(msg.contains("more than 1000000 steps"), "{msg}");
    // Functions Weave's report templates cannot use stay undefined.
    for f in ["html", "js", "urlquery", "call", "slice"] {
        assert!(matches!(
            render(&format!("{{{{{f} 1}}}}"), &d),
            Err(TemplateError::Parse(_))
        ));
    }
}

#[test]
fn time_budget_is_asked_and_stops_the_run() {
    let d = data();
    // A clock that expires on its fifth question: deterministic.
    let mut asked = 0;
    let mut clock = || {
        asked += 1;
        asked >= 5
    };
    let r = render_until("{{range 500000}}{{end}}", &d, &mut clock);
    assert_eq!(asked, 5);
    let msg = budget_error(&r);
    assert!(
        msg.starts_with("template exceeded its time budget"),
        "{msg}"
    );
    // A clock that never expires changes nothing, and is asked about once per
    // CHECK_EVERY steps.
    let mut asked = 0;
    let mut never = || {
        asked += 1;
        false
    };
    let out = render_until("{{range 10000}}x{{end}}", &d, &mut never);
    assert_eq!(out.map(|s| s.len()), Ok(10000));
    assert!((10..=40).contains(&asked), "asked {asked} times");
    // Work counts too: 6 MB of output-free work asks the clock.
    let mut asked = 0;
    let mut count = || {
        asked += 1;
        false
    };
    let t = "{{$s := printf \"%1000000d\" 0}}{{range 5}}{{if eq $s $s}}{{end}}{{end}}";
    assert!(render_until(t, &d, &mut count).is_ok());
    assert!(asked >= 5, "asked {asked} times");
    // So does `json`, inside one call: a clock that expires at once stops it.
    let mut now = || true;
    let t = "{{$s := printf \"%1000000d\" 0}}{{$j := json $s}}";
    let msg = budget_error(&render_until(t, &d, &mut now)).to_owned();
    assert!(
        msg.starts_with("template exceeded its time budget"),
        "{msg}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any string made of template syntax either renders or fails with an error.
    #[test]
    fn never_panics_on_syntax_soup(t in r#"([{}()|$., :=\-"`'a-zA-Z0-9_%*\n ]|\{\{|\}\}|\{\{- | -\}\}|\.Router|\.Name|range |if |else|end|with |len |json |printf |index |eq |and |not |break|continue|\$x := |\$i, \$e := ){0,40}"#) {
        let d = data();
        let _ = render(&t, &d);
    }

    /// Arbitrary Unicode too.
    #[test]
    fn never_panics_on_any_string(t in any::<String>()) {
        let _ = render(&t, &data());
        let _ = render(&format!("{{{{{t}}}}}"), &data());
    }
}

/// Small random templates built from the costly operations (large strings doubled,
/// re-bound, compared, printed, serialised, nested ranges over the report).
fn costly_template() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("{{$s}}".to_owned()),
        Just("{{$s = $s}}".to_owned()),
        Just("{{$s = printf \"%s%s\" $s $s}}".to_owned()),
        Just("{{$t := print $s $s}}".to_owned()),
        Just("{{len $s}}".to_owned()),
        Just("{{eq $s $s $s}}".to_owned()),
        Just("{{lt $s $s}}".to_owned()),
        Just("{{json $}}".to_owned()),
        Just("{{$}}".to_owned()),
        Just("{{index $ \"Router\" \"Name\"}}".to_owned()),
        Just("{{printf \"%1000000d\" 1}}".to_owned()),
        Just("{{.}}".to_owned()),
        Just("x".to_owned()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            (inner.clone(), 0..4usize).prop_map(|(b, k)| {
                let over = ["$.Router", "$.Router.Peers", "1000", "$"][k];
                format!("{{{{range {over}}}}}{b}{{{{end}}}}")
            }),
            inner
                .clone()
                .prop_map(|b| format!("{{{{with $s}}}}{b}{{{{end}}}}")),
            inner.prop_map(|b| format!("{{{{if $s}}}}{b}{{{{else}}}}{b}{{{{end}}}}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the mix, a render ends within the caps: output, heap and time.
    #[test]
    fn costly_templates_stay_within_the_caps(body in costly_template()) {
        let r = report_json(&fixtures::status("c-3peer-line", "h1"));
        let t = format!("{{{{$s := printf \"%100000d\" 0}}}}{body}");
        let (res, took, peak) = measured(&t, &r);
        if let Ok(out) = &res {
            prop_assert!(out.len() <= MAX_OUTPUT);
        }
        if let Err(TemplateError::Parse(e)) = &res {
            prop_assert!(false, "generated templates parse: {e}");
        }
        prop_assert!(took < FAST, "took {took:?}");
        prop_assert!(peak < SMALL_HEAP, "peak heap {peak} bytes");
    }
}
