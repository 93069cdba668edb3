//! The stores' connection settings, written into the datasources obs provisions, so Grafana
//! reaches each store as obs does. For a datasource of type tempo, jaeger, loki, prometheus or
//! alertmanager whose store has settings (see [`crate::connection`]), with the fields of
//! Grafana's datasource provisioning ("Provision Grafana", data sources: custom HTTP headers,
//! `secureJsonData`):
//!
//! - the tenant: `jsonData.httpHeaderNameN` = `X-Scope-OrgID` (Jaeger: `x-tenant`) and
//!   `secureJsonData.httpHeaderValueN` = the tenant;
//! - each extra header likewise, and a bearer token as an `Authorization: Bearer …` header;
//! - basic auth: `basicAuth: true`, `basicAuthUser`, `secureJsonData.basicAuthPassword`;
//! - a CA: `jsonData.tlsAuthWithCACert: true`, `secureJsonData.tlsCACert` (the PEM);
//! - a client certificate: `jsonData.tlsAuth: true`, `secureJsonData.tlsClientCert` and
//!   `tlsClientKey`.
//!
//! A header the file already names (any case) keeps its number and takes the new value; other
//! headers take the next free number. The settings win over the file's own. The datasource's
//! `url` stays as the file says. Nothing here is printed: the report names fields only.

use serde_json::{Map, Value, json};

use super::files::{DatasourceSpec, Datasources};
use crate::connection::{Connection, Connections, Credential, Store};

/// Grafana's most custom headers per datasource is not bounded; obs stops at this many.
const MAX_HEADER_INDEX: usize = 64;

/// What was written into which datasource (uids and field names, never values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// `(datasource uid, what was set)`.
    pub datasources: Vec<(String, String)>,
}

/// Writes each store's settings into the datasources of its type.
pub fn apply(datasources: &mut Datasources, connections: &Connections) -> Applied {
    let mut applied = Applied::default();
    for (_, spec) in &mut datasources.datasources {
        let Some(connection) =
            Store::of_datasource_type(&spec.kind).and_then(|s| connections.get(s))
        else {
            continue;
        };
        if connection.is_configured() {
            let what = apply_one(spec, connection);
            applied.datasources.push((spec.uid.clone(), what));
        }
    }
    applied
}

fn header_index(json: &Map<String, Value>, name: &str) -> usize {
    let numbered = |key: &String| {
        key.strip_prefix("httpHeaderName")
            .and_then(|n| n.parse::<usize>().ok())
    };
    if let Some(same) = json.iter().find_map(|(key, value)| {
        numbered(key).filter(|_| value.as_str().is_some_and(|v| v.eq_ignore_ascii_case(name)))
    }) {
        return same;
    }
    json.keys()
        .filter_map(numbered)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
        .min(MAX_HEADER_INDEX)
}

fn set_header(
    json: &mut Map<String, Value>,
    secure: &mut std::collections::BTreeMap<String, String>,
    name: &str,
    value: &str,
) {
    let n = header_index(json, name);
    json.insert(format!("httpHeaderName{n}"), json!(name));
    secure.insert(format!("httpHeaderValue{n}"), value.to_string());
}

/// Writes `connection` into `spec`; what was set, in words without values.
pub fn apply_one(spec: &mut DatasourceSpec, connection: &Connection) -> String {
    let mut json = spec
        .json_data
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut secure = spec.secure_json_data.clone().unwrap_or_default();
    let mut set = Vec::new();
    if let Some(tenant) = &connection.tenant {
        set_header(
            &mut json,
            &mut secure,
            connection.store.tenant_header(),
            &tenant.id,
        );
        set.push(format!("{} header", connection.store.tenant_header()));
    }
    for (name, value) in &connection.headers {
        set_header(&mut json, &mut secure, name.as_str(), value);
        set.push(format!("{name} header"));
    }
    match &connection.credential {
        Credential::None => {}
        Credential::Bearer { token, .. } => {
            set_header(
                &mut json,
                &mut secure,
                "Authorization",
                &format!("Bearer {token}"),
            );
            set.push("Authorization: Bearer header".to_string());
        }
        Credential::Basic { user, password, .. } => {
            spec.basic_auth = Some(true);
            spec.basic_auth_user = Some(user.clone());
            secure.insert("basicAuthPassword".into(), password.clone());
            set.push("basic auth".to_string());
        }
    }
    if let Some(ca) = &connection.ca {
        json.insert("tlsAuthWithCACert".into(), json!(true));
        secure.insert("tlsCACert".into(), ca.text());
        set.push("CA certificate".to_string());
    }
    if let Some((cert, key)) = &connection.identity {
        json.insert("tlsAuth".into(), json!(true));
        secure.insert("tlsClientCert".into(), cert.text());
        secure.insert("tlsClientKey".into(), key.text());
        set.push("client certificate".to_string());
    }
    spec.json_data = Some(Value::Object(json));
    spec.secure_json_data = Some(secure);
    set.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{PemFile, Tenant};

    fn spec(kind: &str, json_data: Value) -> DatasourceSpec {
        serde_json::from_value(json!({
            "name": kind, "type": kind, "uid": kind, "jsonData": json_data
        }))
        .unwrap()
    }

    fn connection(store: Store) -> Connection {
        let mut c = Connection::none(store);
        c.tenant = Some(Tenant {
            id: "team-a".into(),
            source: "--loki-tenant (OBS_LOKI_TENANT)".into(),
        });
        c
    }

    #[test]
    fn the_tenant_rides_as_a_custom_header_with_its_value_in_secure_json_data() {
        let mut loki = spec("loki", json!({"maxLines": 1000}));
        let what = apply_one(&mut loki, &connection(Store::Loki));
        let json = loki.json_data.as_ref().unwrap();
        assert_eq!(json["httpHeaderName1"], "X-Scope-OrgID");
        assert_eq!(json["maxLines"], 1000, "the file's settings stay");
        let secure = loki.secure_json_data.as_ref().unwrap();
        assert_eq!(secure["httpHeaderValue1"], "team-a");
        assert!(!what.contains("team-a"), "{what}");
        assert!(
            !json.as_object().unwrap().values().any(|v| v == "team-a"),
            "the value is only in secureJsonData"
        );
    }

    #[test]
    fn a_header_the_file_names_keeps_its_number_and_others_take_the_next() {
        let mut tempo = spec(
            "tempo",
            json!({"httpHeaderName1": "X-Other", "httpHeaderName3": "x-scope-orgid"}),
        );
        let mut c = connection(Store::Tempo);
        c.headers = vec![(
            reqwest::header::HeaderName::from_static("x-api-key"),
            "k-123456".into(),
        )];
        c.credential = Credential::Bearer {
            token: "tok-abcdef".into(),
            source: "--tempo-token".into(),
        };
        apply_one(&mut tempo, &c);
        let json = tempo.json_data.as_ref().unwrap();
        let secure = tempo.secure_json_data.as_ref().unwrap();
        assert_eq!(json["httpHeaderName3"], "X-Scope-OrgID");
        assert_eq!(secure["httpHeaderValue3"], "team-a");
        assert_eq!(json["httpHeaderName4"], "x-api-key");
        assert_eq!(secure["httpHeaderValue4"], "k-123456");
        assert_eq!(json["httpHeaderName5"], "Authorization");
        assert_eq!(secure["httpHeaderValue5"], "Bearer tok-abcdef");
        assert_eq!(json["httpHeaderName1"], "X-Other");
    }

    #[test]
    fn basic_auth_and_tls_use_grafanas_fields() {
        let mut prometheus = spec("prometheus", json!({}));
        let mut c = Connection::none(Store::Prometheus);
        c.credential = Credential::Basic {
            user: "12345".into(),
            password: "glc_secret".into(),
            source: "--prometheus-password-file".into(),
        };
        let pem = |text: &str| PemFile {
            path: "/x.pem".into(),
            pem: text.as_bytes().to_vec(),
        };
        c.ca = Some(pem("CA PEM"));
        c.identity = Some((pem("CERT PEM"), pem("KEY PEM")));
        apply_one(&mut prometheus, &c);
        assert_eq!(prometheus.basic_auth, Some(true));
        assert_eq!(prometheus.basic_auth_user.as_deref(), Some("12345"));
        let json = prometheus.json_data.as_ref().unwrap();
        assert_eq!(json["tlsAuthWithCACert"], true);
        assert_eq!(json["tlsAuth"], true);
        let secure = prometheus.secure_json_data.as_ref().unwrap();
        assert_eq!(secure["basicAuthPassword"], "glc_secret");
        assert_eq!(secure["tlsCACert"], "CA PEM");
        assert_eq!(secure["tlsClientCert"], "CERT PEM");
        assert_eq!(secure["tlsClientKey"], "KEY PEM");
    }

    #[test]
    fn only_datasources_of_a_configured_store_change() {
        let mut all = Datasources::default();
        for kind in ["loki", "tempo", "postgres"] {
            all.datasources
                .push(("ds.yaml".into(), spec(kind, json!({}))));
        }
        let connections = Connections {
            loki: connection(Store::Loki),
            ..Connections::default()
        };
        let applied = apply(&mut all, &connections);
        assert_eq!(applied.datasources.len(), 1);
        assert_eq!(applied.datasources[0].0, "loki");
        assert!(all.datasources[1].1.secure_json_data.is_none());
        assert!(all.datasources[2].1.secure_json_data.is_none());
    }
}
