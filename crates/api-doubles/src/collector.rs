//! A double of an OpenTelemetry Collector pipeline: one OTLP intake (crate `otlp-receiver`:
//! gRPC, and HTTP with protobuf bodies, as the collector's `otlp` receiver on 4317/4318) whose
//! traces go to the Tempo and Jaeger doubles and whose logs go to the Loki double, as a
//! `traces: [otlp] -> [otlp/tempo, otlp/jaeger]`, `logs: [otlp] -> [otlphttp/loki]` pipeline does.
//!
//! Data travels over real OTLP once (client to this receiver); the hand-over to the stores is
//! in-process, so each store sees exactly what a real exporter would have delivered, with the
//! store's own rules applied (Loki's label mapping and its refusal of too old or too new entries,
//! `drop_spans`, `forget_trace`, visibility lags).
//!
//! Tenants ([`TenantHeader`]): a collector in front of a multi-tenant Tempo or Loki must send
//! `X-Scope-OrgID` on its exports, either a fixed one (`exporters: otlp/tempo: headers:
//! {X-Scope-OrgID: a}`, [`TenantHeader::Fixed`]) or the one each export arrived with (the
//! `headers_setter` extension with `from_context: X-Scope-OrgID` and the receiver's
//! `include_metadata: true`, [`TenantHeader::FromRequest`]); [`TenantHeader::None`] (the
//! default) sends none. A store that refuses the export (a multi-tenant one without the header:
//! Tempo's UNAVAILABLE, Loki's 401 `no org id`) keeps nothing of it, and the refusal is listed in
//! [`CollectorDouble::refusals`], as the exporter would log it. Single-tenant stores ignore the
//! header; Jaeger has no such tenancy.
//!
//! TLS ([`CollectorBuilder::tls`]): the intake serves OTLP over TLS with a [`TestCa`], optionally
//! requiring a client certificate, as a receiver with `tls: {cert_file, key_file, client_ca_file}`
//! does; its endpoints become `https://localhost:<port>` (the name the test server certificate is
//! valid for).
//!
//! Not modelled: processors (batching, memory limiter, resource detection), the exporters'
//! retry and queue (a store that is down still receives the data, as if the retry succeeded once
//! it came back), metrics export (metrics are only kept; see [`CollectorDouble::snapshot`]), and
//! the collector's own telemetry (`otelcol_*` metrics).

use std::sync::{Arc, Mutex};

use otlp_receiver::{Behavior, OtlpReceiver, Snapshot};

use crate::chassis::{self, Batch, Error, Running};
use crate::common::lock;
use crate::jaeger::{JAEGER_TENANT, JaegerDouble};
use crate::loki::LokiDouble;
use crate::tempo::TempoDouble;
use crate::tenancy::{NO_ORG_ID, Tenancy, TenantError, parse_org_id};
use crate::tls::{TestCa, TlsChoice, TlsMode};

/// Which `X-Scope-OrgID` the collector's exporters send to Tempo and Loki.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TenantHeader {
    /// None (a collector without tenant configuration).
    #[default]
    None,
    /// This one on every export (exporter `headers:`).
    Fixed(String),
    /// The one each incoming export carried, if any (`headers_setter` `from_context`).
    FromRequest,
}

/// How a [`CollectorDouble`] starts: where it exports and which tenant header it sends. Made by
/// [`CollectorDouble::builder`].
#[derive(Debug, Default)]
pub struct CollectorBuilder<'a> {
    tempo: Option<&'a TempoDouble>,
    jaeger: Option<&'a JaegerDouble>,
    loki: Option<&'a LokiDouble>,
    tenant: TenantHeader,
    tls: Option<TlsChoice>,
}

impl<'a> CollectorBuilder<'a> {
    /// Serves the OTLP intake over TLS with a fresh [`TestCa`] (see [`CollectorDouble::ca`]).
    pub fn tls(mut self, mode: TlsMode) -> Self {
        self.tls = Some(TlsChoice { mode, ca: None });
        self
    }

    /// Serves the OTLP intake over TLS with certificates of `ca`.
    pub fn tls_with(mut self, mode: TlsMode, ca: &Arc<TestCa>) -> Self {
        let ca = Some(Arc::clone(ca));
        self.tls = Some(TlsChoice { mode, ca });
        self
    }

    /// Exports traces to `tempo`.
    pub fn tempo(mut self, tempo: &'a TempoDouble) -> Self {
        self.tempo = Some(tempo);
        self
    }

    /// Exports traces to `jaeger`.
    pub fn jaeger(mut self, jaeger: &'a JaegerDouble) -> Self {
        self.jaeger = Some(jaeger);
        self
    }

    /// Exports logs to `loki`.
    pub fn loki(mut self, loki: &'a LokiDouble) -> Self {
        self.loki = Some(loki);
        self
    }

    /// Which `X-Scope-OrgID` the exporters send (default [`TenantHeader::None`]).
    pub fn tenant_header(mut self, tenant: TenantHeader) -> Self {
        self.tenant = tenant;
        self
    }

    /// Starts the collector's intake on free ports.
    pub fn start(self) -> Result<CollectorDouble, Error> {
        CollectorDouble::start_with(self)
    }
}

/// A running collector double; dropping it stops its intake.
#[derive(Debug)]
pub struct CollectorDouble {
    receiver: Arc<OtlpReceiver>,
    refusals: Arc<Mutex<Vec<String>>>,
    ca: Option<Arc<TestCa>>,
    _running: Running,
}

/// The tenant a store keeps an export under, or the store's refusal (as the exporter logs it).
fn tenant_for(
    store: &'static str,
    tenancy: &Tenancy,
    header: Option<&str>,
) -> Result<String, String> {
    match tenancy {
        Tenancy::Single(tenant) => Ok((*tenant).to_owned()),
        Tenancy::Multi => match parse_org_id(header.unwrap_or_default().as_bytes()) {
            Ok(tenant) => Ok(tenant),
            Err(TenantError::Missing) => Err(format!("{store}: {NO_ORG_ID}")),
            Err(TenantError::NotModelled(rule)) => Err(format!("{store}: {rule}")),
        },
    }
}

impl CollectorDouble {
    /// Starts an OTLP intake on free ports that forwards traces to `tempo` and `jaeger` and logs
    /// to `loki` (each optional), without a tenant header.
    pub fn start(
        tempo: Option<&TempoDouble>,
        jaeger: Option<&JaegerDouble>,
        loki: Option<&LokiDouble>,
    ) -> Result<Self, Error> {
        Self::start_with(CollectorBuilder {
            tempo,
            jaeger,
            loki,
            tenant: TenantHeader::None,
            tls: None,
        })
    }

    /// A builder: stores to export to, and the tenant header.
    pub fn builder<'a>() -> CollectorBuilder<'a> {
        CollectorBuilder::default()
    }

    fn start_with(builder: CollectorBuilder<'_>) -> Result<Self, Error> {
        let (tempo, jaeger, loki) = (
            builder.tempo.map(TempoDouble::shared),
            builder.jaeger.map(JaegerDouble::shared),
            builder.loki.map(LokiDouble::shared),
        );
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::clone(&refusals);
        let tenant = builder.tenant;
        let sink: chassis::Sink = Box::new(move |batch: Batch<'_>| {
            let header = match &tenant {
                TenantHeader::None => None,
                TenantHeader::Fixed(tenant) => Some(tenant.as_str()),
                TenantHeader::FromRequest => batch.header("x-scope-orgid"),
            };
            let refuse = |message: String| lock(&refused).push(message);
            if let Some(tempo) = &tempo
                && !batch.spans.is_empty()
            {
                match tenant_for("tempo", &tempo.tenancy, header) {
                    Ok(t) => lock(&tempo.traces).ingest(&t, batch.spans),
                    Err(message) => refuse(message),
                }
            }
            if let Some(jaeger) = &jaeger {
                lock(&jaeger.traces).ingest(JAEGER_TENANT, batch.spans);
            }
            if let Some(loki) = &loki
                && !batch.logs.is_empty()
            {
                match tenant_for("loki", &loki.tenancy, header) {
                    // A refused entry is what the collector's exporter would log and drop.
                    Ok(t) => {
                        if let Err(message) = loki.ingest(&t, batch.logs) {
                            refuse(format!("loki: {message}"));
                        }
                    }
                    Err(message) => refuse(message),
                }
            }
        });
        let (ca, settings) = match &builder.tls {
            None => (None, None),
            Some(choice) => {
                let ca = choice.resolve()?;
                let settings = match choice.mode {
                    TlsMode::ServerOnly => ca.pki().server_only_settings(),
                    TlsMode::ClientCert => ca.pki().mtls_settings(),
                };
                (Some(ca), Some(settings))
            }
        };
        let (running, receiver) =
            chassis::run_with_intake("collector", Vec::new(), sink, settings, Arc::default())?;
        Ok(Self {
            receiver,
            refusals,
            ca,
            _running: running,
        })
    }

    /// The test CA when the intake serves TLS.
    pub fn ca(&self) -> Option<&Arc<TestCa>> {
        self.ca.as_ref()
    }

    /// What the stores refused so far, one line per refused export and store, as the
    /// exporters would log it (`tempo: no org id`, `loki: no org id`, Loki's 400 reasons).
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.refusals).clone()
    }

    /// The OTLP/gRPC endpoint (the collector's 4317), `http://127.0.0.1:<port>` (with TLS:
    /// `https://localhost:<port>`).
    pub fn grpc_endpoint(&self) -> String {
        self.receiver.grpc_endpoint()
    }

    /// The OTLP/HTTP base endpoint (the collector's 4318), without `/v1/...`.
    pub fn http_endpoint(&self) -> String {
        self.receiver.http_endpoint()
    }

    /// How the intake answers exports from now on (for example a collector refusing data).
    pub fn set_behavior(&self, behavior: Behavior) {
        self.receiver.set_behavior(behavior);
    }

    /// Everything received so far, metrics included.
    pub fn snapshot(&self) -> Snapshot {
        self.receiver.snapshot()
    }
}
