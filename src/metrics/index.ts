// Prometheus metrics of the daemon (prom-client, one registry per instance).
export { errorKind, httpErrorKind, Metrics, SYNC_BUCKETS, type MetricsOptions, type MetricsSources } from './metrics.js';
