//! `weft analyze` as users drive it: output formats, thresholds, suppression,
//! exit codes, origins, and loading rules.

mod common;

use common::{analyze, document_ranges, repo_path, tree, weft};

const CLEAN: &str = r#"apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"#;

const BROKEN_HOST: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: nowhere
"#;

/// Only a warning: a TCP ServiceEntry port without addresses (IST0134).
const WARNING_ONLY: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
"#;

#[test]
fn clean_input_exits_zero_with_no_messages() {
    let dir = tree(&[("app.yaml", CLEAN)]);
    let text = analyze(&[], &[dir.path()]);
    assert_eq!(text.code, 0, "stderr: {}", text.stderr);
    assert_eq!(text.stdout, "");
    assert!(text.stderr.contains("No validation issues found"));
    let json = analyze(&["-o", "json"], &[dir.path()]);
    assert_eq!(json.code, 0);
    assert_eq!(json.json(), serde_json::json!([]));
}

#[test]
fn errors_exit_79_with_istioctl_text_lines() {
    let dir = tree(&[("vs.yaml", BROKEN_HOST)]);
    let file = dir.path().join("vs.yaml");
    let run = analyze(&[], &[&file]);
    assert_eq!(run.code, 79, "stdout: {}", run.stdout);
    let expected = format!(
        "Error [IST0101] (VirtualService shop/reviews {}:11) Referenced host not found: \"nowhere\"\n",
        file.display()
    );
    assert_eq!(run.stdout, expected);
}

#[test]
fn json_and_yaml_carry_code_level_resource_and_origin() {
    let dir = tree(&[("vs.yaml", BROKEN_HOST)]);
    let file = dir.path().join("vs.yaml");
    let run = analyze(&["-o", "json"], &[&file]);
    assert_eq!(run.code, 79);
    let v = run.json();
    let m = &v[0];
    assert_eq!(m["code"], "IST0101");
    assert_eq!(m["level"], "Error");
    assert_eq!(
        m["resource"],
        serde_json::json!({"kind": "VirtualService", "namespace": "shop", "name": "reviews"})
    );
    assert_eq!(m["origin"]["file"], file.display().to_string());
    assert_eq!(m["origin"]["line"], 11);
    assert!(m["message"].as_str().is_some_and(|t| t.contains("nowhere")));

    let yaml = analyze(&["-o", "yaml"], &[&file]);
    assert_eq!(yaml.code, 79);
    assert!(yaml.stdout.contains("code: IST0101"), "{}", yaml.stdout);
    assert!(yaml.stdout.contains("line: 11"), "{}", yaml.stdout);
}

#[test]
fn failure_threshold_decides_the_exit_code() {
    let dir = tree(&[("se.yaml", WARNING_ONLY)]);
    let path = dir.path();
    let default = analyze(&[], &[path]);
    assert_eq!(
        default.code, 0,
        "a warning is below the default Error threshold"
    );
    assert!(
        default
            .stdout
            .starts_with("Warning [IST0134] (ServiceEntry shop/db "),
        "{}",
        default.stdout
    );
    let strict = analyze(&["--failure-threshold", "Warning"], &[path]);
    assert_eq!(strict.code, 79);
    let info = analyze(&["--failure-threshold", "Info"], &[path]);
    assert_eq!(info.code, 79);
}

#[test]
fn output_threshold_hides_lower_levels_but_not_the_failure() {
    let dir = tree(&[("se.yaml", WARNING_ONLY), ("vs.yaml", BROKEN_HOST)]);
    let path = dir.path();
    let all = analyze(&[], &[path]);
    assert_eq!(all.stdout.lines().count(), 2, "{}", all.stdout);
    let errors = analyze(&["--output-threshold", "Error"], &[path]);
    assert_eq!(errors.stdout.lines().count(), 1);
    assert!(errors.stdout.starts_with("Error [IST0101]"));
    let quiet = analyze(
        &[
            "--output-threshold",
            "Error",
            "--failure-threshold",
            "Warning",
        ],
        &[dir.path().join("se.yaml")],
    );
    assert_eq!(quiet.stdout, "");
    assert_eq!(
        quiet.code, 79,
        "the failure threshold sees messages the output hides"
    );
}

#[test]
fn suppress_with_wildcards_and_annotation() {
    let dir = tree(&[("vs.yaml", BROKEN_HOST)]);
    let path = dir.path();
    for spec in [
        "IST0101=VirtualService shop/reviews",
        "IST0101=VirtualService */*",
        "*=VirtualService shop/rev*",
    ] {
        let run = analyze(&["--suppress", spec], &[path]);
        assert_eq!(run.code, 0, "{spec} suppresses the only message");
        assert_eq!(run.stdout, "");
    }
    let other = analyze(&["--suppress", "IST0101=VirtualService other/*"], &[path]);
    assert_eq!(
        other.code, 79,
        "a suppression for another namespace changes nothing"
    );

    let annotated = BROKEN_HOST.replace(
        "  namespace: shop\n",
        "  namespace: shop\n  annotations:\n    galley.istio.io/analyze-suppress: IST0101\n",
    );
    let dir = tree(&[("vs.yaml", &annotated)]);
    let run = analyze(&[], &[dir.path()]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn wrong_usage_exits_64() {
    assert_eq!(weft(["analyze"]).code, 64, "a path is required");
    assert_eq!(weft(["analyze", "--no-such-flag", "x.yaml"]).code, 64);
    assert_eq!(weft(["analyze", "-o", "xml", "x.yaml"]).code, 64);
    assert_eq!(
        weft(["analyze", "--failure-threshold", "Fatal", "x.yaml"]).code,
        64
    );
    assert_eq!(
        weft(["analyze", "--suppress", "no-equals-sign", "x.yaml"]).code,
        64
    );
    assert_eq!(weft(["no-such-command"]).code, 64);
    assert_eq!(weft(["analyze", "--help"]).code, 0);
}

#[test]
fn unparsable_document_exits_65_and_the_rest_is_still_analyzed() {
    let text = format!("{BROKEN_HOST}---\nthis: is: not: yaml\n---\n{WARNING_ONLY}");
    let dir = tree(&[("mixed.yaml", &text)]);
    let run = analyze(&["-o", "json"], &[dir.path()]);
    assert_eq!(run.code, 65, "stderr: {}", run.stderr);
    let findings = run.findings();
    assert!(findings.contains(&("IST0101".into(), "VirtualService shop/reviews".into())));
    assert!(findings.contains(&("IST0134".into(), "ServiceEntry shop/db".into())));
    let broken_line = BROKEN_HOST.lines().count() + 2;
    assert!(
        run.stderr.contains(&format!("mixed.yaml:{broken_line}")),
        "the parse error names file and line: {}",
        run.stderr
    );
}

#[test]
fn a_missing_file_is_an_input_error() {
    let run = weft(["analyze", "/nonexistent/weft.yaml"]);
    assert_eq!(run.code, 65);
    assert!(run.stderr.contains("/nonexistent/weft.yaml"));
}

#[test]
fn mesh_config_flag_and_its_istioctl_spelling() {
    let mesh = "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n    ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n";
    let dir = tree(&[("se.yaml", WARNING_ONLY), ("mesh.txt", mesh)]);
    let se = dir.path().join("se.yaml");
    let mesh = dir.path().join("mesh.txt");
    let plain = analyze(&[], &[&se]);
    assert!(plain.stdout.contains("IST0134"));
    for flag in ["--mesh-config", "--meshConfigFile"] {
        let run = analyze(&[flag], &[&mesh, &se]);
        assert_eq!(run.code, 0);
        assert_eq!(
            run.stdout, "",
            "auto-allocated addresses make IST0134 moot ({flag})"
        );
    }
    let bad = tree(&[("mesh.yaml", "rootNamespace: 5\nnoSuchField: true\n")]);
    let run = analyze(&["--mesh-config"], &[bad.path().join("mesh.yaml"), se]);
    assert_eq!(run.code, 64, "a bad mesh config is refused: {}", run.stderr);
    assert!(run.stderr.contains("mesh.yaml"));
}

#[test]
fn namespace_flag_sets_the_default_namespace() {
    let dir = tree(&[("vs.yaml", &BROKEN_HOST.replace("  namespace: shop\n", ""))]);
    let run = analyze(&["-o", "json"], &[dir.path()]);
    assert_eq!(
        run.findings(),
        vec![(
            "IST0101".to_string(),
            "VirtualService default/reviews".to_string()
        )]
    );
    let run = analyze(&["-n", "team-a", "-o", "json"], &[dir.path()]);
    assert_eq!(
        run.findings(),
        vec![(
            "IST0101".to_string(),
            "VirtualService team-a/reviews".to_string()
        )]
    );
}

#[test]
fn directories_are_read_recursively_with_yaml_yml_and_json() {
    let json = r#"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
 "metadata": {"name": "from-json", "namespace": "shop"},
 "spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "nowhere"}}]}]}}"#;
    let dir = tree(&[
        ("a/one.yaml", BROKEN_HOST),
        (
            "a/b/two.yml",
            &BROKEN_HOST.replace("name: reviews", "name: from-yml"),
        ),
        ("a/b/c/three.json", json),
        ("a/notes.txt", "not: [config"),
    ]);
    let run = analyze(&["-o", "json"], &[dir.path()]);
    assert_eq!(run.code, 79, "stderr: {}", run.stderr);
    let mut names: Vec<String> = run
        .findings()
        .into_iter()
        .filter(|(code, _)| code == "IST0101")
        .map(|(_, r)| r)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "VirtualService shop/from-json".to_string(),
            "VirtualService shop/from-yml".to_string(),
            "VirtualService shop/reviews".to_string()
        ]
    );
}

#[test]
fn list_items_get_their_own_origin() {
    let list = r#"apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: first, namespace: shop}
  spec:
    hosts: [a]
    http:
    - route:
      - destination: {host: nowhere}
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: second, namespace: shop}
  spec:
    hosts: [b]
    http:
    - route:
      - destination: {host: nowhere-else}
"#;
    let dir = tree(&[("list.yaml", list)]);
    let run = analyze(&["-o", "json"], &[dir.path()]);
    let v = run.json();
    let lines: Vec<u64> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["origin"]["line"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        lines,
        vec![11, 19],
        "each message points at its item's destination host"
    );
}

#[test]
fn output_is_sorted_by_file_then_line() {
    let dir = tree(&[
        ("b.yaml", BROKEN_HOST),
        ("a.yaml", &format!("{WARNING_ONLY}---\n{BROKEN_HOST}")),
    ]);
    let run = analyze(&[], &[dir.path()]);
    let origins: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            l.split(") ")
                .next()
                .unwrap_or_default()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut sorted = origins.clone();
    sorted.sort_by_key(|o| {
        let (f, l) = o.rsplit_once(':').unwrap_or((o, "0"));
        (f.to_string(), l.parse::<usize>().unwrap_or(0))
    });
    assert!(origins.len() >= 3, "{}", run.stdout);
    assert_eq!(origins, sorted);
}

#[test]
fn schema_errors_name_the_field_and_its_line() {
    let cases: &[(&str, &str, &str)] = &[
        ("unknown field", "  hosts: [a]\n  bogus: 1\n", "spec.bogus"),
        ("wrong type", "  hosts: a-string-not-a-list\n", "spec.hosts"),
        (
            "bad enum",
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    fault:\n      abort:\n        grpcStatus: NOT_A_CODE\n        percentage: {value: 10}\n",
            "spec.http[0].fault.abort.grpcStatus",
        ),
        (
            "bad regex",
            "  hosts: [a]\n  http:\n  - match:\n    - uri: {regex: \"a(b\"}\n    route:\n    - destination: {host: a}\n",
            "spec.http[0].match[0].uri.regex",
        ),
        (
            "negative weight",
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n      weight: -1\n",
            "spec.http[0].route[0].weight",
        ),
        (
            "two actions",
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    redirect: {uri: /x}\n",
            "spec.http[0]",
        ),
    ];
    for (what, spec, path) in cases {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: shop}}\nspec:\n{spec}"
        );
        let dir = tree(&[("vs.yaml", &text)]);
        let run = analyze(&["-o", "json"], &[dir.path()]);
        assert_eq!(run.code, 79, "{what}: {}", run.stdout);
        let v = run.json();
        let m = v
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["code"] == "IST0106")
            .unwrap_or_else(|| panic!("{what}: no IST0106 in {}", run.stdout));
        let message = m["message"].as_str().unwrap_or_default();
        assert!(message.contains(path), "{what}: {message:?} names {path}");
        let line = m["origin"]["line"].as_u64().unwrap_or(0) as usize;
        assert!(
            (4..=text.lines().count()).contains(&line),
            "{what}: line {line} is inside spec"
        );
    }
}

#[test]
fn bundled_examples_analyze_clean() {
    let run = analyze(
        &["--mesh-config"],
        &[
            repo_path("examples/mesh-config.yaml"),
            repo_path("examples/bookinfo"),
        ],
    );
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout, "", "no messages at all");
}

#[test]
fn origins_fall_inside_the_resource_document() {
    let text = format!("{CLEAN}---\n{BROKEN_HOST}---\n{WARNING_ONLY}");
    let dir = tree(&[("all.yaml", &text)]);
    let run = analyze(&["-o", "json"], &[dir.path()]);
    let ranges = document_ranges(&text);
    for m in run.json().as_array().into_iter().flatten() {
        let line = m["origin"]["line"].as_u64().unwrap_or(0) as usize;
        let name = m["resource"]["name"].as_str().unwrap_or_default();
        let doc = ranges
            .iter()
            .position(|(s, e)| (*s..=*e).contains(&line))
            .unwrap_or_else(|| panic!("line {line} is in no document"));
        let (s, e) = ranges[doc];
        let doc_text: Vec<&str> = text.lines().skip(s - 1).take(e + 1 - s).collect();
        assert!(
            doc_text
                .iter()
                .any(|l| l.contains(&format!("name: {name}"))
                    || l.contains(&format!("name: {name},"))),
            "message for {name} points into its own document (line {line})"
        );
    }
}

#[test]
fn a_policy_next_to_its_deployment_selects_it() {
    let text = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
    spec:
      containers: [{name: reviews, image: reviews}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {namespaces: [shop]}}]}]
"#;
    let dir = tree(&[("app.yaml", text)]);
    let run = analyze(&["-o", "json"], &[dir.path()]);
    assert_eq!(run.code, 0);
    assert!(
        !run.findings().iter().any(|(code, _)| code == "IST0127"),
        "the Deployment's pods are the policy's workloads: {:?}",
        run.findings()
    );
}

#[test]
fn valid_istio_configs_of_every_kind_raise_no_error() {
    let run = analyze(&["-o", "json"], &[repo_path("tests/data/valid")]);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let errors: Vec<_> = run
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["level"] == "Error")
        .cloned()
        .collect();
    assert!(
        errors.is_empty(),
        "valid configs produced errors: {errors:#?}"
    );
    let kinds: std::collections::BTreeSet<String> =
        std::fs::read_dir(repo_path("tests/data/valid"))
            .expect("valid corpus")
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.strip_prefix("kind: ").map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
    for kind in [
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "Sidecar",
        "WorkloadEntry",
        "WorkloadGroup",
        "EnvoyFilter",
        "ProxyConfig",
        "PeerAuthentication",
        "RequestAuthentication",
        "AuthorizationPolicy",
        "Telemetry",
        "WasmPlugin",
    ] {
        assert!(kinds.contains(kind), "the valid corpus covers {kind}");
    }
}

#[test]
fn standard_input_is_read_with_a_dash() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["analyze", "-o", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("weft runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(BROKEN_HOST.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("weft finishes");
    assert_eq!(out.status.code(), Some(79));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v[0]["code"], "IST0101");
    assert_eq!(v[0]["origin"]["file"], "-");
    assert_eq!(v[0]["origin"]["line"], 11);
}
