//! Route templates as shared attribute values, so a request does not allocate its route.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use opentelemetry::StringValue;

/// The most route templates remembered. An application has a fixed set of routes, so this is
/// never reached in practice; past it a route is allocated per request instead of shared.
pub(crate) const MAX_ROUTES: usize = 1024;

/// `http.route` values by template: `Arc<str>` shared by every request of the route.
#[derive(Debug, Default)]
pub(crate) struct RouteValues {
    values: RwLock<HashMap<Box<str>, StringValue>>,
}

impl RouteValues {
    /// The attribute value for `route`: the shared one when it is known (or there is room to
    /// remember it), a fresh one otherwise.
    pub(crate) fn get(&self, route: &str) -> StringValue {
        if let Ok(values) = self.values.read()
            && let Some(value) = values.get(route)
        {
            return value.clone();
        }
        let value = StringValue::from(Arc::<str>::from(route));
        if let Ok(mut values) = self.values.write()
            && values.len() < MAX_ROUTES
        {
            values.insert(route.into(), value.clone());
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_shared_and_the_table_stays_bounded() {
        let routes = RouteValues::default();
        assert_eq!(routes.get("/orders/{id}").as_str(), "/orders/{id}");
        assert_eq!(routes.get("/orders/{id}").as_str(), "/orders/{id}");
        for i in 0..MAX_ROUTES + 10 {
            assert_eq!(routes.get(&format!("/r{i}")).as_str(), format!("/r{i}"));
        }
        let held = routes.values.read().map(|v| v.len()).unwrap_or_default();
        assert_eq!(held, MAX_ROUTES);
    }
}
