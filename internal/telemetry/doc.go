// Package telemetry builds a Plato process's OpenTelemetry providers and its admin HTTP server.
//
//   - Metrics: an SDK MeterProvider whose only reader is a Prometheus exporter writing into a
//     registry of its own (never the process-global one, so two platforms in one test binary do
//     not collide), served as GET /metrics by the admin server.
//   - Traces: an SDK TracerProvider with a parent-based trace-ID-ratio sampler and the exporter
//     the configuration names (none, stdout JSON lines, or OTLP over gRPC).
//
// Nothing here sets the otel globals: providers are handed to each role explicitly.
//
// Hot paths do not call the OTel API per message. Roles keep plain atomic counters (Codes and
// Signals below, or their own) and publish them through observable instruments that are read
// only when /metrics is scraped; a trace is started only after the sampler has been consulted
// without allocating (Tracer.StartRoot).
package telemetry
