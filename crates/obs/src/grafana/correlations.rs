//! The links Grafana follows between the stores, rendered as Grafana renders them: the LogQL
//! of a Tempo → Loki link (`tracesToLogsV2`) and the value a Loki derived field extracts from a
//! line. `obs verify` runs them against the real stores.

use serde_json::Value;

use crate::backends::loki;

/// The LogQL Grafana runs for a Tempo → Loki link (`tracesToLogsV2`): the custom query with
/// `${__tags}` and `${__trace.traceId}` interpolated, or else the mapped tags as the stream
/// selector and, with `filterByTraceID`, the trace id as a line filter.
pub fn render_traces_to_logs(config: &Value, service: &str, trace_id: &str) -> String {
    let mut selectors = Vec::new();
    for tag in config["tags"].as_array().into_iter().flatten() {
        let key = tag["key"].as_str().unwrap_or_default();
        let label = tag["value"]
            .as_str()
            .filter(|v| !v.is_empty())
            .unwrap_or(key);
        if key == "service.name" {
            selectors.push(format!("{}=\"{service}\"", label.replace('.', "_")));
        }
    }
    if selectors.is_empty() {
        selectors.push(format!("service_name=\"{service}\""));
    }
    let tags = selectors.join(", ");
    if config["customQuery"].as_bool() == Some(true)
        && let Some(query) = config["query"].as_str()
    {
        return query
            .replace("${__tags}", &tags)
            .replace("${__trace.traceId}", trace_id);
    }
    let mut query = format!("{{{tags}}}");
    if config["filterByTraceID"].as_bool().unwrap_or(false) {
        query.push_str(&format!(" |=\"{trace_id}\""));
    }
    query
}

/// The value a Loki derived field extracts from a line (label matcher or regex on the line).
pub fn derived_value(field: &Value, line: &loki::Line) -> Option<String> {
    let pattern = regex::Regex::new(field["matcherRegex"].as_str()?).ok()?;
    if field["matcherType"].as_str() == Some("label") {
        line.fields
            .iter()
            .find(|(k, _)| pattern.is_match(k))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    } else {
        pattern
            .captures(&line.line)
            .and_then(|c| c.get(1).or_else(|| c.get(0)))
            .map(|m| m.as_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_to_logs_queries_render_as_grafana_renders_them() {
        let default = serde_json::json!({"filterByTraceID": true, "tags": [{"key": "service.name", "value": "service_name"}]});
        assert_eq!(
            render_traces_to_logs(&default, "orders", "abc"),
            "{service_name=\"orders\"} |=\"abc\""
        );
        let custom = serde_json::json!({
            "customQuery": true,
            "query": "{${__tags}} | trace_id=\"${__trace.traceId}\"",
            "tags": [{"key": "service.name", "value": "service_name"}]
        });
        assert_eq!(
            render_traces_to_logs(&custom, "orders", "abc"),
            "{service_name=\"orders\"} | trace_id=\"abc\""
        );
    }

    #[test]
    fn derived_fields_match_labels_or_lines() {
        let line = loki::Line {
            fields: serde_json::json!({"trace_id": "abc", "service_name": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            line: r#"{"trace_id":"def"}"#.to_string(),
        };
        let by_label = serde_json::json!({"matcherType": "label", "matcherRegex": "^trace_id$"});
        let by_regex = serde_json::json!({"matcherRegex": "\"trace_id\":\"(\\w+)\""});
        assert_eq!(derived_value(&by_label, &line).as_deref(), Some("abc"));
        assert_eq!(derived_value(&by_regex, &line).as_deref(), Some("def"));
    }
}
