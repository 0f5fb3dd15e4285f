package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The platform's other key-value buckets (the live apps', internal/appstore) are created and
// looked after the way the registry's is, with the same patience for a JetStream that is not
// ready yet.

// EnsureBucket creates the bucket kvc describes, or updates it to kvc, waiting out a JetStream
// that cannot take it yet (a cluster still electing its leader) for up to bucketReadyTimeout or
// ctx's deadline. It returns the bucket with its stream's creation time: a bucket deleted and
// created again by anyone has a new one.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig) (jetstream.KeyValue, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, bucketReadyTimeout)
	defer cancel()
	for {
		kv, created, err := ensureOnce(ctx, js, kvc)
		if err == nil {
			return kv, created, nil
		}
		if !transient(err) {
			return nil, time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return nil, time.Time{}, fmt.Errorf("%w (waited for JetStream)", err)
		case <-time.After(checkRetry):
		}
	}
}

func ensureOnce(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig) (jetstream.KeyValue, time.Time, error) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(cctx, kvc)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("creating bucket %q (%d replicas): %w", kvc.Bucket, kvc.Replicas, err)
	}
	st, err := kv.Status(cctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading bucket %q: %w", kvc.Bucket, err)
	}
	return kv, created(st), nil
}

// BucketCreated is the creation time of kv's stream, read from the server (bounded by
// checkTimeout): an error wrapping jetstream.ErrBucketNotFound or ErrStreamNotFound says it is
// gone.
func BucketCreated(ctx context.Context, kv jetstream.KeyValue) (time.Time, error) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	st, err := kv.Status(cctx)
	if err != nil {
		return time.Time{}, err
	}
	return created(st), nil
}

// AutoReplicas is how many servers keep a bucket configured with n replicas: n, or for 0, 3 when
// nc is connected to a cluster and 1 to a lone server (ADR 0002).
func AutoReplicas(nc *nats.Conn, n int) int {
	if n > 0 {
		return n
	}
	if nc.ConnectedClusterName() != "" {
		return 3
	}
	return 1
}
