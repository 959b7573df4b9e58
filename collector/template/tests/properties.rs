//! Whatever the text, parsing and rendering return instead of panicking,
//! and floats print in a form that reads back exactly.

use lookout_template::{Funcs, MAX_OUTPUT_BYTES, Template, Value};
use proptest::prelude::*;

fn data() -> Value {
    Value::map([
        (
            "Labels",
            Value::map([("job", "api"), ("instance", "host:9090")]),
        ),
        ("Value", Value::Float(0.25)),
        (
            "List",
            Value::list([
                Value::Int(1),
                Value::from("two"),
                Value::Float(3.5),
                Value::Nil,
            ]),
        ),
        (
            "Map",
            Value::map([("a", Value::Int(1)), ("b", Value::Bool(false))]),
        ),
        ("S", Value::from("text")),
    ])
}

/// Pieces of template syntax, so that random text reaches deep into the
/// parser and executor rather than failing at the first character.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "{{", "}}", "{{- ", " -}}", "{{/*", "*/}}", " ", "\n", "|", "(", ")", ",", ":=", "=", ".", "$", "$x",
            "$y", "$x := ", "$i, $e := ", "if ", "else ", "else if ", "end", "with ", "range ", "break", "continue",
            "define \"a\"", "template \"a\"", "template \"a\" .", "block \"b\" .", "nil", "true", "false", ".Labels",
            ".Labels.job", ".Value", ".List", ".Map", ".S", ".Missing", "$.List", "1", "-2", "3.5", "1e300", "0x1F",
            "'a'", "\"s\"", "`raw`", "\"%d %s %v %.2f %x %q %5.1e %-8s %[2]d %*d %!\"", "printf", "print", "println",
            "len", "index", "slice", "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "html", "js", "urlquery",
            "humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime",
            "title", "toUpper", "toLower", "match", "reReplaceAll", "stripPort", "stripDomain", "args", "first",
            "label", "value", "strvalue", "sortByLabel", "parseDuration", "safeHtml", "graphLink", "\"(\"",
            "\"a+\"", "\"1h\"",
        ])
        .prop_map(str::to_string),
        1 => "\\PC{0,4}",
        1 => any::<String>().prop_map(|s| s.chars().take(4).collect()),
    ]
}

fn check(text: &str) {
    let funcs = Funcs::prometheus();
    if let Ok(t) = Template::parse("prop", text, &funcs) {
        if let Ok(out) = t.render(&data(), &funcs) {
            assert!(out.len() <= MAX_OUTPUT_BYTES);
        }
        let _ = t.render_named("a", &Value::Nil, &funcs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn template_like_text_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
        check(&parts.concat());
    }

    #[test]
    fn printf_with_any_format_never_panics(format in any::<String>(), n in any::<i64>(), x in any::<f64>()) {
        let funcs = Funcs::builtin();
        let d = Value::map([
            ("F", Value::Str(format)),
            ("N", Value::Int(n)),
            ("X", Value::Float(x)),
        ]);
        let t = Template::parse("p", "{{ printf .F .N .X \"s\" nil .N .X }}", &funcs);
        prop_assert!(t.is_ok());
        if let Ok(t) = t {
            prop_assert!(t.render(&d, &funcs).is_ok());
        }
    }

    #[test]
    fn floats_print_shortest_and_read_back(x in any::<f64>()) {
        let funcs = Funcs::builtin();
        let t = Template::parse("f", "{{ . }}", &funcs);
        prop_assert!(t.is_ok());
        if let Ok(t) = t {
            let out = t.render(&Value::Float(x), &funcs);
            prop_assert!(out.is_ok());
            let out = out.unwrap_or_default();
            if x.is_finite() {
                let back: Result<f64, _> = out.parse();
                prop_assert_eq!(back, Ok(x), "{}", out);
            }
        }
    }
}
