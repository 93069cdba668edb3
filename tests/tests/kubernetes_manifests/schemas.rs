//! Every rendered object is valid for a current Kubernetes release; the one custom resource is
//! checked against its CRD's documented fields.

use std::process::Command;

use serde_json::Value;

use crate::kube::{KUSTOMIZATIONS, MULTI_TENANT, describe, rendered};

/// The Kubernetes release whose API schemas the objects must satisfy (kubernetes-validate
/// 1.37.0, pinned in scripts/test.sh, ships them).
const KUBERNETES_VERSION: &str = "1.37.0";

/// Kinds the core schemas do not hold, and that are checked here instead.
const CUSTOM_RESOURCES: &[(&str, &str)] = &[("opentelemetry.io/v1alpha1", "Instrumentation")];

#[test]
fn every_rendered_object_validates_against_the_kubernetes_schemas() {
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &rendered.yaml).unwrap();
        let output = Command::new("kubernetes-validate")
            .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict"])
            .arg(file.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run kubernetes-validate ({e}): \
                     pip install kubernetes-validate==1.37.0 (scripts/test.sh does)"
                )
            });
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{dir} does not validate against Kubernetes {KUBERNETES_VERSION}:\n{report}"
        );
        for object in &rendered.objects {
            let (api_version, kind) = (
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            );
            let id = format!(
                "{}/{}",
                kind.to_lowercase(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            if CUSTOM_RESOURCES.contains(&(api_version, kind)) {
                assert!(
                    report.contains(&format!("schema for kind {kind}")),
                    "{dir}: expected kubernetes-validate to say it has no schema for {kind}:\n{report}"
                );
            } else {
                let passed = format!("passed for resource {id} against version 1.37");
                assert!(
                    report.contains(&passed),
                    "{dir}: {} was not validated against 1.37:\n{report}",
                    describe(object)
                );
            }
        }
    }
}

/// The validator really rejects what the API server would: a field no schema has.
#[test]
fn the_validator_rejects_an_unknown_field() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 1\n  \
               selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    \
               spec: {containers: [{name: x, image: x}]}\n";
    std::fs::write(file.path(), bad).unwrap();
    let output = Command::new("kubernetes-validate")
        .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict"])
        .arg(file.path())
        .output()
        .expect("kubernetes-validate is installed (scripts/test.sh)");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("'replica' was unexpected"));
}

/// Instrumentation (opentelemetry.io/v1alpha1): only fields of the Operator's API types
/// (apis/v1alpha1/instrumentation_types.go, propagators.go and samplers.go in
/// opentelemetry-operator: `exporter.{endpoint,tls}`, `resource.{resourceAttributes,
/// addK8sUIDAttributes}`, the `propagators` and `sampler.type` enums, `sampler.argument` a
/// string, `env` a list of name/value), each with a value platform-telemetry accepts (it rejects
/// the `jaeger`, `xray` and `ottrace` propagators and the remote samplers).
#[test]
fn the_instrumentation_has_the_fields_the_operator_reads_with_values_the_library_accepts() {
    const OPERATOR_PROPAGATORS: &[&str] = &[
        "tracecontext",
        "baggage",
        "b3",
        "b3multi",
        "jaeger",
        "xray",
        "ottrace",
        "none",
    ];
    const LIBRARY_PROPAGATORS: &[&str] = &["tracecontext", "baggage", "b3", "b3multi", "none"];
    const OPERATOR_SAMPLERS: &[&str] = &[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
        "jaeger_remote",
        "parentbased_jaeger_remote",
        "xray",
    ];
    const LIBRARY_SAMPLERS: &[&str] = &[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ];
    let rendered = rendered(MULTI_TENANT);
    let instrumentations: Vec<&Value> = rendered.of_kind("Instrumentation").collect();
    assert_eq!(
        instrumentations.len(),
        1,
        "one Instrumentation in {MULTI_TENANT}"
    );
    let inst = instrumentations[0];
    assert_eq!(inst["apiVersion"], "opentelemetry.io/v1alpha1");
    assert_eq!(inst["metadata"]["namespace"], "observability");
    let spec = inst["spec"].as_object().expect("spec");
    let known = [
        "exporter",
        "propagators",
        "sampler",
        "resource",
        "env",
        "defaults",
    ];
    for key in spec.keys() {
        assert!(
            known.contains(&key.as_str()),
            "Instrumentation: unexpected spec.{key}"
        );
    }

    let only = |what: &str, value: &Value, allowed: &[&str]| {
        for key in value
            .as_object()
            .unwrap_or_else(|| panic!("{what} is an object"))
            .keys()
        {
            assert!(
                allowed.contains(&key.as_str()),
                "Instrumentation: unexpected {what}.{key}"
            );
        }
    };
    only("spec.exporter", &spec["exporter"], &["endpoint", "tls"]);
    only(
        "spec.resource",
        &spec["resource"],
        &["resourceAttributes", "addK8sUIDAttributes"],
    );
    only("spec.sampler", &spec["sampler"], &["type", "argument"]);

    let endpoint = spec["exporter"]["endpoint"]
        .as_str()
        .expect("exporter.endpoint");
    let url = reqwest::Url::parse(endpoint).expect("exporter.endpoint is a URL");
    assert_eq!(url.scheme(), "http");
    assert_eq!(
        url.port(),
        Some(4318),
        "OTLP/HTTP, as OTEL_EXPORTER_OTLP_PROTOCOL says"
    );

    let propagators: Vec<&str> = spec["propagators"]
        .as_array()
        .expect("propagators")
        .iter()
        .map(|p| p.as_str().expect("a propagator is a string"))
        .collect();
    for p in &propagators {
        assert!(
            OPERATOR_PROPAGATORS.contains(p),
            "the Operator has no propagator {p}"
        );
        assert!(
            LIBRARY_PROPAGATORS.contains(p),
            "platform-telemetry rejects propagator {p}"
        );
    }

    let sampler = &spec["sampler"];
    let kind = sampler["type"].as_str().expect("sampler.type");
    assert!(
        OPERATOR_SAMPLERS.contains(&kind),
        "the Operator has no sampler {kind}"
    );
    assert!(
        LIBRARY_SAMPLERS.contains(&kind),
        "platform-telemetry rejects sampler {kind}"
    );
    let argument = sampler["argument"]
        .as_str()
        .expect("sampler.argument is a string");
    let ratio: f64 = argument.parse().expect("a ratio");
    assert!(
        (0.0..=1.0).contains(&ratio),
        "sampler.argument {ratio} is not in 0..=1"
    );

    assert!(spec["resource"]["addK8sUIDAttributes"].is_boolean());
    for entry in spec["env"].as_array().expect("env") {
        let entry = entry.as_object().expect("env entry");
        assert!(
            entry["name"].is_string() && entry["value"].is_string(),
            "{entry:?}"
        );
        assert_eq!(entry.len(), 2, "env entries are name/value: {entry:?}");
    }
}
