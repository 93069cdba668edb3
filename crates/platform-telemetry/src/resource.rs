//! The [`Resource`] that describes the service: who emits the telemetry.
//!
//! Precedence, lowest first: detected attributes (host, process, container, Kubernetes), then
//! what the builder set, then `OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME`.

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;

use crate::config::{Env, Warnings, parse_key_values};
use crate::semconv::{SCHEMA_URL, attr};

/// Resource values code chose on the builder.
#[derive(Clone, Debug, Default)]
pub(crate) struct ResourceDefaults {
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) service_namespace: Option<String>,
    pub(crate) deployment_environment: Option<String>,
    pub(crate) attributes: Vec<(String, String)>,
}

/// Kubernetes downward-API variables read when present, and the attribute each becomes.
pub(crate) const KUBERNETES_VARIABLES: &[(&str, &str)] = &[
    ("K8S_POD_NAME", attr::K8S_POD_NAME),
    ("K8S_POD_UID", attr::K8S_POD_UID),
    ("K8S_NAMESPACE_NAME", attr::K8S_NAMESPACE_NAME),
    ("K8S_NODE_NAME", attr::K8S_NODE_NAME),
    ("K8S_CONTAINER_NAME", attr::K8S_CONTAINER_NAME),
    ("K8S_DEPLOYMENT_NAME", attr::K8S_DEPLOYMENT_NAME),
];

/// Builds the resource. Returns it with the final `service.name`.
pub(crate) fn build(env: &Env, code: &ResourceDefaults, warnings: &mut Warnings) -> Resource {
    // Values keep the registry's types (`process.pid` is an int); what the environment and
    // the builder give are strings.
    let mut attrs: Vec<(String, Value)> = Vec::new();
    let set = |attrs: &mut Vec<(String, Value)>, k: &str, v: Value| {
        attrs.retain(|(key, _)| key != k);
        attrs.push((k.to_string(), v));
    };

    // Detected.
    let executable = executable_name();
    set(&mut attrs, attr::SERVICE_NAME, executable.clone().into());
    set(&mut attrs, attr::SERVICE_INSTANCE_ID, instance_id().into());
    if let Some(host) = host_name(env) {
        set(&mut attrs, attr::HOST_NAME, host.into());
    }
    set(&mut attrs, attr::HOST_ARCH, host_arch().into());
    set(&mut attrs, attr::OS_TYPE, std::env::consts::OS.into());
    set(
        &mut attrs,
        attr::PROCESS_PID,
        i64::from(std::process::id()).into(),
    );
    set(&mut attrs, attr::PROCESS_EXECUTABLE_NAME, executable.into());
    // Required by the registry on the process entity the process metrics describe.
    if let Some(created) = crate::runtime_metrics::process_creation_time() {
        set(&mut attrs, attr::PROCESS_CREATION_TIME, created.into());
    }
    set(&mut attrs, attr::PROCESS_RUNTIME_NAME, "rust".into());
    if let Some(id) = container_id() {
        set(&mut attrs, attr::CONTAINER_ID, id.into());
    }
    for (var, key) in KUBERNETES_VARIABLES {
        if let Some(v) = env.value(var) {
            set(&mut attrs, key, v.into());
        }
    }

    // Code.
    for (k, v) in &code.attributes {
        set(&mut attrs, k, v.clone().into());
    }
    let code_values = [
        (attr::SERVICE_NAME, &code.service_name),
        (attr::SERVICE_VERSION, &code.service_version),
        (attr::SERVICE_NAMESPACE, &code.service_namespace),
        (
            attr::DEPLOYMENT_ENVIRONMENT_NAME,
            &code.deployment_environment,
        ),
    ];
    for (k, v) in code_values {
        if let Some(v) = v {
            set(&mut attrs, k, v.clone().into());
        }
    }

    // Environment.
    if let Some(v) = env.value("OTEL_RESOURCE_ATTRIBUTES") {
        for (k, v) in parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &v, None, warnings) {
            set(&mut attrs, &k, v.into());
        }
    }
    if let Some(name) = env.value("OTEL_SERVICE_NAME") {
        set(&mut attrs, attr::SERVICE_NAME, name.into());
    }

    let service_name = attrs
        .iter()
        .find(|(k, _)| k == attr::SERVICE_NAME)
        .map(|(_, v)| v.as_str().into_owned())
        .unwrap_or_default();
    Resource::builder_empty()
        .with_service_name(service_name)
        .with_attributes(
            attrs
                .into_iter()
                .filter(|(k, _)| k != attr::SERVICE_NAME)
                .map(|(k, v)| KeyValue::new(k, v)),
        )
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_schema_url(std::iter::empty(), SCHEMA_URL)
        .build()
}

fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".to_string())
}

/// A random version-4 UUID, as the semantic conventions recommend for `service.instance.id`.
fn instance_id() -> String {
    use opentelemetry::trace::TraceId;
    use opentelemetry_sdk::trace::IdGenerator as _;
    let id: TraceId = opentelemetry_sdk::trace::RandomIdGenerator::default().new_trace_id();
    let mut bytes = id.to_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn host_name(env: &Env) -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| env.value("HOSTNAME"))
}

/// `host.arch` uses the semantic conventions' names.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The container id from cgroup v1 paths or, on cgroup v2, from the mount table.
fn container_id() -> Option<String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    container_id_from(&cgroup, &mountinfo)
}

pub(crate) fn container_id_from(cgroup: &str, mountinfo: &str) -> Option<String> {
    fn is_id(s: &str) -> bool {
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
    }
    fn find_id(path: &str) -> Option<String> {
        path.split(['/', '-', '.', ':'])
            .rev()
            .find(|part| is_id(part))
            .map(str::to_string)
    }
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        if let Some(id) = find_id(path) {
            return Some(id);
        }
    }
    for line in mountinfo.lines() {
        // e.g. ".../docker/containers/<id>/hostname /etc/hostname ..."
        if let Some(root) = line.split_whitespace().nth(3)
            && root.contains("/containers/")
            && let Some(id) = root.split('/').find(|p| is_id(p))
        {
            return Some(id.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(resource: &Resource, key: &str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from(key.to_string()))
            .map(|v| v.to_string())
    }

    #[test]
    fn env_overrides_code_and_service_name_overrides_resource_attributes() {
        let env = Env::from_pairs([
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,deployment.environment.name=prod,team=pay%20ments",
            ),
            ("OTEL_SERVICE_NAME", "from-service-name"),
            ("K8S_POD_NAME", "orders-7d9"),
        ]);
        let code = ResourceDefaults {
            service_name: Some("from-code".into()),
            service_version: Some("1.2.3".into()),
            deployment_environment: Some("dev".into()),
            ..ResourceDefaults::default()
        };
        let mut w = Warnings::default();
        let r = build(&env, &code, &mut w);
        assert_eq!(
            attr(&r, "service.name").as_deref(),
            Some("from-service-name")
        );
        assert_eq!(attr(&r, "service.version").as_deref(), Some("1.2.3"));
        assert_eq!(
            attr(&r, "deployment.environment.name").as_deref(),
            Some("prod")
        );
        assert_eq!(attr(&r, "team").as_deref(), Some("pay ments"));
        assert_eq!(attr(&r, "k8s.pod.name").as_deref(), Some("orders-7d9"));
        assert_eq!(attr(&r, "telemetry.sdk.language").as_deref(), Some("rust"));
        let id = attr(&r, "service.instance.id").unwrap_or_default();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn container_id_is_found_in_cgroup_v1_and_v2() {
        let id = "a".repeat(64);
        let v1 = format!("12:pids:/docker/{id}\n");
        assert_eq!(container_id_from(&v1, "").as_deref(), Some(id.as_str()));
        let v1_systemd = format!("0::/system.slice/docker-{id}.scope\n");
        assert_eq!(
            container_id_from(&v1_systemd, "").as_deref(),
            Some(id.as_str())
        );
        let v2 = format!(
            "652 630 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(
            container_id_from("0::/\n", &v2).as_deref(),
            Some(id.as_str())
        );
        assert_eq!(container_id_from("0::/\n", ""), None);
    }
}
