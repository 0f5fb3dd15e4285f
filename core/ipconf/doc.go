// Package ipconf is the endpoint dispatch service: a device asks it over HTTP which gateways to
// connect to and gets a ranked list of at most eight endpoints plus a signed access token.
//
// Scoring follows the design in the seeds. Each gateway reports its load to the registry every
// second; ipconf watches the registry and keeps, per gateway, the samples of the last five
// seconds. The dynamic score is the average remaining bandwidth over that window in GB/s rounded
// to two decimals (the rounding makes gateways with nearly the same headroom compare equal), and
// the static score is the average number of connections. Gateways are ranked by dynamic score,
// higher first, then static score, lower first, then ID.
//
// Concurrency: scores are recomputed by the single watch goroutine as samples arrive, under the
// Scorer's write lock; a request only takes the read lock, picks the best entries and releases
// it, so queries and updates never wait on each other for long and a query never computes a score.
package ipconf
