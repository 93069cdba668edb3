//! Route templates as shared values, so a request neither allocates its `http.route` nor
//! formats its span name.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use opentelemetry::StringValue;

/// The most route templates remembered. An application has a fixed set of routes, so this is
/// never reached in practice; past it a route is allocated (and its span name formatted) per
/// request instead of shared.
pub(crate) const MAX_ROUTES: usize = 1024;

/// FNV-1a: route templates are the application's own short strings, not attacker input, and
/// SipHash would cost more than the lookup it protects.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Names = [std::sync::OnceLock<&'static str>; crate::http::METHODS.len()];

/// What is known about one route template.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// `http.route`, shared by every request of the route.
    pub(crate) value: StringValue,
    /// Span names `{method} {route}`, one per method of [`crate::http::METHODS`], made on first
    /// use and kept for the life of the process (bounded: [`MAX_ROUTES`] routes × 10 methods).
    /// `None` for a route past [`MAX_ROUTES`]: its names are formatted per request, never kept.
    names: Option<Arc<Names>>,
}

impl Route {
    fn new(route: &str) -> Self {
        Self {
            value: StringValue::from(Arc::<str>::from(route)),
            names: Some(Arc::new(std::array::from_fn(|_| {
                std::sync::OnceLock::new()
            }))),
        }
    }

    /// The span name for `method` on this route.
    pub(crate) fn span_name(&self, method: &'static str) -> std::borrow::Cow<'static, str> {
        let Some(slot) = crate::http::METHODS
            .iter()
            .position(|m| *m == method)
            .and_then(|i| self.names.as_ref()?.get(i))
        else {
            return format!("{method} {}", self.value.as_str()).into();
        };
        let name = slot.get_or_init(|| format!("{method} {}", self.value.as_str()).leak());
        std::borrow::Cow::Borrowed(name)
    }
}

/// Routes by template.
#[derive(Debug, Default)]
pub(crate) struct RouteValues {
    routes: RwLock<HashMap<Box<str>, Route, BuildHasherDefault<Fnv>>>,
}

impl RouteValues {
    /// The shared entry for `route` when it is known (or there is room to remember it), a
    /// fresh one otherwise.
    pub(crate) fn get(&self, route: &str) -> Route {
        if let Ok(routes) = self.routes.read()
            && let Some(known) = routes.get(route)
        {
            return known.clone();
        }
        if let Ok(mut routes) = self.routes.write() {
            if let Some(known) = routes.get(route) {
                return known.clone();
            }
            if routes.len() < MAX_ROUTES {
                let known = Route::new(route);
                routes.insert(route.into(), known.clone());
                return known;
            }
        }
        // Not remembered: its names are not leaked either.
        Route {
            value: StringValue::from(route.to_owned()),
            names: None,
        }
    }
}

impl std::fmt::Debug for Fnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fnv")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_shared_named_per_method_and_the_table_stays_bounded() {
        let routes = RouteValues::default();
        let route = routes.get("/orders/{id}");
        assert_eq!(route.value.as_str(), "/orders/{id}");
        assert_eq!(route.span_name("GET"), "GET /orders/{id}");
        assert_eq!(route.span_name("POST"), "POST /orders/{id}");
        let again = routes.get("/orders/{id}");
        assert!(matches!(
            again.span_name("GET"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(again.span_name("_OTHER"), "_OTHER /orders/{id}");
        for i in 0..MAX_ROUTES + 10 {
            let r = routes.get(&format!("/r{i}"));
            assert_eq!(r.value.as_str(), format!("/r{i}"));
        }
        let held = routes.routes.read().map(|v| v.len()).unwrap_or_default();
        assert_eq!(held, MAX_ROUTES);
        let unremembered = routes.get("/beyond");
        assert!(
            matches!(unremembered.span_name("GET"), std::borrow::Cow::Owned(ref n) if n == "GET /beyond")
        );
    }
}
