//! Exact outputs of the template language, Go's builtins and fmt, and
//! Prometheus's and Alertmanager's functions.

use std::collections::BTreeMap;

use lookout_template::{Funcs, MissingKey, Template, TemplateError, Value};

const HEADER: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn s(x: &str) -> Value {
    Value::Str(x.to_string())
}

fn try_render_with(text: &str, data: &Value, funcs: &Funcs<'_>) -> Result<String, TemplateError> {
    Template::parse("t", text, funcs)?.render(data, funcs)
}

fn try_render(text: &str, data: &Value) -> Result<String, TemplateError> {
    try_render_with(text, data, &Funcs::prometheus())
}

#[track_caller]
fn render(text: &str, data: &Value) -> String {
    match try_render(text, data) {
        Ok(out) => out,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

#[track_caller]
fn render_error(text: &str, data: &Value) -> TemplateError {
    match try_render(text, data) {
        Ok(out) => panic!("{text:?} rendered {out:?}, expected an error"),
        Err(e) => e,
    }
}

/// Prometheus's annotation data for one alert.
fn alert_data(labels: &[(&str, &str)], value: f64) -> Value {
    let mut d = BTreeMap::new();
    d.insert(
        "Labels".to_string(),
        Value::map(labels.iter().map(|&(k, v)| (k, v))),
    );
    d.insert(
        "ExternalLabels".to_string(),
        Value::map([("cluster", "prod")]),
    );
    d.insert(
        "ExternalURL".to_string(),
        s("http://prometheus.example:9090"),
    );
    d.insert("Value".to_string(), Value::Float(value));
    Value::Map(d)
}

fn sample_data() -> Value {
    Value::map([
        ("Name", s("world")),
        ("Empty", s("")),
        ("Zero", Value::Int(0)),
        ("N", Value::Int(3)),
        ("F", Value::Float(2.5)),
        ("T", Value::Bool(true)),
        ("Nil", Value::Nil),
        ("List", Value::list([s("a"), s("b"), s("c")])),
        (
            "Nums",
            Value::list([Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)]),
        ),
        ("EmptyList", Value::list([])),
        (
            "Map",
            Value::map([
                ("z", Value::Int(26)),
                ("a", Value::Int(1)),
                ("m", Value::Int(13)),
            ]),
        ),
        (
            "Labels",
            Value::map([("job", "api"), ("instance", "host:9090")]),
        ),
        (
            "Nested",
            Value::map([("Inner", Value::map([("Deep", s("down"))]))]),
        ),
    ])
}

#[test]
fn text_trim_markers_and_comments() {
    let d = sample_data();
    assert_eq!(render("plain text", &d), "plain text");
    assert_eq!(render("", &d), "");
    assert_eq!(render("a  {{- .Name -}}  b", &d), "aworldb");
    assert_eq!(render("a \n\t {{- .Name }} \n b", &d), "aworld \n b");
    assert_eq!(render("{{ .Name -}}\n\n  !", &d), "world!");
    assert_eq!(render("x{{/* a comment */}}y", &d), "xy");
    assert_eq!(render("x  {{- /* trimmed */ -}}  y", &d), "xy");
    assert_eq!(render("x{{/* multi\nline */}}y", &d), "xy");
    assert_eq!(render("{{ 3 }}-{{-3}}", &d), "3--3");
    assert_eq!(render("{{\n.Name\n}}", &d), "world");
}

#[test]
fn literals() {
    let d = Value::Nil;
    assert_eq!(render(r#"{{ "a\tb\"c\x41\u00e9" }}"#, &d), "a\tb\"cAé");
    assert_eq!(render("{{ `raw\\n {{ }}` }}", &d), "raw\\n {{ }}");
    assert_eq!(
        render(
            "{{ 42 }} {{ -7 }} {{ 0x1F }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}",
            &d
        ),
        "42 -7 31 15 5 1000"
    );
    assert_eq!(
        render(
            "{{ 1.5 }} {{ 1.0 }} {{ 1e3 }} {{ 1e21 }} {{ .5 }} {{ -2.25 }}",
            &d
        ),
        "1.5 1 1000 1e+21 0.5 -2.25"
    );
    assert_eq!(render("{{ 'a' }} {{ '\\n' }}", &d), "97 10");
    assert_eq!(render("{{ true }} {{ false }}", &d), "true false");
    assert_eq!(render("{{ print nil }}", &d), "<nil>");
}

#[test]
fn fields_variables_and_dot() {
    let d = sample_data();
    assert_eq!(render("Hello {{ .Name }}", &d), "Hello world");
    assert_eq!(render("{{ .Nested.Inner.Deep }}", &d), "down");
    assert_eq!(render("{{ $n := .Nested }}{{ $n.Inner.Deep }}", &d), "down");
    assert_eq!(render("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", &d), "2");
    assert_eq!(
        render(
            "{{ $.Name }}{{ with .Nested }}{{ $.Name }}{{ .Inner.Deep }}{{ end }}",
            &d
        ),
        "worldworlddown"
    );
    assert_eq!(render("{{ (.Nested).Inner.Deep }}", &d), "down");
    assert_eq!(render("{{ (index .Nested \"Inner\").Deep }}", &d), "down");
    assert_eq!(
        render("{{ .Labels }}", &d),
        "map[instance:host:9090 job:api]"
    );
    assert_eq!(
        render("{{ .List }} {{ .F }} {{ .N }} {{ .T }}", &d),
        "[a b c] 2.5 3 true"
    );
    assert_eq!(render("{{ . | len }}", &Value::list([Value::Int(1)])), "1");
    // Variables assigned inside a range persist, as in Go 1.11+.
    assert_eq!(
        render(
            "{{ $c := 0 }}{{ range .Nums }}{{ $c = . }}{{ end }}{{ $c }}",
            &d
        ),
        "4"
    );
}

#[test]
fn missing_keys_follow_missingkey_zero() {
    let d = sample_data();
    // A map of mixed values: Go's interface{} zero, nil.
    assert_eq!(render("[{{ .Missing }}]", &d), "[<no value>]");
    assert_eq!(render("[{{ .Missing.Deeper }}]", &d), "[<no value>]");
    // A label set (all strings): Go's string zero, as Prometheus's
    // map[string]string gives.
    assert_eq!(render("[{{ .Labels.missing }}]", &d), "[]");
    assert_eq!(
        render("{{ if .Missing }}yes{{ else }}no{{ end }}", &d),
        "no"
    );
    assert_eq!(render("{{ .Missing | printf \"%v\" }}", &d), "<nil>");
    assert_eq!(render("{{ index .Labels \"nope\" | len }}", &d), "0");

    let funcs = Funcs::prometheus();
    let t = Template::parse("t", "[{{ .Labels.missing }}]", &funcs).expect("parses");
    let no_value = t.clone().with_missing_key(MissingKey::NoValue);
    assert_eq!(no_value.render(&d, &funcs).as_deref(), Ok("[<no value>]"));
    let strict = t.with_missing_key(MissingKey::Error);
    let e = strict
        .render(&d, &funcs)
        .expect_err("missing key is an error");
    assert!(
        e.message.contains("map has no entry for key \"missing\""),
        "{e}"
    );
}

#[test]
fn if_else_chains() {
    let d = sample_data();
    let t = "{{ if eq .N 1 }}one{{ else if eq .N 2 }}two{{ else if eq .N 3 }}three{{ else }}many{{ end }}";
    assert_eq!(render(t, &d), "three");
    for (cond, want) in [
        (".Empty", "F"),
        (".Name", "T"),
        (".Zero", "F"),
        (".N", "T"),
        (".Nil", "F"),
        (".EmptyList", "F"),
        (".List", "T"),
        (".Map", "T"),
        ("0.0", "F"),
        ("false", "F"),
        ("true", "T"),
    ] {
        assert_eq!(
            render(
                &format!("{{{{ if {cond} }}}}T{{{{ else }}}}F{{{{ end }}}}"),
                &d
            ),
            want,
            "{cond}"
        );
    }
    assert_eq!(render("{{ if $x := .Name }}{{ $x }}{{ end }}", &d), "world");
}

#[test]
fn with_blocks() {
    let d = sample_data();
    assert_eq!(
        render("{{ with .Nested.Inner }}{{ .Deep }}{{ end }}", &d),
        "down"
    );
    assert_eq!(
        render("{{ with .Empty }}x{{ else }}empty{{ end }}", &d),
        "empty"
    );
    assert_eq!(
        render(
            "{{ with .Empty }}x{{ else with .Name }}{{ . }}{{ end }}",
            &d
        ),
        "world"
    );
    assert_eq!(
        render("{{ with $v := .N }}{{ $v }}{{ . }}{{ end }}", &d),
        "33"
    );
}

#[test]
fn ranges() {
    let d = sample_data();
    assert_eq!(
        render("{{ range .List }}<{{ . }}>{{ end }}", &d),
        "<a><b><c>"
    );
    assert_eq!(
        render("{{ range $i, $e := .List }}{{ $i }}={{ $e }} {{ end }}", &d),
        "0=a 1=b 2=c "
    );
    assert_eq!(
        render("{{ range $e := .List }}{{ $e }}{{ end }}", &d),
        "abc"
    );
    // Maps range in sorted key order.
    assert_eq!(
        render("{{ range $k, $v := .Map }}{{ $k }}:{{ $v }} {{ end }}", &d),
        "a:1 m:13 z:26 "
    );
    assert_eq!(render("{{ range .Map }}{{ . }},{{ end }}", &d), "1,13,26,");
    assert_eq!(
        render("{{ range .EmptyList }}x{{ else }}none{{ end }}", &d),
        "none"
    );
    assert_eq!(
        render("{{ range .Missing }}x{{ else }}nothing{{ end }}", &d),
        "nothing"
    );
    assert_eq!(render("{{ range 3 }}{{ . }}{{ end }}", &d), "012");
    assert_eq!(
        render(
            "{{ range .Nums }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}",
            &d
        ),
        "13"
    );
    assert_eq!(
        render(
            "{{ range $i, $_ := .List }}{{ range $.Nums }}{{ if gt . 1 }}{{ break }}{{ end }}{{ $i }}{{ . }} {{ end }}{{ end }}",
            &d
        ),
        "01 11 21 "
    );
    let e = render_error("{{ range .Name }}{{ end }}", &d);
    assert!(e.message.contains("range can't iterate over world"), "{e}");
}

#[test]
fn define_template_and_block() {
    let d = sample_data();
    let text = r#"{{ define "greet" }}Hello {{ . }}{{ end }}{{ template "greet" .Name }}!"#;
    assert_eq!(render(text, &d), "Hello world!");
    assert_eq!(
        render(
            r#"{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" }}"#,
            &d
        ),
        "[<no value>]"
    );
    // A called template sees none of the caller's variables; $ is its data.
    assert_eq!(
        render(
            r#"{{ define "x" }}{{ $ }}{{ end }}{{ $y := 1 }}{{ template "x" .N }}"#,
            &d
        ),
        "3"
    );
    assert_eq!(
        render(r#"{{ block "b" .Name }}<{{ . }}>{{ end }}/"#, &d),
        "<world>/"
    );
    // Prometheus's args helper passes several values to a template.
    assert_eq!(
        render(
            r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#,
            &d
        ),
        "1 2"
    );

    let funcs = Funcs::alertmanager();
    let t = Template::parse(
        "notify",
        r#"{{ define "title" }}[{{ .Status | toUpper }}] {{ .Name }}{{ end }}{{ define "body" }}{{ template "title" . }}: {{ len .Alerts }} alerts{{ end }}"#,
        &funcs,
    )
    .expect("parses");
    let data = Value::map([
        ("Status", s("firing")),
        ("Name", s("HighLoad")),
        ("Alerts", Value::list([s("a"), s("b")])),
    ]);
    assert_eq!(
        t.render_named("title", &data, &funcs).as_deref(),
        Ok("[FIRING] HighLoad")
    );
    assert_eq!(
        t.render_named("body", &data, &funcs).as_deref(),
        Ok("[FIRING] HighLoad: 2 alerts")
    );
    assert_eq!(t.render(&data, &funcs).as_deref(), Ok(""));
    assert!(t.has_template("body"));
    assert_eq!(t.template_names(), vec!["body", "notify", "title"]);
    let e = t
        .render_named("nope", &data, &funcs)
        .expect_err("unknown template");
    assert!(e.message.contains("no template \"nope\""), "{e}");

    let e = render_error(r#"{{ template "undefined" }}"#, &d);
    assert!(
        e.message.contains("template \"undefined\" not defined"),
        "{e}"
    );
}

#[test]
fn pipelines_and_parentheses() {
    let d = sample_data();
    assert_eq!(
        render("{{ .Name | printf \"%s!\" | printf \"<%s>\" }}", &d),
        "<world!>"
    );
    assert_eq!(
        render(
            "{{ printf \"%d-%d\" (len .List) (len (slice .Nums 1)) }}",
            &d
        ),
        "3-3"
    );
    assert_eq!(render("{{ (printf \"%s\" \"x\") }}", &d), "x");
    assert_eq!(render("{{ .N | eq 3 }}", &d), "true");
}

#[test]
fn builtin_functions() {
    let d = sample_data();
    assert_eq!(
        render(
            "{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 \"x\" 3 }}",
            &d
        ),
        "0 2  x"
    );
    // and/or stop evaluating once the answer is known, as in Go 1.18+.
    assert_eq!(
        render(
            "{{ and false (index .List 99) }}|{{ or true (index .List 99) }}",
            &d
        ),
        "false|true"
    );
    assert_eq!(render("{{ not 0 }} {{ not .Name }}", &d), "true false");
    assert_eq!(
        render(
            "{{ len .Name }} {{ len .List }} {{ len .Map }} {{ len \"héllo\" }}",
            &d
        ),
        "5 3 3 6"
    );
    assert_eq!(
        render(
            "{{ index .List 1 }} {{ index .Map \"m\" }} {{ index .Nested \"Inner\" \"Deep\" }}",
            &d
        ),
        "b 13 down"
    );
    assert_eq!(
        render(
            "{{ slice .List 1 }} {{ slice .List 0 2 }} {{ slice .Name 1 3 }} {{ slice .Nums 1 2 3 }}",
            &d
        ),
        "[b c] [a b] or [2]"
    );
    assert_eq!(
        render("{{ print 1 2 \"a\" \"b\" 3.5 true nil }}", &d),
        "1 2ab3.5 true <nil>"
    );
    assert_eq!(render("{{ println \"a\" 1 }}", &d), "a 1\n");
    assert_eq!(
        render(
            "{{ eq .N 1 2 3 }} {{ eq .Name \"x\" \"y\" }} {{ ne .Name \"x\" }}",
            &d
        ),
        "true false true"
    );
    assert_eq!(
        render(
            "{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2 }}",
            &d
        ),
        "true true true false"
    );
    assert_eq!(
        render("{{ gt .F 2 }} {{ eq .F 2.5 }} {{ lt .N 3.5 }}", &d),
        "true true true"
    );
    assert_eq!(
        render("{{ html \"<a href='x'>&</a>\" }}", &d),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    );
    assert_eq!(
        render("{{ js \"it's <b>\" }}", &d),
        "it\\'s \\u003Cb\\u003E"
    );
    assert_eq!(
        render("{{ urlquery \"a b&c\" }} {{ .Name | urlquery }}", &d),
        "a+b%26c world"
    );
}

#[test]
fn printf_follows_go_fmt() {
    let d = alert_data(&[], 1234.5678);
    for (text, want) in [
        ("{{ printf \"%.2f\" $value }}", "1234.57"),
        ("{{ printf \"%.0f\" $value }}", "1235"),
        ("{{ printf \"%0.0f\" $value }}", "1235"),
        ("{{ printf \"%.4g\" $value }}", "1235"),
        ("{{ printf \"%.1f\" $value }}", "1234.6"),
        ("{{ printf \"%e\" $value }}", "1.234568e+03"),
        ("{{ printf \"%g\" $value }}", "1234.5678"),
        ("{{ printf \"%v\" $value }}", "1234.5678"),
        (
            "{{ printf \"%10.2f|%-10.2f|%010.2f\" $value $value $value }}",
            "   1234.57|1234.57   |0001234.57",
        ),
        (
            "{{ printf \"%+.1f % .1f\" $value $value }}",
            "+1234.6  1234.6",
        ),
        ("{{ printf \"%d%%\" 50 }}", "50%"),
        (
            "{{ printf \"%5d|%-5d|%05d|%x|%X|%#x|%o\" 42 42 42 255 255 255 8 }}",
            "   42|42   |00042|ff|FF|0xff|10",
        ),
        ("{{ printf \"%s=%q\" \"k\" \"v\\\"\" }}", "k=\"v\\\"\""),
        ("{{ printf \"%t %v\" true false }}", "true false"),
        ("{{ printf \"%x\" \"hi\" }}", "6869"),
        ("{{ printf \"%d\" $value }}", "%!d(float64=1234.5678)"),
        ("{{ printf \"%s\" 3 }}", "%!s(int=3)"),
        ("{{ printf \"%d %d\" 1 }}", "1 %!d(MISSING)"),
        ("{{ printf \"%d\" 1 2 }}", "1%!(EXTRA int=2)"),
        ("{{ printf \"%v %v\" .Labels nil }}", "map[] <nil>"),
        ("{{ printf \"%.3s\" \"abcdef\" }}", "abc"),
        ("{{ printf \"%6.2f%%\" 12.3456 }}", " 12.35%"),
    ] {
        assert_eq!(render(&format!("{HEADER}{text}"), &d), want, "{text}");
    }
}

#[test]
fn float_values_print_as_go_float64() {
    for (v, want) in [
        (1.0, "1"),
        (0.5, "0.5"),
        (100.0, "100"),
        (123456.0, "123456"),
        (123456789.0, "1.23456789e+08"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-3.5, "-3.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ] {
        let d = alert_data(&[], v);
        assert_eq!(
            render(&format!("{HEADER}{{{{ $value }}}}"), &d),
            want,
            "{v}"
        );
        assert_eq!(
            render(&format!("{HEADER}{{{{ print $value }}}}"), &d),
            want,
            "{v}"
        );
    }
}

#[test]
fn prometheus_functions() {
    let d = alert_data(&[("instance", "node1.example.com:9100")], 0.01562);
    for (text, want) in [
        ("{{ humanize 1234567 }}", "1.235M"),
        ("{{ humanize 0.001234 }}", "1.234m"),
        ("{{ humanize \"1234567.0\" }}", "1.235M"),
        ("{{ humanize 0 }}", "0"),
        ("{{ humanize1024 1048576 }}", "1Mi"),
        ("{{ humanize1024 1234567 }}", "1.177Mi"),
        ("{{ humanizePercentage 0.01562 }}", "1.562%"),
        ("{{ $value | humanizePercentage }}", "1.562%"),
        ("{{ -0.22222 | humanizePercentage }}", "-22.22%"),
        ("{{ humanizeDuration 3725 }}", "1h 2m 5s"),
        ("{{ humanizeDuration 0.5 }}", "500ms"),
        ("{{ \"43200\" | humanizeDuration }}", "12h 0m 0s"),
        ("{{ humanizeDuration 1234567 }}", "14d 6h 56m 7s"),
        (
            "{{ humanizeTimestamp 1435065584.128 }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        (
            "{{ 1435065584.128 | toTime }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        ("{{ \"aa bb CC\" | title }}", "Aa Bb CC"),
        ("{{ \"aa bb CC\" | toUpper }}", "AA BB CC"),
        ("{{ \"aA bB CC\" | toLower }}", "aa bb cc"),
        (
            "{{ match \"a+\" \"aa\" }} {{ match \"^a+$\" \"b\" }}",
            "true false",
        ),
        ("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", "xa"),
        (
            "{{ reReplaceAll \":.*\" \"\" $labels.instance }}",
            "node1.example.com",
        ),
        ("{{ $labels.instance | stripPort }}", "node1.example.com"),
        ("{{ $labels.instance | stripDomain }}", "node1:9100"),
        ("{{ \"<b>\" | safeHtml }}", "<b>"),
        (
            "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}",
            "3720.01",
        ),
        (
            "{{ graphLink \"up == 0\" }}",
            "/graph?g0.expr=up+%3D%3D+0&g0.tab=0",
        ),
        (
            "{{ $externalLabels.cluster }}/{{ $externalURL }}",
            "prod/http://prometheus.example:9090",
        ),
    ] {
        assert_eq!(render(&format!("{HEADER}{text}"), &d), want, "{text}");
    }
    let e = render_error("{{ humanize \"one\" }}", &d);
    assert_eq!(e.line, 1);
    assert!(
        e.message.contains(
            "error calling humanize: strconv.ParseFloat: parsing \"one\": invalid syntax"
        ),
        "{e}"
    );
}

/// `query` comes from the caller, returning samples as Prometheus shapes them.
fn funcs_with_query() -> Funcs<'static> {
    let mut f = Funcs::prometheus();
    f.insert(
        "query",
        Box::new(|args: &[Value]| {
            let Some(Value::Str(q)) = args.first() else {
                return Err("query takes one string argument".into());
            };
            let sample = |instance: &str, v: f64| {
                Value::map([
                    (
                        "Labels",
                        Value::map([
                            ("__name__", "up"),
                            ("instance", instance),
                            ("__value__", "raw"),
                        ]),
                    ),
                    ("Value", Value::Float(v)),
                ])
            };
            Ok(match q.as_str() {
                "empty" => Value::list([]),
                _ => Value::list([sample("b", 21.0), sample("a", 11.0)]),
            })
        }),
    );
    f
}

#[test]
fn query_results_with_first_label_value_sort() {
    let funcs = funcs_with_query();
    let d = alert_data(&[], 1.0);
    let r = |t: &str| try_render_with(t, &d, &funcs);
    assert_eq!(r("{{ query \"up\" | first | value }}").as_deref(), Ok("21"));
    assert_eq!(
        r("{{ query \"up\" | first | label \"instance\" }}").as_deref(),
        Ok("b")
    );
    assert_eq!(
        r("{{ query \"up\" | first | label \"missing\" }}").as_deref(),
        Ok("")
    );
    assert_eq!(
        r("{{ query \"up\" | first | strvalue }}").as_deref(),
        Ok("raw")
    );
    assert_eq!(
        r("{{ $x := query \"up\" | first }}{{ $x.Labels.foo }}").as_deref(),
        Ok("")
    );
    assert_eq!(
        r("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}:{{ .Value }} {{ end }}").as_deref(),
        Ok("a:11 b:21 ")
    );
    assert_eq!(
        r("{{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }}").as_deref(),
        Ok("21")
    );
    let e = r("{{ query \"empty\" | first }}").expect_err("first of nothing");
    assert!(
        e.message
            .contains("error calling first: first() called on vector with no elements"),
        "{e}"
    );
    let e = r("{{ (query \"empty\").banana }}").expect_err("no such field");
    assert!(e.message.contains("can't evaluate field banana"), "{e}");
    // Without the caller's query, the template does not parse.
    let e = Template::parse("t", "{{ query \"up\" }}", &Funcs::prometheus()).expect_err("no query");
    assert!(e.message.contains("function \"query\" not defined"), "{e}");
}

#[test]
fn realistic_annotations() {
    let d = alert_data(
        &[
            ("namespace", "monitoring"),
            ("pod", "prometheus-0"),
            ("container", "prometheus"),
            ("persistentvolumeclaim", "data"),
            ("cluster", "eu-1"),
            ("instance", "10.0.0.1:9100"),
            ("job", "node"),
            ("device", "sda1"),
        ],
        0.01562,
    );
    for (text, want) in [
        (
            "The PersistentVolume claimed by {{ $labels.persistentvolumeclaim }} in Namespace {{ $labels.namespace }} {{ with $labels.cluster -}} on Cluster {{ . }} {{- end }} is only {{ $value | humanizePercentage }} free.",
            "The PersistentVolume claimed by data in Namespace monitoring on Cluster eu-1 is only 1.562% free.",
        ),
        (
            "Pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is restarting {{ printf \"%.2f\" $value }} times / 10 minutes.",
            "Pod monitoring/prometheus-0 (prometheus) is restarting 0.02 times / 10 minutes.",
        ),
        (
            "Filesystem on {{ $labels.device }}, mounted on {{ $labels.mountpoint }}, at {{ $labels.instance }} has only {{ printf \"%.2f\" $value }}% available space left.",
            "Filesystem on sda1, mounted on , at 10.0.0.1:9100 has only 0.02% available space left.",
        ),
        (
            "{{ $value | humanize }}% of the {{ $labels.job }}/{{ $labels.service }} targets in {{ $labels.namespace }} namespace are down.",
            "15.62m% of the node/ targets in monitoring namespace are down.",
        ),
    ] {
        assert_eq!(render(&format!("{HEADER}{text}"), &d), want, "{text}");
    }
    // The cluster clause disappears without the label.
    let no_cluster = alert_data(&[("persistentvolume", "pv-1"), ("phase", "Failed")], 1.0);
    assert_eq!(
        render(
            &format!(
                "{HEADER}The persistent volume {{{{ $labels.persistentvolume }}}} {{{{ with $labels.cluster -}}}} on Cluster {{{{ . }}}} {{{{- end }}}} has status {{{{ $labels.phase }}}}."
            ),
            &no_cluster
        ),
        "The persistent volume pv-1  has status Failed."
    );
}

#[test]
fn alertmanager_style_data() {
    let alert = |name: &str, status: &str| {
        Value::map([
            ("Status", s(status)),
            (
                "Labels",
                Value::map([("alertname", name), ("severity", "critical")]),
            ),
            (
                "Annotations",
                Value::map([("summary", format!("{name} is bad"))]),
            ),
            ("StartsAt", Value::Int(1_435_065_584_128)),
        ])
    };
    let alerts = [
        alert("A", "firing"),
        alert("B", "resolved"),
        alert("C", "firing"),
    ];
    let firing: Vec<Value> = alerts
        .iter()
        .filter(|a| a.to_string().contains("firing"))
        .cloned()
        .collect();
    let resolved: Vec<Value> = alerts
        .iter()
        .filter(|a| a.to_string().contains("resolved"))
        .cloned()
        .collect();
    let mut named = BTreeMap::new();
    named.insert("Firing".to_string(), Value::list(firing));
    named.insert("Resolved".to_string(), Value::list(resolved));
    let data = Value::map([
        ("Status", s("firing")),
        ("Receiver", s("team-x")),
        ("Alerts", Value::List(alerts.to_vec(), named)),
        ("CommonLabels", Value::map([("severity", "critical")])),
        ("GroupLabels", Value::map([("alertname", "A")])),
    ]);
    let funcs = Funcs::alertmanager();
    let r = |t: &str| try_render_with(t, &data, &funcs);
    assert_eq!(
        r("{{ range .Alerts.Firing }}{{ .Labels.alertname }} {{ end }}").as_deref(),
        Ok("A C ")
    );
    assert_eq!(
        r("{{ len .Alerts }}/{{ len .Alerts.Resolved }}").as_deref(),
        Ok("3/1")
    );
    assert_eq!(
        r("[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.alertname }}").as_deref(),
        Ok("[FIRING:2] A")
    );
    assert_eq!(
        r("{{ range .Alerts }}{{ .Annotations.summary }}; {{ end }}").as_deref(),
        Ok("A is bad; B is bad; C is bad; ")
    );
    assert_eq!(
        r("{{ stringSlice \"a\" \"b\" | join \", \" }}").as_deref(),
        Ok("a, b")
    );
    assert_eq!(
        r("{{ \"  x \" | trimSpace }}|{{ \"hello WORLD\" | title }}").as_deref(),
        Ok("x|Hello World")
    );
    assert_eq!(
        r("{{ range .Alerts.Firing }}{{ .StartsAt | date \"2006-01-02 15:04:05\" }}{{ end }}")
            .as_deref(),
        Ok("2015-06-23 13:19:442015-06-23 13:19:44")
    );
    assert_eq!(
        r("{{ (index .Alerts 0).StartsAt | tz \"UTC\" | date \"15:04 MST\" }}").as_deref(),
        Ok("13:19 UTC")
    );
    assert_eq!(
        r("{{ .CommonLabels | toJson }}").as_deref(),
        Ok("{\"severity\":\"critical\"}")
    );
    assert_eq!(r("{{ humanizeDuration 90 }}").as_deref(), Ok("1m 30s"));
    let e = r("{{ .Alerts.Pending }}").expect_err("no such field");
    assert!(e.message.contains("can't evaluate field Pending"), "{e}");
}

#[test]
fn parse_errors_name_template_and_line() {
    let funcs = Funcs::prometheus();
    let cases: &[(&str, usize, &str)] = &[
        ("line1\nline2 {{ .X ", 2, "unclosed action"),
        ("{{", 1, "unclosed action"),
        (
            "a\n\n{{ nosuchfunc 1 }}",
            3,
            "function \"nosuchfunc\" not defined",
        ),
        (
            "{{ if .X }}\nyes\n",
            1,
            "{{if}} on line 1 has no matching {{end}}",
        ),
        ("x\n{{ end }}", 2, "unexpected {{end}}"),
        ("{{ else }}", 1, "unexpected {{else}}"),
        (
            "{{ range .X }}{{ else }}{{ else }}{{ end }}",
            1,
            "expected end",
        ),
        (
            "{{ .X | 3 }}",
            1,
            "non executable command in pipeline stage 2",
        ),
        ("{{ $undefined }}", 1, "undefined variable \"$undefined\""),
        ("{{ $x = 1 }}", 1, "undefined variable \"$x\""),
        ("{{ break }}", 1, "{{break}} outside {{range}}"),
        ("{{ \"unterminated }}", 1, "unterminated quoted string"),
        ("{{ 1 2 }} {{ x", 1, "unclosed action"),
        ("{{ (1 }}", 1, "unclosed left paren"),
        ("{{ 3x }}", 1, "bad number syntax"),
        ("{{ .A.\"b\" }}", 1, "bad character U+0022"),
        (
            "{{ define \"a\" }}a{{ end }}{{ define \"a\" }}b{{ end }}",
            1,
            "multiple definition of template \"a\"",
        ),
        ("{{ template x }}", 1, "unexpected \"x\" in template clause"),
        ("{{ }}", 1, "missing value for command"),
        ("{{ /* not a comment */ }}", 1, "unexpected"),
        ("{{ 99999999999999999999 }}", 1, "integer overflow"),
        ("{{ \"a\".b }}", 1, "unexpected . after term"),
        (
            "{{ range $i, $j, $k := . }}{{ end }}",
            1,
            "too many declarations",
        ),
    ];
    for (text, line, msg) in cases {
        match Template::parse("annotation", text, &funcs) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => {
                assert_eq!(e.name, "annotation", "{text:?}");
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(msg), "{text:?}: {e}");
                assert!(
                    e.to_string()
                        .starts_with(&format!("template annotation:{line}: ")),
                    "{e}"
                );
            }
        }
    }
    // Builtins alone know nothing of Prometheus's functions.
    assert!(Template::parse("t", "{{ humanize 1 }}", &Funcs::builtin()).is_err());
    assert!(Template::parse("t", "{{ printf \"%d\" 1 }}", &Funcs::builtin()).is_ok());
}

#[test]
fn execution_errors_carry_the_line() {
    let d = sample_data();
    let cases: &[(&str, usize, &str)] = &[
        (
            "a\nb\n{{ index .List 5 }}",
            3,
            "error calling index: index out of range: 5",
        ),
        (
            "\n{{ toUpper 1.5 }}",
            2,
            "error calling toUpper: wrong type for value; expected string; got float64",
        ),
        (
            "{{ .Name.Field }}",
            1,
            "can't evaluate field Field in type string",
        ),
        (
            "\n\n{{ lt .Name 1 }}",
            3,
            "incompatible types for comparison",
        ),
        ("{{ len 3 }}", 1, "len of type int"),
        ("{{ nil }}", 1, "nil is not a command"),
        ("{{ 3 4 }}", 1, "can't give argument to non-function 3"),
        ("{{ . . }}", 1, "can't give argument to non-function ."),
        (
            "{{ not 1 2 }}",
            1,
            "wrong number of args for not: want 1 got 2",
        ),
        (
            "{{ range 2 }}\n{{ index $.List \"x\" }}{{ end }}",
            2,
            "cannot index slice/array with type string",
        ),
        (
            "{{ .Labels.job 1 }}",
            1,
            "job is not a method but has arguments",
        ),
        (
            "{{ reReplaceAll \"(\" \"\" \"x\" }}",
            1,
            "error parsing regexp",
        ),
        (
            "{{ humanize .Labels }}",
            1,
            "can't convert map[string]interface {} to float",
        ),
    ];
    for (text, line, msg) in cases {
        let e = render_error(text, &d);
        assert_eq!(e.name, "t");
        assert_eq!(e.line, *line, "{text:?}: {e}");
        assert!(e.message.contains(msg), "{text:?}: {e}");
    }
}

#[test]
fn recursion_output_and_work_are_bounded() {
    let d = sample_data();
    let e = render_error(
        r#"{{ define "loop" }}{{ template "loop" . }}{{ end }}{{ template "loop" . }}"#,
        &d,
    );
    assert!(e.message.contains("exceeds 100 levels"), "{e}");
    let e = render_error("{{ range 200000 }}0123456789{{ end }}", &d);
    assert!(e.message.contains("output exceeds 1048576 bytes"), "{e}");
    let e = render_error("{{ range 100000000 }}{{ end }}", &d);
    assert!(e.message.contains("steps"), "{e}");
    let e = render_error(
        "{{ $s := \"ab\" }}{{ range 40 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}",
        &d,
    );
    assert!(e.message.contains("over the 1048576-byte limit"), "{e}");
    let e = render_error(
        "{{ $s := printf \"%1000000s\" \"\" }}{{ range 1000 }}{{ $t := print $s }}{{ end }}",
        &d,
    );
    assert!(e.message.contains("copied more than"), "{e}");
    let e = render_error(
        "{{ $x := 1 }}{{ range 1000 }}{{ $x = args $x }}{{ end }}{{ $x }}",
        &d,
    );
    assert!(e.message.contains("nested more than 100 levels"), "{e}");
    // Deep nesting at parse time is refused, not a stack overflow.
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(150), ")".repeat(150));
    let e = Template::parse("t", &deep, &Funcs::prometheus()).expect_err("too deep");
    assert!(e.message.contains("nested more than 100 levels"), "{e}");
    let ifs = format!("{}x{}", "{{ if 1 }}".repeat(150), "{{ end }}".repeat(150));
    assert!(Template::parse("t", &ifs, &Funcs::prometheus()).is_err());
    // Up to the limit works, also on a small thread stack.
    let ok = format!("{}x{}", "{{ if 1 }}".repeat(90), "{{ end }}".repeat(90));
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(95), ")".repeat(95));
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            (
                try_render(&ok, &Value::Nil),
                try_render(&parens, &Value::Nil),
            )
        })
        .expect("thread starts");
    let (a, b) = handle.join().expect("no stack overflow");
    assert_eq!(a.as_deref(), Ok("x"));
    assert_eq!(b.as_deref(), Ok("1"));
}

#[test]
fn templates_and_funcs_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Template>();
    shareable::<Funcs<'static>>();
    shareable::<Value>();
}

#[test]
fn funcs_can_replace_builtins_and_be_listed() {
    let mut funcs = Funcs::builtin();
    funcs.insert("len", Box::new(|_: &[Value]| Ok(Value::Int(-1))));
    assert!(funcs.contains("len"));
    assert_eq!(
        try_render_with("{{ len \"abc\" }}", &Value::Nil, &funcs).as_deref(),
        Ok("-1")
    );
    let names = Funcs::prometheus().names().join(",");
    assert!(
        names.contains("humanizeDuration") && !names.contains("query"),
        "{names}"
    );
    assert!(Funcs::alertmanager().contains("join"));
}
